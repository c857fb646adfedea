-- wrk script: batches of 100 events with random UUIDv4 ids (capacity only: wrk is closed-loop).
local counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("SA_KEY")
local function uuid4()
  return (string.gsub("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx", "[xy]", function(c)
    local v = (c == "x") and math.random(0, 15) or math.random(8, 11)
    return string.format("%x", v)
  end))
end
function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end
request = function()
  counter = counter + 1
  local parts = {}
  for i = 1, 100 do
    parts[i] = string.format(
      '{"event_name":"ev%d","event_source":"src%d","user_id":"u%d","event_id":"%s","properties":{"i":%d}}',
      i % 10, i % 3, math.random(1, 100000), uuid4(), i)
  end
  return wrk.format(nil, nil, nil, '{"events":[' .. table.concat(parts, ",") .. ']}')
end

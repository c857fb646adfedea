-- wrk script: one event per request with a random UUIDv4 id (capacity only: wrk is closed-loop).
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
  local body = string.format(
    '{"event_name":"page_view","event_source":"web","user_id":"u%d","event_id":"%s","properties":{"page":"/p%d"}}',
    counter % 1000, uuid4(), counter % 50)
  return wrk.format(nil, nil, nil, body)
end

-- wrk script: batches of 100 events with unique ids; SA_RATE (req/s per connection) paces it.
local counter = 0
local prefix = ""
local pause = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("SA_KEY")
function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
  prefix = string.format("%x", math.random(1, 2^30))
  local rate = tonumber(os.getenv("SA_RATE") or "0")
  if rate > 0 then pause = 1000 / rate end
end
function delay()
  return pause
end
request = function()
  counter = counter + 1
  local parts = {}
  for i = 1, 100 do
    parts[i] = string.format(
      '{"event_name":"ev%d","event_source":"src%d","user_id":"u%d","event_id":"%s-%d-%d","properties":{"i":%d}}',
      i % 10, i % 3, math.random(1, 100000), prefix, counter, i, i)
  end
  return wrk.format(nil, nil, nil, '{"events":[' .. table.concat(parts, ",") .. ']}')
end

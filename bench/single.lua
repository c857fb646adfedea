-- wrk script: one event per request, unique ids; SA_RATE (req/s per connection) paces it.
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
  local body = string.format(
    '{"event_name":"page_view","event_source":"web","user_id":"u%d","event_id":"%s-%d","properties":{"page":"/p%d"}}',
    counter % 1000, prefix, counter, counter % 50)
  return wrk.format(nil, nil, nil, body)
end

-- wrk script: one event per request, unique event ids.
local counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("SA_KEY")
request = function()
  counter = counter + 1
  local body = string.format(
    '{"event_name":"page_view","event_source":"web","user_id":"u%d","event_id":"w%d-%d","properties":{"page":"/p%d"}}',
    counter % 1000, math.random(1, 1000000000), counter, counter % 50)
  return wrk.format(nil, nil, nil, body)
end

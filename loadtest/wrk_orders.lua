-- wrk script for loadtest/wrk_client.py: single-line orders, back to back.
-- SKU choice and order ids follow from the seed; each wrk thread has its own
-- random stream and id space.  Arguments after `--`:
--   skus_file token seed order_id_prefix channel qty

local threads = {}
local next_thread_id = 0

function setup(thread)
  thread:set("thread_id", next_thread_id)
  next_thread_id = next_thread_id + 1
  table.insert(threads, thread)
end

function init(args)
  local skus_file, token, seed, prefix, channel, qty =
    args[1], args[2], tonumber(args[3]), args[4], args[5], tonumber(args[6])
  skus = {}
  for line in io.lines(skus_file) do
    if #line > 0 then skus[#skus + 1] = line end
  end
  math.randomseed(seed * 1000 + thread_id)
  wrk.method = "POST"
  wrk.path = "/v1/orders"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. token
  -- The body is built from fixed pieces so a request costs one format call.
  body_head = '{"order_id":"' .. prefix .. '-t' .. thread_id .. '-'
  body_sku = '","channel":"' .. channel .. '","lines":[{"sku":"'
  body_tail = '","qty":' .. qty .. '}]}'
  issued = 0
  accepted = 0
  refused = 0
  unexpected = 0
end

function request()
  issued = issued + 1
  local sku = skus[math.random(#skus)]
  return wrk.format(nil, nil, nil, body_head .. string.format("%09d", issued) .. body_sku .. sku .. body_tail)
end

function response(status, headers, body)
  if status == 201 then
    accepted = accepted + 1
  elseif status == 409 then
    refused = refused + 1
  else
    unexpected = unexpected + 1
  end
end

function done(summary, latency, requests)
  local a, r, u = 0, 0, 0
  for _, thread in ipairs(threads) do
    a = a + thread:get("accepted")
    r = r + thread:get("refused")
    u = u + thread:get("unexpected")
  end
  io.write(string.format(
    'WRK_RESULT {"accepted":%d,"refused":%d,"unexpected":%d,"requests":%d,"duration_us":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,' ..
    '"mean_us":%.1f,"max_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d}\n',
    a, r, u, summary.requests, summary.duration,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end

-- wrk script for the warm scenario's closed loop (bench/lib/wrk-load.mjs).
-- Arguments (after --): a file of pre-signed requests, one per line as
-- "<hex signature>\t<JSON body>", and the workspace id. Every request is formatted once, in
-- init (before wrk starts its clock), so sending one is handing wrk a prepared string.
-- done() prints one JSON line with the counts and latency percentiles (microseconds).

-- The request set: wrk-requests.lua, beside this script.
package.path = debug.getinfo(1, "S").source:match("^@(.*/)") .. "?.lua;" .. package.path
local wrk_requests = require("wrk-requests")
local requests
local count = 0
local next_index = 0

function init(args)
  requests = wrk_requests.load(args[1], args[2])
  count = #requests
end

function request()
  next_index = next_index % count + 1
  return requests[next_index]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"durationUs":%d,"connectErrors":%d,"readErrors":%d,"writeErrors":%d,"timeouts":%d,"non2xx":%d,' ..
    '"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.3f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end

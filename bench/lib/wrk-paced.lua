-- wrk script for the warm scenario's open loop (bench/lib/wrk-load.mjs, runWrkPaced): requests
-- sent on a fixed schedule whatever the server does, latency counted from when each was due.
-- Run with as many threads as connections (-tN -cN): each thread then drives one connection, and
-- its Lua state knows which request that connection has in flight (one thread with many
-- connections calls the script for all of them interleaved, with nothing to tell them apart).
--
-- Connection i of N sends request k at t0 + (i + k·N) / rate: together, `rate` requests a second,
-- evenly spaced. wrk asks delay() how long to wait before each request (whole milliseconds, its
-- timer's unit) and calls it right after the previous answer has been read, so:
--  * the latency of request k is (the time delay() is next called) - (k's due time): a request
--    sent late because the previous one on its connection was slow, or because the timer fired
--    late, counts that wait (no coordinated omission);
--  * the server's latency of request k leaves out only what this generator added: the time from
--    when k could have gone (the later of its due time and the previous answer on its
--    connection) to when it went, its timer's whole milliseconds and the other threads' turns
--    on the CPU ("late"). A wait for the server's previous answer still counts.
-- Arguments (after --): the pre-signed request file ("<hex signature>\t<JSON body>" per line),
-- the workspace id, the rate (requests a second, all connections), the number of connections.
-- done() prints one JSON line: counts and percentiles in microseconds.
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } cardproxy_timespec;
  int clock_gettime(int clock_id, cardproxy_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("cardproxy_timespec")
local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

-- The main state: numbers each thread and gives all the same start, START_DELAY_MS from now
-- (every thread's init reads the request file first; wrk's clock runs meanwhile).
START_DELAY_MS = 300
local threads = {}
local start_us
function setup(thread)
  start_us = start_us or now_us() + START_DELAY_MS * 1000
  thread:set("index", #threads)
  thread:set("t0", start_us)
  table.insert(threads, thread)
end

-- The request set: wrk-requests.lua, beside this script.
package.path = debug.getinfo(1, "S").source:match("^@(.*/)") .. "?.lua;" .. package.path
local wrk_requests = require("wrk-requests")

-- A thread's state.
local requests
local count = 0
local next_index = 0
local interval_us, period_us
local due, sent_us, server_wait_us
local in_flight = false
-- Globals: done() reads them from every thread (thread:get).
latencies, server_latencies, late = {}, {}, {}
last_answer_us = 0

function init(args)
  requests = wrk_requests.load(args[1], args[2])
  count = #requests
  local rate, connections = tonumber(args[3]), tonumber(args[4])
  interval_us = 1e6 / rate
  period_us = interval_us * connections
  due = t0 + index * interval_us
  -- Spread the connections over the request set.
  next_index = (index * math.floor(count / connections)) % count
end

function delay()
  local t = now_us()
  if in_flight then
    in_flight = false
    latencies[#latencies + 1] = t - due
    server_latencies[#server_latencies + 1] = t - sent_us + server_wait_us
    last_answer_us = t
    due = due + period_us
  end
  local wait = due - t
  if wait <= 0 then return 0 end
  return math.ceil(wait / 1000)
end

function request()
  local t = now_us()
  -- The previous answer came after this request was due: the server's part of the wait.
  server_wait_us = math.max(0, last_answer_us - due)
  late[#late + 1] = t - math.max(due, last_answer_us)
  sent_us = t
  in_flight = true
  next_index = next_index % count + 1
  return requests[next_index]
end

local function percentile(sorted, p)
  if #sorted == 0 then return 0 end
  local i = math.max(1, math.ceil(#sorted * p / 100))
  return sorted[i]
end

local function sum(values)
  local total = 0
  for _, v in ipairs(values) do total = total + v end
  return total
end

function done(summary, latency, requests)
  local all, server, all_late, last = {}, {}, {}, start_us
  for _, thread in ipairs(threads) do
    for _, v in ipairs(thread:get("latencies")) do all[#all + 1] = v end
    for _, v in ipairs(thread:get("server_latencies")) do server[#server + 1] = v end
    for _, v in ipairs(thread:get("late")) do all_late[#all_late + 1] = v end
    last = math.max(last, thread:get("last_answer_us"))
  end
  table.sort(all)
  table.sort(server)
  table.sort(all_late)
  local late_over_2ms = 0
  for _, v in ipairs(all_late) do if v > 2000 then late_over_2ms = late_over_2ms + 1 end end
  local e = summary.errors
  io.write(string.format(
    '{"scheduledUs":%.0f,"answered":%d,"sent":%d,"connectErrors":%d,"readErrors":%d,"writeErrors":%d,"timeouts":%d,"non2xx":%d,' ..
    '"p50":%.0f,"p90":%.0f,"p99":%.0f,"max":%.0f,"mean":%.1f,"serverP50":%.0f,"serverP99":%.0f,"serverMax":%.0f,"lateP50":%.0f,"lateP99":%.0f,"lateOver2ms":%d}\n',
    last - start_us, #all, #all_late, e.connect, e.read, e.write, e.timeout, e.status,
    percentile(all, 50), percentile(all, 90), percentile(all, 99), all[#all] or 0, sum(all) / math.max(1, #all),
    percentile(server, 50), percentile(server, 99), server[#server] or 0,
    percentile(all_late, 50), percentile(all_late, 99), late_over_2ms))
end

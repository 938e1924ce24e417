-- tests/bench/post.lua -- the wrk script of tests/bench/run: POSTs a JSON
-- body with an Authorization header and writes one JSON line of results.
--
-- Everything comes from the environment (wrk passes no arguments to done()):
--   BENCH_PATH       request path, e.g. /v1/chat/completions
--   BENCH_BODY_FILE  file holding the request body
--   BENCH_KEYS_FILE  file with one bearer token a line; with more than one,
--                    each request takes the next (round-robin per wrk thread)
--   BENCH_HEADERS    extra header lines "Name: value", separated by "|"
--   BENCH_DELAY_MS   think time before each request (pacing); 0 = none
--   BENCH_PIPELINE   requests written at once on each connection (wrk's
--                    pipelining: init builds them with wrk.format, request
--                    returns them concatenated; wrk counts each answer); 1 =
--                    one at a time.  The latencies are then from the write
--                    of the batch to each answer.
--   BENCH_OUT        file the result line is appended to
--   BENCH_LABEL      a JSON object (text) copied into the result line

local function slurp(path)
   local f = assert(io.open(path, "rb"), "cannot open " .. tostring(path))
   local s = f:read("*a")
   f:close()
   return s
end

local function lines(path)
   local t = {}
   for l in io.lines(path) do
      if l ~= "" then t[#t + 1] = l end
   end
   return t
end

local path = os.getenv("BENCH_PATH") or "/v1/chat/completions"
local body = slurp(os.getenv("BENCH_BODY_FILE"))
local keys = lines(os.getenv("BENCH_KEYS_FILE"))
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0") or 0
local depth = tonumber(os.getenv("BENCH_PIPELINE") or "1") or 1

local base = { ["Content-Type"] = "application/json" }
for h in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^|]+") do
   local name, value = string.match(h, "^%s*([^:]+):%s*(.-)%s*$")
   if name then base[name] = value end
end

local function headers_for(key)
   local h = {}
   for k, v in pairs(base) do h[k] = v end
   h["Authorization"] = "Bearer " .. key
   return h
end

if depth > 1 then
   local batch
   function init(args)
      local r = {}
      for n = 1, depth do
         r[n] = wrk.format("POST", path, headers_for(keys[(n - 1) % #keys + 1]), body)
      end
      batch = table.concat(r)
   end
   function request()
      return batch
   end
elseif #keys == 1 then
   -- one key: a static request, the cheapest for wrk
   wrk.method = "POST"
   wrk.path = path
   wrk.body = body
   wrk.headers = headers_for(keys[1])
else
   local reqs, i = nil, 0
   function request()
      if reqs == nil then
         reqs = {}
         for n, k in ipairs(keys) do
            reqs[n] = wrk.format("POST", path, headers_for(k), body)
         end
      end
      i = i % #reqs + 1
      return reqs[i]
   end
end

if delay_ms > 0 then
   function delay()
      return delay_ms
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   local out = assert(io.open(os.getenv("BENCH_OUT"), "a"))
   out:write(string.format(
      '{"label":%s,"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"mean":%.1f,"max":%d}}\n',
      os.getenv("BENCH_LABEL") or "{}", summary.requests, summary.duration,
      summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.mean, latency.max))
   out:close()
end

-- Shared by the wrk scripts: per-thread ids and the machine-readable summary.
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

-- A browser page on another origin sends Origin with each call: BENCH_ORIGIN sets it
-- (unset or empty: no Origin, as a mobile app or a server calls).
local origin = os.getenv("BENCH_ORIGIN")
function with_origin(headers)
  if origin and origin ~= "" then
    headers["Origin"] = origin
  end
  return headers
end

function load_lines(path)
  local out = {}
  for line in io.lines(path) do
    out[#out + 1] = line
  end
  return out
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH {\"rps\":%.1f,\"non2xx\":%d,\"errors\":%d,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"requests\":%d}\n",
    summary.requests / (summary.duration / 1e6), e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.requests))
end

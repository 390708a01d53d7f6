-- GET as the merchant (secret key), a random path per request from BENCH_PATHS_FILE (one
-- path a line, e.g. /v1/customers/cus_…/context or /v1/customers?tag=vip&limit=20):
-- the scenarios metrics, context, search_email and search_tag of run.sh, which writes
-- those files from a random sample of the seeded data. The requests are formatted once
-- per thread at start, as in portal_read.lua.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local requests = {}

function init(args)
  local auth = "Bearer " .. os.getenv("BENCH_MERCHANT_KEY")
  for _, path in ipairs(load_lines(os.getenv("BENCH_PATHS_FILE"))) do
    requests[#requests + 1] = wrk.format("GET", path, { Authorization = auth })
  end
  math.randomseed(os.time() * 100 + tid)
end

function request()
  return requests[math.random(#requests)]
end

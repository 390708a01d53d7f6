-- GET /v1/portal/subscriptions/{id} with the owning customer's JWT; a random pair per request.
-- The requests are formatted once per thread at start, so that the load generator spends
-- its time sending them rather than building them in Lua (pgbench, the ceiling, is C).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local requests = {}

function init(args)
  for _, line in ipairs(load_lines(os.getenv("BENCH_PORTAL_FILE"))) do
    local s, t = line:match("^(%S+) (%S+)$")
    requests[#requests + 1] =
      wrk.format("GET", "/v1/portal/subscriptions/" .. s,
        with_origin({ Authorization = "Bearer " .. t }))
  end
  math.randomseed(os.time() * 100 + tid)
end

function request()
  return requests[math.random(#requests)]
end

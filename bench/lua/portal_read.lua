-- GET /v1/portal/subscriptions/{id} with the owning customer's JWT; a random pair per request.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local subs, auths = {}, {}

function init(args)
  for _, line in ipairs(load_lines(os.getenv("BENCH_PORTAL_FILE"))) do
    local s, t = line:match("^(%S+) (%S+)$")
    subs[#subs + 1] = "/v1/portal/subscriptions/" .. s
    auths[#auths + 1] = "Bearer " .. t
  end
  math.randomseed(os.time() * 100 + tid)
end

function request()
  local i = math.random(#subs)
  return wrk.format("GET", subs[i], { Authorization = auths[i] })
end

-- POST /v1/portal/subscriptions/{id}/pause, later /resume, alternating per subscription.
-- Each run gets a file with its own slice of the subscriptions (see run.sh), split
-- between wrk's threads; a thread walks its part in order, pausing on even passes
-- and resuming on odd ones. A subscription comes round again only after the whole part
-- has been walked, so no two requests for one subscription are ever in flight together.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local subs, auths = {}, {}
local pos, pass = 0, 0
local pause_body = '{"start":{"type":"now"}}'

function init(args)
  local lines = load_lines(os.getenv("BENCH_PORTAL_FILE"))
  local threads = tonumber(os.getenv("BENCH_THREADS") or "2")
  for i = 1, #lines do
    if (i % threads) == tid then
      local s, t = lines[i]:match("^(%S+) (%S+)$")
      subs[#subs + 1] = "/v1/portal/subscriptions/" .. s
      auths[#auths + 1] = "Bearer " .. t
    end
  end
end

function request()
  pos = pos + 1
  if pos > #subs then
    pos = 1
    pass = pass + 1
  end
  if pass % 2 == 0 then
    return wrk.format("POST", subs[pos] .. "/pause",
      with_origin({ Authorization = auths[pos], ["Content-Type"] = "application/json" }),
      pause_body)
  end
  return wrk.format("POST", subs[pos] .. "/resume", with_origin({ Authorization = auths[pos] }))
end

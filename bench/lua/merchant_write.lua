-- POST /v1/subscriptions/{id}/pause, later /resume, with the merchant's key: the same
-- walk over a slice as portal_write.lua (each subscription comes round again only after
-- the thread's whole part), so the two scenarios differ only in who writes: a merchant
-- request is authenticated by its secret key (cache, revocation) and audited.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local subs = {}
local pos, pass = 0, 0
local pause_body = '{"start":{"type":"now"}}'
local auth = "Bearer " .. os.getenv("BENCH_MERCHANT_KEY")

function init(args)
  local lines = load_lines(os.getenv("BENCH_PORTAL_FILE"))
  local threads = tonumber(os.getenv("BENCH_THREADS") or "2")
  for i = 1, #lines do
    if (i % threads) == tid then
      subs[#subs + 1] = "/v1/subscriptions/" .. lines[i]:match("^(%S+)")
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
      { Authorization = auth, ["Content-Type"] = "application/json" }, pause_body)
  end
  return wrk.format("POST", subs[pos] .. "/resume", { Authorization = auth })
end

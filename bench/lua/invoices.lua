-- GET /v1/invoices as the merchant. BENCH_INVOICE_FILTER: status (status=paid),
-- customer (a random customer's invoices) or created (paid invoices of a random month).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local customers = {}
local mode = os.getenv("BENCH_INVOICE_FILTER") or "status"
local auth = "Bearer " .. os.getenv("BENCH_MERCHANT_KEY")
local now = os.time()

function init(args)
  if mode == "customer" then
    customers = load_lines(os.getenv("BENCH_CUSTOMERS_FILE"))
  end
  math.randomseed(os.time() * 100 + tid)
end

local function iso(t)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", t)
end

function request()
  local path
  if mode == "customer" then
    path = "/v1/invoices?limit=20&customer_id=" .. customers[math.random(#customers)]
  elseif mode == "created" then
    local from = now - math.random(30, 400) * 86400
    path = "/v1/invoices?status=paid&limit=20&created_from=" .. iso(from) .. "&created_to=" .. iso(from + 30 * 86400)
  else
    path = "/v1/invoices?status=paid&limit=20"
  end
  return wrk.format("GET", path, { Authorization = auth })
end

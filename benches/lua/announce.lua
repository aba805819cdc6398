-- BEP 3 announces spread over TORRENTS info-hashes and PEERS peers. Environment:
--   TORRENTS, PEERS (counts), CLOSE ("1": one connection per request)
local torrents = tonumber(os.getenv("TORRENTS"))
local peers = tonumber(os.getenv("PEERS"))
local close = os.getenv("CLOSE") == "1"

local function escaped20(prefix, n)
  -- 20 raw bytes: a 4-byte prefix and the number in decimal, zero-padded, percent-escaped.
  local s = string.format("%s%016d", prefix, n)
  return (s:gsub(".", function(c) return string.format("%%%02X", string.byte(c)) end))
end

request = function()
  local t = math.random(0, torrents - 1)
  local p = math.random(0, peers - 1)
  local left = (p % 2 == 0) and 0 or 1000
  local path = "/announce?info_hash=" .. escaped20("bnch", t) .. "&peer_id=" .. escaped20("-BN-", p) ..
    "&port=" .. (1024 + p % 60000) .. "&uploaded=0&downloaded=0&left=" .. left .. "&compact=1&numwant=50"
  local headers = {}
  if close then headers["Connection"] = "close" end
  return wrk.format("GET", path, headers)
end

local common = require("report")
setup, init, done = common.setup, common.init, common.done

-- JSON POST /announce spread over TORRENTS torrents and PEERS seeder URLs.
local torrents = tonumber(os.getenv("TORRENTS"))
local peers = tonumber(os.getenv("PEERS"))
local close = os.getenv("CLOSE") == "1"

request = function()
  local t = math.random(0, torrents - 1)
  local p = math.random(0, peers - 1)
  local body = string.format('{"info_hash":"%064x","url":"http://10.%d.%d.%d:8080"}', t, math.floor(p / 65536) % 256, math.floor(p / 256) % 256, p % 256)
  local headers = { ["Content-Type"] = "application/json" }
  if close then headers["Connection"] = "close" end
  return wrk.format("POST", "/announce", headers, body)
end

local common = require("report")
setup, init, done = common.setup, common.init, common.done

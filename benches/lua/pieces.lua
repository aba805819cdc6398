-- Random single-piece requests. Environment:
--   PIECES (count), PIECE_LEN (bytes), FILE_LEN (bytes), MODE ("chunks" or "range"),
--   TARGET (path: /chunks/<hash> for chunks, the file's path for range), CLOSE ("1": no keep-alive)
local pieces = tonumber(os.getenv("PIECES"))
local piece_len = tonumber(os.getenv("PIECE_LEN"))
local file_len = tonumber(os.getenv("FILE_LEN"))
local mode = os.getenv("MODE")
local target = os.getenv("TARGET")
local close = os.getenv("CLOSE") == "1"

request = function()
  local i = math.random(0, pieces - 1)
  local headers = {}
  if close then headers["Connection"] = "close" end
  if mode == "chunks" then
    return wrk.format("GET", target .. "/" .. i, headers)
  end
  local first = i * piece_len
  local last = math.min(first + piece_len, file_len) - 1
  headers["Range"] = "bytes=" .. first .. "-" .. last
  return wrk.format("GET", target, headers)
end

local common = require("report")
setup, init, done = common.setup, common.init, common.done

-- Shared wrk hooks: per-thread random seeds, and `done` printing one JSON line with
-- throughput, latency and errors.
local M = {}

function M.setup(thread)
  thread:set("seed", math.random(1, 1000000))
end

function M.init(args)
  math.randomseed(seed)
end

function M.done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.status + summary.errors.timeout
  io.write(string.format(
    'WRK_JSON {"requests": %d, "seconds": %.3f, "rps": %.1f, "bytes_per_sec": %.1f, "p50_ms": %.3f, "p99_ms": %.3f, "errors": %d, "status_errors": %d}\n',
    summary.requests, seconds, summary.requests / seconds, summary.bytes / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors, summary.errors.status))
end

return M

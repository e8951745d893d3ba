-- wrk script for benches/api.sh: optional pacing and a one-line result.
--
--   wrk ... -s benches/api_wrk.lua URL -- DELAY_MS
--
-- With DELAY_MS > 0 each connection waits a random 0.5-1.5 x DELAY_MS
-- before each request (mean DELAY_MS), so C connections offer about
-- C * 1000 / DELAY_MS requests a second, spread out rather than in
-- lockstep bursts. Without it wrk runs flat out (saturation).

local delay_ms = 0

function init(args)
  delay_ms = tonumber(args[1] or "0") or 0
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

function delay()
  if delay_ms <= 0 then
    return 0
  end
  return math.floor(delay_ms * (0.5 + math.random()))
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout + summary.errors.status
  io.write(string.format("RESULT requests=%d rps=%.0f p50_ms=%.3f p99_ms=%.3f errors=%d\n",
    summary.requests, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors))
end

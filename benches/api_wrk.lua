-- wrk script for benches/api.sh: a random path on every request, and a
-- one-line result.
--
--   wrk ... -s benches/api_wrk.lua BASE_URL -- PATHS_FILE
--
-- PATHS_FILE holds one path per line (/v1/products/17, ...); each request
-- takes one uniformly at random, so the load covers the whole data set
-- instead of one cached key. Without PATHS_FILE every request asks for the
-- URL's own path.

local paths = {}

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
  local file = args[1]
  if file then
    for line in io.lines(file) do
      if line ~= "" then
        paths[#paths + 1] = line
      end
    end
  end
end

function request()
  if #paths == 0 then
    return wrk.format(nil)
  end
  return wrk.format(nil, paths[math.random(#paths)])
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout + summary.errors.status
  io.write(string.format("RESULT requests=%d rps=%.0f p50_ms=%.3f p99_ms=%.3f errors=%d\n",
    summary.requests, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors))
end

-- wrk -s bench/wrk-report.lua: the numbers bench/run.sh reads, as one machine-readable line
-- printed after wrk's own report (wrk's text output is for people; its units vary: us/ms/s).
--   wrk-report requests=N duration_us=N rps=R p50_us=N p99_us=N non2xx=N socket_errors=N
-- Only done() is defined: wrk builds its request once (its -H headers apply as without a script)
-- and runs no Lua per request or response, so the script does not slow the measurement.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "wrk-report requests=%d duration_us=%d rps=%.2f p50_us=%d p99_us=%d non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end

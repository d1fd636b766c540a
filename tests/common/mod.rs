//! Shared e2e plumbing: the real Envoy on an example config, with free ports and the test's own
//! echo upstream and collector.
#![allow(dead_code, unused_imports)]

use std::time::Duration;

pub use trace_inject_devtools::collector::Collector;
pub use trace_inject_devtools::echo::{EchoServer, RecordedRequest};
pub use trace_inject_devtools::envoy::{free_port, Envoy, EnvoyBuilder};
pub use trace_inject_devtools::http::{self, Response};

pub mod oracle;
pub mod otlp;
pub mod otlp_sink;

pub const WASM: &str = "dist/trace_inject.wasm";

/// A caller's sampled B3 multi context (trace, span), as raw request headers; none for `None`.
pub fn sampled_b3<'a>(context: Option<(&'a str, &'a str)>) -> Vec<(&'static [u8], &'a [u8])> {
    match context {
        None => vec![],
        Some((t, s)) => vec![
            (b"x-b3-traceid", t.as_bytes()),
            (b"x-b3-spanid", s.as_bytes()),
            (b"x-b3-sampled", b"1"),
        ],
    }
}

/// Every request header the filter reads as a trace context.
pub use trace_inject::headers::CONTEXT_HEADERS as TRACE_HEADERS;

/// One Envoy from `examples/<config>`, its listener on a free port, its upstream the test's echo
/// server, the plugin configuration replaced by `plugin_config` (JSON).
pub struct Hop {
    pub envoy: Envoy,
    pub echo: EchoServer,
    pub port: u16,
    /// The echo's request count before the last request sent through the hop, so that
    /// [`Hop::upstream`] never returns an earlier request when the last one did not get through.
    pub sent_at: std::sync::atomic::AtomicU64,
}

impl Hop {
    /// A hop on `envoy`, whose only listener was given port 0 (read back here).
    pub fn new(envoy: Envoy, echo: EchoServer) -> Hop {
        let port = envoy.port();
        Hop {
            envoy,
            echo,
            port,
            sent_at: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

pub fn wasm_built() {
    assert!(
        std::path::Path::new(WASM).exists(),
        "{WASM} is missing: run `make build` (make e2e does)"
    );
}

/// The example config with ports swapped for free ones and the plugin config replaced.
/// `listener` and `upstream` are the ports written in the example.
pub fn builder(
    example: &str,
    listener: u16,
    upstream: u16,
    port: u16,
    upstream_port: u16,
    plugin_config: &str,
) -> EnvoyBuilder {
    wasm_built();
    let b = Envoy::builder(format!("examples/{example}"))
        .replace(
            &format!("port_value: {listener}}}"),
            format!("port_value: {port}}}"),
        )
        .replace(
            &format!("port_value: {upstream}}}"),
            format!("port_value: {upstream_port}}}"),
        )
        .replace("port_value: 9901", "port_value: 0".to_string());
    // examples/envoy.yaml is the hop with no tracer, and its configuration says so.
    let config = if example == "envoy.yaml" {
        says_no_tracer(plugin_config)
    } else {
        plugin_config.to_string()
    };
    b.replace(
        &plugin_config_line(&format!("examples/{example}")),
        format!("value: '{}'", config.replace('\'', "''")),
    )
}

/// The plugin-configuration line of an example, to replace it.
pub fn plugin_config_line(example: &str) -> String {
    let path = if example.starts_with("examples/") {
        example.to_string()
    } else {
        format!("examples/{example}")
    };
    let text = std::fs::read_to_string(path).expect("example config");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("value: '{"))
        .expect("a `value: '{...}'` plugin configuration line");
    line.trim_start().to_string()
}

/// The sidecar example the Envoy under test loads: `envoy-sidecar.yaml`, or on Envoy 1.36 (no
/// `value:` custom tags) `envoy-sidecar-1.36.yaml`, the same without the workload span tags.
pub fn sidecar_example() -> &'static str {
    match trace_inject_devtools::envoy_version() {
        Ok(v) if v < (1, 37, 0) => "envoy-sidecar-1.36.yaml",
        _ => "envoy-sidecar.yaml",
    }
}

/// Whether the Envoy under test tags spans from the filter's filter state (`value:` custom tags,
/// Envoy 1.37+; see [`sidecar_example`]).
pub fn envoy_has_value_tags() -> bool {
    sidecar_example() == "envoy-sidecar.yaml"
}

/// [`sidecar_example`] (Envoy's Zipkin tracer, Istio-shaped node) in front of `echo`,
/// reporting to `collector`; `plugin_config` `None` keeps the example's own.
pub fn sidecar_builder(
    echo: &EchoServer,
    collector: &Collector,
    port: u16,
    plugin_config: Option<&str>,
) -> EnvoyBuilder {
    example_builder(
        sidecar_example(),
        (10001, port),
        9902,
        echo,
        Some(collector),
        plugin_config,
    )
}

/// `examples/{example}` in front of `echo`, reporting to `collector` (its cluster on 9411, where
/// the example has one): its listener `listener.0` on port `listener.1` (0: read back from
/// admin), its admin port `admin` on a free one, spans posted at once; `plugin_config` `None`
/// keeps the example's own.
pub fn example_builder(
    example: &str,
    listener: (u16, u16),
    admin: u16,
    echo: &EchoServer,
    collector: Option<&Collector>,
    plugin_config: Option<&str>,
) -> EnvoyBuilder {
    wasm_built();
    let (from, to) = listener;
    let mut b = Envoy::builder(format!("examples/{example}"))
        .replace(
            &format!("port_value: {from}}}"),
            format!("port_value: {to}}}"),
        )
        .replace(
            "port_value: 8080}",
            format!("port_value: {}}}", echo.port()),
        );
    if let Some(c) = collector {
        b = b.replace("port_value: 9411}", format!("port_value: {}}}", c.port()));
    }
    b = b
        .replace(
            &format!("port_value: {admin}}}"),
            "port_value: 0}".to_string(),
        )
        .flush_spans_immediately();
    if let Some(c) = plugin_config {
        b = b.replace(
            &plugin_config_line(example),
            format!("value: '{}'", c.replace('\'', "''")),
        );
    }
    b
}

/// A [`Hop`] with Envoy's tracer, and the collector it reports to.
pub struct SidecarHop {
    pub hop: Hop,
    pub collector: Collector,
}

impl std::ops::Deref for SidecarHop {
    type Target = Hop;
    fn deref(&self) -> &Hop {
        &self.hop
    }
}

pub fn sidecar_hop(
    plugin_config: Option<&str>,
    edit: impl FnOnce(EnvoyBuilder) -> EnvoyBuilder,
) -> SidecarHop {
    let echo = EchoServer::start();
    let collector = Collector::start();
    // Port 0: Envoy binds a port the kernel picks (no window for another process to take it).
    let envoy = edit(sidecar_builder(&echo, &collector, 0, plugin_config))
        .start()
        .unwrap_or_else(|e| panic!("Envoy did not start: {e}"));
    SidecarHop {
        hop: Hop::new(envoy, echo),
        collector,
    }
}

/// The `{...}` JSON lines the filter logged, parsed.
pub fn json_log_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|l| l.find(": {\"trace_id\"").map(|i| &l[i + 2..]))
        .map(|j| serde_json::from_str(j).unwrap_or_else(|e| panic!("not JSON ({e}): {j}")))
        .collect()
}

/// The filter's JSON log line for which `matches` holds (`what` names it in the panic), once
/// Envoy has written it. The filter logs in `on_log`, after the answer has left, and Envoy
/// flushes its log file every 50 ms: right after a request its line may be missing while the
/// lines of earlier requests are there. So wait for the request's own line (its trace id, a
/// unique path), never for a count of lines earlier requests can already reach. Panics after
/// 10 s with the lines there are.
pub fn wait_log_line(
    envoy: &Envoy,
    what: &str,
    matches: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut lines = Vec::new();
    let mut found = None;
    wait_until(Duration::from_secs(10), || {
        lines = json_log_lines(&envoy.log());
        found = lines.iter().find(|l| matches(l)).cloned();
        found.is_some()
    });
    found.unwrap_or_else(|| panic!("no JSON log line {what} after 10 s; the lines: {lines:#?}"))
}

/// [`wait_log_line`]: the line whose `trace_id` is `trace`.
pub fn log_line_of(envoy: &Envoy, trace: &str) -> serde_json::Value {
    wait_log_line(envoy, &format!("with trace_id {trace}"), |l| {
        l["trace_id"] == trace
    })
}

/// `examples/envoy.yaml`: a hop with no tracer, which its configuration says as the example's
/// does ([`builder`] adds `"tracer": "none"` where `plugin_config` names no tracer; pass
/// `"tracer": "auto"` to test the filter learning the hop).
pub fn plain_hop(plugin_config: &str) -> Hop {
    plain_hop_with(plugin_config, |b| b)
}

/// [`builder`] for examples/envoy.yaml (no tracer) on a port the kernel picks, in front of
/// `echo`.
pub fn plain_builder(echo: &EchoServer, plugin_config: &str) -> EnvoyBuilder {
    builder("envoy.yaml", 10000, 8080, 0, echo.port(), plugin_config)
}

/// `plugin_config` with `"tracer": "none"` where it names no tracer (and is a JSON object:
/// a test of bad configurations passes its text as it is).
pub fn says_no_tracer(plugin_config: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(plugin_config) {
        Ok(serde_json::Value::Object(mut o)) => {
            o.entry("tracer").or_insert_with(|| "none".into());
            serde_json::Value::Object(o).to_string()
        }
        _ => plugin_config.to_string(),
    }
}

/// [`plain_hop`] with more changes to its builder (e.g. `.concurrency(2)`).
pub fn plain_hop_with(plugin_config: &str, edit: impl FnOnce(EnvoyBuilder) -> EnvoyBuilder) -> Hop {
    let echo = EchoServer::start();
    let envoy = edit(
        plain_builder(&echo, plugin_config).extra_args(["--component-log-level", "wasm:debug"]),
    )
    .start()
    .unwrap_or_else(|e| panic!("Envoy did not start: {e}"));
    Hop::new(envoy, echo)
}

impl Hop {
    /// One plain request, then waits until the filter has said what it learnt from it
    /// (`shows`: "no tracer", "zipkin", "opentelemetry", ...). For tests whose subject is what the
    /// filter does once it knows the hop; what it does before is tests/mesh_defaults.rs'.
    pub fn learn(&self, shows: &str) {
        let r = self.get("/learn-the-hop", &[]);
        assert_eq!(r.status, 200, "the learning request");
        self.envoy
            .wait_for_log(&format!("this hop: {shows} "), Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        let raw: Vec<(&[u8], &[u8])> = headers
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
            .collect();
        self.get_raw(path, &raw)
    }

    pub fn get_raw(&self, path: &str, headers: &[(&[u8], &[u8])]) -> Response {
        self.sent_at
            .store(self.echo.received(), std::sync::atomic::Ordering::SeqCst);
        http::request(self.port, "GET", path, headers)
            .unwrap_or_else(|e| panic!("request failed: {e}"))
    }

    /// The request the upstream saw last; panics if the last request sent through the hop never
    /// reached it (rather than returning the one before).
    pub fn upstream(&self) -> RecordedRequest {
        let before = self.sent_at.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            self.echo.received() > before,
            "the last request never reached the upstream ({before} requests before it, as many now)"
        );
        self.echo
            .requests()
            .pop()
            .expect("the upstream received no request")
    }

    /// Waits until the filter's `requests.*` counters (one per request, whatever its source)
    /// add up to at least `n`: every counter those requests bumped has then reached `/stats`
    /// (all are handed over on the same tick). The positive signal before asserting that a
    /// counter did *not* move. One worker only.
    pub fn wait_counted(&self, n: u64) {
        wait_counted(&self.envoy, n)
    }

    pub fn assert_counter(&self, name: &str, want: u64) {
        assert_stat(
            &self.envoy,
            &format!("wasmcustom.trace_inject.{name}"),
            want,
        );
    }
}

/// Asserts `h` carries one complete, spec-valid, self-consistent trace context in B3 multi and
/// W3C, and returns (trace id as 32 hex, span id).
pub fn assert_valid_context(h: &RecordedRequest) -> (String, String) {
    let one = |name: &str| -> String {
        let v = h.headers_named(name);
        assert_eq!(v.len(), 1, "exactly one {name} upstream, got {v:?}");
        v[0].to_string()
    };
    let trace = one("x-b3-traceid");
    let span = one("x-b3-spanid");
    assert!(
        is_lower_hex(&trace, 32) || is_lower_hex(&trace, 16),
        "x-b3-traceid {trace:?}"
    );
    assert!(is_lower_hex(&span, 16), "x-b3-spanid {span:?}");
    assert!(trace.chars().any(|c| c != '0') && span.chars().any(|c| c != '0'));
    let tp = one("traceparent");
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "traceparent {tp:?}");
    assert_eq!(parts[0], "00");
    let trace32 = format!("{trace:0>32}");
    assert_eq!(
        parts[1], trace32,
        "traceparent trace-id matches x-b3-traceid"
    );
    assert_eq!(parts[2], span, "traceparent parent-id matches x-b3-spanid");
    let sampled = match (h.header("x-b3-sampled"), h.header("x-b3-flags")) {
        (_, Some("1")) => true,
        (Some("1"), _) => true,
        (Some("0"), _) => false,
        // The README: every request leaves with a sampling decision (W3C has no "deferred").
        other => panic!("no sampling decision upstream, or an unexpected one: {other:?}"),
    };
    // Only `sampled` (0x01) and Level 2's `random` (0x02) may be set.
    let flags = u8::from_str_radix(parts[3], 16).expect("traceparent flags are hex");
    assert_eq!(flags & !0x03, 0, "traceparent flags {:?}", parts[3]);
    assert_eq!(
        flags & 0x01 == 1,
        sampled,
        "traceparent sampled flag matches B3 sampling"
    );
    (trace32, span)
}

pub fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// A counter of the filter once it reaches `want`: the filter hands its counts to Envoy on a
/// 1 s tick, so `/stats` lags by up to that. Panics with the last value after 5 s.
pub fn assert_stat(envoy: &Envoy, name: &str, want: u64) {
    let mut last = None;
    let reached = wait_until(Duration::from_secs(5), || {
        last = envoy.stat(name);
        last == Some(want)
    });
    assert!(reached, "{name}: want {want}, /stats says {last:?}");
}

/// Counter `name` once counter `flushed` (bumped by the same requests, handed to Envoy on the
/// same tick: `Metrics::flush` hands every counter over at once) has reached `at_least`: a
/// positive signal that the tick which would carry `name` has happened, instead of a fixed
/// sleep. Panics after 10 s. One worker only (each worker's VM ticks on its own).
pub fn stat_after(envoy: &Envoy, flushed: &str, at_least: u64, name: &str) -> u64 {
    let mut last = None;
    let reached = wait_until(Duration::from_secs(10), || {
        last = envoy.stat(flushed);
        last.is_some_and(|v| v >= at_least)
    });
    assert!(
        reached,
        "{flushed}: want >= {at_least}, /stats says {last:?}"
    );
    envoy.stat(name).unwrap_or(0)
}

/// See [`Hop::wait_counted`].
pub fn wait_counted(envoy: &Envoy, n: u64) {
    let mut last = 0;
    let reached = wait_until(Duration::from_secs(10), || {
        let stats = envoy.stats();
        last = ["b3", "b3_single", "w3c", "injected", "repaired"]
            .iter()
            .filter_map(|s| {
                trace_inject_devtools::envoy::parse_stat(
                    &stats,
                    &format!("wasmcustom.trace_inject.requests.{s}"),
                )
            })
            .sum();
        last >= n
    });
    assert!(reached, "requests.* add up to {last}, want at least {n}");
}

/// Polls counter `name` until it stops changing over two consecutive 1 s ticks (the filter's
/// flush period), then returns it. For counts with no other signal to wait for.
pub fn settled_stat(envoy: &Envoy, name: &str) -> u64 {
    let mut prev = envoy.stat(name);
    let end = std::time::Instant::now() + Duration::from_secs(20);
    let mut stable_since = std::time::Instant::now();
    while std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
        let now = envoy.stat(name);
        if now != prev {
            prev = now;
            stable_since = std::time::Instant::now();
        } else if prev.is_some() && stable_since.elapsed() > Duration::from_millis(2100) {
            break;
        }
    }
    prev.unwrap_or_else(|| panic!("no {name} in /stats"))
}

pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// One request of a [`concurrent_wave`]: its path (unique), the headers sent, the answer.
pub struct WaveRequest {
    pub path: String,
    pub client: u32,
    pub round: u32,
    pub headers: Vec<(String, String)>,
    pub response: Response,
}

/// `clients` concurrent clients sending `rounds` requests each to `port`, a new connection per
/// request so that the kernel spreads them over Envoy's workers; `headers(client, round)` gives
/// each request's headers. Every answer must be 200.
pub fn concurrent_wave(
    port: u16,
    tag: &str,
    clients: u32,
    rounds: u32,
    headers: impl Fn(u32, u32) -> Vec<(String, String)> + Sync,
) -> Vec<WaveRequest> {
    let headers = &headers;
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..clients)
            .map(|client| {
                s.spawn(move || {
                    (0..rounds)
                        .map(|round| {
                            let path = format!("/{tag}/c{client}/r{round}");
                            let sent = headers(client, round);
                            let h: Vec<(&[u8], &[u8])> = sent
                                .iter()
                                .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
                                .collect();
                            let response = http::request(port, "GET", &path, &h).expect("request");
                            assert_eq!(response.status, 200, "{path}");
                            WaveRequest {
                                path,
                                client,
                                round,
                                headers: sent,
                                response,
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("client"))
            .collect()
    })
}

/// Asserts that each of Envoy's `workers` served at least one downstream connection.
pub fn assert_every_worker_served(envoy: &Envoy, workers: u32) {
    let stats = envoy.stats();
    for w in 0..workers {
        let served: u64 = stats
            .lines()
            .filter(|l| {
                l.starts_with("listener.")
                    && l.contains(&format!(".worker_{w}.downstream_cx_total: "))
            })
            .filter_map(|l| l.rsplit_once(": ")?.1.parse::<u64>().ok())
            .sum();
        assert!(served > 0, "worker_{w} served no connection");
    }
}

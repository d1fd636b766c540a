//! Shared e2e plumbing: the real Envoy on an example config, with free ports and the test's own
//! echo upstream and collector.
#![allow(dead_code, unused_imports)]

use std::time::Duration;

pub use trace_inject_devtools::collector::Collector;
pub use trace_inject_devtools::echo::{EchoServer, RecordedRequest};
pub use trace_inject_devtools::envoy::{free_port, Envoy, EnvoyBuilder};
pub use trace_inject_devtools::http::{self, Response};

pub mod oracle;

pub const WASM: &str = "dist/trace_inject.wasm";

/// Every request header the filter reads as a trace context.
pub const TRACE_HEADERS: [&[u8]; 8] = [
    b"x-b3-traceid",
    b"x-b3-spanid",
    b"x-b3-parentspanid",
    b"x-b3-sampled",
    b"x-b3-flags",
    b"b3",
    b"traceparent",
    b"tracestate",
];

/// One Envoy from `examples/<config>`, its listener on a free port, its upstream the test's echo
/// server, the plugin configuration replaced by `plugin_config` (JSON).
pub struct Hop {
    pub envoy: Envoy,
    pub echo: EchoServer,
    pub port: u16,
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
    if plugin_config == "{}" {
        b
    } else {
        b.replace(
            "value: '{}'",
            format!("value: '{}'", plugin_config.replace('\'', "''")),
        )
    }
}

/// The plugin-configuration line of an example, to replace it.
pub fn plugin_config_line(example: &str) -> String {
    let text = std::fs::read_to_string(format!("examples/{example}")).expect("example config");
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
    wasm_built();
    let example = sidecar_example();
    let mut b = Envoy::builder(format!("examples/{example}"))
        .replace("port_value: 10001}", format!("port_value: {port}}}"))
        .replace(
            "port_value: 8080}",
            format!("port_value: {}}}", echo.port()),
        )
        .replace(
            "port_value: 9411}",
            format!("port_value: {}}}", collector.port()),
        )
        .replace("port_value: 9902}", "port_value: 0}".to_string())
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
    let port = free_port();
    let envoy = edit(sidecar_builder(&echo, &collector, port, plugin_config))
        .start()
        .unwrap_or_else(|e| panic!("Envoy did not start: {e}"));
    SidecarHop {
        hop: Hop { envoy, echo, port },
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

/// `examples/envoy.yaml`: a hop with no tracer.
pub fn plain_hop(plugin_config: &str) -> Hop {
    let echo = EchoServer::start();
    let port = free_port();
    let envoy = builder("envoy.yaml", 10000, 8080, port, echo.port(), plugin_config)
        .extra_args(["--component-log-level", "wasm:debug"])
        .start()
        .unwrap_or_else(|e| panic!("Envoy did not start: {e}"));
    Hop { envoy, echo, port }
}

impl Hop {
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        let raw: Vec<(&[u8], &[u8])> = headers
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
            .collect();
        self.get_raw(path, &raw)
    }

    pub fn get_raw(&self, path: &str, headers: &[(&[u8], &[u8])]) -> Response {
        http::request(self.port, "GET", path, headers)
            .unwrap_or_else(|e| panic!("request failed: {e}"))
    }

    /// The request the upstream saw last.
    pub fn upstream(&self) -> RecordedRequest {
        self.echo
            .requests()
            .pop()
            .expect("the upstream received no request")
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
        (None, None) => false, // deferred: W3C says "not recorded"
        other => panic!("unexpected sampling headers {other:?}"),
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

/// The counter after the next tick (its value settles within a second).
pub fn settled_stat(envoy: &Envoy, name: &str) -> u64 {
    std::thread::sleep(Duration::from_millis(1200));
    envoy
        .stat(name)
        .unwrap_or_else(|| panic!("no {name} in /stats"))
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

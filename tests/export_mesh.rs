//! Proves the filter's own spans reach a real Go net/http server (what Jaeger and the OpenTelemetry
//! Collector are) through a cluster named in Istio's shape, as Zipkin v2 and as OTLP/HTTP JSON that
//! parses by the official schema with the caller's `x-trace-id`; and that with the collector down,
//! thousands of 16 KiB paths keep Envoy's memory within `buffer_bytes`, every span counted.
//!
//! Needs `make build`, `make envoy` and `scripts/build-gohost.sh` (.tools/bin/gohost).

mod common;
use common::otlp::{attr, hex, int, string};
use common::otlp_sink::OtlpSink;
use common::*;
use trace_inject::fixtures::{S, T32};

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ISTIO_CLUSTER: &str = "outbound|9411||jaeger-collector.istio-system.svc.cluster.local";
const SERVICE_HOST: &str = "jaeger-collector.istio-system.svc.cluster.local";

/// `tests/gohost` running: Go's net/http server, reverse-proxying to `target_port`.
struct GoHost {
    child: Child,
    port: u16,
    /// Go's request log (`POST /path Host="..."`), one line per request it accepted.
    log: Arc<Mutex<String>>,
}

impl GoHost {
    fn start(target_port: u16) -> GoHost {
        let bin = ".tools/bin/gohost";
        assert!(
            std::path::Path::new(bin).exists(),
            "{bin} is missing: run scripts/build-gohost.sh"
        );
        let mut child = Command::new(bin)
            .args(["-listen", "127.0.0.1:0", "-target"])
            .arg(format!("http://127.0.0.1:{target_port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gohost");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("gohost's first line");
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("gohost said {line:?}"));
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&l);
                s.push('\n');
            }
        });
        GoHost { child, port, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Go's log once it holds `needle` (its reader thread may lag the request), or as it is
    /// after 5 s.
    fn log_with(&self, needle: &str) -> String {
        let end = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < end && !self.log().contains(needle) {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.log()
    }
}

impl Drop for GoHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Envoy A (examples/envoy.yaml, no tracer) whose collector cluster is named as Istio names it,
/// pointing at `collector_port`.
fn edge(echo_port: u16, collector_port: u16, export: &str) -> (Envoy, u16) {
    let config = format!(
        r#"{{"workload": {{"service": "edge", "namespace": "gateways"}}, "export": {export}}}"#
    );
    // Port 0: Envoy binds what the kernel gives; read back from admin.
    let envoy = builder("envoy.yaml", 10000, 8080, 0, echo_port, &config)
        .replace("- name: zipkin", format!("- name: \"{ISTIO_CLUSTER}\""))
        .replace(
            "cluster_name: zipkin",
            format!("cluster_name: \"{ISTIO_CLUSTER}\""),
        )
        .replace(
            "port_value: 9411}",
            format!("port_value: {collector_port}}}"),
        )
        .start()
        .unwrap_or_else(|e| panic!("Envoy A: {e}"));
    let port = envoy.port();
    (envoy, port)
}

/// The negative control: the Go server does refuse the cluster name as a Host.
fn assert_go_refuses_the_cluster_name(go: &GoHost) {
    let r = http::request(go.port, "POST", "/", &[(b"host", ISTIO_CLUSTER.as_bytes())]).unwrap();
    assert_eq!(
        r.status, 400,
        "Go's net/http refuses `Host: {ISTIO_CLUSTER}`"
    );
}

#[test]
fn zipkin_export_through_an_istio_cluster_name_reaches_a_go_server() {
    let collector = Collector::start();
    let go = GoHost::start(collector.port());
    assert_go_refuses_the_cluster_name(&go);
    let echo = EchoServer::start();
    let (a, port) = edge(
        echo.port(),
        go.port,
        &format!(r#"{{"cluster": "{ISTIO_CLUSTER}", "flush_interval_ms": 100}}"#),
    );
    let r = http::request(port, "GET", "/orders?id=7", &[]).unwrap();
    assert_eq!(r.status, 200);
    let trace = r.header("x-trace-id").expect("x-trace-id");
    let spans = collector.wait_for_trace(&trace, 1, Duration::from_secs(15));
    assert_eq!(spans.len(), 1, "the filter's span, through Go: {spans:?}");
    assert_eq!(spans[0].service_name(), Some("edge"));
    assert_eq!(spans[0].tag("http.path"), Some("/orders"));
    assert!(
        go.log_with(&format!("Host={SERVICE_HOST:?}"))
            .contains(&format!("Host={SERVICE_HOST:?}")),
        "Go saw the service host: {}",
        go.log()
    );
    assert_stat(&a, "wasmcustom.trace_inject.export.spans_sent", 1);
    assert_eq!(
        a.stat("wasmcustom.trace_inject.export.spans_failed"),
        Some(0)
    );
}

#[test]
fn otlp_export_through_an_istio_cluster_name_parses_by_the_official_schema() {
    let sink = OtlpSink::start();
    let go = GoHost::start(sink.port);
    assert_go_refuses_the_cluster_name(&go);
    let echo = EchoServer::start();
    let (a, port) = edge(
        echo.port(),
        go.port,
        &format!(
            r#"{{"cluster": "{ISTIO_CLUSTER}", "protocol": "otlp", "flush_interval_ms": 100}}"#
        ),
    );
    for incoming in [None, Some((T32, S))] {
        let headers = sampled_b3(incoming);
        let r = http::request(port, "GET", "/orders?id=7", &headers).unwrap();
        assert_eq!(r.status, 200);
        let trace = r.header("x-trace-id").expect("x-trace-id");
        let mut found = None;
        wait_until(Duration::from_secs(15), || {
            found = sink
                .spans_with_requests()
                .into_iter()
                .find(|(_, _, s)| hex(&s.trace_id) == trace);
            found.is_some()
        });
        let (req, rs, span) = found.unwrap_or_else(|| {
            panic!(
                "no span of trace {trace} at the OTLP receiver; Go's log:\n{}",
                go.log()
            )
        });
        assert_eq!(req.path, "/v1/traces");
        assert_eq!(req.host, SERVICE_HOST, "the Host Go accepted and passed on");
        assert!(req.content_type.starts_with("application/json"), "{req:?}");
        let res = &rs.resource.as_ref().expect("a resource").attributes;
        assert_eq!(string(attr(res, "service.name")), Some("edge"));
        assert_eq!(string(attr(res, "service.namespace")), Some("gateways"));
        assert_eq!(span.kind, 2, "SERVER");
        match incoming {
            None => assert!(span.parent_span_id.is_empty(), "a root span"),
            Some((_, s)) => assert_eq!(hex(&span.parent_span_id), s, "child of the caller's"),
        }
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
        assert!(span.start_time_unix_nano > 1_600_000_000_000_000_000);
        let at = &span.attributes;
        assert_eq!(string(attr(at, "http.request.method")), Some("GET"));
        assert_eq!(string(attr(at, "url.path")), Some("/orders"));
        assert_eq!(int(attr(at, "http.response.status_code")), Some(200));
        assert_eq!(string(attr(at, "server.address")), Some("127.0.0.1"));
        assert_eq!(int(attr(at, "server.port")), Some(i64::from(port)));
        assert_eq!(string(attr(at, "upstream_cluster")), Some("echo"));
        assert!(span.status.is_none(), "2xx: status unset");
    }
    assert_stat(&a, "wasmcustom.trace_inject.export.spans_sent", 2);
    assert_eq!(
        a.stat("wasmcustom.trace_inject.export.spans_failed"),
        Some(0)
    );
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// The collector is down and the flush slow: spans pile up. The buffer's byte bound (256 KiB,
/// one worker) and the 256-byte path cut keep Envoy's growth to a few MiB where whole 16 KiB
/// paths held by count alone grew it by 16 MiB per 1000 spans (issue 15); every span beyond the
/// bound is counted as dropped.
#[test]
fn collector_down_memory_stays_within_buffer_bytes() {
    const BUFFER_BYTES: u64 = 256 * 1024;
    const WARMUP: u64 = 300;
    const REQUESTS: u64 = 3000;
    let echo = EchoServer::start();
    let dead = free_port(); // nothing listens there
    let (a, port) = edge(
        echo.port(),
        dead,
        &format!(
            r#"{{"cluster": "{ISTIO_CLUSTER}", "flush_interval_ms": 600000, "buffer_limit": 1000000, "buffer_bytes": {BUFFER_BYTES}}}"#
        ),
    );
    let path = format!("/{}?q=1", "p".repeat(16 * 1024));
    let send = |n: u64| {
        for _ in 0..n {
            let r = http::request(port, "GET", &path, &[]).unwrap();
            assert_eq!(r.status, 200);
        }
    };
    send(WARMUP);
    let before = rss_kib(a.pid());
    send(REQUESTS);
    let after = rss_kib(a.pid());
    let growth_kib = after.saturating_sub(before);
    eprintln!(
        "Envoy RSS {before} KiB -> {after} KiB after {REQUESTS} requests with 16 KiB paths (+{growth_kib} KiB)"
    );
    assert!(
        growth_kib < 4 * 1024,
        "RSS grew by {growth_kib} KiB: the span buffer is not bounded in bytes"
    );
    let total = WARMUP + REQUESTS;
    // Each kept span holds at least its 256-byte path: at most BUFFER_BYTES / 256 are kept.
    let max_kept = BUFFER_BYTES / 256;
    let mut dropped = 0;
    let counted = wait_until(Duration::from_secs(5), || {
        dropped = a
            .stat("wasmcustom.trace_inject.export.spans_dropped")
            .unwrap_or(0);
        dropped >= total - max_kept
    });
    assert!(
        counted && dropped <= total,
        "spans_dropped {dropped} of {total} (at most {max_kept} kept)"
    );
    assert_eq!(a.stat("wasmcustom.trace_inject.export.spans_sent"), Some(0));
}

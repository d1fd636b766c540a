//! Issue 23: gRPC through the filter, with a real gRPC server and client (grpcio, gRPC's C core;
//! tests/grpc/server.py and client.py, installed by scripts/install-grpc.sh) and a real Envoy
//! speaking HTTP/2 on both sides (tests/grpc/envoy.yaml, no tracer). For unary, server streaming,
//! a trailers-only error, an error after data, an unknown method and a deadline: the one trace
//! context the server received (read by OpenTelemetry's propagators), where the client finds
//! `x-trace-id` (initial or trailing metadata), the log line's `grpc_status`, the filter's own
//! span as OTLP (parsed by the official schema) and as Zipkin, and the gRPC counters.

mod common;
use common::otlp::{attr, hex, int, string};
use common::otlp_sink::OtlpSink;
use common::*;
use trace_inject::fixtures::{S, T32};

use opentelemetry_proto::tonic::trace::v1::Span as OtlpSpan;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PYTHON: &str = ".tools/grpc-venv/bin/python";
const CONFIG: &str = "tests/grpc/envoy.yaml";
const SERVICE: &str = "trace.inject.test.Echo";

fn python() -> &'static str {
    assert!(
        std::path::Path::new(PYTHON).exists(),
        "{PYTHON} is missing: run scripts/install-grpc.sh (make e2e does)"
    );
    PYTHON
}

fn pairs(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p[0].as_str().expect("name").to_string(),
                p[1].as_str().expect("value").to_string(),
            )
        })
        .collect()
}

/// gRPC metadata as (name, value) pairs, in order.
type Metadata = Vec<(String, String)>;

// --- The gRPC server -----------------------------------------------------------------------

/// tests/grpc/server.py on a port of 127.0.0.1 the kernel picked; killed on drop.
struct GrpcServer {
    child: Child,
    port: u16,
    /// Each call the server received: (method path, metadata), in arrival order.
    calls: Arc<Mutex<Vec<(String, Metadata)>>>,
}

impl GrpcServer {
    fn start() -> GrpcServer {
        let mut child = Command::new(python())
            .arg("tests/grpc/server.py")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn tests/grpc/server.py");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        let port = serde_json::from_str::<Value>(&first)
            .ok()
            .and_then(|v| v["port"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("the gRPC server said {first:?}, not its port")
            });
        let calls = Arc::new(Mutex::new(Vec::new()));
        let sink = calls.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("server line not JSON ({e}): {line}"));
                let method = v["method"].as_str().unwrap_or_default().to_string();
                sink.lock().unwrap().push((method, pairs(&v["metadata"])));
            }
        });
        GrpcServer { child, port, calls }
    }

    /// The metadata of the call tagged `x-call: tag`, once the server has it (5 s at most).
    fn received(&self, tag: &str) -> Vec<(String, String)> {
        let find = || {
            self.calls
                .lock()
                .unwrap()
                .iter()
                .find(|(_, md)| md.iter().any(|(n, v)| n == "x-call" && v == tag))
                .map(|(_, md)| md.clone())
        };
        wait_until(Duration::from_secs(5), || find().is_some());
        find().unwrap_or_else(|| {
            panic!(
                "the server received no call tagged {tag}; it received: {:#?}",
                self.calls.lock().unwrap()
            )
        })
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// --- The gRPC client -----------------------------------------------------------------------

/// One call for tests/grpc/client.py.
#[derive(Clone, Debug)]
struct Call {
    /// Envoy's listener.
    port: u16,
    /// `Unary`, `Stream`, ... (a method of `trace.inject.test.Echo`).
    method: &'static str,
    streaming: bool,
    /// Sent as `x-call` metadata, to find the call at the server.
    tag: String,
    metadata: Vec<(String, String)>,
    timeout: Option<f64>,
    request: String,
}

impl Call {
    fn new(port: u16, method: &'static str, tag: impl Into<String>) -> Call {
        Call {
            port,
            method,
            streaming: matches!(method, "Stream" | "InternalAfterData"),
            tag: tag.into(),
            metadata: Vec::new(),
            timeout: None,
            request: String::new(),
        }
    }

    fn path(&self) -> String {
        format!("/{SERVICE}/{}", self.method)
    }
}

/// What the client got back from one call.
#[derive(Clone, Debug)]
struct Outcome {
    call: Call,
    code: u64,
    code_name: String,
    initial: Vec<(String, String)>,
    trailing: Vec<(String, String)>,
    responses: Vec<String>,
}

impl Outcome {
    fn initial(&self, name: &str) -> Vec<&str> {
        named(&self.initial, name)
    }

    fn trailing(&self, name: &str) -> Vec<&str> {
        named(&self.trailing, name)
    }
}

fn named<'a>(md: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    md.iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Runs `calls` in one client process, one after another; one outcome per call.
fn run_client(calls: &[Call]) -> Vec<Outcome> {
    let plan = json!({"calls": calls.iter().map(|c| {
        let mut md: Vec<[&str; 2]> = vec![["x-call", c.tag.as_str()]];
        md.extend(c.metadata.iter().map(|(n, v)| [n.as_str(), v.as_str()]));
        json!({
            "target": format!("127.0.0.1:{}", c.port),
            "path": c.path(),
            "kind": if c.streaming { "stream" } else { "unary" },
            "metadata": md,
            "timeout": c.timeout,
            "request": c.request,
        })
    }).collect::<Vec<_>>()});
    let mut child = Command::new(python())
        .arg("tests/grpc/client.py")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tests/grpc/client.py");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(plan.to_string().as_bytes())
        .expect("write the plan");
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read the client's answer");
    let mut err = String::new();
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err);
    let status = child.wait().expect("the client ran");
    assert!(status.success(), "the gRPC client failed ({status}): {err}");
    let doc: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("client: {e}: {out}"));
    let results = doc["calls"].as_array().expect("calls");
    assert_eq!(results.len(), calls.len(), "one outcome per call");
    calls
        .iter()
        .zip(results)
        .map(|(c, r)| Outcome {
            call: c.clone(),
            code: r["code"].as_u64().expect("code"),
            code_name: r["code_name"].as_str().expect("code_name").to_string(),
            initial: pairs(&r["initial_metadata"]),
            trailing: pairs(&r["trailing_metadata"]),
            responses: r["responses"]
                .as_array()
                .expect("responses")
                .iter()
                .map(|s| s.as_str().expect("text").to_string())
                .collect(),
        })
        .collect()
}

// --- Envoy ---------------------------------------------------------------------------------

/// tests/grpc/envoy.yaml in front of `server`, its `collector` cluster at `collector_port`, the
/// plugin configured with `plugin_config`.
fn grpc_envoy(
    server: &GrpcServer,
    collector_port: u16,
    plugin_config: &str,
    edit: impl FnOnce(EnvoyBuilder) -> EnvoyBuilder,
) -> Envoy {
    wasm_built();
    edit(
        Envoy::builder(CONFIG)
            .replace(
                "port_value: 50051}",
                format!("port_value: {}}}", server.port),
            )
            .replace(
                "port_value: 9411}",
                format!("port_value: {collector_port}}}"),
            )
            .replace(
                r#"value: '{"tracer": "none"}'"#,
                format!("value: '{}'", plugin_config.replace('\'', "''")),
            ),
    )
    .start()
    .unwrap_or_else(|e| panic!("Envoy did not start: {e}"))
}

/// The filter, no tracer, exporting its own spans to `collector_port` as `protocol`.
fn exporting_envoy(server: &GrpcServer, collector_port: u16, protocol: &str) -> Envoy {
    let config = format!(
        r#"{{"tracer": "none", "workload": {{"service": "checkout", "namespace": "shop"}},
            "export": {{"cluster": "collector", "protocol": "{protocol}", "flush_interval_ms": 100}}}}"#
    );
    grpc_envoy(server, collector_port, &config, |b| b)
}

/// Envoy's own Zipkin tracer at 100 % on the connection manager (as a sidecar's), posting to
/// the `collector` cluster at once; the filter beside it says so.
fn tracing_envoy(server: &GrpcServer, collector_port: u16) -> Envoy {
    grpc_envoy(server, collector_port, r#"{"tracer": "zipkin"}"#, |b| {
        b.replace(
            "          stat_prefix: ingress\n",
            "          stat_prefix: ingress\n          tracing: {random_sampling: {value: 100}, \
             provider: {name: envoy.tracers.zipkin, typed_config: {\"@type\": \
             type.googleapis.com/envoy.config.trace.v3.ZipkinConfig, collector_cluster: \
             collector, collector_endpoint: /api/v2/spans, collector_endpoint_version: \
             HTTP_JSON, trace_id_128bit: true}}}\n",
        )
        .flush_spans_immediately()
    })
}

/// The filter's raw JSON log line of `trace` and `path` (to see the order of its fields).
fn raw_log_line(envoy: &Envoy, trace: &str, path: &str) -> String {
    let needle = format!("{{\"trace_id\":\"{trace}\"");
    let path = format!("\"path\":{}", json!(path));
    envoy
        .log()
        .lines()
        .filter_map(|l| l.find(&needle).map(|i| &l[i..]))
        .find(|l| l.contains(&path))
        .unwrap_or_else(|| panic!("no log line of trace {trace} and {path}"))
        .to_string()
}

// --- What the spans and counters must say ---------------------------------------------------

/// gRPC's status codes by number, as grpcio names them.
const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The server errors of OpenTelemetry's RPC semantic conventions for a gRPC server span:
/// UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS. The OTLP span's
/// status is ERROR for these (unset otherwise), and `trace_inject.grpc.errors` counts them.
const SERVER_ERRORS: [u64; 6] = [2, 4, 12, 13, 14, 15];

/// The gRPC statuses Envoy's own tracer tags `error` for (`addGrpcResponseTags` in
/// source/common/tracing/http_tracer_impl.cc, since envoyproxy/envoy#18877): the server errors
/// above and RESOURCE_EXHAUSTED; NOT_FOUND, CANCELLED, ... are the client's errors, untagged.
/// [`every_status_code_is_tagged_as_envoys_tracer_and_the_conventions_say`] measures it.
const ENVOY_ERRORS: [u64; 7] = [2, 4, 8, 12, 13, 14, 15];

/// Envoy's tracer's `error` tag for a call: a gRPC status it tags, or no HTTP status at all or
/// a 5xx (`setCommonTags`).
fn envoy_error(grpc_status: Option<u64>, http_status: Option<u64>) -> bool {
    grpc_status.is_some_and(|c| ENVOY_ERRORS.contains(&c)) || http_status.is_none_or(|s| s >= 500)
}

/// The filter on two hops in front of one gRPC server: `z` exports its spans as Zipkin v2 to
/// `zipkin`, `o` as OTLP/HTTP JSON to `otlp`.
struct Rig {
    server: GrpcServer,
    zipkin: Collector,
    otlp: OtlpSink,
    z: Envoy,
    o: Envoy,
}

impl Rig {
    fn start() -> Rig {
        let server = GrpcServer::start();
        let zipkin = Collector::start();
        let otlp = OtlpSink::start();
        let z = exporting_envoy(&server, zipkin.port(), "zipkin");
        let o = exporting_envoy(&server, otlp.port, "otlp");
        Rig {
            server,
            zipkin,
            otlp,
            z,
            o,
        }
    }

    /// `method` once through each hop (tags `z`, `o`), as `edit` sets the call up.
    fn call_both(&self, method: &'static str, edit: impl Fn(&mut Call)) -> [Outcome; 2] {
        let calls: Vec<Call> = [("z", &self.z), ("o", &self.o)]
            .into_iter()
            .map(|(tag, envoy)| {
                let mut c = Call::new(envoy.port(), method, tag);
                edit(&mut c);
                c
            })
            .collect();
        run_client(&calls)
            .try_into()
            .unwrap_or_else(|_| unreachable!("two calls, two outcomes"))
    }
}

/// Where the client finds `x-trace-id`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Told {
    /// In the initial metadata (the response headers).
    Initial,
    /// In the trailing metadata: a trailers-only response, its one HEADERS frame.
    Trailing,
    /// Nowhere: no response reached the client.
    Nowhere,
}

/// The `x-trace-id` the client was told, where `told` says and nowhere else.
fn told_trace(o: &Outcome, told: Told, what: &str) -> Option<String> {
    let (initial, trailing) = (o.initial("x-trace-id"), o.trailing("x-trace-id"));
    let (here, not_there) = match told {
        Told::Initial => (initial, trailing),
        Told::Trailing => (trailing, initial),
        Told::Nowhere => {
            assert!(
                initial.is_empty() && trailing.is_empty(),
                "{what}: no x-trace-id expected; initial {:?}, trailing {:?}",
                o.initial,
                o.trailing
            );
            return None;
        }
    };
    assert!(
        not_there.is_empty(),
        "{what}: x-trace-id only in the {told:?} metadata; initial {:?}, trailing {:?}",
        o.initial,
        o.trailing
    );
    assert_eq!(
        here.len(),
        1,
        "{what}: one x-trace-id in the {told:?} metadata; initial {:?}, trailing {:?}",
        o.initial,
        o.trailing
    );
    Some(here[0].to_string())
}

/// The log line says `status` (HTTP) and, right after it, `grpc_status`, or no `grpc_status`.
fn check_log_line(
    envoy: &Envoy,
    line: &Value,
    http_status: Option<u64>,
    grpc_status: Option<u64>,
    what: &str,
) {
    assert_eq!(line["status"], json!(http_status), "{what}: status: {line}");
    match grpc_status {
        Some(c) => {
            assert_eq!(line["grpc_status"], json!(c), "{what}: grpc_status: {line}");
            let raw = raw_log_line(
                envoy,
                line["trace_id"].as_str().expect("trace_id"),
                line["path"].as_str().expect("path"),
            );
            let status = http_status.map_or("null".to_string(), |s| s.to_string());
            let pair = format!("\"status\":{status},\"grpc_status\":{c}");
            assert!(
                raw.contains(&format!("{pair},")) || raw.contains(&format!("{pair}}}")),
                "{what}: grpc_status right after status: {raw}"
            );
        }
        None => assert!(
            line.get("grpc_status").is_none(),
            "{what}: no grpc_status where Envoy knows none: {line}"
        ),
    }
}

/// The filter's one Zipkin span of `trace` (the only span of that trace).
fn zipkin_span(collector: &Collector, trace: &str, what: &str) -> trace_inject_devtools::Span {
    let spans = collector.wait_for_trace(trace, 1, Duration::from_secs(15));
    assert_eq!(
        spans.len(),
        1,
        "{what}: one span of trace {trace}: {spans:?}"
    );
    spans.into_iter().next().expect("one span")
}

/// The filter's Zipkin span of a gRPC call: the HTTP tags as for any request, `grpc.status_code`
/// and `error` as Envoy's own tracer writes them.
fn check_zipkin_span(
    span: &trace_inject_devtools::Span,
    method: &str,
    grpc_status: Option<u64>,
    http_status: Option<u64>,
    what: &str,
) {
    assert_eq!(span.kind.as_deref(), Some("SERVER"), "{what}");
    assert_eq!(span.service_name(), Some("checkout"), "{what}");
    let path = format!("/{SERVICE}/{method}");
    let status = http_status.map(|s| s.to_string());
    let code = grpc_status.map(|c| c.to_string());
    for (tag, want) in [
        ("http.method", Some("POST")),
        ("http.path", Some(path.as_str())),
        ("http.status_code", status.as_deref()),
        ("upstream_cluster", Some("grpc")),
        ("grpc.status_code", code.as_deref()),
        (
            "error",
            Some("true").filter(|_| envoy_error(grpc_status, http_status)),
        ),
    ] {
        assert_eq!(
            span.tag(tag),
            want,
            "{what}: Zipkin tag {tag}: {:?}",
            span.tags
        );
    }
}

/// The filter's one OTLP span of `trace`.
fn otlp_span(sink: &OtlpSink, trace: &str, what: &str) -> OtlpSpan {
    let spans = sink.wait_for_trace(trace, 1, Duration::from_secs(15));
    assert_eq!(
        spans.len(),
        1,
        "{what}: one span of trace {trace}: {spans:?}"
    );
    spans.into_iter().next().expect("one span").1
}

/// The filter's OTLP span of a gRPC call, by the RPC semantic conventions; the HTTP attributes
/// stay.
fn check_otlp_span(
    span: &OtlpSpan,
    method: &str,
    grpc_status: Option<u64>,
    http_status: Option<u64>,
    what: &str,
) {
    let at = &span.attributes;
    let keys: Vec<&str> = at.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        span.name,
        format!("{SERVICE}/{method}"),
        "{what}: span name"
    );
    assert_eq!(span.kind, 2, "{what}: SERVER");
    assert_eq!(
        string(attr(at, "rpc.system")),
        Some("grpc"),
        "{what}: {keys:?}"
    );
    assert_eq!(string(attr(at, "rpc.service")), Some(SERVICE), "{what}");
    assert_eq!(string(attr(at, "rpc.method")), Some(method), "{what}");
    assert_eq!(
        int(attr(at, "rpc.grpc.status_code")),
        grpc_status.map(|c| c as i64),
        "{what}: rpc.grpc.status_code (an int): {:?}",
        attr(at, "rpc.grpc.status_code")
    );
    assert_eq!(
        string(attr(at, "http.request.method")),
        Some("POST"),
        "{what}"
    );
    let path = format!("/{SERVICE}/{method}");
    assert_eq!(string(attr(at, "url.path")), Some(path.as_str()), "{what}");
    assert_eq!(
        int(attr(at, "http.response.status_code")),
        http_status.map(|s| s as i64),
        "{what}: http.response.status_code"
    );
    if grpc_status.is_some_and(|c| SERVER_ERRORS.contains(&c)) {
        let status = span
            .status
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: a server error: status ERROR, got none"));
        assert_eq!(status.code, 2, "{what}: status ERROR: {status:?}");
        assert!(!status.message.is_empty(), "{what}: an ERROR says why");
    } else {
        assert!(
            span.status.as_ref().is_none_or(|s| s.code == 0),
            "{what}: not a server error: status unset, got {:?}",
            span.status
        );
    }
}

/// `trace_inject.grpc.calls` reaches `calls`; then `trace_inject.grpc.errors` is `errors`.
fn check_counters(envoy: &Envoy, calls: u64, errors: Option<u64>, what: &str) {
    assert_stat(envoy, "wasmcustom.trace_inject.grpc.calls", calls);
    let got = stat_after(
        envoy,
        "wasmcustom.trace_inject.grpc.calls",
        calls,
        "wasmcustom.trace_inject.grpc.errors",
    );
    if let Some(want) = errors {
        assert_eq!(got, want, "{what}: trace_inject.grpc.errors");
    }
}

/// One way a call goes, and what everyone must say about it.
struct Scenario {
    method: &'static str,
    /// Metadata and deadline.
    edit: fn(&mut Call),
    /// The status the client sees.
    code: u64,
    told: Told,
    /// What Envoy knows of the status: the log line's `grpc_status`, the spans'.
    grpc_status: Option<u64>,
    /// The HTTP status on the log line (none: no response).
    http_status: Option<u64>,
    /// Messages the client received.
    messages: usize,
}

/// The call once through each hop; then what the server received (one valid context, B3 and
/// W3C, as OpenTelemetry's propagators read it, of the trace the client was told), where the
/// client found `x-trace-id`, the log line, the Zipkin and OTLP spans and the counters.
fn check(sc: Scenario) {
    let rig = Rig::start();
    let outcomes = rig.call_both(sc.method, sc.edit);
    let mut batch = oracle::Batch::new();
    let mut traces = Vec::new();
    for (o, envoy) in outcomes.iter().zip([&rig.z, &rig.o]) {
        let what = format!("{} through hop {}", sc.method, o.call.tag);
        assert_eq!(
            (o.code, o.responses.len()),
            (sc.code, sc.messages),
            "{what}: the client's status ({}) and messages: {o:?}",
            o.code_name
        );
        let path = o.call.path();
        let line = wait_log_line(envoy, &format!("of {path}"), |l| l["path"] == path.as_str());
        let trace = line["trace_id"].as_str().expect("trace_id").to_string();
        let told = told_trace(o, sc.told, &what);
        if let Some(t) = &told {
            assert_eq!(t, &trace, "{what}: x-trace-id names the logged trace");
        }
        let received = rig.server.received(&o.call.tag);
        for name in ["x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "traceparent"] {
            assert_eq!(
                named(&received, name).len(),
                1,
                "{what}: the server received one {name}: {received:?}"
            );
        }
        batch.push(what.clone(), &[], &received, Some(trace.clone()));
        check_log_line(envoy, &line, sc.http_status, sc.grpc_status, &what);
        traces.push(trace);
    }
    batch.assert_one_context();
    let errors = sc
        .grpc_status
        .map(|c| u64::from(SERVER_ERRORS.contains(&c)));
    every_check(vec![
        ("the Zipkin span", &|| {
            let what = format!("{}, Zipkin span", sc.method);
            let span = zipkin_span(&rig.zipkin, &traces[0], &what);
            check_zipkin_span(&span, sc.method, sc.grpc_status, sc.http_status, &what);
        }),
        ("the OTLP span", &|| {
            let what = format!("{}, OTLP span", sc.method);
            let span = otlp_span(&rig.otlp, &traces[1], &what);
            check_otlp_span(&span, sc.method, sc.grpc_status, sc.http_status, &what);
        }),
        ("the counters", &|| {
            for envoy in [&rig.z, &rig.o] {
                check_counters(envoy, 1, errors, sc.method);
            }
        }),
    ]);
}

/// Runs every check, then fails naming each one that failed (their messages are printed as
/// they fail): a test shows all that differs, not only the first.
fn every_check(checks: Vec<(&str, &dyn Fn())>) {
    let failed: Vec<&str> = checks
        .into_iter()
        .filter(|(_, f)| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err())
        .map(|(name, _)| name)
        .collect();
    assert!(failed.is_empty(), "failed: {}", failed.join(", "));
}

fn no_edit(_: &mut Call) {}

#[test]
fn unary_ok() {
    check(Scenario {
        method: "Unary",
        edit: no_edit,
        code: 0,
        told: Told::Initial,
        grpc_status: Some(0),
        http_status: Some(200),
        messages: 1,
    });
}

#[test]
fn server_streaming_ok() {
    check(Scenario {
        method: "Stream",
        edit: no_edit,
        code: 0,
        told: Told::Initial,
        grpc_status: Some(0),
        http_status: Some(200),
        messages: 3,
    });
}

/// The server fails before sending anything: one HEADERS frame ends the stream, so `x-trace-id`
/// (added to the response headers) is in the client's trailing metadata.
#[test]
fn trailers_only_not_found_tells_x_trace_id_in_the_trailing_metadata() {
    check(Scenario {
        method: "NotFound",
        edit: no_edit,
        code: 5,
        told: Told::Trailing,
        grpc_status: Some(5),
        http_status: Some(200),
        messages: 0,
    });
}

/// Headers and a message went first: `x-trace-id` is in the initial metadata, the status in
/// the trailers (where Envoy reads it too).
#[test]
fn internal_after_data_is_a_server_error_from_the_trailers() {
    check(Scenario {
        method: "InternalAfterData",
        edit: no_edit,
        code: 13,
        told: Told::Initial,
        grpc_status: Some(13),
        http_status: Some(200),
        messages: 1,
    });
}

/// grpc answers an unknown method itself, trailers-only: UNIMPLEMENTED, a server error; the
/// method is named from the path all the same.
#[test]
fn unknown_method_is_unimplemented() {
    check(Scenario {
        method: "Nope",
        edit: no_edit,
        code: 12,
        told: Told::Trailing,
        grpc_status: Some(12),
        http_status: Some(200),
        messages: 0,
    });
}

/// The client's deadline (grpc-timeout), enforced by Envoy (a route with
/// `grpc_timeout_header_max` and an offset, so Envoy's timer fires first): Envoy answers
/// DEADLINE_EXCEEDED itself, trailers-only, before the client gives up, and that is the status
/// it knows.
#[test]
fn deadline_enforced_by_envoy_is_deadline_exceeded() {
    check(Scenario {
        method: "Slow",
        edit: |c| {
            c.metadata.push(("x-deadline".into(), "envoy".into()));
            c.timeout = Some(3.0);
        },
        code: 4,
        told: Told::Trailing,
        grpc_status: Some(4),
        http_status: Some(200),
        messages: 0,
    });
}

/// The client gives up alone (the server never learns its deadline): the client sees
/// DEADLINE_EXCEEDED, its own; Envoy only sees the stream reset, knows no HTTP or gRPC status,
/// and says none. The context still reached the server.
#[test]
fn deadline_the_client_alone_leaves_envoy_no_status() {
    check(Scenario {
        method: "Slow",
        edit: |c| {
            c.metadata.push(("x-deadline".into(), "client".into()));
            c.timeout = Some(0.5);
        },
        code: 4,
        told: Told::Nowhere,
        grpc_status: None,
        http_status: None,
        messages: 0,
    });
}

/// A caller with a B3 context (x-b3-* metadata, as a traced gRPC client sends): the server
/// continues its trace with a new span whose parent is the caller's, the client is told the
/// caller's trace (in the trailing metadata where the call fails trailers-only), and the
/// filter's spans are children of the caller's span.
#[test]
fn a_b3_caller_is_joined_and_told_its_own_trace() {
    let rig = Rig::start();
    let b3 = [
        ("x-b3-traceid", T32),
        ("x-b3-spanid", S),
        ("x-b3-sampled", "1"),
    ];
    let with_b3 = |port: u16, method: &'static str, tag: &str| {
        let mut c = Call::new(port, method, tag);
        c.metadata = b3
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        c
    };
    let calls = [
        with_b3(rig.z.port(), "Unary", "z-unary"),
        with_b3(rig.z.port(), "NotFound", "z-not-found"),
        with_b3(rig.o.port(), "Unary", "o-unary"),
    ];
    let outcomes = run_client(&calls);
    let mut batch = oracle::Batch::new();
    for (o, told, code) in outcomes
        .iter()
        .zip([(Told::Initial, 0), (Told::Trailing, 5), (Told::Initial, 0)])
        .map(|(o, (t, c))| (o, t, c))
    {
        let what = format!("call {}", o.call.tag);
        assert_eq!(o.code, code, "{what}: {o:?}");
        assert_eq!(
            told_trace(o, told, &what).as_deref(),
            Some(T32),
            "{what}: told the caller's trace"
        );
        let received = rig.server.received(&o.call.tag);
        assert_eq!(
            named(&received, "x-b3-traceid"),
            [T32],
            "{what}: {received:?}"
        );
        assert_eq!(
            named(&received, "x-b3-parentspanid"),
            [S],
            "{what}: a child of the caller's span"
        );
        assert_ne!(named(&received, "x-b3-spanid"), [S], "{what}: a new span");
        batch.push(what, &b3, &received, Some(T32.to_string()));
    }
    batch.assert_one_context_continued();
    for (envoy, path, grpc_status) in [
        (&rig.z, "/trace.inject.test.Echo/Unary", 0),
        (&rig.z, "/trace.inject.test.Echo/NotFound", 5),
        (&rig.o, "/trace.inject.test.Echo/Unary", 0),
    ] {
        let line = wait_log_line(envoy, &format!("of {path}"), |l| {
            l["trace_id"] == T32 && l["path"] == path
        });
        assert_eq!(line["context"], "b3", "{path}: {line}");
        check_log_line(envoy, &line, Some(200), Some(grpc_status), path);
    }
    let spans = rig.zipkin.wait_for_trace(T32, 2, Duration::from_secs(15));
    assert_eq!(spans.len(), 2, "the filter's two Zipkin spans: {spans:?}");
    for (method, grpc_status) in [("Unary", 0), ("NotFound", 5)] {
        let path = format!("/{SERVICE}/{method}");
        let span = spans
            .iter()
            .find(|s| s.tag("http.path") == Some(path.as_str()))
            .unwrap_or_else(|| panic!("a Zipkin span of {path}: {spans:?}"));
        assert_eq!(
            span.parent_id.as_deref(),
            Some(S),
            "{method}: child of the caller's span"
        );
        check_zipkin_span(span, method, Some(grpc_status), Some(200), method);
    }
    let span = otlp_span(&rig.otlp, T32, "Unary, OTLP");
    assert_eq!(hex(&span.parent_span_id), S, "child of the caller's span");
    check_otlp_span(&span, "Unary", Some(0), Some(200), "Unary, OTLP");
    check_counters(&rig.z, 2, Some(0), "hop z");
    check_counters(&rig.o, 1, Some(0), "hop o");
}

/// A request that is not gRPC (Envoy answers it itself, 200) through the same hops: no
/// `grpc_status` on its log line (Envoy's `response.grpc_status` would say UNKNOWN for it, mapped
/// from the HTTP status), no gRPC tag or attribute on its spans, not counted as a gRPC call.
#[test]
fn plain_http_has_no_grpc_status_tags_or_count() {
    let rig = Rig::start();
    for (envoy, protocol) in [(&rig.z, "zipkin"), (&rig.o, "otlp")] {
        let r = http::request(envoy.port(), "GET", "/plain", &[]).expect("a plain request");
        assert_eq!((r.status, r.text().as_str()), (200, "plain"));
        let trace = r.header("x-trace-id").expect("x-trace-id");
        let line = log_line_of(envoy, &trace);
        check_log_line(envoy, &line, Some(200), None, protocol);
        if protocol == "zipkin" {
            let span = zipkin_span(&rig.zipkin, &trace, protocol);
            assert_eq!(span.tag("http.path"), Some("/plain"));
            assert_eq!(span.tag("grpc.status_code"), None, "{:?}", span.tags);
            assert_eq!(span.tag("error"), None, "{:?}", span.tags);
        } else {
            let span = otlp_span(&rig.otlp, &trace, protocol);
            assert_eq!(span.name, "GET", "an HTTP span's name");
            let rpc: Vec<&str> = span
                .attributes
                .iter()
                .map(|kv| kv.key.as_str())
                .filter(|k| k.starts_with("rpc."))
                .collect();
            assert!(rpc.is_empty(), "no rpc.* attribute: {rpc:?}");
            assert!(span.status.is_none(), "{:?}", span.status);
        }
        let calls = stat_after(
            envoy,
            "wasmcustom.trace_inject.requests.injected",
            1,
            "wasmcustom.trace_inject.grpc.calls",
        );
        assert_eq!(calls, 0, "{protocol}: not a gRPC call");
    }
}

/// Every gRPC status (the server ends the call with it, trailers-only; OK with a message) and
/// both deadlines, through the filter exporting Zipkin (`z`) and OTLP (`o`), and through Envoy's
/// own Zipkin tracer (`t`): Envoy's tracer tags `grpc.status_code` and `error` as its source
/// says ([`ENVOY_ERRORS`]); the filter's Zipkin span carries the same two tags as Envoy's span
/// for each call; its OTLP span the code and ERROR for [`SERVER_ERRORS`]; the log lines the
/// code; the error counter the server errors.
#[test]
fn every_status_code_is_tagged_as_envoys_tracer_and_the_conventions_say() {
    let server = GrpcServer::start();
    let zipkin = Collector::start();
    let otlp = OtlpSink::start();
    let tracer = Collector::start();
    let z = exporting_envoy(&server, zipkin.port(), "zipkin");
    let o = exporting_envoy(&server, otlp.port, "otlp");
    let t = tracing_envoy(&server, tracer.port());
    let mut calls = Vec::new();
    for (hop, envoy) in [("z", &z), ("o", &o), ("t", &t)] {
        for (code, name) in CODE_NAMES.iter().enumerate() {
            let mut c = Call::new(envoy.port(), "Fail", format!("{hop}-{code}"));
            c.request = name.to_string();
            calls.push(c);
        }
        if hop != "o" {
            for (deadline, timeout) in [("envoy", 3.0), ("client", 0.5)] {
                let mut c = Call::new(envoy.port(), "Slow", format!("{hop}-{deadline}-deadline"));
                c.metadata.push(("x-deadline".into(), deadline.into()));
                c.timeout = Some(timeout);
                calls.push(c);
            }
        }
    }
    let outcomes = run_client(&calls);
    let by_tag = |tag: &str| {
        outcomes
            .iter()
            .find(|o| o.call.tag == tag)
            .unwrap_or_else(|| panic!("no call {tag}"))
    };
    // The trace each call's server-side context names (what Envoy's tracer wrote on `t`).
    let trace_of = |tag: &str| {
        let received = server.received(tag);
        let t = named(&received, "x-b3-traceid");
        assert_eq!(t.len(), 1, "{tag}: {received:?}");
        format!("{:0>32}", t[0])
    };
    let envoy_span =
        |tag: &str| zipkin_span(&tracer, &trace_of(tag), &format!("Envoy's span of {tag}"));
    // The filter's Zipkin tags that differ from Envoy's for the same call, all listed at the end.
    let mut unlike_envoy = Vec::new();
    let mut compare =
        |what: &str, f: &trace_inject_devtools::Span, e: &trace_inject_devtools::Span| {
            for tag in ["grpc.status_code", "error"] {
                if f.tag(tag) != e.tag(tag) {
                    unlike_envoy.push(format!(
                        "{what}: {tag} {:?}, Envoy's tracer {:?}",
                        f.tag(tag),
                        e.tag(tag)
                    ));
                }
            }
        };
    for code in 0..CODE_NAMES.len() as u64 {
        let name = CODE_NAMES[code as usize];
        for hop in ["z", "o", "t"] {
            let got = by_tag(&format!("{hop}-{code}"));
            assert_eq!(got.code, code, "{hop}: the client sees {name}: {got:?}");
        }
        // Envoy's own tracer.
        let e = envoy_span(&format!("t-{code}"));
        let code_text = code.to_string();
        assert_eq!(
            e.tag("grpc.status_code"),
            Some(code_text.as_str()),
            "Envoy, {name}: {:?}",
            e.tags
        );
        assert_eq!(
            e.tag("error"),
            Some("true").filter(|_| ENVOY_ERRORS.contains(&code)),
            "Envoy's error tag for {name}: {:?}",
            e.tags
        );
        // The filter, Zipkin: the same two tags as Envoy's, and the HTTP tags.
        let what = format!("z, {name}");
        let trace = trace_of(&format!("z-{code}"));
        check_log_line(&z, &log_line_of(&z, &trace), Some(200), Some(code), &what);
        let f = zipkin_span(&zipkin, &trace, &what);
        compare(&what, &f, &e);
        assert_eq!(f.tag("http.status_code"), Some("200"), "{what}");
        // The filter, OTLP.
        let what = format!("o, {name}");
        let trace = trace_of(&format!("o-{code}"));
        check_log_line(&o, &log_line_of(&o, &trace), Some(200), Some(code), &what);
        check_otlp_span(
            &otlp_span(&otlp, &trace, &what),
            "Fail",
            Some(code),
            Some(200),
            &what,
        );
    }
    // Deadlines. Envoy's own reply (DEADLINE_EXCEEDED) is tagged as a server's; a client that
    // gave up alone leaves a span with no gRPC status and no HTTP status ("0"), which Envoy
    // tags `error`.
    let e = envoy_span("t-envoy-deadline");
    assert_eq!(e.tag("grpc.status_code"), Some("4"), "Envoy: {:?}", e.tags);
    assert_eq!(e.tag("error"), Some("true"), "Envoy: {:?}", e.tags);
    let e_alone = envoy_span("t-client-deadline");
    assert_eq!(
        e_alone.tag("grpc.status_code"),
        None,
        "Envoy: {:?}",
        e_alone.tags
    );
    assert_eq!(
        e_alone.tag("http.status_code"),
        Some("0"),
        "Envoy: {:?}",
        e_alone.tags
    );
    assert_eq!(
        e_alone.tag("error"),
        Some("true"),
        "Envoy: {:?}",
        e_alone.tags
    );
    for (deadline, e) in [("envoy", &e), ("client", &e_alone)] {
        let what = format!("z, {deadline} deadline");
        let f = zipkin_span(&zipkin, &trace_of(&format!("z-{deadline}-deadline")), &what);
        compare(&what, &f, e);
    }
    // 17 statuses (+ 2 deadlines on z); server errors: 6 of the 17 (+ Envoy's DEADLINE_EXCEEDED
    // on z; the client's own deadline gave Envoy no status).
    check_counters(&z, 19, Some(7), "hop z");
    check_counters(&o, 17, Some(6), "hop o");
    assert!(
        unlike_envoy.is_empty(),
        "the filter's Zipkin tags differ from Envoy's tracer's for {} calls:\n{}",
        unlike_envoy.len(),
        unlike_envoy.join("\n")
    );
}

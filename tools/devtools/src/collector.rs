//! An in-memory Zipkin v2 collector: the subset of the Zipkin API that Envoy's Zipkin tracer
//! posts to and that the `traces` view (or a person with curl) reads, so the same Envoy config
//! works against a real Zipkin or Jaeger.
//!
//! - `POST /api/v2/spans`: JSON array of v2 spans (chunked or content-length) → 202; invalid → 400;
//!   a non-JSON content type or a compressed body → 415 (Zipkin also takes proto3 and gzip).
//! - `GET /api/v2/services` → sorted `localEndpoint.serviceName`s.
//! - `GET /api/v2/spans?serviceName=S` → sorted span names of S;
//!   `GET /api/v2/remoteServices?serviceName=S` → sorted remote service names of S.
//! - `GET /api/v2/traces` → traces (arrays of spans), newest first. Parameters as Zipkin:
//!   `serviceName`, `remoteServiceName`, `spanName`, `annotationQuery`, `minDuration`,
//!   `maxDuration`, `limit` (default 10), `endTs` and `lookback` — but the time window is only
//!   applied when `endTs` or `lookback` is given (Zipkin defaults to the last day, which would
//!   hide hand-made test spans). Names compare case-insensitively; spans are stored as received
//!   (Zipkin lower-cases names; Jaeger does not).
//! - `GET /api/v2/trace/{traceId}` → that trace's spans, or 404.
//! - `GET /health` → `{"status":"UP"}`.
//! - `POST /v1/traces`: OTLP/HTTP trace export, protobuf (`application/x-protobuf`, what Envoy's
//!   OpenTelemetry tracer sends, chunked) or JSON (`application/json`) → 200 with an empty
//!   `ExportTraceServiceResponse` in the same encoding; undecodable → 400; another content type
//!   or a compressed body → 415. The spans join the same store (see [`crate::otlp`] for the
//!   mapping), so every query above shows them. The same collector can also listen on a second
//!   port ([`Collector::listen_also`]), e.g. OTLP/HTTP's usual 4318.
//!
//! Trace ids are normalised like Zipkin's (see [`crate::zipkin::normalize_trace_id`]). Only the
//! last 10,000 spans are kept. Spans reported twice (shared client/server ids) are not merged.

use crate::otlp;
// The hand-written server, a thread per connection: tiny_http (used before) queues a new
// connection behind its pool's busy threads, and Envoy keeps its collector connections open, so
// under load an export request could go unanswered until Envoy's 5 s timeout and its span was
// lost (seen in CI: otel_tracer's gateway test; Envoy's debug log showed the requests sent and
// never answered).
use crate::server::{Reply, Request, Server};
use crate::term::escape;
use crate::zipkin::{self, Span, TraceQuery};
use serde_json::json;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How many spans the collector keeps; older ones are dropped first.
pub const KEEP_SPANS: usize = 10_000;

#[derive(Default)]
struct Store {
    /// (arrival sequence number, span), oldest first.
    spans: VecDeque<(u64, Span)>,
    next_seq: u64,
}

impl Store {
    fn add(&mut self, spans: Vec<Span>) {
        for s in spans {
            if self.spans.len() == KEEP_SPANS {
                self.spans.pop_front();
            }
            self.spans.push_back((self.next_seq, s));
            self.next_seq += 1;
        }
    }

    fn trace(&self, id: &str) -> Vec<Span> {
        let mut t: Vec<(u64, Span)> = self
            .spans
            .iter()
            .filter(|(_, s)| s.trace_id == id)
            .cloned()
            .collect();
        sort_spans(&mut t);
        t.into_iter().map(|(_, s)| s).collect()
    }

    /// All traces, newest first (by start time, then by latest arrival).
    fn traces(&self) -> Vec<Vec<Span>> {
        let mut by_id: HashMap<&str, Vec<(u64, Span)>> = HashMap::new();
        for (seq, s) in &self.spans {
            by_id
                .entry(&s.trace_id)
                .or_default()
                .push((*seq, s.clone()));
        }
        let mut traces: Vec<Vec<(u64, Span)>> = by_id.into_values().collect();
        for t in &mut traces {
            sort_spans(t);
        }
        let key = |t: &Vec<(u64, Span)>| {
            let start = t.iter().filter_map(|(_, s)| s.timestamp).min().unwrap_or(0);
            (start, t.iter().map(|(q, _)| *q).max().unwrap_or(0))
        };
        traces.sort_by_key(|t| std::cmp::Reverse(key(t)));
        traces
            .into_iter()
            .map(|t| t.into_iter().map(|(_, s)| s).collect())
            .collect()
    }
}

/// Spans of a trace: by timestamp, then in arrival order.
fn sort_spans(t: &mut [(u64, Span)]) {
    t.sort_by_key(|(seq, s)| (s.timestamp.unwrap_or(0), *seq));
}

struct State {
    store: Mutex<Store>,
    /// Signalled on every accepted POST, for the `wait_for_*` helpers.
    arrived: Condvar,
    log: AtomicBool,
}

/// A Zipkin v2 collector on 127.0.0.1. Stops when dropped.
pub struct Collector {
    server: Server,
    /// More listeners on the same store (e.g. the OTLP/HTTP port).
    more: Vec<Server>,
    state: Arc<State>,
}

impl Collector {
    /// Starts on an ephemeral port of 127.0.0.1 (panics if it cannot bind: test helper).
    pub fn start() -> Collector {
        Collector::bind("127.0.0.1:0").expect("bind the collector on 127.0.0.1:0")
    }

    /// Starts on `addr`, e.g. `127.0.0.1:9411`.
    pub fn bind(addr: &str) -> io::Result<Collector> {
        let state = Arc::new(State {
            store: Mutex::new(Store::default()),
            arrived: Condvar::new(),
            log: AtomicBool::new(false),
        });
        let st = state.clone();
        let server = Server::bind(
            addr,
            "collector",
            Arc::new(move |req: &Request| handle(&st, req)),
        )?;
        Ok(Collector {
            server,
            more: Vec::new(),
            state,
        })
    }

    /// Serves the same API and store on `addr` too (e.g. `127.0.0.1:4318`, where OTLP/HTTP
    /// exporters look by default); returns the bound port.
    pub fn listen_also(&mut self, addr: &str) -> io::Result<u16> {
        let st = self.state.clone();
        let server = Server::bind(
            addr,
            "collector",
            Arc::new(move |req: &Request| handle(&st, req)),
        )?;
        let port = server.port();
        self.more.push(server);
        Ok(port)
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Every span held (the last 10,000 received), in arrival order.
    pub fn spans(&self) -> Vec<Span> {
        let store = self.state.store.lock().unwrap();
        store.spans.iter().map(|(_, s)| s.clone()).collect()
    }

    /// The spans of one trace (any spelling of its id, see
    /// [`crate::zipkin::normalize_trace_id`]), by timestamp; empty if none or if the id is invalid.
    pub fn trace(&self, trace_id: &str) -> Vec<Span> {
        match zipkin::normalize_trace_id_lenient(trace_id) {
            Ok(id) => self.state.store.lock().unwrap().trace(&id),
            Err(_) => Vec::new(),
        }
    }

    /// Waits until trace `trace_id` has at least `min_spans` spans, or `timeout` passes, and
    /// returns its spans then (possibly fewer: the caller asserts). Envoy posts spans about every
    /// 5 s, so give it 10 s or more. Panics if `trace_id` is not a valid trace id.
    pub fn wait_for_trace(&self, trace_id: &str, min_spans: usize, timeout: Duration) -> Vec<Span> {
        let id = zipkin::normalize_trace_id_lenient(trace_id)
            .unwrap_or_else(|e| panic!("wait_for_trace({trace_id:?}): {e}"));
        self.wait_until(timeout, |store| {
            let t = store.trace(&id);
            (t.len() >= min_spans, t)
        })
    }

    /// Waits until the collector holds at least `min_spans` spans in all, or `timeout` passes;
    /// returns all spans then. For when the test does not know the trace id.
    pub fn wait_for_spans(&self, min_spans: usize, timeout: Duration) -> Vec<Span> {
        self.wait_until(timeout, |store| {
            let all: Vec<Span> = store.spans.iter().map(|(_, s)| s.clone()).collect();
            (all.len() >= min_spans, all)
        })
    }

    fn wait_until<T>(&self, timeout: Duration, check: impl Fn(&Store) -> (bool, T)) -> T {
        let deadline = Instant::now() + timeout;
        let mut store = self.state.store.lock().unwrap();
        loop {
            let (done, value) = check(&store);
            let now = Instant::now();
            if done || now >= deadline {
                return value;
            }
            store = self
                .state
                .arrived
                .wait_timeout(store, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// Forgets every span.
    pub fn clear(&self) {
        self.state.store.lock().unwrap().spans.clear();
    }

    /// Prints one line per POST on stderr (for the `collector` command).
    pub fn set_logging(&self, on: bool) {
        self.state.log.store(on, Ordering::Relaxed);
    }

    /// Serves until the process is killed.
    pub fn wait(self) {
        self.server.wait()
    }
}

fn handle(state: &State, req: &Request) -> Reply {
    let path = req.path().trim_end_matches('/');
    let get = req.method == "GET" || req.method == "HEAD";
    let params = req.query();
    let param = |k: &str| {
        params
            .iter()
            .find(|(n, v)| n == k && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    match path {
        "/api/v2/spans" if req.method == "POST" => post_spans(state, req),
        "/v1/traces" if req.method == "POST" => post_otlp(state, req),
        "/api/v2/spans" | "/api/v2/remoteServices" if get => {
            let Some(service) = param("serviceName") else {
                return Reply::text(400, "serviceName is required\n");
            };
            let store = state.store.lock().unwrap();
            let names: BTreeSet<&str> = store
                .spans
                .iter()
                .filter(|(_, s)| {
                    s.service_name()
                        .is_some_and(|n| n.eq_ignore_ascii_case(&service))
                })
                .filter_map(|(_, s)| match path {
                    "/api/v2/spans" => s.name.as_deref(),
                    _ => s.remote_service_name(),
                })
                .collect();
            Reply::json(200, &json!(names))
        }
        "/api/v2/services" if get => {
            let store = state.store.lock().unwrap();
            let names: BTreeSet<&str> = store
                .spans
                .iter()
                .filter_map(|(_, s)| s.service_name())
                .collect();
            Reply::json(200, &json!(names))
        }
        "/api/v2/traces" if get => {
            let query = match TraceQuery::from_params(&params) {
                Ok(q) => q,
                Err(e) => return Reply::text(400, e + "\n"),
            };
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let traces: Vec<Vec<Span>> = state
                .store
                .lock()
                .unwrap()
                .traces()
                .into_iter()
                .filter(|t| query.matches(t, now_ms))
                .take(query.limit)
                .collect();
            Reply::json(200, &json!(traces))
        }
        "/health" if get => Reply::json(200, &json!({"status": "UP"})),
        _ if get && path.starts_with("/api/v2/trace/") => {
            let raw = &path["/api/v2/trace/".len()..];
            let id = match zipkin::normalize_trace_id_lenient(raw) {
                Ok(id) => id,
                Err(e) => return Reply::text(400, e + "\n"),
            };
            let spans = state.store.lock().unwrap().trace(&id);
            if spans.is_empty() {
                return Reply::text(404, format!("trace {id} not found\n"));
            }
            Reply::json(200, &json!(spans))
        }
        "/api/v2/spans" | "/api/v2/services" | "/api/v2/traces" | "/health" | "/v1/traces" => {
            Reply::text(405, format!("{} not allowed on {path}\n", req.method))
        }
        _ => Reply::text(
            404,
            format!("no route for {path} (this is a Zipkin v2 and OTLP/HTTP trace collector)\n"),
        ),
    }
}

fn post_spans(state: &State, req: &Request) -> Reply {
    if let Some(ct) = req.header("content-type") {
        let ct = String::from_utf8_lossy(ct).to_ascii_lowercase();
        if ct.split(';').next().unwrap_or("").trim() != "application/json" {
            return Reply::text(
                415,
                format!("only application/json spans are supported, not {ct}\n"),
            );
        }
    }
    if let Some(enc) = req.header("content-encoding") {
        if !enc.eq_ignore_ascii_case(b"identity") {
            return Reply::text(415, "compressed bodies are not supported\n");
        }
    }
    let spans = match zipkin::parse_spans(&req.body) {
        Ok(s) => s,
        Err(e) => {
            if state.log.load(Ordering::Relaxed) {
                // The reason may quote the body: escaped for the terminal.
                eprintln!(
                    "collector: rejected a POST of {} bytes: {}",
                    req.body.len(),
                    escape(&e)
                );
            }
            return Reply::text(400, e + "\n");
        }
    };
    accept(state, spans, "Zipkin");
    Reply::text(202, "")
}

fn post_otlp(state: &State, req: &Request) -> Reply {
    let ct = req
        .header("content-type")
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .unwrap_or_default();
    let Some(encoding) = otlp::Encoding::from_content_type(&ct) else {
        return Reply::text(
            415,
            format!("OTLP/HTTP takes application/x-protobuf or application/json, not {ct:?}\n"),
        );
    };
    if let Some(enc) = req.header("content-encoding") {
        if !enc.eq_ignore_ascii_case(b"identity") {
            return Reply::text(415, "compressed bodies are not supported\n");
        }
    }
    let spans = match otlp::decode(encoding, &req.body).and_then(|r| otlp::to_zipkin(&r)) {
        Ok(s) => s,
        Err(e) => {
            if state.log.load(Ordering::Relaxed) {
                // The reason may quote the body: escaped for the terminal.
                eprintln!(
                    "collector: rejected an OTLP POST of {} bytes: {}",
                    req.body.len(),
                    escape(&e)
                );
            }
            return Reply::text(400, e + "\n");
        }
    };
    accept(state, spans, "OTLP");
    Reply {
        status: 200,
        content_type: encoding.content_type(),
        body: encoding.success_body(),
        headers: Vec::new(),
    }
}

/// Stores spans that passed validation and wakes the waiters.
fn accept(state: &State, spans: Vec<Span>, protocol: &str) {
    if state.log.load(Ordering::Relaxed) {
        let ids: BTreeSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
        eprintln!(
            "collector: {} {protocol} span(s) of trace(s) {}",
            spans.len(),
            ids.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    state.store.lock().unwrap().add(spans);
    state.arrived.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{request, request_with_body};
    use std::io::{Read, Write};

    fn span_json(
        trace: &str,
        id: &str,
        parent: Option<&str>,
        svc: &str,
        ts: u64,
    ) -> serde_json::Value {
        let mut s = json!({"traceId": trace, "id": id, "name": format!("op-{id}"), "timestamp": ts,
            "duration": 1000, "localEndpoint": {"serviceName": svc}});
        if let Some(p) = parent {
            s["parentId"] = json!(p);
        }
        s
    }

    /// Posts `body` the way Envoy does: chunked, no content-length, on a raw socket.
    fn post_chunked(port: u16, body: &[u8], pieces: usize) -> (u16, String) {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut out =
            b"POST /api/v2/spans HTTP/1.1\r\nhost: zipkin\r\ncontent-type: application/json\r\n\
            transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
                .to_vec();
        for chunk in body.chunks(body.len().div_ceil(pieces).max(1)) {
            out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        s.write_all(&out).unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let status = resp[9..12].parse().unwrap();
        (status, resp)
    }

    #[test]
    fn accepts_a_chunked_post_like_envoys() {
        let c = Collector::start();
        let body = serde_json::to_vec(&json!([
            span_json("463ac35c9f6413ad", "a1", None, "front", 10),
            span_json("463ac35c9f6413ad", "b2", Some("a1"), "back", 20),
        ]))
        .unwrap();
        let (status, resp) = post_chunked(c.port(), &body, 3);
        assert_eq!(status, 202, "{resp}");
        let spans = c.spans();
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[1].parent_id.as_deref(), Some("00000000000000a1"));
        let (status, _) = post_chunked(c.port(), b"[{\"traceId\":", 2);
        assert_eq!(status, 400);
        assert_eq!(c.spans().len(), 2);
    }

    #[test]
    fn rejects_what_zipkin_rejects() {
        let c = Collector::start();
        let post = |ct: &[u8], body: &[u8]| {
            request_with_body(
                c.port(),
                "POST",
                "/api/v2/spans",
                &[(b"content-type", ct)],
                body,
            )
            .unwrap()
            .status
        };
        assert_eq!(post(b"application/json", b"not json"), 400);
        assert_eq!(
            post(b"application/json", b"{\"traceId\":\"1\",\"id\":\"1\"}"),
            400
        );
        assert_eq!(
            post(b"application/json", b"[{\"traceId\":\"ABC\",\"id\":\"1\"}]"),
            400
        );
        assert_eq!(post(b"application/x-protobuf", b""), 415);
        assert_eq!(post(b"application/json; charset=utf-8", b"[]"), 202);
        assert_eq!(
            request(c.port(), "DELETE", "/api/v2/spans", &[])
                .unwrap()
                .status,
            405
        );
        assert_eq!(
            request(c.port(), "GET", "/api/v1/spans", &[])
                .unwrap()
                .status,
            404
        );
    }

    #[test]
    fn lookups_by_either_spelling_of_a_trace_id() {
        let c = Collector::start();
        let body = serde_json::to_vec(&json!([
            span_json("000000000000000048485a3953bb6124", "1", None, "front", 10),
            span_json("48485a3953bb6124", "2", Some("1"), "front", 11),
        ]))
        .unwrap();
        assert_eq!(post_chunked(c.port(), &body, 1).0, 202);
        for id in [
            "48485a3953bb6124",
            "000000000000000048485a3953bb6124",
            "48485A3953BB6124",
        ] {
            let r = request(c.port(), "GET", &format!("/api/v2/trace/{id}"), &[]).unwrap();
            assert_eq!(r.status, 200, "{id}");
            let spans = r.json();
            assert_eq!(spans.as_array().unwrap().len(), 2, "{id}");
            assert_eq!(spans[0]["traceId"], "48485a3953bb6124");
            assert_eq!(c.trace(id).len(), 2);
        }
        let r = request(c.port(), "GET", "/api/v2/trace/1111111111111111", &[]).unwrap();
        assert_eq!(r.status, 404);
        let r = request(c.port(), "GET", "/api/v2/trace/xyz", &[]).unwrap();
        assert_eq!(r.status, 400);
        // A 128-bit id with a non-zero upper half is another trace (Zipkin's strictTraceId).
        assert!(c.trace("000000000000000148485a3953bb6124").is_empty());
    }

    #[test]
    fn services_and_traces_queries() {
        let c = Collector::start();
        let body = serde_json::to_vec(&json!([
            span_json("1", "1", None, "front", 100),
            span_json("1", "2", Some("1"), "back", 110),
            span_json("2", "3", None, "front", 200),
            span_json("3", "4", None, "zeta", 300),
        ]))
        .unwrap();
        let r = request_with_body(c.port(), "POST", "/api/v2/spans", &[], &body).unwrap();
        assert_eq!(r.status, 202);
        let get = |p: &str| request(c.port(), "GET", p, &[]).unwrap().json();
        assert_eq!(get("/api/v2/services"), json!(["back", "front", "zeta"]));
        assert_eq!(
            get("/api/v2/spans?serviceName=front"),
            json!(["op-1", "op-3"])
        );
        let ids = |v: serde_json::Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|t| t[0]["traceId"].as_str().unwrap().to_string())
                .collect()
        };
        // Newest first.
        assert_eq!(
            ids(get("/api/v2/traces")),
            ["0000000000000003", "0000000000000002", "0000000000000001"]
        );
        assert_eq!(ids(get("/api/v2/traces?limit=1")), ["0000000000000003"]);
        assert_eq!(
            ids(get("/api/v2/traces?serviceName=front")),
            ["0000000000000002", "0000000000000001"]
        );
        assert_eq!(
            ids(get("/api/v2/traces?serviceName=back&spanName=op-2")),
            ["0000000000000001"]
        );
        let t1 = get("/api/v2/traces?serviceName=back");
        assert_eq!(
            t1[0].as_array().unwrap().len(),
            2,
            "a trace holds all its spans"
        );
        assert_eq!(
            request(c.port(), "GET", "/api/v2/traces?limit=x", &[])
                .unwrap()
                .status,
            400
        );
    }

    #[test]
    fn wait_for_trace_wakes_on_arrival_and_times_out() {
        let c = Collector::start();
        let port = c.port();
        let poster = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            let body = serde_json::to_vec(&json!([span_json("abc", "1", None, "s", 1)])).unwrap();
            request_with_body(port, "POST", "/api/v2/spans", &[], &body)
                .unwrap()
                .status
        });
        let t0 = Instant::now();
        let spans = c.wait_for_trace("0000000000000abc", 1, Duration::from_secs(10));
        assert_eq!(spans.len(), 1);
        assert!(t0.elapsed() < Duration::from_secs(5));
        assert_eq!(poster.join().unwrap(), 202);
        let t0 = Instant::now();
        let spans = c.wait_for_trace("abc", 2, Duration::from_millis(300));
        assert_eq!(spans.len(), 1);
        assert!(t0.elapsed() >= Duration::from_millis(300));
        assert_eq!(c.wait_for_spans(1, Duration::ZERO).len(), 1);
    }

    /// Posts `body` to `/v1/traces` chunked, as Envoy's OpenTelemetry tracer does.
    fn post_otlp_chunked(port: u16, ct: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut out = format!(
            "POST /v1/traces HTTP/1.1\r\nhost: otel\r\ncontent-type: {ct}\r\n\
             transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        )
        .into_bytes();
        for chunk in body.chunks(body.len().div_ceil(3).max(1)) {
            out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        s.write_all(&out).unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).unwrap();
        let status = String::from_utf8_lossy(&resp[9..12]).parse().unwrap();
        let body_at = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        (status, resp[body_at..].to_vec())
    }

    #[test]
    fn otlp_protobuf_and_json_land_in_the_zipkin_views() {
        use prost::Message;
        let mut c = Collector::start();
        let second = c.listen_also("127.0.0.1:0").unwrap();
        let mut req = crate::otlp::tests::envoy_like_request();
        let (status, body) =
            post_otlp_chunked(c.port(), "application/x-protobuf", &req.encode_to_vec());
        assert_eq!(status, 200);
        assert!(body.is_empty(), "an empty ExportTraceServiceResponse");
        // Another trace, as OTLP/JSON, on the second listener.
        for s in &mut req.resource_spans[0].scope_spans[0].spans {
            s.trace_id[15] = 0x37;
        }
        let json = serde_json::to_vec(&req).unwrap();
        let (status, body) = post_otlp_chunked(second, "application/json", &json);
        assert_eq!(status, 200);
        assert_eq!(body, b"{}");
        let get = |p: &str| request(c.port(), "GET", p, &[]).unwrap().json();
        assert_eq!(get("/api/v2/services"), json!(["backend.default"]));
        let traces = get("/api/v2/traces");
        assert_eq!(traces.as_array().unwrap().len(), 2);
        let t = get("/api/v2/trace/4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.as_array().unwrap().len(), 2);
        assert_eq!(t[0]["kind"], "SERVER");
        assert_eq!(t[0]["localEndpoint"]["serviceName"], "backend.default");
        assert_eq!(t[0]["tags"]["upstream_cluster"], "echo");
        assert_eq!(t[1]["parentId"], t[0]["id"]);
        assert_eq!(c.trace("4bf92f3577b34da6a3ce929d0e0e4737").len(), 2);
        // Undecodable, or not an OTLP content type: nothing stored.
        assert_eq!(
            post_otlp_chunked(c.port(), "application/x-protobuf", b"\xff\x01").0,
            400
        );
        assert_eq!(
            post_otlp_chunked(c.port(), "application/json", b"{\"resourceSpans\":7}").0,
            400
        );
        assert_eq!(post_otlp_chunked(c.port(), "text/plain", b"x").0, 415);
        assert_eq!(c.spans().len(), 4);
        assert_eq!(
            request(c.port(), "GET", "/v1/traces", &[]).unwrap().status,
            405
        );
    }

    #[test]
    fn bad_requests_do_not_stop_the_server() {
        let c = Collector::start();
        // More broken connections than the server has workers.
        for _ in 0..10 {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", c.port())).unwrap();
            s.write_all(b"GARBAGE\r\n\r\n").unwrap();
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
        }
        let r = request(c.port(), "GET", "/health", &[]).unwrap();
        assert_eq!(r.status, 200);
    }

    #[test]
    fn keeps_only_the_last_spans() {
        let mut store = Store::default();
        let many: Vec<Span> = (1..=KEEP_SPANS + 5)
            .map(|i| Span {
                trace_id: format!("{i:x}"),
                id: "1".into(),
                ..Span::default()
            })
            .collect();
        store.add(many);
        assert_eq!(store.spans.len(), KEEP_SPANS);
        assert_eq!(store.spans[0].1.trace_id, "6");
    }
}

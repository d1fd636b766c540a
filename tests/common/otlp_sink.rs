//! An OTLP/HTTP receiver for the filter's own spans, kept as sent so that a test parses them by
//! the official schema (`opentelemetry-proto`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};

use super::otlp::hex;

/// An OTLP/HTTP receiver that keeps every request (Host, content type, path, body) and answers
/// 200 `{}` (an empty `ExportTraceServiceResponse`).
pub struct OtlpSink {
    pub port: u16,
    requests: Arc<Mutex<Vec<SinkRequest>>>,
}

#[derive(Clone, Debug)]
pub struct SinkRequest {
    pub path: String,
    pub host: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl OtlpSink {
    pub fn start() -> OtlpSink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let store = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().map_while(Result::ok) {
                let store = store.clone();
                std::thread::spawn(move || serve(conn, &store));
            }
        });
        OtlpSink { port, requests }
    }

    pub fn requests(&self) -> Vec<SinkRequest> {
        self.requests.lock().unwrap().clone()
    }
}

/// HTTP/1.1 keep-alive, bodies by Content-Length or chunked (Go's proxy may use either).
fn serve(conn: TcpStream, store: &Mutex<Vec<SinkRequest>>) {
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    loop {
        let mut start = String::new();
        if r.read_line(&mut start).unwrap_or(0) == 0 {
            return;
        }
        let path = start.split(' ').nth(1).unwrap_or("").to_string();
        let (mut host, mut content_type, mut length, mut chunked) =
            (String::new(), String::new(), 0usize, false);
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (name, value) = h.split_once(':').unwrap_or((h, ""));
            let value = value.trim().to_string();
            match name.to_ascii_lowercase().as_str() {
                "host" => host = value,
                "content-type" => content_type = value,
                "content-length" => length = value.parse().unwrap_or(0),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                _ => {}
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                let mut size = String::new();
                r.read_line(&mut size).unwrap();
                let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0; n + 2];
                r.read_exact(&mut chunk).unwrap();
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else {
            body.resize(length, 0);
            r.read_exact(&mut body).unwrap();
        }
        store.lock().unwrap().push(SinkRequest {
            path,
            host,
            content_type,
            body,
        });
        let _ = w.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
        );
    }
}

impl OtlpSink {
    /// Every span received so far with its resource, each body parsed as OTLP/HTTP JSON by the
    /// official schema (panics, showing the body, on one that does not parse).
    pub fn spans(&self) -> Vec<(ResourceSpans, Span)> {
        self.spans_with_requests()
            .into_iter()
            .map(|(_, rs, s)| (rs, s))
            .collect()
    }

    /// `spans()`, each with the request that carried it (path, Host, content type).
    pub fn spans_with_requests(&self) -> Vec<(SinkRequest, ResourceSpans, Span)> {
        let mut out = Vec::new();
        for req in self.requests() {
            let parsed: ExportTraceServiceRequest = serde_json::from_slice(&req.body)
                .unwrap_or_else(|e| {
                    panic!(
                        "not OTLP JSON by the official schema: {e}\n{}",
                        String::from_utf8_lossy(&req.body)
                    )
                });
            for rs in &parsed.resource_spans {
                for ss in &rs.scope_spans {
                    for s in &ss.spans {
                        out.push((req.clone(), rs.clone(), s.clone()));
                    }
                }
            }
        }
        out
    }

    /// The spans of trace `trace` (32 hex) once at least `n` have arrived, or those there are
    /// after `timeout`.
    pub fn wait_for_trace(
        &self,
        trace: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<(ResourceSpans, Span)> {
        let of_trace = || -> Vec<(ResourceSpans, Span)> {
            self.spans()
                .into_iter()
                .filter(|(_, s)| hex(&s.trace_id) == trace)
                .collect()
        };
        super::wait_until(timeout, || of_trace().len() >= n);
        of_trace()
    }
}

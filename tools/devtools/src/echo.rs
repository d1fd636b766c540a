//! The echo upstream: answers every request with what it received, so a test (or a person with
//! curl) sees exactly which headers the filter and Envoy forwarded.

use crate::server::{Reply, Request, Server};
use crate::term::escape;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The echo keeps only this many requests: `make run` may be load-tested for minutes.
const KEEP_REQUESTS: usize = 10_000;

/// A request as the echo upstream saw it; the same shape as its JSON reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub method: String,
    /// The request-target as received: path and query string.
    pub path: String,
    /// Every header line in order, repeats kept; non-UTF-8 bytes replaced by U+FFFD.
    pub headers: Vec<(String, String)>,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of header `name` (case-insensitive), in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

struct State {
    requests: Mutex<VecDeque<RecordedRequest>>,
    log: AtomicBool,
    /// Every request ever received (the history above is bounded).
    received: AtomicU64,
}

/// An echo upstream on 127.0.0.1. Stops when dropped.
///
/// Every request gets `200` and `{"method", "path", "headers": [[name, value], ...]}`; a path
/// starting with `/status/NNN` gets status NNN instead (200–599; the body is omitted for 204 and
/// 304, which cannot carry one). A request header `x-echo-reply-header: NAME: VALUE` adds the
/// response header `NAME: VALUE` (an upstream that sets, say, its own `x-trace-id`).
pub struct EchoServer {
    server: Server,
    state: Arc<State>,
}

impl EchoServer {
    /// Starts on an ephemeral port of 127.0.0.1 (panics if it cannot bind: test helper).
    pub fn start() -> EchoServer {
        EchoServer::bind("127.0.0.1:0").expect("bind the echo upstream on 127.0.0.1:0")
    }

    /// Starts on `addr`, e.g. `127.0.0.1:8080`.
    pub fn bind(addr: &str) -> io::Result<EchoServer> {
        let state = Arc::new(State {
            requests: Mutex::new(VecDeque::new()),
            log: AtomicBool::new(false),
            received: AtomicU64::new(0),
        });
        let st = state.clone();
        let server = Server::bind(
            addr,
            "echo",
            Arc::new(move |req: &Request| handle(&st, req)),
        )?;
        Ok(EchoServer { server, state })
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// The requests received so far (the most recent 10,000), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state
            .requests
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .collect()
    }

    /// How many requests were received since start (not reset by [`EchoServer::clear`]): a test
    /// compares it before and after a request to know whether that request reached the upstream.
    pub fn received(&self) -> u64 {
        self.state.received.load(Ordering::SeqCst)
    }

    /// Forgets the recorded requests.
    pub fn clear(&self) {
        self.state.requests.lock().unwrap().clear();
    }

    /// Prints one line per request on stderr (for the `echo` command).
    pub fn set_logging(&self, on: bool) {
        self.state.log.store(on, Ordering::Relaxed);
    }

    /// Serves until the process is killed.
    pub fn wait(self) {
        self.server.wait()
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The line logged per request (`make run` shows it): the request line is the caller's, escaped.
fn log_line(rec: &RecordedRequest, status: u16) -> String {
    format!(
        "echo: {} {} -> {status} ({} headers)",
        escape(&rec.method),
        escape(&rec.path),
        rec.headers.len()
    )
}

fn handle(state: &State, req: &Request) -> Reply {
    let rec = RecordedRequest {
        method: req.method.clone(),
        path: req.target.clone(),
        headers: req
            .headers
            .iter()
            .map(|(n, v)| (lossy(n), lossy(v)))
            .collect(),
    };
    let status = status_from_path(req.path());
    if state.log.load(Ordering::Relaxed) {
        eprintln!("{}", log_line(&rec, status.as_ref().map_or(400, |s| *s)));
    }
    let body = serde_json::to_value(&rec).expect("strings always serialise");
    {
        let mut q = state.requests.lock().unwrap();
        if q.len() == KEEP_REQUESTS {
            q.pop_front();
        }
        q.push_back(rec);
        state.received.fetch_add(1, Ordering::SeqCst);
    }
    let mut reply = match status {
        Ok(s) => Reply::json(s, &body),
        Err(why) => Reply::text(400, why),
    };
    reply.headers = req
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"x-echo-reply-header"))
        .filter_map(|(_, v)| {
            let (n, v) = lossy(v)
                .split_once(':')
                .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))?;
            Some((n, v))
        })
        .collect();
    reply
}

/// `/status/503` (or `/status/503/anything`) → 503; any other path → 200.
fn status_from_path(path: &str) -> Result<u16, String> {
    let Some(rest) = path.strip_prefix("/status/") else {
        return Ok(200);
    };
    let code = rest.split('/').next().unwrap_or("");
    match code.parse::<u16>() {
        Ok(s) if (200..=599).contains(&s) => Ok(s),
        _ => Err(format!(
            "/status/NNN wants a final status 200-599, got {code:?}\n"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request;

    #[test]
    fn the_log_line_escapes_the_request_line() {
        let rec = RecordedRequest {
            method: "GET\x1b[2J".into(),
            path: "/\u{202e}fdp.exe\x07".into(),
            headers: vec![("host".into(), "x".into())],
        };
        assert_eq!(
            log_line(&rec, 200),
            "echo: GET\\u{1b}[2J /\\u{202e}fdp.exe\\u{7} -> 200 (1 headers)"
        );
    }

    #[test]
    fn echoes_raw_headers_in_order_with_repeats() {
        let echo = EchoServer::start();
        let resp = request(
            echo.port(),
            "GET",
            "/some/path?q=1",
            &[(b"x-one", b"1"), (b"X-Rep", b"a"), (b"x-rep", b"b\xff")],
        )
        .unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.header("content-type").as_deref(),
            Some("application/json")
        );
        let j = resp.json();
        assert_eq!(j["method"], "GET");
        assert_eq!(j["path"], "/some/path?q=1");
        let hs: Vec<(String, String)> = serde_json::from_value(j["headers"].clone()).unwrap();
        let recorded = echo.requests();
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].headers, hs);
        // The client's own Host and Connection come around the caller's headers, in order.
        let names: Vec<&str> = hs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Host", "x-one", "X-Rep", "x-rep", "Connection"]);
        assert_eq!(recorded[0].headers_named("x-rep"), ["a", "b\u{fffd}"]);
        assert_eq!(recorded[0].header("X-ONE"), Some("1"));
    }

    #[test]
    fn status_paths() {
        let echo = EchoServer::start();
        let r = request(echo.port(), "GET", "/status/503", &[]).unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(r.json()["path"], "/status/503");
        let r = request(echo.port(), "GET", "/status/204", &[]).unwrap();
        assert_eq!((r.status, r.body.len()), (204, 0));
        let r = request(echo.port(), "GET", "/status/418/x?y", &[]).unwrap();
        assert_eq!(r.status, 418);
        let r = request(echo.port(), "GET", "/status/abc", &[]).unwrap();
        assert_eq!(r.status, 400);
        let r = request(echo.port(), "GET", "/status/100", &[]).unwrap();
        assert_eq!(r.status, 400);
    }

    #[test]
    fn keep_alive_and_concurrent_connections() {
        use std::io::{BufRead, BufReader, Read, Write};
        let echo = EchoServer::start();
        // Two requests pipelined on one kept-alive connection, while other connections run.
        let mut s = std::net::TcpStream::connect(("127.0.0.1", echo.port())).unwrap();
        let others: Vec<_> = (0..8)
            .map(|i| {
                let port = echo.port();
                std::thread::spawn(move || {
                    request(port, "GET", &format!("/c{i}"), &[]).unwrap().status
                })
            })
            .collect();
        s.write_all(b"GET /k1 HTTP/1.1\r\nHost: a\r\n\r\nGET /k2 HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        let mut r = BufReader::new(s);
        for want in ["/k1", "/k2"] {
            let mut len = 0;
            loop {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(j["path"], want);
        }
        for t in others {
            assert_eq!(t.join().unwrap(), 200);
        }
        assert_eq!(echo.requests().len(), 10);
        // Dropping the server closes the kept-alive connection.
        drop(echo);
        let mut rest = Vec::new();
        assert_eq!(r.read_to_end(&mut rest).unwrap_or(0), 0);
    }

    #[test]
    fn adds_the_reply_headers_asked_for_and_counts_requests() {
        let echo = EchoServer::start();
        let r = request(
            echo.port(),
            "GET",
            "/",
            &[(b"x-echo-reply-header", b"x-trace-id: 0123")],
        )
        .unwrap();
        assert_eq!(r.header("x-trace-id").as_deref(), Some("0123"));
        let r = request(echo.port(), "GET", "/", &[]).unwrap();
        assert_eq!(r.header("x-trace-id"), None);
        echo.clear();
        assert_eq!(echo.received(), 2, "not reset by clear");
    }

    #[test]
    fn keeps_a_bounded_history() {
        let echo = EchoServer::start();
        for _ in 0..3 {
            request(echo.port(), "GET", "/", &[]).unwrap();
        }
        assert_eq!(echo.requests().len(), 3);
        echo.clear();
        assert!(echo.requests().is_empty());
    }
}

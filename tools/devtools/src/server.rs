//! A minimal HTTP/1.1 server: thread per connection, keep-alive, `content-length` and chunked
//! request bodies, header values kept as raw bytes.
//!
//! The echo's and the collector's server. Why not tiny_http: it drops any request whose header
//! bytes are not ASCII and trims values, and the echo upstream must show exactly what Envoy
//! forwarded (a filter test sends `\xff`); and its task pool could leave a new connection queued
//! behind the idle keep-alive connections Envoy holds to the collector (an export request
//! unanswered for 5 s, its span lost). A thread per connection has neither problem.

use crate::chunked::{read_chunked, ChunkedError};
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

/// Limits that keep a broken or hostile client from eating the machine's memory.
const MAX_HEAD_BYTES: usize = 4 << 20;
const MAX_BODY_BYTES: usize = 64 << 20;

/// One parsed request. `target` is the request-target as sent (path and query).
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
    /// Whether the connection stays open after the reply.
    pub keep_alive: bool,
}

impl Request {
    /// First value of the header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_slice())
    }

    /// The path without the query string.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// Percent-decoded query parameters, in order.
    pub fn query(&self) -> Vec<(String, String)> {
        let Some((_, q)) = self.target.split_once('?') else {
            return Vec::new();
        };
        q.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect()
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a handler answers. The server adds `content-length` and `connection`.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// More response header lines, as given.
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(value).expect("a Value always serialises"),
            headers: Vec::new(),
        }
    }

    pub fn text(status: u16, text: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: text.into().into_bytes(),
            headers: Vec::new(),
        }
    }
}

pub(crate) type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

struct Shared {
    stop: AtomicBool,
    next_conn: AtomicU64,
    // Clones of the open connections, so that stopping the server can unblock their reads
    // (Envoy keeps upstream connections alive; their threads would otherwise outlive us).
    conns: Mutex<HashMap<u64, TcpStream>>,
}

/// A running server; stops (and closes its connections) on drop.
pub(crate) struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    pub fn bind(addr: &str, name: &str, handler: Handler) -> io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            next_conn: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
        });
        let sh = shared.clone();
        let conn_name = format!("{name}-conn");
        let accept = std::thread::Builder::new()
            .name(format!("{name}-accept"))
            .spawn(move || accept_loop(listener, sh, handler, conn_name))?;
        Ok(Server {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Blocks until the server stops (for the binary, which serves until killed).
    pub fn wait(mut self) {
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // `accept` has no timeout: a connection of our own wakes it up to see the flag.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let _ = TcpStream::connect_timeout(&wake, std::time::Duration::from_secs(1));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        for (_, c) in self.shared.conns.lock().unwrap().drain() {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, handler: Handler, name: String) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
        if let Ok(clone) = stream.try_clone() {
            shared.conns.lock().unwrap().insert(id, clone);
        }
        // Moved into the thread; dropped with the closure if the thread cannot be spawned.
        let registered = Registered {
            shared: shared.clone(),
            id,
        };
        let h = handler.clone();
        let _ = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let _registered = registered;
                let _ = serve_connection(stream, &h);
            });
    }
}

/// A connection's entry in `Shared::conns`, removed when its thread ends, by return or by a
/// handler's panic: the clone kept there would otherwise hold the socket open, and the client
/// would wait for an answer or a close that never comes.
struct Registered {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let conn = self
            .shared
            .conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
        if let Some(c) = conn {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

/// Serves requests on one connection until the peer closes it or asks to.
fn serve_connection(stream: TcpStream, handler: &Handler) -> io::Result<()> {
    // Replies are written in one piece; without nodelay a keep-alive client waits on Nagle.
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let req = match read_request(&mut reader, &mut writer) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            Err(ReadError::Io(e)) => return Err(e),
            Err(ReadError::Bad(status, why)) => {
                write_reply(&mut writer, "GET", &Reply::text(status, why + "\n"), false)?;
                return Ok(());
            }
        };
        let keep_alive = req.keep_alive;
        let reply = handler(&req);
        write_reply(&mut writer, &req.method, &reply, keep_alive)?;
        if !keep_alive {
            return Ok(());
        }
    }
}

enum ReadError {
    Io(io::Error),
    /// The request is malformed: answer this status and close.
    Bad(u16, String),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

impl From<ChunkedError> for ReadError {
    fn from(e: ChunkedError) -> Self {
        match e {
            ChunkedError::TooLarge => bad(413, "body too large"),
            ChunkedError::Malformed(why) => bad(400, why),
            ChunkedError::Io(e) => ReadError::Io(e),
        }
    }
}

fn bad(status: u16, why: &str) -> ReadError {
    ReadError::Bad(status, why.to_string())
}

/// Reads one line including its `\n`, failing past `limit` bytes.
fn read_line(r: &mut impl BufRead, limit: usize) -> Result<Vec<u8>, ReadError> {
    let mut line = Vec::new();
    let n = r.take(limit as u64 + 1).read_until(b'\n', &mut line)?;
    if n > limit {
        return Err(bad(431, "request head too large"));
    }
    Ok(line)
}

fn trim_crlf(mut l: &[u8]) -> &[u8] {
    if let Some(x) = l.strip_suffix(b"\n") {
        l = x;
    }
    l.strip_suffix(b"\r").unwrap_or(l)
}

/// A header value without its surrounding optional whitespace (spaces and tabs).
pub(crate) fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|c| *c != b' ' && *c != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|c| *c != b' ' && *c != b'\t')
        .map_or(start, |e| e + 1);
    &v[start..end]
}

/// `Ok(None)`: the peer closed the connection cleanly between requests.
fn read_request(r: &mut impl BufRead, w: &mut impl Write) -> Result<Option<Request>, ReadError> {
    let mut budget = MAX_HEAD_BYTES;
    // RFC 9112 2.2: ignore empty lines before the request line.
    let line = loop {
        let line = read_line(r, budget)?;
        if line.is_empty() {
            return Ok(None);
        }
        budget -= line.len();
        if !trim_crlf(&line).is_empty() {
            break line;
        }
    };
    let line = String::from_utf8_lossy(trim_crlf(&line)).into_owned();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(400, "malformed request line"));
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || target.is_empty() {
        return Err(bad(400, "malformed request line"));
    }
    let mut headers = Vec::new();
    loop {
        let line = read_line(r, budget)?;
        if line.is_empty() {
            return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        budget -= line.len();
        let l = trim_crlf(&line);
        if l.is_empty() {
            break;
        }
        if l[0] == b' ' || l[0] == b'\t' {
            return Err(bad(400, "obsolete line folding is not accepted"));
        }
        let Some(colon) = l.iter().position(|c| *c == b':') else {
            return Err(bad(400, "header line without a colon"));
        };
        let name = &l[..colon];
        if name.is_empty() || name.iter().any(|c| c.is_ascii_whitespace()) {
            return Err(bad(400, "malformed header name"));
        }
        headers.push((name.to_vec(), trim_ows(&l[colon + 1..]).to_vec()));
    }
    let mut req = Request {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        body: Vec::new(),
        keep_alive: true,
    };
    // HTTP/1.0 has no keep-alive by default (and we do not implement its opt-in).
    req.keep_alive = version != "HTTP/1.0" && !has_token(&req, "connection", b"close");
    let chunked = match req.header("transfer-encoding") {
        None => false,
        Some(te) if trim_ows(te).eq_ignore_ascii_case(b"chunked") => true,
        Some(_) => return Err(bad(501, "only chunked transfer-encoding is supported")),
    };
    let length = match (chunked, req.header("content-length")) {
        (false, Some(cl)) => Some(
            std::str::from_utf8(cl)
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .ok_or_else(|| bad(400, "malformed content-length"))?,
        ),
        _ => None,
    };
    if length.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(bad(413, "body too large"));
    }
    let has_body = chunked || length.is_some_and(|n| n > 0);
    if has_body
        && req
            .header("expect")
            .is_some_and(|e| e.eq_ignore_ascii_case(b"100-continue"))
    {
        // curl waits (1 s) for this before sending a body larger than 1 KiB.
        w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    if chunked {
        req.body = read_chunked(r, MAX_BODY_BYTES)?;
    } else if let Some(n) = length {
        let mut body = vec![0; n];
        r.read_exact(&mut body)?;
        req.body = body;
    }
    Ok(Some(req))
}

/// Whether any `name` header lists `token` (comma-separated, case-insensitive).
fn has_token(req: &Request, name: &str, token: &[u8]) -> bool {
    req.headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case(name.as_bytes())
            && v.split(|c| *c == b',')
                .any(|t| trim_ows(t).eq_ignore_ascii_case(token))
    })
}

pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Statuses whose responses never carry a body (RFC 9110 6.4.1); sending one anyway would
/// corrupt the next response on a kept-alive connection.
pub(crate) fn bodiless(status: u16) -> bool {
    status == 204 || status == 304 || (100..200).contains(&status)
}

fn write_reply(
    w: &mut impl Write,
    method: &str,
    reply: &Reply,
    keep_alive: bool,
) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    if !bodiless(reply.status) {
        out += &format!(
            "content-type: {}\r\ncontent-length: {}\r\n",
            reply.content_type,
            reply.body.len()
        );
    }
    for (n, v) in &reply.headers {
        out += &format!("{n}: {v}\r\n");
    }
    if !keep_alive {
        out += "connection: close\r\n";
    }
    out += "\r\n";
    let mut out = out.into_bytes();
    if method != "HEAD" && !bodiless(reply.status) {
        out.extend_from_slice(&reply.body);
    }
    w.write_all(&out)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<Option<Request>, ReadError> {
        read_request(&mut BufReader::new(raw), &mut Vec::new())
    }

    #[test]
    fn parses_raw_header_bytes_in_order() {
        let raw = b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A:  \xff\xfe \r\nx-a: 2\r\n\r\n";
        let Ok(Some(r)) = parse(raw) else {
            panic!("parse failed")
        };
        assert_eq!(r.method, "GET");
        assert_eq!(r.target, "/a?b=1");
        assert_eq!(r.path(), "/a");
        assert_eq!(
            r.headers,
            vec![
                (b"Host".to_vec(), b"x".to_vec()),
                (b"X-A".to_vec(), b"\xff\xfe".to_vec()),
                (b"x-a".to_vec(), b"2".to_vec()),
            ]
        );
    }

    #[test]
    fn decodes_chunked_bodies_with_extensions_and_trailers() {
        let raw = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
                    3;ext=1\r\nabc\r\n0A\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n";
        let Ok(Some(r)) = parse(raw) else {
            panic!("parse failed")
        };
        assert_eq!(r.body, b"abc0123456789");
    }

    #[test]
    fn rejects_malformed_requests() {
        for raw in [
            &b"GET /\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
            b"POST / HTTP/1.1\r\ncontent-length: x\r\n\r\n",
            b"POST / HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n",
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabcd\r\n0\r\n\r\n",
        ] {
            assert!(
                matches!(parse(raw), Err(ReadError::Bad(..))),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        assert!(matches!(parse(b""), Ok(None)));
    }

    #[test]
    fn chunk_sizes_past_the_body_limit_are_refused_with_413() {
        let post = |chunks: &[u8]| {
            [
                &b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"[..],
                chunks,
            ]
            .concat()
        };
        for (chunks, want) in [
            // After a 1-byte chunk, the total would overflow usize.
            (&b"1\r\na\r\nffffffffffffffff\r\n"[..], 413),
            (b"ffffffffffffffff\r\n", 413),
            (b"4000001\r\n", 413),
            // More than 64 bits of size.
            (b"1ffffffffffffffff\r\n", 400),
        ] {
            let status = match parse(&post(chunks)) {
                Err(ReadError::Bad(status, _)) => Some(status),
                _ => None,
            };
            assert_eq!(status, Some(want), "{:?}", String::from_utf8_lossy(chunks));
        }
    }

    /// A server with `handler`, and a client connected to it.
    fn serve(handler: Handler) -> (Server, TcpStream) {
        let server = Server::bind("127.0.0.1:0", "test", handler).unwrap();
        let client = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        (server, client)
    }

    /// What the server sent until it closed the connection; an error if it did not within 10 s.
    fn answer_until_closed(mut client: TcpStream) -> io::Result<String> {
        let mut out = String::new();
        client.read_to_string(&mut out)?;
        Ok(out)
    }

    fn forgets_its_connections(server: &Server) -> bool {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !server.shared.conns.lock().unwrap().is_empty() {
            if std::time::Instant::now() > end {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        true
    }

    #[test]
    fn an_overflowing_chunk_size_is_answered_413_and_the_connection_closed() {
        let (server, mut client) = serve(Arc::new(|_: &Request| Reply::text(200, "ok")));
        client
            .write_all(
                b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n\
                  1\r\na\r\nffffffffffffffff\r\n",
            )
            .unwrap();
        let answer = answer_until_closed(client).expect("answered and closed");
        assert!(answer.starts_with("HTTP/1.1 413 "), "{answer:?}");
        assert!(forgets_its_connections(&server), "the connection leaked");
    }

    #[test]
    fn a_handler_that_panics_closes_its_connection() {
        let (server, mut client) = serve(Arc::new(|_: &Request| -> Reply {
            panic!("a handler's bug (this test's own panic)")
        }));
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let answer = answer_until_closed(client).expect("closed, not left open");
        assert_eq!(answer, "", "no answer, but a close");
        assert!(forgets_its_connections(&server), "the connection leaked");
    }

    #[test]
    fn decodes_query_parameters() {
        let r = Request {
            method: "GET".into(),
            target: "/x?serviceName=a%20b&limit=3&flag&q=x+y%3D1".into(),
            headers: vec![],
            body: vec![],
            keep_alive: true,
        };
        assert_eq!(
            r.query(),
            vec![
                ("serviceName".into(), "a b".into()),
                ("limit".into(), "3".into()),
                ("flag".into(), "".into()),
                ("q".into(), "x y=1".into()),
            ]
        );
    }
}

//! A raw HTTP/1.1 client: one request per connection (`Connection: close`), header values sent
//! as the exact bytes given, so tests can send what curl or a real client would refuse to build
//! (non-UTF-8, control bytes, huge or many repeated headers). Response bodies are read up to
//! [`MAX_BODY_BYTES`], whatever length the server claims.

use crate::chunked::{read_chunked, ChunkedError};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long to wait for connecting and for each read.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The largest response body read: a content-length or chunk sizes claiming more are refused
/// before anything is allocated (a broken or hostile server, e.g. the `make traces` collector,
/// could claim up to 2^64 - 1 bytes).
pub const MAX_BODY_BYTES: usize = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// In order, repeats kept; names as sent by the server.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive), lossily decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers_named(name).into_iter().next()
    }

    /// Every value of header `name` (case-insensitive), in order, lossily decoded.
    pub fn headers_named(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    /// The body, lossily decoded.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics (showing the status and body) if it is not JSON: test helper.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response {} is not JSON ({e}): {:?}",
                self.status,
                self.text()
            )
        })
    }
}

/// Sends one request to `127.0.0.1:port`. `Host: 127.0.0.1:port` is added unless `headers`
/// has a Host, and `Connection: close` unless it has a Connection header.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&[u8], &[u8])],
) -> Result<Response, String> {
    request_with_body(port, method, path, headers, b"")
}

/// [`request`] with a body; `Content-Length` is added unless `headers` has it or
/// `Transfer-Encoding` (then `body` must be framed by the caller) or the body is empty.
pub fn request_with_body(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&[u8], &[u8])],
    body: &[u8],
) -> Result<Response, String> {
    send(&format!("127.0.0.1:{port}"), method, path, headers, body)
}

/// GET an absolute `http://host[:port]/path` URL (the trace viewer's collector may be remote).
pub fn get_url(url: &str) -> Result<Response, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("{url}: no host"));
    }
    // `[::1]:9411` has colons of its own: the port is after the last one outside brackets.
    let addr = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.contains(']'))
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    send(&addr, "GET", path, &[(b"host", authority.as_bytes())], b"")
}

fn has(headers: &[(&[u8], &[u8])], name: &str) -> bool {
    headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
}

fn send(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&[u8], &[u8])],
    body: &[u8],
) -> Result<Response, String> {
    let err = |what: &str, e: std::io::Error| format!("{method} {path} to {addr}: {what}: {e}");
    // `localhost` may resolve to ::1 first while the server listens on 127.0.0.1: try each.
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    let mut stream = None;
    for sock in addr.to_socket_addrs().map_err(|e| err("resolve", e))? {
        match TcpStream::connect_timeout(&sock, TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let mut stream = stream.ok_or_else(|| err("connect", last))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| err("set timeout", e))?;
    stream
        .set_write_timeout(Some(TIMEOUT))
        .map_err(|e| err("set timeout", e))?;

    let mut out = format!("{method} {path} HTTP/1.1\r\n").into_bytes();
    let mut line = |n: &[u8], v: &[u8]| {
        out.extend_from_slice(n);
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    };
    if !has(headers, "host") {
        line(b"Host", addr.as_bytes());
    }
    for (n, v) in headers {
        line(n, v);
    }
    if !body.is_empty() && !has(headers, "content-length") && !has(headers, "transfer-encoding") {
        line(b"Content-Length", body.len().to_string().as_bytes());
    }
    if !has(headers, "connection") {
        line(b"Connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    stream.write_all(&out).map_err(|e| err("send", e))?;

    read_response(&mut BufReader::new(stream), method == "HEAD")
        .map_err(|e| format!("{method} {path} to {addr}: {e}"))
}

fn read_line(r: &mut impl BufRead) -> Result<Vec<u8>, String> {
    let mut line = Vec::new();
    r.by_ref()
        .take(1 << 20)
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("read: {e}"))?;
    if !line.ends_with(b"\n") {
        return Err(format!(
            "connection closed mid-line (got {:?})",
            String::from_utf8_lossy(&line)
        ));
    }
    line.pop();
    if line.ends_with(b"\r") {
        line.pop();
    }
    Ok(line)
}

fn read_response(r: &mut impl BufRead, head: bool) -> Result<Response, String> {
    loop {
        let status_line = read_line(r)?;
        let text = String::from_utf8_lossy(&status_line).into_owned();
        let status = text
            .strip_prefix("HTTP/1.")
            .and_then(|s| s.get(2..5))
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| format!("malformed status line {text:?}"))?;
        let mut headers = Vec::new();
        loop {
            let l = read_line(r)?;
            if l.is_empty() {
                break;
            }
            let colon = l
                .iter()
                .position(|c| *c == b':')
                .ok_or_else(|| format!("malformed header {:?}", String::from_utf8_lossy(&l)))?;
            let name = String::from_utf8_lossy(&l[..colon]).into_owned();
            let v = &l[colon + 1..];
            headers.push((name, crate::server::trim_ows(v).to_vec()));
        }
        // 1xx are interim (100 Continue): the real response follows.
        if (100..200).contains(&status) {
            continue;
        }
        let mut resp = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if head || status == 204 || status == 304 {
            return Ok(resp);
        }
        let chunked = resp
            .header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
        if chunked {
            resp.body = read_chunked(r, MAX_BODY_BYTES).map_err(|e| match e {
                ChunkedError::TooLarge => too_large("the chunk sizes add up to"),
                ChunkedError::Malformed(why) => why.to_string(),
                ChunkedError::Io(e) => format!("chunked body: {e}"),
            })?;
        } else if let Some(cl) = resp.header("content-length") {
            let n: u64 = cl
                .trim()
                .parse()
                .map_err(|_| format!("bad content-length {cl:?}"))?;
            if n > MAX_BODY_BYTES as u64 {
                return Err(too_large(&format!("content-length {n} is")));
            }
            let got = r
                .take(n)
                .read_to_end(&mut resp.body)
                .map_err(|e| format!("body ({n} bytes): {e}"))?;
            if got as u64 != n {
                return Err(format!("body ({n} bytes): connection closed after {got}"));
            }
        } else {
            r.take(MAX_BODY_BYTES as u64 + 1)
                .read_to_end(&mut resp.body)
                .map_err(|e| format!("body: {e}"))?;
            if resp.body.len() > MAX_BODY_BYTES {
                return Err(too_large("the body (until close) is"));
            }
        }
        return Ok(resp);
    }
}

fn too_large(what: &str) -> String {
    format!(
        "{what} more than this client reads ({} MiB): refused",
        MAX_BODY_BYTES >> 20
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::echo::EchoServer;
    use std::net::TcpListener;

    /// A one-shot server answering `reply` verbatim to the first connection.
    fn canned(reply: &'static [u8]) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            while !read_line(&mut r).unwrap().is_empty() {}
            s.write_all(reply).unwrap();
        });
        port
    }

    #[test]
    fn sends_raw_bytes_exactly() {
        let echo = EchoServer::start();
        let big = vec![b'v'; 8192];
        let mut hs: Vec<(&[u8], &[u8])> = vec![
            (b"x-bin", b"\xff\xfe\x80"),
            (b"x-ctl", b"a\x01b\x7f"),
            (b"x-big", &big),
        ];
        hs.extend(std::iter::repeat_n((&b"x-rep"[..], &b"r"[..]), 100));
        let resp = request(echo.port(), "GET", "/raw", &hs).unwrap();
        assert_eq!(resp.status, 200);
        let rec = &echo.requests()[0];
        assert_eq!(rec.header("x-bin"), Some("\u{fffd}\u{fffd}\u{fffd}"));
        assert_eq!(rec.header("x-ctl"), Some("a\u{1}b\u{7f}"));
        assert_eq!(rec.header("x-big").map(str::len), Some(8192));
        assert_eq!(rec.headers_named("x-rep").len(), 100);
        // The JSON the client decoded says the same.
        assert_eq!(resp.json()["headers"].as_array().unwrap().len(), 105);
    }

    #[test]
    fn caller_host_and_body() {
        let echo = EchoServer::start();
        let resp = request_with_body(
            echo.port(),
            "POST",
            "/p",
            &[(b"host", b"example.com")],
            b"hello",
        )
        .unwrap();
        let rec = &echo.requests()[0];
        assert_eq!(rec.headers_named("host"), ["example.com"]);
        assert_eq!(rec.header("content-length"), Some("5"));
        assert_eq!(resp.headers_named("Content-Type"), ["application/json"]);
    }

    #[test]
    fn reads_chunked_responses_and_skips_100_continue() {
        let port = canned(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\
              X-A: 1\r\nx-a: 2\r\n\r\n5\r\nhello\r\n7;ext\r\n, world\r\n0\r\nT: x\r\n\r\n",
        );
        let r = request(port, "GET", "/", &[]).unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.text(), "hello, world");
        assert_eq!(r.headers_named("x-a"), ["1", "2"]);
        assert_eq!(r.header("X-A").as_deref(), Some("1"));
    }

    #[test]
    fn reads_close_delimited_bodies_and_reports_truncation() {
        let port = canned(b"HTTP/1.0 200 OK\r\n\r\nuntil close");
        assert_eq!(request(port, "GET", "/", &[]).unwrap().body, b"until close");
        let port = canned(b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\nshort");
        assert!(request(port, "GET", "/", &[])
            .unwrap_err()
            .contains("50 bytes"));
        let port = canned(b"garbage\r\n\r\n");
        assert!(request(port, "GET", "/", &[])
            .unwrap_err()
            .contains("status line"));
    }

    #[test]
    fn claimed_lengths_past_the_limit_are_refused_before_allocating() {
        for reply in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 18446744073709551615\r\n\r\nabc"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 67108865\r\n\r\nabc",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffff\r\nabc",
            // After a 1-byte chunk, the total would overflow usize.
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\nffffffffffffffff\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4000001\r\nabc",
        ] {
            let err = request(canned(reply), "GET", "/", &[]).unwrap_err();
            assert!(
                err.contains("more than this client reads (64 MiB)"),
                "{err} ({:?})",
                String::from_utf8_lossy(reply)
            );
        }
        // At the limit, a claim is read (here cut short by the server: the truncation error).
        let err = request(
            canned(b"HTTP/1.1 200 OK\r\ncontent-length: 67108864\r\n\r\nabc"),
            "GET",
            "/",
            &[],
        )
        .unwrap_err();
        assert!(err.contains("connection closed after 3"), "{err}");
    }

    #[test]
    fn get_url_parses_hosts() {
        let echo = EchoServer::start();
        let r = get_url(&format!("http://127.0.0.1:{}/x?y=1", echo.port())).unwrap();
        assert_eq!(r.json()["path"], "/x?y=1");
        assert_eq!(
            echo.requests()[0].header("host"),
            Some(&*format!("127.0.0.1:{}", echo.port()))
        );
        let r = get_url(&format!("http://localhost:{}", echo.port())).unwrap();
        assert_eq!(r.json()["path"], "/");
        assert!(get_url("https://x").is_err());
    }

    #[test]
    fn connection_refused_is_an_error() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        assert!(request(port, "GET", "/", &[])
            .unwrap_err()
            .contains("connect"));
    }
}

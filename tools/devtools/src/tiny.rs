//! The collector's HTTP server: tiny_http (a maintained crate; it reads `content-length` and
//! chunked request bodies, as Envoy's tracers send them) behind the same `Request` -> `Reply`
//! handler as the hand-written server. The echo keeps the hand-written one: tiny_http refuses
//! non-ASCII header bytes, and the echo must show exactly what Envoy forwarded.

use crate::server::{Handler, Reply, Request};
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Requests served at once; more wait in tiny_http's queue.
const WORKERS: usize = 4;
/// A body larger than this is refused (413): a broken client must not eat the machine's memory.
const MAX_BODY_BYTES: u64 = 64 << 20;

/// A running server; stops on drop.
pub(crate) struct TinyServer {
    server: Arc<tiny_http::Server>,
    port: u16,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl TinyServer {
    pub fn bind(addr: &str, name: &str, handler: Handler) -> io::Result<TinyServer> {
        let server = tiny_http::Server::http(addr).map_err(|e| io::Error::other(e.to_string()))?;
        let port = server
            .server_addr()
            .to_ip()
            .map(|a| a.port())
            .ok_or_else(|| io::Error::other("not an IP listener"))?;
        let server = Arc::new(server);
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::with_capacity(WORKERS);
        for i in 0..WORKERS {
            let (s, h, st) = (server.clone(), handler.clone(), stop.clone());
            workers.push(
                std::thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || serve(&s, &h, &st))?,
            );
        }
        Ok(TinyServer {
            server,
            port,
            stop,
            workers,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Blocks until the server stops (for the binary, which serves until killed).
    pub fn wait(mut self) {
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for TinyServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Each unblock wakes one worker waiting in recv().
        for _ in 0..self.workers.len() {
            self.server.unblock();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn serve(server: &tiny_http::Server, handler: &Handler, stop: &AtomicBool) {
    loop {
        // recv() also fails for one bad client connection: only the stop flag ends the loop.
        let rq = match server.recv() {
            Ok(rq) => rq,
            Err(_) if stop.load(Ordering::SeqCst) => return,
            Err(_) => continue,
        };
        if stop.load(Ordering::SeqCst) {
            return;
        }
        handle(rq, handler);
    }
}

fn handle(mut rq: tiny_http::Request, handler: &Handler) {
    let mut body = Vec::new();
    let read = rq
        .as_reader()
        .take(MAX_BODY_BYTES + 1)
        .read_to_end(&mut body);
    let reply = match read {
        Err(e) => Reply::text(400, format!("cannot read the body: {e}\n")),
        Ok(n) if n as u64 > MAX_BODY_BYTES => Reply::text(413, "body too large\n"),
        Ok(_) => {
            let req = Request {
                method: rq.method().as_str().to_string(),
                target: rq.url().to_string(),
                headers: rq
                    .headers()
                    .iter()
                    .map(|h| {
                        (
                            h.field.as_str().as_str().as_bytes().to_vec(),
                            h.value.as_str().as_bytes().to_vec(),
                        )
                    })
                    .collect(),
                body,
                keep_alive: true,
            };
            handler(&req)
        }
    };
    let mut resp = tiny_http::Response::from_data(reply.body).with_status_code(reply.status);
    if let Ok(h) = tiny_http::Header::from_bytes("content-type", reply.content_type) {
        resp = resp.with_header(h);
    }
    // The client may have gone; nothing to tell it then.
    let _ = rq.respond(resp);
}

//! `trace-inject-devtools traces` as `make traces` runs it (the binary, its stdout and stderr)
//! against a collector that holds hostile strings: nothing reaches the terminal unescaped.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use trace_inject_devtools::{request_with_body, Collector};

/// What must never be printed raw: ESC, BEL, CR, CSI (C1), DEL, RIGHT-TO-LEFT OVERRIDE.
const RAW: [char; 6] = ['\x1b', '\x07', '\r', '\u{9b}', '\x7f', '\u{202e}'];

fn traces(collector: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trace-inject-devtools"))
        .args(["traces", "--collector", collector])
        .output()
        .expect("the devtools binary runs")
}

fn assert_nothing_raw(what: &str, text: &str) {
    for c in RAW {
        assert!(!text.contains(c), "{what} holds a raw {c:?}: {text:?}");
    }
}

#[test]
fn span_strings_are_printed_escaped() {
    let collector = Collector::start();
    let spans = serde_json::json!([{
        "traceId": "463ac35c9f6413ad",
        "id": "00000000000000a1",
        "name": "GET \u{1b}]0;owned\u{7}",
        "kind": "SERVER",
        "timestamp": 1_700_000_000_000_000u64,
        "duration": 5,
        "localEndpoint": {"serviceName": "front\u{202e}gnp.exe"},
        "tags": {"k\u{1b}[2J": "v\u{9b}31m\u{7f}"},
        "annotations": [{"timestamp": 1_700_000_000_000_001u64, "value": "\r\u{1b}[1A"}],
    }]);
    let r = request_with_body(
        collector.port(),
        "POST",
        "/api/v2/spans",
        &[(b"content-type", b"application/json")],
        spans.to_string().as_bytes(),
    )
    .expect("post");
    assert_eq!(r.status, 202, "{}", r.text());
    let out = traces(&format!("http://127.0.0.1:{}", collector.port()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_nothing_raw("stdout", &stdout);
    for shown in [
        "GET \\u{1b}]0;owned\\u{7}",
        "front\\u{202e}gnp.exe",
        "k\\u{1b}[2J=v\\u{9b}31m\\u{7f}",
        "\\r\\u{1b}[1A",
    ] {
        assert!(stdout.contains(shown), "{shown} in {stdout}");
    }
}

#[test]
fn a_collectors_error_text_is_printed_escaped() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("port").port();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().expect("accept");
        let mut r = BufReader::new(s.try_clone().expect("clone"));
        let mut line = String::new();
        while r.read_line(&mut line).is_ok_and(|n| n > 2) {
            line.clear();
        }
        let body = "\u{1b}[2Jdown\u{1b}]0;owned\u{7}\r\u{202e}";
        let _ = write!(
            s,
            "HTTP/1.1 500 Internal Server Error\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
    });
    let out = traces(&format!("http://127.0.0.1:{port}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_nothing_raw("stderr", &stderr);
    assert!(
        stderr.contains("500 \\u{1b}[2Jdown\\u{1b}]0;owned\\u{7}\\r\\u{202e}"),
        "{stderr}"
    );
}

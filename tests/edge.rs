//! Proves, in a real Envoy, the filter at the edge of a mesh: `trust_incoming` restarts contexts
//! an outsider chose (forced sampling and debug dropped, the caller's id kept only for
//! correlation) and continues those Envoy marks internal or that arrive over mTLS, a deferred
//! new trace leaves the sampling decision to the next hop's tracer, and `outputs: []` lets no
//! trace header leave — measured facts behind each in `docs/edge-measurements.md`.

mod common;
use common::oracle;
use common::*;
use std::process::Command;
use std::time::Duration;
use trace_inject::fixtures::{B3_SINGLE_SPAN, B3_SINGLE_TRACE, S, T32, W3C_PARENT, W3C_TRACE};

/// Request headers to send, as (name, value).
type Headers = Vec<(&'static str, String)>;

/// Contexts a client outside the operator's control forces: debug, sampled, debug again; each
/// as (what, how the log line says it arrived, headers).
fn forced_inputs() -> Vec<(&'static str, &'static str, Headers)> {
    vec![
        (
            "B3 multi with x-b3-flags: 1",
            "b3",
            vec![
                ("x-b3-traceid", T32.into()),
                ("x-b3-spanid", S.into()),
                ("x-b3-flags", "1".into()),
            ],
        ),
        (
            "traceparent -01 with tracestate",
            "w3c",
            vec![
                ("traceparent", format!("00-{W3C_TRACE}-{W3C_PARENT}-01")),
                ("tracestate", "forced=1,other=x".into()),
            ],
        ),
        (
            "b3 single -d",
            "b3-single",
            vec![("b3", format!("{B3_SINGLE_TRACE}-{B3_SINGLE_SPAN}-d"))],
        ),
    ]
}

fn caller_trace(headers: &[(&str, String)]) -> String {
    for (n, v) in headers {
        match *n {
            "x-b3-traceid" => return v.clone(),
            "traceparent" => return v.split('-').nth(1).expect("trace-id").to_string(),
            "b3" => return v.split('-').next().expect("trace-id").to_string(),
            _ => {}
        }
    }
    panic!("no trace id in {headers:?}")
}

/// Asserts the request was restarted: one new context upstream (sampled per `sampled`), no
/// trace of the caller's id or debug flag anywhere upstream, the log line correlating both.
/// Returns the new trace id.
fn assert_restarted(
    hop: &Hop,
    headers: &[(&str, String)],
    arrived_as: &str,
    sampled: bool,
    what: &str,
) -> String {
    let h: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let r = hop.get("/", &h);
    assert_eq!(r.status, 200, "{what}");
    let told = r
        .header("x-trace-id")
        .unwrap_or_else(|| panic!("{what}: no x-trace-id"));
    let up = hop.upstream();
    let ctx = oracle::assert_one_context(&up.headers, Some(&told));
    let caller = caller_trace(headers);
    assert_ne!(
        ctx.trace_id,
        format!("{caller:0>32}"),
        "{what}: a new trace"
    );
    assert_eq!(ctx.sampled, sampled, "{what}: sampled per sampling_percent");
    for (n, v) in &up.headers {
        assert!(
            !v.contains(caller.as_str()),
            "{what}: the caller's trace id went upstream in {n}: {v}"
        );
    }
    assert_eq!(up.header("x-b3-flags"), None, "{what}: no debug upstream");
    assert_eq!(
        up.header("tracestate"),
        None,
        "{what}: no tracestate carried"
    );
    if let Some(b3) = up.header("b3") {
        assert!(
            !b3.ends_with("-d") && !b3.contains("-d-"),
            "{what}: b3 {b3}"
        );
    }
    let line = log_line_of(&hop.envoy, &told);
    assert_eq!(line["caller_trace_id"], format!("{caller:0>32}"), "{what}");
    assert_eq!(line["restarted"], true, "{what}");
    assert_eq!(line["context"], arrived_as, "{what}: how it arrived");
    assert_eq!(line["sampled"], sampled, "{what}");
    told
}

#[test]
fn none_restarts_forced_sampling_and_debug_and_keeps_the_callers_id_for_correlation() {
    for pct in [0, 100] {
        let hop = plain_hop(&format!(
            r#"{{"trust_incoming": "none", "sampling_percent": {pct}}}"#
        ));
        let inputs = forced_inputs();
        for (what, arrived_as, headers) in &inputs {
            assert_restarted(
                &hop,
                headers,
                arrived_as,
                pct == 100,
                &format!("{pct} %: {what}"),
            );
        }
        hop.assert_counter("requests.restarted", inputs.len() as u64);
        // No context at all is a new trace, not a restart: nothing to correlate.
        let r = hop.get("/", &[]);
        let told = r.header("x-trace-id").expect("x-trace-id");
        let line = log_line_of(&hop.envoy, &told);
        assert_eq!(line["context"], "injected");
        assert!(line.get("caller_trace_id").is_none(), "{line}");
        assert_ne!(line.get("restarted"), Some(&serde_json::Value::Bool(true)));
        // Not moved, once the tick that counted this request has come.
        hop.wait_counted(inputs.len() as u64 + 1);
        hop.assert_counter("requests.restarted", inputs.len() as u64);
    }
}

#[test]
fn none_tags_the_filters_own_span_with_the_callers_trace_id() {
    let collector = Collector::start();
    let echo = EchoServer::start();
    let envoy = plain_builder(
        &echo,
        r#"{"trust_incoming": "none", "export": {"cluster": "zipkin", "flush_interval_ms": 100}}"#,
    )
    .replace(
        "port_value: 9411}",
        format!("port_value: {}}}", collector.port()),
    )
    .start()
    .unwrap_or_else(|e| panic!("Envoy did not start: {e}"));
    let hop = Hop::new(envoy, echo);
    for (what, arrived_as, headers) in forced_inputs() {
        let told = assert_restarted(&hop, &headers, arrived_as, true, what);
        let spans = collector.wait_for_trace(&told, 1, Duration::from_secs(10));
        assert_eq!(spans.len(), 1, "{what}: the filter's span: {spans:?}");
        let caller = format!("{:0>32}", caller_trace(&headers));
        assert_eq!(
            spans[0].tag("caller_trace_id"),
            Some(caller.as_str()),
            "{what}"
        );
        assert_ne!(spans[0].debug, Some(true), "{what}: not debug");
        assert_eq!(
            spans[0].parent_id, None,
            "{what}: the root of the new trace"
        );
    }
}

/// `examples/envoy.yaml` with the connection manager owning `x-envoy-internal`:
/// `use_remote_address: true` and `internal_address_config` of `cidr`.
fn edge_hop(plugin_config: &str, cidr: (&str, u8)) -> Hop {
    let echo = EchoServer::start();
    let envoy = plain_builder(&echo, plugin_config)
        .replace(
            "          stat_prefix: ingress\n",
            format!(
                "          stat_prefix: ingress\n          use_remote_address: true\n          \
                 internal_address_config:\n            cidr_ranges: [{{address_prefix: {}, \
                 prefix_len: {}}}]\n",
                cidr.0, cidr.1
            ),
        )
        .start()
        .unwrap_or_else(|e| panic!("Envoy did not start: {e}"));
    Hop::new(envoy, echo)
}

fn sampled_b3() -> Headers {
    vec![
        ("x-b3-traceid", T32.into()),
        ("x-b3-spanid", S.into()),
        ("x-b3-sampled", "1".into()),
    ]
}

#[test]
fn internal_continues_what_envoy_marks_internal() {
    // Loopback inside internal_address_config: Envoy sets x-envoy-internal: true.
    let hop = edge_hop(r#"{"trust_incoming": "internal"}"#, ("127.0.0.0", 8));
    let h = sampled_b3();
    let h: Vec<(&str, &str)> = h.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let r = hop.get("/", &h);
    let up = hop.upstream();
    assert_eq!(
        up.header("x-envoy-internal"),
        Some("true"),
        "premise: Envoy marked the loopback caller internal"
    );
    let ctx = oracle::assert_one_context(&up.headers, r.header("x-trace-id").as_deref());
    assert_eq!(ctx.trace_id, T32, "continued");
    assert!(ctx.sampled);
    assert_eq!(up.header("x-b3-spanid"), Some(S), "propagated unchanged");
    let line = log_line_of(&hop.envoy, T32);
    assert_eq!(line["context"], "b3");
    assert!(line.get("caller_trace_id").is_none(), "{line}");
    assert_eq!(
        settled_stat(&hop.envoy, "wasmcustom.trace_inject.requests.restarted"),
        0
    );
}

#[test]
fn internal_restarts_an_external_caller_also_when_it_forges_internal() {
    // internal_address_config excludes loopback: the caller is external to Envoy.
    let hop = edge_hop(
        r#"{"trust_incoming": "internal", "sampling_percent": 0}"#,
        ("10.0.0.0", 8),
    );
    let plain = sampled_b3();
    let mut forged = sampled_b3();
    forged.push(("x-envoy-internal", "true".into()));
    // With use_remote_address: true a forged X-Forwarded-For does not make it internal either.
    let mut forged_xff = forged.clone();
    forged_xff.push(("x-forwarded-for", "10.1.2.3".into()));
    for (what, headers) in [
        ("external", plain),
        ("external, forged x-envoy-internal", forged),
        (
            "external, forged x-envoy-internal and x-forwarded-for",
            forged_xff,
        ),
    ] {
        assert_restarted(&hop, &headers, "b3", false, what);
        assert_eq!(
            hop.upstream().header("x-envoy-internal"),
            None,
            "premise: Envoy stripped it ({what})"
        );
    }
    hop.assert_counter("requests.restarted", 3);
}

/// A CA, a server certificate for localhost and a client certificate with a SPIFFE URI SAN
/// (as Istio issues), made with the openssl command line in `dir`.
fn make_certs(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=edge-test-ca",
    ]);
    for (name, subj, ext) in [
        (
            "server",
            "/CN=localhost",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ),
        (
            "client",
            "/CN=frontend",
            "subjectAltName=URI:spiffe://cluster.local/ns/default/sa/frontend",
        ),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), format!("{ext}\n")).expect("ext file");
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            subj,
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ]);
    }
}

/// GET over HTTPS through curl, with or without the client certificate: (x-trace-id, the
/// headers the echo upstream received, from its JSON answer).
fn https_get(
    port: u16,
    dir: &std::path::Path,
    client_cert: bool,
    headers: &[(&str, String)],
) -> (Option<String>, Vec<(String, String)>) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-D", "-", "--max-time", "10", "--cacert"])
        .arg(dir.join("ca.crt"));
    if client_cert {
        cmd.arg("--cert")
            .arg(dir.join("client.crt"))
            .arg("--key")
            .arg(dir.join("client.key"));
    }
    for (n, v) in headers {
        cmd.arg("-H").arg(format!("{n}: {v}"));
    }
    cmd.arg(format!("https://localhost:{port}/"));
    let out = cmd.output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer (curl {}): {text}", out.status));
    let told = head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case("x-trace-id")
            .then(|| v.trim().to_string())
    });
    let json: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("echo JSON ({e}): {body}"));
    let up = json["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .map(|p| {
            (
                p[0].as_str().expect("name").to_string(),
                p[1].as_str().expect("value").to_string(),
            )
        })
        .collect();
    (told, up)
}

#[test]
fn internal_continues_a_caller_that_presents_a_client_certificate() {
    let dir = std::env::temp_dir().join(format!("trace-inject-edge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    make_certs(&dir);
    let echo = EchoServer::start();
    let port = free_port();
    // TLS with an optional, validated client certificate; loopback is not an internal address,
    // so only the certificate (proxy-wasm `connection.mtls`) can make the request internal.
    let tls = format!(
        "    filter_chains:\n    - transport_socket: {{name: envoy.transport_sockets.tls, \
         typed_config: {{\"@type\": \
         type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext, \
         require_client_certificate: false, common_tls_context: {{tls_certificates: \
         [{{certificate_chain: {{filename: {d}/server.crt}}, private_key: {{filename: \
         {d}/server.key}}}}], validation_context: {{trusted_ca: {{filename: {d}/ca.crt}}}}}}}}}}\n      \
         filters:\n",
        d = dir.display()
    );
    let envoy = builder(
        "envoy.yaml",
        10000,
        8080,
        port,
        echo.port(),
        r#"{"trust_incoming": "internal", "sampling_percent": 0}"#,
    )
    .replace("    filter_chains:\n    - filters:\n", tls)
    .replace(
        "          stat_prefix: ingress\n",
        "          stat_prefix: ingress\n          use_remote_address: true\n          \
         internal_address_config:\n            cidr_ranges: [{address_prefix: 10.0.0.0, \
         prefix_len: 8}]\n"
            .to_string(),
    )
    .start()
    .unwrap_or_else(|e| panic!("Envoy did not start: {e}"));

    let (told, up) = https_get(port, &dir, true, &sampled_b3());
    let ctx = oracle::assert_one_context(&up, told.as_deref());
    assert_eq!(ctx.trace_id, T32, "mTLS caller: continued");
    assert!(ctx.sampled, "its decision kept");

    let (told, up) = https_get(port, &dir, false, &sampled_b3());
    let ctx = oracle::assert_one_context(&up, told.as_deref());
    assert_ne!(
        ctx.trace_id, T32,
        "TLS without a client certificate: restarted"
    );
    assert!(!ctx.sampled, "sampled per sampling_percent (0)");
    // Both requests counted first: the mTLS one must not have restarted either.
    wait_counted(&envoy, 2);
    assert_stat(&envoy, "wasmcustom.trace_inject.requests.restarted", 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn defer_writes_ids_without_a_sampling_decision() {
    let hop =
        plain_hop(r#"{"new_trace_sampling": "defer", "outputs": ["b3", "b3-single", "w3c"]}"#);
    let r = hop.get("/", &[]);
    let told = r.header("x-trace-id").expect("x-trace-id");
    let up = hop.upstream();
    let trace = up.header("x-b3-traceid").expect("x-b3-traceid");
    let span = up.header("x-b3-spanid").expect("x-b3-spanid");
    assert_eq!(format!("{trace:0>32}"), told);
    assert!(is_lower_hex(span, 16));
    // B3's deferred state: ids without x-b3-sampled, `b3: {trace}-{span}`.
    assert_eq!(up.header("x-b3-sampled"), None);
    assert_eq!(up.header("x-b3-flags"), None);
    assert_eq!(up.header("b3"), Some(format!("{trace}-{span}").as_str()));
    // W3C has no deferred state; a -00 beside it is read as "not sampled" by Envoy's Zipkin
    // tracer (USE_B3_WITH_W3C_PROPAGATION) and the OpenTelemetry tracer, -01 as "sampled" by
    // the Zipkin one: omitted, so the next tracer decides (docs/edge-measurements.md §c).
    assert_eq!(up.header("traceparent"), None);
    // An incoming decision is still passed on: defer is for new traces only.
    let r = hop.get(
        "/",
        &[
            ("x-b3-traceid", T32),
            ("x-b3-spanid", S),
            ("x-b3-sampled", "0"),
        ],
    );
    assert_eq!(r.header("x-trace-id").as_deref(), Some(T32));
    assert_eq!(hop.upstream().header("x-b3-sampled"), Some("0"));
}

/// The Zipkin tracer's `trace_context_option` on B: Istio's default, and the examples' (which
/// reads `traceparent`'s sampled flag as a decision: a `-00` from A would silence it).
const OPTIONS: [&str; 2] = ["USE_B3", "USE_B3_WITH_W3C_PROPAGATION"];

/// Envoy A (no tracer, the filter deferring) in front of B (`examples/envoy-sidecar.yaml`,
/// Envoy's Zipkin tracer at `percent` with `option`). Returns (A's port, A, B).
fn deferring_chain(percent: u32, option: &str) -> (u16, Envoy, SidecarHop) {
    let b = sidecar_hop(
        Some(&format!(
            r#"{{"tracer": "envoy", "envoy_trace_context_option": "{option}"}}"#
        )),
        |e| {
            e.replace(
                "random_sampling: {value: 100}",
                format!("random_sampling: {{value: {percent}}}"),
            )
            .replace(
                "trace_context_option: USE_B3_WITH_W3C_PROPAGATION",
                format!("trace_context_option: {option}"),
            )
        },
    );
    let a_port = free_port();
    let a = builder(
        "envoy.yaml",
        10000,
        8080,
        a_port,
        b.port,
        r#"{"new_trace_sampling": "defer"}"#,
    )
    .start()
    .unwrap_or_else(|e| panic!("Envoy A: {e}"));
    (a_port, a, b)
}

#[test]
fn deferred_new_trace_is_sampled_by_the_next_tracer_at_100_percent() {
    for option in OPTIONS {
        let (a_port, a, b) = deferring_chain(100, option);
        let r = http::request(a_port, "GET", "/", &[]).expect("request");
        assert_eq!(r.status, 200, "{option}");
        let told = r.header("x-trace-id").expect("x-trace-id");
        let spans = b
            .collector
            .wait_for_trace(&told, 1, Duration::from_secs(15));
        assert_eq!(
            spans.len(),
            1,
            "{option}: B's tracer sampled the trace A named: {spans:?}"
        );
        assert_ne!(spans[0].debug, Some(true), "{option}");
        assert_eq!(
            b.upstream().header("x-b3-sampled"),
            Some("1"),
            "{option}: B decided"
        );
        log_line_of(&a, &told);
    }
}

#[test]
fn deferred_new_trace_is_not_sampled_by_the_next_tracer_at_0_percent() {
    for option in OPTIONS {
        let (a_port, a, b) = deferring_chain(0, option);
        let r = http::request(a_port, "GET", "/", &[]).expect("request");
        assert_eq!(r.status, 200, "{option}");
        let told = r.header("x-trace-id").expect("x-trace-id");
        let up = b.upstream();
        assert_eq!(up.header("x-b3-sampled"), Some("0"), "{option}: B decided");
        assert_eq!(
            up.header("x-b3-traceid").map(|t| format!("{t:0>32}")),
            Some(told.clone()),
            "{option}: B joined the trace A named"
        );
        // Positive signal first: a sampled trace sent after it reaches the collector...
        let control = [
            (&b"x-b3-traceid"[..], T32.as_bytes()),
            (b"x-b3-spanid", S.as_bytes()),
            (b"x-b3-sampled", b"1"),
        ];
        let r = http::request(a_port, "GET", "/", &control).expect("control request");
        assert_eq!(r.header("x-trace-id").as_deref(), Some(T32), "{option}");
        let spans = b.collector.wait_for_trace(T32, 1, Duration::from_secs(15));
        assert_eq!(spans.len(), 1, "{option}: the control trace: {spans:?}");
        // ...and the deferred one, sent first, is not there.
        assert!(
            b.collector.trace(&told).is_empty(),
            "{option}: not sampled at 0 %"
        );
        log_line_of(&a, &told);
        log_line_of(&a, T32);
    }
}

#[test]
fn empty_outputs_let_no_trace_header_leave() {
    let hop = plain_hop(r#"{"outputs": []}"#);
    let all = [
        ("x-b3-traceid", T32.to_string()),
        ("x-b3-spanid", S.to_string()),
        ("x-b3-parentspanid", "0020000000000001".to_string()),
        ("x-b3-sampled", "1".to_string()),
        ("x-b3-flags", "1".to_string()),
        ("b3", format!("{B3_SINGLE_TRACE}-{B3_SINGLE_SPAN}-1")),
        ("traceparent", format!("00-{W3C_TRACE}-{W3C_PARENT}-01")),
        ("tracestate", "vendor=internal".to_string()),
    ];
    let h: Vec<(&str, &str)> = all.iter().map(|(n, v)| (*n, v.as_str())).collect();
    for (what, headers) in [("every trace header", &h[..]), ("none", &[][..])] {
        let r = hop.get("/", headers);
        assert_eq!(r.status, 200, "{what}");
        let told = r
            .header("x-trace-id")
            .unwrap_or_else(|| panic!("{what}: x-trace-id still returned"));
        assert!(is_lower_hex(&told, 32), "{what}: {told}");
        let up = hop.upstream();
        for name in TRACE_HEADERS {
            assert!(
                up.headers_named(name).is_empty(),
                "{what}: {name} left the filter: {:?}",
                up.headers
            );
        }
        log_line_of(&hop.envoy, &told);
    }
}

#[test]
fn by_default_incoming_contexts_are_continued_as_before() {
    let hop = plain_hop("{}");
    let r = hop.get(
        "/",
        &[
            ("x-b3-traceid", T32),
            ("x-b3-spanid", S),
            ("x-b3-flags", "1"),
        ],
    );
    assert_eq!(r.header("x-trace-id").as_deref(), Some(T32));
    let up = hop.upstream();
    assert_eq!(up.header("x-b3-traceid"), Some(T32));
    assert_eq!(
        up.header("x-b3-flags"),
        Some("1"),
        "debug passed on (trust_incoming: all)"
    );
    assert_eq!(
        up.header("x-b3-sampled"),
        None,
        "x-b3-flags implies sampled"
    );
    let line = log_line_of(&hop.envoy, T32);
    assert!(line.get("caller_trace_id").is_none(), "{line}");
    assert_eq!(
        settled_stat(&hop.envoy, "wasmcustom.trace_inject.requests.restarted"),
        0
    );
}

#[test]
fn bad_edge_settings_are_refused_naming_the_field() {
    for (config, needle) in [
        (
            r#"{"trust_incoming": "some"}"#,
            "field `trust_incoming`: unknown variant `some`",
        ),
        (
            r#"{"trust_incoming": true}"#,
            "field `trust_incoming`: invalid type: boolean `true`",
        ),
        (
            r#"{"new_trace_sampling": "later"}"#,
            "field `new_trace_sampling`: unknown variant `later`",
        ),
        (r#"{"outputs": "b3"}"#, "field `outputs`: invalid type"),
    ] {
        let echo = EchoServer::start();
        let err = match builder("envoy.yaml", 10000, 8080, free_port(), echo.port(), config).start()
        {
            Ok(_) => panic!("Envoy accepted the bad plugin config {config}"),
            Err(e) => e,
        };
        let line = err
            .lines()
            .find(|l| l.contains("invalid plugin configuration"))
            .unwrap_or_else(|| panic!("{config}: no refusal line: {err}"));
        assert!(line.contains(needle), "{config}: {line}");
    }
}

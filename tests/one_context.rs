//! Proves, in a real Envoy, that whatever `precedence` and `outputs` say, the upstream receives
//! exactly one trace context (every trace header present names the same trace and span) and
//! `x-trace-id` names it; and that no single request switches a worker off: plain requests after
//! it still get a context and an id. The positions are read by splitting the header values here,
//! not by the filter's own parsers.

mod common;
use common::*;
use trace_inject::fixtures::{B3_SINGLE_SPAN, B3_SINGLE_TRACE, S, T32, W3C_PARENT, W3C_TRACE};

/// (trace id as 32 hex, span id) of every trace format the request carries.
fn positions(up: &RecordedRequest) -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    if let (Some(t), Some(s)) = (up.header("x-b3-traceid"), up.header("x-b3-spanid")) {
        out.push(("x-b3-*", format!("{t:0>32}"), s.to_string()));
    }
    if let Some(b3) = up.header("b3") {
        let f: Vec<&str> = b3.split('-').collect();
        if f.len() >= 2 {
            out.push(("b3", format!("{:0>32}", f[0]), f[1].to_string()));
        }
    }
    if let Some(tp) = up.header("traceparent") {
        let f: Vec<&str> = tp.split('-').collect();
        assert_eq!(f.len(), 4, "traceparent {tp:?}");
        out.push(("traceparent", f[1].to_string(), f[2].to_string()));
    }
    out
}

fn assert_one_context(hop: &Hop, headers: &[(&str, &str)], what: &str) {
    let r = hop.get("/", headers);
    assert_eq!(r.status, 200, "{what}");
    let up = hop.upstream();
    let found = positions(&up);
    assert!(!found.is_empty(), "{what}: no context upstream: {up:?}");
    let told = r
        .header("x-trace-id")
        .unwrap_or_else(|| panic!("{what}: no x-trace-id"));
    for (name, trace, span) in &found {
        assert_eq!(
            (trace.as_str(), span.as_str()),
            (found[0].1.as_str(), found[0].2.as_str()),
            "{what}: {name} names another position than {}: {found:?}",
            found[0].0
        );
        assert_eq!(
            trace, &told,
            "{what}: x-trace-id is not the trace of {name}"
        );
    }
    for name in ["b3", "x-b3-traceid", "traceparent"] {
        assert!(up.headers_named(name).len() <= 1, "{what}: {name} repeated");
    }
}

#[test]
fn one_context_upstream_for_every_configuration_and_input() {
    let inputs: [(&str, Vec<(&str, String)>); 4] = [
        (
            "B3 multi",
            vec![
                ("x-b3-traceid", T32.into()),
                ("x-b3-spanid", S.into()),
                ("x-b3-sampled", "1".into()),
            ],
        ),
        (
            "b3 single",
            vec![("b3", format!("{B3_SINGLE_TRACE}-{B3_SINGLE_SPAN}-1"))],
        ),
        (
            "traceparent",
            vec![("traceparent", format!("00-{W3C_TRACE}-{W3C_PARENT}-01"))],
        ),
        (
            "all three, three traces",
            vec![
                ("x-b3-traceid", T32.into()),
                ("x-b3-spanid", S.into()),
                ("b3", format!("{B3_SINGLE_TRACE}-{B3_SINGLE_SPAN}-1")),
                ("traceparent", format!("00-{W3C_TRACE}-{W3C_PARENT}-01")),
            ],
        ),
    ];
    for config in [
        "{}",
        r#"{"precedence": ["w3c"], "outputs": ["w3c"]}"#,
        r#"{"precedence": ["w3c", "b3"], "outputs": ["b3"]}"#,
        r#"{"precedence": ["b3"], "outputs": ["b3-single"]}"#,
    ] {
        let hop = plain_hop(config);
        for (name, headers) in &inputs {
            let h: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            assert_one_context(&hop, &h, &format!("{config} with {name}"));
            // The next plain request on the same worker still gets a context and an id.
            assert_one_context(&hop, &[], &format!("{config}: plain request after {name}"));
        }
    }
}

//! One request through the filter. Each callback is a short list of named steps; each step reads
//! what it needs from the host (its host calls are named on it) and hands off to the pure modules.
//!
//! - request phase: read the trace headers → decide → apply the edits → count → span tags
//! - response phase: tell the caller the trace id
//! - `on_log`: learn the hop → finish the filter's own span → write the log line

use std::rc::Rc;

use crate::context::{Format, TraceContext};
use crate::decision::{self, Circumstances, Decision};
use crate::formats;
use crate::grpc;
use crate::headers::TraceHeaders;
use crate::hop::{self, Hop};
use crate::host::{HeaderPairs, Host, Map};
use crate::ids::TraceId;
use crate::log_record::{loggable_path, LogRecord, MAX_LOG_PATH_BYTES};
use crate::plugin::Plugin;
use crate::propagator::Extracted;
use crate::span::{FinishedSpan, HttpFields, RequestLine, MAX_METHOD_BYTES};
use crate::text::client_text;
use crate::tracer::TracerKind;

pub struct RequestFilter {
    plugin: Rc<Plugin>,
    /// Kept from the request phase: request headers cannot be read in the response phase.
    decision: Option<Decision>,
    /// This request's completion is checked for what it says about the hop.
    hop_check: Option<HopCheck>,
    /// The filter's own span for this request (export on, sampled), from the request phase.
    span: Option<SpanStart>,
    /// The request is a gRPC call (its `content-type`): its status is read when it completes.
    grpc: bool,
}

/// What `on_log` needs from the request phase to judge the hop.
#[derive(Clone, Copy)]
struct HopCheck {
    /// Every tracer the hop may run would have made a span (and written its ids).
    every_tracer_writes: bool,
    /// The request came with a Datadog context (one at the end is then no evidence).
    came_with_datadog: bool,
}

/// When the filter's span started and the request line, kept from the request phase (no header
/// map read in `on_log` for it).
struct SpanStart {
    start_ns: u64,
    line: RequestLine,
}

impl RequestFilter {
    pub fn new(plugin: Rc<Plugin>) -> RequestFilter {
        RequestFilter {
            plugin,
            decision: None,
            hop_check: None,
            span: None,
            grpc: false,
        }
    }

    /// One header-map read; one shared-data read while the hop is unknown.
    pub fn on_request_headers(&mut self, host: &impl Host) {
        let Some(pairs) = host.header_pairs(Map::RequestHeaders) else {
            return;
        };
        let headers = TraceHeaders::collect(pairs.iter());
        let hop = self.plugin.hop.for_request(host);
        let d = self.decide(host, &headers, hop);
        apply_edits(host, &headers, &d);
        self.count(host, &d, hop);
        self.write_span_tags(host, &headers, hop, &d);
        if self.plugin.hop.checks_next() {
            self.hop_check = Some(HopCheck {
                every_tracer_writes: TracerKind::every_tracer_writes(&headers),
                came_with_datadog: headers.datadog,
            });
        }
        self.grpc = pairs.get("content-type").is_some_and(grpc::is_grpc);
        if d.own_span {
            self.span = Some(SpanStart {
                start_ns: host.now_nanos().unwrap_or(0),
                line: RequestLine::new(
                    pairs.get(":method"),
                    pairs.get(":path"),
                    pairs.get(":authority"),
                ),
            });
        }
        self.decision = Some(d);
    }

    /// The decision; a property read only for `trust_incoming: internal` without
    /// `x-envoy-internal`.
    fn decide(&self, host: &impl Host, headers: &TraceHeaders, hop: Hop) -> Decision {
        let plugin = &*self.plugin;
        let trusted = decision::trusts(plugin.settings.trust, headers.envoy_internal, || {
            host.property(&["connection", "mtls"])
                .is_some_and(|v| v.first() == Some(&1))
        });
        let at = Circumstances {
            hop,
            exporting: plugin.exporting().is_some(),
            trusted,
        };
        decision::decide(headers, &plugin.settings, at, &mut &plugin.ids)
    }

    /// Counters (no host call: summed per worker); a debug line per malformed header, at debug.
    fn count(&self, host: &impl Host, d: &Decision, hop: Hop) {
        let plugin = &*self.plugin;
        let m = &plugin.metrics;
        if let Some(c) = m.source(d.source) {
            c.bump();
        }
        if hop == Hop::Unknown {
            m.unknown_hop.bump();
        }
        if !d.malformed.is_empty() {
            m.malformed.bump();
            if plugin.logs(log::Level::Debug) {
                for (header, why) in &d.malformed {
                    host.log(
                        log::Level::Debug,
                        &format!("replaced malformed {header}: {why}"),
                    );
                }
            }
        }
        for (happened, counter) in [
            (d.conflict, &m.conflicts),
            (d.normalised, &m.normalised),
            (d.restarted, &m.restarted),
        ] {
            if happened {
                counter.bump();
            }
        }
    }

    /// Five filter-state writes, where a tracer may run (known or not yet) and its span will be
    /// sampled, so that the span it reports carries them. Elsewhere nobody reads them: at Istio's
    /// 1 % that is 99 requests in 100.
    fn write_span_tags(&self, host: &impl Host, headers: &TraceHeaders, hop: Hop, d: &Decision) {
        if hop != Hop::Plain && tracer_samples(headers, d) {
            for (_, key, value) in self.plugin.workload.span_tags() {
                host.set_property(&[key], value.as_bytes());
            }
        }
    }

    /// One header lookup, and one write where the header changes.
    pub fn on_response_headers(&mut self, host: &impl Host) {
        let settings = &self.plugin.settings;
        let (Some(name), Some(d)) = (&settings.response_header, &self.decision) else {
            return;
        };
        let Ok(existing) = host.header(Map::ResponseHeaders, name) else {
            return;
        };
        let egress = settings.outputs.is_empty();
        match response_trace_id(existing.as_deref(), d.told_trace_id, egress) {
            ResponseEdit::Keep => {}
            ResponseEdit::Add(v) => {
                host.add_header(Map::ResponseHeaders, name, v.as_bytes());
            }
            ResponseEdit::Set(v) => {
                host.set_header(Map::ResponseHeaders, name, Some(v.as_bytes()));
            }
            ResponseEdit::Remove => {
                host.set_header(Map::ResponseHeaders, name, None);
            }
        }
    }

    pub fn on_log(&mut self, host: &impl Host) {
        let plugin = Rc::clone(&self.plugin);
        let settings = &plugin.settings;
        let log_enabled = settings.log.enabled && plugin.logs(settings.log.level);
        let Some(d) = &self.decision else {
            return;
        };
        // Only a request that went upstream can tell the hop (a tracer's router writes its ids on
        // the way there): one property, asked first, so that requests that never go upstream
        // (direct responses, local replies) do not pay a header-map read for it.
        let check = self
            .hop_check
            .filter(|_| host.property(&["upstream", "address"]).is_some());
        let grpc_status = self.grpc_status(host);
        if !log_enabled && check.is_none() && self.span.is_none() {
            return;
        }
        // In on_log the request headers are the final ones: with Envoy's tracer, its ids.
        let carried = if log_enabled || check.is_some() {
            host.header_pairs(Map::RequestHeaders).map(|pairs| {
                let headers = TraceHeaders::collect(pairs.iter());
                let datadog = headers.datadog;
                (formats::extract_all(&headers), datadog, pairs)
            })
        } else {
            None
        };
        if let (Some(check), Some((carried, datadog, _))) = (check, &carried) {
            let datadog_written = *datadog && !check.came_with_datadog;
            let e = hop::evidence(
                &d.forwarded,
                carried,
                datadog_written,
                check.every_tracer_writes,
                true,
            );
            plugin.learn_hop(host, e);
        }
        if !log_enabled && self.span.is_none() {
            return;
        }
        let outcome = Outcome::read(host, grpc_status);
        if let Some(span) = self.span.take() {
            finish_span(&plugin, host, d, span, &outcome);
        }
        if log_enabled {
            let (carried, pairs) = match &carried {
                Some((c, _, p)) => (Some(c), Some(p)),
                None => (None, None),
            };
            write_log_line(&plugin, host, d, carried, pairs, &outcome);
        }
    }
}

impl RequestFilter {
    /// A gRPC call's status, counted (one property read, for gRPC calls only).
    fn grpc_status(&self, host: &impl Host) -> Option<u32> {
        if !self.grpc {
            return None;
        }
        let m = &self.plugin.metrics;
        m.grpc_calls.bump();
        let status = host
            .property(&["response", "grpc_status"])
            .and_then(|b| le_u64(&b))
            .and_then(|c| u32::try_from(c).ok());
        if status.is_some_and(grpc::is_server_error) {
            m.grpc_errors.bump();
        }
        status
    }
}

/// Whether a tracer on this hop samples the request: Envoy's connection manager decided to
/// trace it (the mark in the request id; where there is none, it may have), or the caller's
/// context says sampled or debug, which every tracer honours (from any caller: the tracer reads
/// it before the filter runs).
fn tracer_samples(headers: &TraceHeaders, d: &Decision) -> bool {
    headers.trace_reason().is_none_or(|r| r.traced()) || d.sampled_by_caller
}

/// Applies the decision's edits: an add where the header is absent (cheaper than a replace).
fn apply_edits(host: &impl Host, headers: &TraceHeaders, d: &Decision) {
    for edit in &d.edits {
        let map = Map::RequestHeaders;
        match (&edit.value, headers.has(edit.name)) {
            (Some(v), false) => host.add_header(map, edit.name, v.as_bytes()),
            (value, _) => host.set_header(map, edit.name, value.as_deref().map(str::as_bytes)),
        };
    }
}

/// What to do with the response header that tells the caller the trace id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseEdit {
    Keep,
    Add(String),
    Set(String),
    Remove,
}

/// The caller is never told a wrong id. At an egress (`outputs: []`) every id an upstream sends
/// is another system's: ours replaces it, or it goes. Elsewhere an id already there that is a
/// trace id at all — the route's `%TRACE_ID%` (Envoy's tracer on this hop), or a later hop's
/// filter, which tells the trace the request continued in — is kept; anything else is replaced
/// by ours, or removed when ours is not known.
pub fn response_trace_id(
    existing: Option<&[u8]>,
    told: Option<TraceId>,
    egress: bool,
) -> ResponseEdit {
    let ours = told.map(TraceId::to_hex32);
    match (existing, ours) {
        (None, Some(t)) => ResponseEdit::Add(t),
        (None, None) => ResponseEdit::Keep,
        (Some(v), Some(t)) if v == t.as_bytes() => ResponseEdit::Keep,
        (Some(v), _) if !egress && is_trace_id(v) => ResponseEdit::Keep,
        (Some(_), Some(t)) => ResponseEdit::Set(t),
        (Some(_), None) => ResponseEdit::Remove,
    }
}

/// 16 or 32 hex digits, not all zero: a B3 or W3C trace id (what `%TRACE_ID%` writes).
fn is_trace_id(v: &[u8]) -> bool {
    matches!(v.len(), 16 | 32)
        && v.iter().all(u8::is_ascii_hexdigit)
        && v.iter().any(|&c| c != b'0')
}

/// How the request ended, from Envoy's stream info: three property reads.
struct Outcome {
    status: Option<u64>,
    grpc_status: Option<u32>,
    upstream_cluster: Option<String>,
    duration_us: Option<u64>,
}

impl Outcome {
    fn read(host: &impl Host, grpc_status: Option<u32>) -> Outcome {
        Outcome {
            grpc_status,
            status: host
                .property(&["response", "code"])
                .and_then(|b| le_u64(&b)),
            upstream_cluster: host
                .property(&["xds", "cluster_name"])
                .and_then(|b| String::from_utf8(b).ok()),
            duration_us: host
                .property(&["request", "duration"])
                .and_then(|b| le_u64(&b))
                .map(|ns| ns / 1000),
        }
    }
}

/// Buffers the filter's own span for export (one clock read).
fn finish_span(plugin: &Plugin, host: &impl Host, d: &Decision, span: SpanStart, o: &Outcome) {
    let Some(exporter) = plugin.exporting() else {
        return;
    };
    let end_ns = host.now_nanos().unwrap_or(span.start_ns);
    let http = HttpFields {
        line: span.line,
        status: o.status,
        grpc_status: o.grpc_status,
        upstream_cluster: o.upstream_cluster.as_deref(),
    };
    let mut finished = FinishedSpan::new(&d.context, span.start_ns, end_ns, http);
    finished.caller_trace_id = d.caller_trace_id;
    exporter.push(finished, &plugin.metrics);
}

/// The JSON log line (one host call).
fn write_log_line(
    plugin: &Plugin,
    host: &impl Host,
    d: &Decision,
    carried: Option<&[Extracted; 3]>,
    pairs: Option<&HeaderPairs>,
    o: &Outcome,
) {
    let settings = &plugin.settings;
    let carried_context = carried.and_then(|c| context_carried(c, &settings.precedence));
    let (trace_id, span_id, sampled) = match carried_context {
        Some(c) => (
            Some(c.trace_id.to_hex32()),
            Some(c.span_id.to_hex()),
            c.sampling.decision(),
        ),
        None => (d.told_trace_id.map(|t| t.to_hex32()), None, None),
    };
    let method = pairs
        .and_then(|p| p.get(":method"))
        .map(|m| client_text(m, MAX_METHOD_BYTES));
    let path = pairs.and_then(|p| p.get(":path")).map(|p| {
        client_text(
            loggable_path(p, settings.log.include_query),
            MAX_LOG_PATH_BYTES,
        )
    });
    let record = LogRecord {
        trace_id,
        span_id,
        sampled,
        context: d.source.name(),
        normalised: d.normalised,
        restarted: d.restarted,
        caller_trace_id: d.caller_trace_id.map(|t| t.to_hex32()),
        workload: &plugin.workload,
        method: method.as_deref(),
        path: path.as_deref(),
        status: o.status,
        grpc_status: o.grpc_status,
        duration_us: o.duration_us,
        upstream_cluster: o.upstream_cluster.as_deref(),
    };
    host.log(settings.log.level, &record.to_json());
}

/// The context the request left with, read by the same rules as the decision (`precedence`
/// first), then any other valid format (what a tracer wrote beside them).
fn context_carried(carried: &[Extracted; 3], precedence: &[Format]) -> Option<TraceContext> {
    formats::first_context(carried, precedence)
        .or_else(|| formats::first_context(carried, &Format::ALL))
        .map(|(_, c)| c)
}

/// Envoy serialises integer properties as 8 little-endian bytes.
fn le_u64(b: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(<[u8; 8]>::try_from(b).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{S, T32};
    use crate::host::fake::FakeHost;

    use crate::fixtures::TRACED_REQUEST_ID;

    fn plugin(host: &FakeHost, config: &str) -> Rc<Plugin> {
        *host.configuration.borrow_mut() = config.as_bytes().to_vec();
        Rc::new(Plugin::configure(host, None).expect("configured"))
    }

    /// One request through every phase. `tracer` stands in for Envoy's router on a tracer hop:
    /// it rewrites the request headers between the filter and `on_log`.
    fn request(
        host: &FakeHost,
        p: &Rc<Plugin>,
        headers: &[(&str, &str)],
        tracer: impl FnOnce(&FakeHost),
    ) -> RequestFilter {
        let mut all = vec![
            (":method", "GET"),
            (":path", "/a?b=1"),
            (":authority", "svc"),
        ];
        all.extend_from_slice(headers);
        host.set_map(Map::RequestHeaders, &all);
        host.set_map(Map::ResponseHeaders, &[(":status", "200")]);
        let mut r = RequestFilter::new(Rc::clone(p));
        r.on_request_headers(host);
        tracer(host);
        r.on_response_headers(host);
        r.on_log(host);
        r
    }

    /// What Envoy's Zipkin router writes upstream, after the filter ran.
    fn zipkin_writes(h: &FakeHost, trace: &str) {
        h.set_header(Map::RequestHeaders, "x-b3-traceid", Some(trace.as_bytes()));
        h.set_header(
            Map::RequestHeaders,
            "x-b3-spanid",
            Some(b"00000000000000ff"),
        );
        h.set_header(Map::RequestHeaders, "x-b3-sampled", Some(b"1"));
    }

    /// What Envoy's OpenTelemetry router writes upstream, after the filter ran.
    fn otel_writes(h: &FakeHost, trace: &str) {
        let tp = format!("00-{trace}-00000000000000ff-01");
        h.set_header(Map::RequestHeaders, "traceparent", Some(tp.as_bytes()));
    }

    #[test]
    fn auto_tells_opentelemetry_from_zipkin_even_on_a_plain_request() {
        let host = FakeHost::new();
        let p = plugin(&host, "{}");
        went_upstream(&host);
        // An untraced request (no mark): the filter writes B3 and traceparent; OpenTelemetry
        // rewrites only traceparent.
        request(&host, &p, &[], |h| {
            otel_writes(h, "00000000000000000000000000000abc")
        });
        assert_eq!(p.hop.get(), Hop::Tracer(TracerKind::OpenTelemetry));
        assert!(
            host.logged(log::Level::Warn).is_empty(),
            "auto: learning is no warning"
        );
        let info = host.logged(log::Level::Info);
        assert!(
            info.iter().any(|l| l.contains("this hop: opentelemetry")),
            "{info:?}"
        );
        // From now on: B3 removed, nothing of its own written, a joined traceparent told.
        let tp = crate::fixtures::TRACEPARENT;
        request(
            &host,
            &p,
            &[
                ("x-b3-traceid", T32),
                ("x-b3-spanid", S),
                ("traceparent", tp),
            ],
            |_| {},
        );
        assert_eq!(req(&host, "x-b3-traceid"), None);
        assert_eq!(told(&host).as_deref(), Some(crate::fixtures::W3C_TRACE));
    }

    /// Host calls per request, over `CHECK_EVERY` requests after `warm` (sorted by kind).
    fn calls_per_check_cycle(config: &str, upstream: bool) -> Vec<(&'static str, u32)> {
        let host = FakeHost::new();
        host.envoy_log_level.set(3); // warning, as Istio runs its proxies: no log line
        host.set_prop(&["response", "code"], &200u64.to_le_bytes());
        if upstream {
            went_upstream(&host);
        }
        let p = plugin(&host, config);
        request(&host, &p, &[], |_| {});
        host.reset_call_counts();
        for _ in 0..crate::hop::CHECK_EVERY {
            request(&host, &p, &[], |_| {});
        }
        let mut counts: Vec<_> = host.call_counts.borrow().clone().into_iter().collect();
        counts.sort();
        counts
    }

    /// Once a request has shown the hop, the default configuration costs exactly what
    /// `"tracer": "none"` costs: both check the hop on one request in `CHECK_EVERY`.
    #[test]
    fn auto_once_the_hop_is_known_costs_what_none_costs() {
        let auto = calls_per_check_cycle("{}", true);
        assert_eq!(auto, calls_per_check_cycle(r#"{"tracer": "none"}"#, true));
        assert!(
            auto.contains(&("header_pairs", crate::hop::CHECK_EVERY + 1)),
            "{auto:?}"
        );
    }

    /// Before the hop is known (a route that never goes upstream never shows it), a request
    /// costs one shared-data read (another worker may have learnt it) and one property read
    /// (did it go upstream?) more than a known hop, and writes nothing.
    #[test]
    fn auto_before_the_hop_is_known_costs_two_reads_more() {
        let unknown = calls_per_check_cycle("{}", false);
        let n = crate::hop::CHECK_EVERY;
        assert!(unknown.contains(&("shared_data", n)), "{unknown:?}");
        assert!(unknown.contains(&("property", n)), "{unknown:?}");
        assert!(
            !unknown.iter().any(|(k, _)| *k == "add_header"),
            "{unknown:?}"
        );
    }

    fn went_upstream(host: &FakeHost) {
        host.set_prop(&["upstream", "address"], b"127.0.0.1:8080");
    }

    fn req(host: &FakeHost, name: &str) -> Option<String> {
        host.get(Map::RequestHeaders, name)
    }

    fn told(host: &FakeHost) -> Option<String> {
        host.get(Map::ResponseHeaders, "x-trace-id")
    }

    #[test]
    fn plain_hop_injects_tells_and_logs_one_line() {
        let host = FakeHost::new();
        let p = plugin(&host, r#"{"tracer": "none"}"#);
        // Envoy serialises integer properties as 8 little-endian bytes.
        host.set_prop(&["response", "code"], &200u64.to_le_bytes());
        host.set_prop(&["request", "duration"], &1_234_000u64.to_le_bytes());
        request(&host, &p, &[], |_| {});
        let trace = req(&host, "x-b3-traceid").unwrap();
        assert_eq!(told(&host).as_deref(), Some(trace.as_str()));
        let tp = req(&host, "traceparent").unwrap();
        assert!(tp.contains(&trace) && tp.ends_with("-03"), "{tp}");
        let lines = host.logged(log::Level::Info);
        let line = lines.last().unwrap();
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["trace_id"], trace.as_str());
        assert_eq!(v["span_id"], req(&host, "x-b3-spanid").unwrap().as_str());
        assert_eq!(v["sampled"], true);
        assert_eq!(v["status"], 200);
        assert_eq!(v["duration_ms"], 1.234);
        assert_eq!(v["context"], "injected");
        assert_eq!(v["path"], "/a", "query left out");
        assert_eq!(
            host.calls_of("set_property"),
            0,
            "no span tags where no tracer reads them"
        );
        p.tick(&host);
        assert_eq!(host.counter("trace_inject.requests.injected"), 1);
    }

    /// What the upstream's response already says: a trace id from a later hop (or the route's
    /// `%TRACE_ID%`) is kept; anything else, and anything at an egress, is replaced or removed.
    #[test]
    fn an_upstream_id_is_kept_only_where_it_is_a_trace_id_and_never_at_an_egress() {
        let told_after = |config: &str, upstream: Option<&str>, headers: &[(&str, &str)]| {
            let host = FakeHost::new();
            let p = plugin(&host, config);
            let mut r = RequestFilter::new(Rc::clone(&p));
            host.set_map(Map::RequestHeaders, headers);
            r.on_request_headers(&host);
            let response: Vec<_> = upstream.map(|v| ("x-trace-id", v)).into_iter().collect();
            host.set_map(Map::ResponseHeaders, &response);
            r.on_response_headers(&host);
            (
                host.all(Map::ResponseHeaders, "x-trace-id"),
                req(&host, "x-b3-traceid"),
            )
        };
        let none = r#"{"tracer": "none"}"#;
        let (told, _) = told_after(none, Some(T32), &[]);
        assert_eq!(told, vec![T32], "a later hop's trace id");
        let (told, sent) = told_after(none, Some("req-42"), &[]);
        assert_eq!(
            told,
            vec![sent.unwrap()],
            "not a trace id: ours replaces it"
        );
        let egress = r#"{"tracer": "none", "outputs": []}"#;
        let own = [("x-b3-traceid", S), ("x-b3-spanid", S)];
        let (told, _) = told_after(egress, Some(T32), &own);
        assert_eq!(
            told,
            vec![format!("{:0>32}", S)],
            "egress: another system's id"
        );
        // Learning, a new trace: nothing known, so a non-id goes and a trace id stays.
        let (told, _) = told_after("{}", Some("req-42"), &[]);
        assert!(told.is_empty(), "{told:?}");
        let (told, _) = told_after("{}", Some(T32), &[]);
        assert_eq!(told, vec![T32]);
        let (told, _) = told_after(r#"{"outputs": []}"#, Some(T32), &[]);
        assert!(told.is_empty(), "egress, nothing known: removed");
    }

    #[test]
    fn response_edits_cover_every_case() {
        let t = TraceId::new_128(0xabc);
        let ours = t.to_hex32();
        use ResponseEdit::*;
        for (existing, told, egress, want) in [
            (None, Some(t), false, Add(ours.clone())),
            (None, None, false, Keep),
            (Some(ours.as_str()), Some(t), true, Keep),
            (Some(T32), Some(t), false, Keep),
            (Some("48485a3953bb6124"), None, false, Keep),
            (Some(T32), Some(t), true, Set(ours.clone())),
            (Some(T32), None, true, Remove),
            (
                Some("00000000000000000000000000000000"),
                None,
                false,
                Remove,
            ),
            (Some("abc"), Some(t), false, Set(ours.clone())),
        ] {
            assert_eq!(
                response_trace_id(existing.map(str::as_bytes), told, egress),
                want,
                "{existing:?} {told:?} {egress}"
            );
        }
    }

    #[test]
    fn auto_detects_zipkin_from_replaced_ids_then_writes_none_of_its_own() {
        let host = FakeHost::new();
        let p = plugin(&host, "{}");
        went_upstream(&host);
        let tracer_ids = "00000000000000000000000000000abc";
        request(&host, &p, &[("x-request-id", TRACED_REQUEST_ID)], |h| {
            // The filter left nothing (a traced request, tracer unknown): Zipkin's router writes.
            assert_eq!(req(h, "x-b3-traceid"), None);
            assert_eq!(req(h, "traceparent"), None);
            zipkin_writes(h, tracer_ids);
        });
        assert_eq!(
            told(&host),
            None,
            "a tracer would start its own trace: nothing told"
        );
        assert!(host.logged(log::Level::Warn).is_empty());
        let info = host.logged(log::Level::Info);
        assert!(
            info.iter().any(|l| l.contains("this hop: zipkin")),
            "{info:?}"
        );
        assert_eq!(
            host.calls_of("set_property"),
            5,
            "traced request id: span tags written"
        );
        // Now a tracer hop: nothing written, the joined id told.
        host.reset_call_counts();
        request(
            &host,
            &p,
            &[("x-b3-traceid", T32), ("x-b3-spanid", S)],
            |_| {},
        );
        assert_eq!(req(&host, "traceparent"), None);
        assert_eq!(told(&host).as_deref(), Some(T32));
        assert_eq!(host.calls_of("set_property"), 5);
        p.tick(&host);
        assert_eq!(host.counter("trace_inject.tracer_detected"), 1);
    }

    #[test]
    fn auto_settles_on_no_tracer_when_ids_a_tracer_would_replace_went_up_intact() {
        let host = FakeHost::new();
        let p = plugin(&host, "{}");
        // A local reply (no upstream) proves nothing.
        request(&host, &p, &[], |_| {});
        assert!(matches!(p.hop.get(), Hop::Unknown));
        went_upstream(&host);
        request(&host, &p, &[], |_| {});
        assert_eq!(p.hop.get(), Hop::Plain);
        assert!(host.logged(log::Level::Warn).is_empty());
    }

    /// Issue 11's bug: one request with a format the filter does not read switched a worker off.
    #[test]
    fn an_unread_format_neither_flows_on_nor_switches_the_worker() {
        let host = FakeHost::new();
        let p = plugin(&host, r#"{"precedence": ["w3c"], "outputs": ["w3c"]}"#);
        went_upstream(&host);
        let b3 = format!("{T32}-{S}-1");
        request(&host, &p, &[("b3", &b3)], |_| {});
        assert_eq!(req(&host, "b3"), None, "the client's b3 does not go on");
        assert_eq!(
            p.hop.get(),
            Hop::Plain,
            "nothing went up, nothing came back: no tracer"
        );
        request(&host, &p, &[("b3", &b3)], |_| {});
        assert_eq!(req(&host, "b3"), None);
        let tp = req(&host, "traceparent").unwrap();
        assert!(tp.contains(&told(&host).unwrap()));
    }

    #[test]
    fn undecided_without_envoys_mark_writes_no_span_tags() {
        let host = FakeHost::new();
        let p = plugin(&host, "{}");
        request(&host, &p, &[("x-request-id", UNTRACED_REQUEST_ID)], |_| {});
        assert_eq!(host.calls_of("set_property"), 0);
        request(&host, &p, &[("x-request-id", TRACED_REQUEST_ID)], |_| {});
        assert_eq!(host.calls_of("set_property"), 5);
    }

    const UNTRACED_REQUEST_ID: &str = "83733a38-4bd4-4cc2-8e5b-1d5f6b7a8c9d";

    /// Beside a tracer, the span tags are written only where its span will be sampled (Envoy
    /// marked the request traced, or the caller's context says sampled): at Istio's 1 % most
    /// requests write none.
    #[test]
    fn beside_a_tracer_span_tags_only_where_the_span_is_sampled() {
        let tags_written = |headers: &[(&str, &str)]| {
            let host = FakeHost::new();
            let p = plugin(&host, "{}");
            went_upstream(&host);
            request(&host, &p, &[], |h| zipkin_writes(h, T32));
            assert!(matches!(p.hop.get(), Hop::Tracer(_)));
            host.reset_call_counts();
            request(&host, &p, headers, |_| {});
            host.calls_of("set_property")
        };
        let unmarked = ("x-request-id", UNTRACED_REQUEST_ID);
        assert_eq!(tags_written(&[unmarked]), 0, "not sampled");
        assert_eq!(tags_written(&[("x-request-id", TRACED_REQUEST_ID)]), 5);
        assert_eq!(
            tags_written(&[]),
            5,
            "no request id: Envoy may have traced it"
        );
        let b3 = |sampled| {
            [
                unmarked,
                ("x-b3-traceid", T32),
                ("x-b3-spanid", S),
                ("x-b3-sampled", sampled),
            ]
        };
        assert_eq!(tags_written(&b3("1")), 5, "the caller's sampled flag");
        assert_eq!(tags_written(&b3("0")), 0);
        assert_eq!(tags_written(&[unmarked, ("b3", "d")]), 5, "debug");
    }

    #[test]
    fn export_buffers_flushes_counts_and_stops_beside_a_tracer() {
        let host = FakeHost::new();
        let p = plugin(
            &host,
            r#"{"export": {"cluster": "zipkin", "buffer_limit": 2, "flush_interval_ms": 10}}"#,
        );
        // Nothing is reported before the hop is known (a tracer there would report too).
        went_upstream(&host);
        request(&host, &p, &[], |_| {});
        assert_eq!(p.hop.get(), Hop::Plain);
        assert!(p.exporter.as_ref().is_some_and(|e| e.pending() == 0));
        for _ in 0..3 {
            request(&host, &p, &[], |_| {});
        }
        host.now.set(host.now.get() + 1_000_000_000);
        p.tick(&host);
        let calls = host.calls.borrow().clone();
        assert_eq!(calls.len(), 1);
        let (cluster, headers, body) = &calls[0];
        assert_eq!(cluster, "zipkin");
        assert!(headers.contains(&(":authority".into(), "zipkin".into())));
        let spans: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            spans.as_array().unwrap().len(),
            2,
            "bounded buffer: the oldest dropped"
        );
        host.set_map(Map::HttpCallResponseHeaders, &[(":status", "202")]);
        p.on_http_call_response(&host, 1);
        p.tick(&host);
        assert_eq!(host.counter("trace_inject.export.spans_sent"), 2);
        assert_eq!(host.counter("trace_inject.export.spans_dropped"), 1);
        // A tracer appears (a new provider): a checked request shows it, export stops.
        for _ in 0..crate::hop::CHECK_EVERY {
            request(&host, &p, &[], |h| {
                zipkin_writes(h, "00000000000000000000000000000abc")
            });
        }
        assert!(p.exporting().is_none());
        let warn = host.logged(log::Level::Warn);
        assert!(
            warn.iter().any(|w| w.contains("this hop changed")),
            "{warn:?}"
        );
        p.tick(&host);
        assert_eq!(host.counter("trace_inject.export.disabled"), 1);
    }

    /// The tick follows the flush interval, a batch goes once the interval has passed (not
    /// before), and spans still buffered when the VM goes away are counted as dropped.
    #[test]
    fn export_flushes_on_its_interval_and_counts_what_is_lost() {
        let host = FakeHost::new();
        let p = plugin(
            &host,
            r#"{"tracer": "none", "export": {"cluster": "zipkin", "flush_interval_ms": 10}}"#,
        );
        assert_eq!(host.tick_ms.get(), 10);
        let t0 = host.now.get();
        p.tick(&host); // the first flush: nothing buffered, no call
        request(&host, &p, &[], |_| {});
        host.now.set(t0 + 9_999_999);
        p.tick(&host);
        assert_eq!(host.calls.borrow().len(), 0, "before the interval");
        host.now.set(t0 + 10_000_000);
        p.tick(&host);
        assert_eq!(host.calls.borrow().len(), 1, "once the interval has passed");
        for _ in 0..3 {
            request(&host, &p, &[], |_| {});
        }
        let quiet = plugin(&host, r#"{"export": {"cluster": "zipkin"}}"#);
        quiet.on_done(&host);
        assert!(
            host.logged(log::Level::Warn).is_empty(),
            "nothing pending, nothing lost"
        );
        // Three buffered, and the first call never answered: all four lost.
        p.on_done(&host);
        assert_eq!(host.counter("trace_inject.export.spans_dropped"), 4);
        let warnings = host.logged(log::Level::Warn);
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("with 3 spans not sent and 1 not answered")),
            "{warnings:?}"
        );
    }

    /// `trust_incoming: internal`: Envoy's `x-envoy-internal: true` or an mTLS peer (the
    /// `connection.mtls` property, a bool byte) is trusted; anything else starts a new trace.
    #[test]
    fn internal_means_envoy_internal_or_mtls() {
        let host = FakeHost::new();
        let p = plugin(&host, r#"{"tracer": "none", "trust_incoming": "internal"}"#);
        let own = [("x-b3-traceid", T32), ("x-b3-spanid", S)];
        let kept = |extra: &[(&str, &str)]| {
            let mut h = own.to_vec();
            h.extend_from_slice(extra);
            request(&host, &p, &h, |_| {});
            req(&host, "x-b3-traceid").as_deref() == Some(T32)
        };
        assert!(kept(&[("x-envoy-internal", "true")]), "internal by Envoy");
        assert!(!kept(&[]), "no mTLS property: external");
        host.set_prop(&["connection", "mtls"], &[0]);
        assert!(!kept(&[]), "plain TCP peer");
        host.set_prop(&["connection", "mtls"], &[1]);
        assert!(kept(&[]), "mTLS peer");
    }

    /// `auto` learns "no tracer" only from a request that both tracers would have traced; one
    /// that OpenTelemetry would not (a `traceparent` it cannot join) proves nothing.
    #[test]
    fn no_tracer_is_learnt_only_where_both_would_have_written() {
        let host = FakeHost::new();
        let p = plugin(&host, "{}");
        went_upstream(&host);
        let zero_trace = format!("00-{}-{S}-01", "0".repeat(32));
        request(&host, &p, &[("traceparent", &zero_trace)], |_| {});
        assert!(matches!(p.hop.get(), Hop::Unknown));
        request(&host, &p, &[], |_| {});
        assert_eq!(p.hop.get(), Hop::Plain);
    }

    /// `malformed` counts requests with a malformed header, not every request; a log that is
    /// off in the configuration stays off whatever Envoy's level.
    #[test]
    fn malformed_is_counted_only_when_malformed_and_log_off_is_off() {
        let host = FakeHost::new();
        host.envoy_log_level.set(0);
        let p = plugin(&host, r#"{"tracer": "none", "log": {"enabled": false}}"#);
        let before = host.logs.borrow().len();
        request(
            &host,
            &p,
            &[("x-b3-traceid", T32), ("x-b3-spanid", S)],
            |_| {},
        );
        p.tick(&host);
        assert_eq!(host.counter("trace_inject.malformed"), 0);
        request(&host, &p, &[("b3", "garbage")], |_| {});
        p.tick(&host);
        assert_eq!(host.counter("trace_inject.malformed"), 1);
        let info = host.logs.borrow()[before..]
            .iter()
            .filter(|(l, m)| *l == log::Level::Info && m.starts_with('{'))
            .count();
        assert_eq!(info, 0, "no access-log line");
    }

    /// The workload comes from Envoy's node metadata, under `xds.node` or (older Envoys)
    /// `node`; debug lines only when Envoy's level is debug.
    #[test]
    fn node_metadata_names_the_workload_and_debug_waits_for_debug() {
        let host = FakeHost::new();
        host.set_prop(&["xds", "node", "metadata", "NAMESPACE"], b"shop");
        host.set_prop(&["node", "metadata", "WORKLOAD_NAME"], b"checkout-v2");
        let p = plugin(&host, r#"{"tracer": "none"}"#);
        assert_eq!(p.workload.namespace, "shop");
        assert_eq!(p.workload.workload, "checkout-v2");
        let info = host.logged(log::Level::Info);
        assert!(
            info.iter()
                .any(|l| l.contains("namespace=shop") && l.contains("tracer=none ")),
            "{info:?}"
        );
        plugin(&host, r#"{"tracer": "opentelemetry"}"#);
        plugin(&host, "{}");
        let info = host.logged(log::Level::Info);
        assert!(
            info.iter().any(|l| l.contains("tracer=opentelemetry ")),
            "{info:?}"
        );
        assert!(info.iter().any(|l| l.contains("tracer=auto ")), "{info:?}");
        request(&host, &p, &[("b3", "garbage")], |_| {});
        assert!(host.logged(log::Level::Debug).is_empty(), "Envoy at info");
        host.envoy_log_level.set(1);
        p.tick(&host);
        request(&host, &p, &[("b3", "garbage")], |_| {});
        let debug = host.logged(log::Level::Debug);
        assert!(
            debug.iter().any(|l| l.contains("replaced malformed b3")),
            "{debug:?}"
        );
    }

    #[test]
    fn a_bad_configuration_is_refused_with_the_field_named_and_counted() {
        let host = FakeHost::new();
        *host.configuration.borrow_mut() = br#"{"sampling_percent": 101}"#.to_vec();
        assert!(Plugin::configure(&host, None).is_none());
        let errors = host.logged(log::Level::Error);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("sampling_percent"), "{errors:?}");
        assert_eq!(host.counter("trace_inject.config_rejected"), 1);
    }

    #[test]
    fn request_headers_unreadable_means_nothing_done_and_no_panic() {
        let host = FakeHost::new();
        let p = plugin(&host, "{}");
        host.unreadable.borrow_mut().push(Map::RequestHeaders);
        let mut r = RequestFilter::new(Rc::clone(&p));
        r.on_request_headers(&host);
        r.on_response_headers(&host);
        r.on_log(&host);
        assert_eq!(told(&host), None);
    }

    /// A gRPC call's status goes on the log line and into the counters (one property read,
    /// for gRPC calls only); plain HTTP reads nothing more.
    #[test]
    fn grpc_calls_log_and_count_their_status() {
        let host = FakeHost::new();
        let p = plugin(&host, r#"{"tracer": "none"}"#);
        host.set_prop(&["response", "code"], &200u64.to_le_bytes());
        for code in [0u64, 5, 13] {
            host.set_prop(&["response", "grpc_status"], &code.to_le_bytes());
            request(&host, &p, &[("content-type", "application/grpc")], |_| {});
            let line = host.logged(log::Level::Info).pop().unwrap();
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["grpc_status"], code, "{line}");
        }
        host.reset_call_counts();
        request(&host, &p, &[], |_| {});
        let line = host.logged(log::Level::Info).pop().unwrap();
        assert!(!line.contains("grpc_status"), "{line}");
        p.tick(&host);
        assert_eq!(host.counter("trace_inject.grpc.calls"), 3);
        assert_eq!(host.counter("trace_inject.grpc.errors"), 1, "INTERNAL only");
    }
}

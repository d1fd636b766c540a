//! One request through the filter: decide in the request phase, tell the caller in the response
//! phase, log (and learn about the hop, and buffer the filter's own span) when it completes.
//! Each callback reads what it needs from the host and hands off to the pure modules.

use std::rc::Rc;

use crate::config::TrustIncoming;
use crate::context::{Format, TraceContext};
use crate::decision::{self, Decision, Mode};
use crate::headers::TraceHeaders;
use crate::hop::{self, HopState};
use crate::host::{HeaderPairs, Host, Map};
use crate::log_record::{loggable_path, LogRecord};
use crate::plugin::{Plugin, SPAN_TAG_KEYS};
use crate::propagator::{self, Extracted};
use crate::span::{
    FinishedSpan, HttpFields, MAX_AUTHORITY_BYTES, MAX_METHOD_BYTES, MAX_PATH_BYTES,
};
use crate::tracer::{Outcome, TracerKind};

pub struct RequestFilter {
    plugin: Rc<Plugin>,
    /// Kept from the request phase: request headers cannot be read in the response phase.
    decision: Option<Decision>,
    /// `auto`, hop not known yet: `on_log` checks what the request carried. The value: every
    /// tracer this hop may run would have made a span (and written its ids) for this request.
    checks_hop: Option<bool>,
    /// The filter's own span for this request (export on, sampled), from the request phase.
    span: Option<SpanStart>,
}

/// When the filter's span started and the request line, kept from the request phase (no header
/// map read in `on_log` for it).
struct SpanStart {
    start_ns: u64,
    method: Option<String>,
    path: Option<String>,
    authority: Option<String>,
}

impl RequestFilter {
    pub fn new(plugin: Rc<Plugin>) -> RequestFilter {
        RequestFilter {
            plugin,
            decision: None,
            checks_hop: None,
            span: None,
        }
    }

    pub fn on_request_headers(&mut self, host: &impl Host) {
        let Some(pairs) = host.header_pairs(Map::RequestHeaders) else {
            return;
        };
        let plugin = &*self.plugin;
        let headers = TraceHeaders::collect(pairs.iter());
        let state = plugin.hop.state();
        let mode = plugin.hop.mode(plugin.exporting().is_some());
        let trusted = match plugin.settings.trust {
            TrustIncoming::All => true,
            TrustIncoming::None => false,
            // Internal by Envoy's own judgement (use_remote_address), or a mesh workload over
            // mTLS. Only read when asked for: a property read per request.
            TrustIncoming::Internal => {
                headers.envoy_internal
                    || host
                        .property(&["connection", "mtls"])
                        .is_some_and(|v| v.first() == Some(&1))
            }
        };
        let d = decision::decide(&headers, &plugin.settings, mode, trusted, &mut &plugin.ids);
        for edit in &d.edits {
            let map = Map::RequestHeaders;
            match (&edit.value, headers.has(edit.name)) {
                (Some(v), false) => host.add_header(map, edit.name, v.as_bytes()),
                (value, _) => host.set_header(map, edit.name, value.as_deref().map(str::as_bytes)),
            };
        }
        if let Mode::Plain { own_span: true } | Mode::Undecided { own_span: true, .. } = mode {
            if d.context.sampling.sampled() {
                self.span = Some(span_start(host, &pairs));
            }
        }
        if let HopState::Undecided { zipkin } = state {
            let writes = |k: TracerKind| k.predict(&headers).outcome != Outcome::NoSpan;
            self.checks_hop = Some(writes(zipkin) && writes(TracerKind::OpenTelemetry));
        }
        let m = &plugin.metrics;
        if let Some(c) = m.source(d.source) {
            c.bump();
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
        if d.conflict {
            m.conflicts.bump();
        }
        if d.normalised {
            m.normalised.bump();
        }
        if d.restarted {
            m.restarted.bump();
        }
        // Span tags, where a tracer reports a span: known, or (undecided) Envoy marked the
        // request as traced. Elsewhere nobody reads them, and five host calls per request are
        // the biggest cost of the default configuration.
        let tags_read = match state {
            HopState::Tracer(_) => true,
            HopState::Undecided { .. } => headers.tracer_hint(),
            HopState::Plain => false,
        };
        if tags_read {
            for (key, (_, value)) in SPAN_TAG_KEYS.iter().zip(plugin.workload.fields()) {
                host.set_property(&[key], value.as_bytes());
            }
        }
        self.decision = Some(d);
    }

    pub fn on_response_headers(&mut self, host: &impl Host) {
        let (Some(name), Some(trace_id)) = (
            &self.plugin.settings.response_header,
            self.decision.as_ref().and_then(|d| d.report),
        ) else {
            return;
        };
        // An id already there (Envoy's %TRACE_ID%, or this filter on the next hop) is kept.
        if let Ok(None) = host.header(Map::ResponseHeaders, name) {
            host.add_header(Map::ResponseHeaders, name, trace_id.to_hex32().as_bytes());
        }
    }

    pub fn on_log(&mut self, host: &impl Host) {
        let plugin = Rc::clone(&self.plugin);
        let settings = &plugin.settings;
        let log_enabled = settings.log.enabled && plugin.logs(settings.log.level);
        if !log_enabled && self.checks_hop.is_none() && self.span.is_none() {
            return;
        }
        let Some(d) = &self.decision else {
            return;
        };
        // Only a request that went upstream can tell the hop (a tracer's router writes its ids on
        // the way there): asked first, one property, so that routes that never go upstream
        // (direct responses, local replies) do not pay a header-map read per request.
        let learns = self.checks_hop.is_some() && host.property(&["upstream", "address"]).is_some();
        // In on_log the request headers are the final ones: with Envoy's tracer, its ids.
        let pairs = if log_enabled || learns {
            host.header_pairs(Map::RequestHeaders)
        } else {
            None
        };
        let carried = pairs
            .as_ref()
            .map(|p| propagator::extract_all(&TraceHeaders::collect(p.iter())));
        if let (Some(would_write), true, Some(carried)) = (self.checks_hop, learns, &carried) {
            let e = hop::evidence(d.left.as_ref(), carried, would_write, true);
            if let Some(kind) = plugin.hop.learn(e) {
                plugin.tracer_detected(host, kind);
            }
        }
        let exporting = plugin.exporting().filter(|_| self.span.is_some());
        if !log_enabled && exporting.is_none() {
            // Only here to learn the hop: the status and cluster would be read for nothing (on a
            // route that never goes upstream, `auto` asks this on every request).
            return;
        }
        let status = host
            .property(&["response", "code"])
            .and_then(|b| le_u64(&b));
        let upstream_cluster = host
            .property(&["xds", "cluster_name"])
            .and_then(|b| String::from_utf8(b).ok());
        if let (Some(span), Some(e)) = (self.span.take(), exporting) {
            let end_ns = host.now_nanos().unwrap_or(span.start_ns);
            let http = HttpFields {
                method: span.method.as_deref(),
                path: span.path.as_deref(),
                authority: span.authority.as_deref(),
                status,
                upstream_cluster: upstream_cluster.as_deref(),
            };
            let mut finished = FinishedSpan::new(&d.context, span.start_ns, end_ns, http);
            finished.caller_trace_id = d.caller_trace_id;
            e.push(finished, &plugin.metrics);
        }
        if !log_enabled {
            return;
        }
        let carried_context = carried
            .as_ref()
            .and_then(|c| context_carried(c, &settings.precedence));
        let (trace_id, span_id, sampled) = match carried_context {
            Some(c) => (
                Some(c.trace_id.to_hex32()),
                Some(c.span_id.to_hex()),
                c.sampling.decision(),
            ),
            None => (d.report.map(|t| t.to_hex32()), None, None),
        };
        let duration_us = host
            .property(&["request", "duration"])
            .and_then(|b| le_u64(&b))
            .map(|ns| ns / 1000);
        let line = pairs.as_ref();
        let record = LogRecord {
            trace_id,
            span_id,
            sampled,
            context: d.source.name(),
            normalised: d.normalised,
            restarted: d.restarted,
            caller_trace_id: d.caller_trace_id.map(|t| t.to_hex32()),
            workload: &plugin.workload,
            method: line.and_then(|p| p.get_str(":method")),
            path: line
                .and_then(|p| p.get_str(":path"))
                .map(|p| loggable_path(p, settings.log.include_query)),
            status,
            duration_us,
            upstream_cluster: upstream_cluster.as_deref(),
        };
        host.log(settings.log.level, &record.to_json());
    }
}

/// The context the request left with, read by the same rules as the decision (`precedence`
/// first), then any other valid format (what a tracer wrote beside them).
fn context_carried(carried: &[Extracted; 3], precedence: &[Format]) -> Option<TraceContext> {
    propagator::first_context(carried, precedence)
        .or_else(|| propagator::first_context(carried, &Format::ALL))
        .map(|(_, c)| c)
}

/// Kept from the request phase, bounded already: a client controls every byte of it.
fn span_start(host: &impl Host, pairs: &HeaderPairs) -> SpanStart {
    let own = |name: &str, max: usize| {
        pairs
            .get_str(name)
            .map(|v| crate::span::truncate_utf8(v, max).to_string())
    };
    SpanStart {
        start_ns: host.now_nanos().unwrap_or(0),
        method: own(":method", MAX_METHOD_BYTES),
        path: pairs.get_str(":path").map(|p| {
            crate::span::truncate_utf8(loggable_path(p, false), MAX_PATH_BYTES).to_string()
        }),
        authority: own(":authority", MAX_AUTHORITY_BYTES),
    }
}

/// Envoy serialises integer properties as 8 little-endian bytes.
fn le_u64(b: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(<[u8; 8]>::try_from(b).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::FakeHost;
    use crate::test_fixtures::{S, T32};

    const TRACED_ID: &str = "83733a38-4bd4-9cc2-8e5b-1d5f6b7a8c9d";

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
        assert_eq!(p.hop.state(), HopState::Tracer(TracerKind::OpenTelemetry));
        assert!(host.logged(log::Level::Warn)[0].contains("\"tracer\": \"opentelemetry\""));
        // From now on: B3 removed, nothing of its own written, a joined traceparent told.
        let tp = crate::test_fixtures::TRACEPARENT;
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
        assert_eq!(
            told(&host).as_deref(),
            Some(crate::test_fixtures::W3C_TRACE)
        );
    }

    /// Issue 11: `auto` on a route that never goes upstream (a direct response) costs what `none`
    /// costs but the one property that asks whether the request went upstream.
    #[test]
    fn auto_where_nothing_goes_upstream_costs_one_property_read_more_than_none() {
        let calls = |config: &str| {
            let host = FakeHost::new();
            host.envoy_log_level.set(3); // warning, as Istio runs its proxies: no log line
            host.set_prop(&["response", "code"], &200u64.to_le_bytes());
            let p = plugin(&host, config);
            request(&host, &p, &[], |_| {});
            host.reset_call_counts();
            request(&host, &p, &[], |_| {});
            assert!(told(&host).is_some(), "{config}: the id told");
            let undecided = matches!(p.hop.state(), HopState::Undecided { .. });
            assert_eq!(undecided, config == "{}", "{config}: {:?}", p.hop.state());
            let mut counts: Vec<_> = host.call_counts.borrow().clone().into_iter().collect();
            counts.sort();
            counts
        };
        let none = calls(r#"{"tracer": "none"}"#);
        let auto = calls("{}");
        let mut expected = none.clone();
        match expected.iter_mut().find(|(k, _)| *k == "property") {
            Some((_, n)) => *n += 1,
            None => expected.push(("property", 1)),
        }
        expected.sort();
        assert_eq!(auto, expected, "none: {none:?}");
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

    #[test]
    fn an_id_already_in_the_response_is_kept() {
        let host = FakeHost::new();
        let p = plugin(&host, r#"{"tracer": "none"}"#);
        let mut r = RequestFilter::new(Rc::clone(&p));
        host.set_map(Map::RequestHeaders, &[]);
        r.on_request_headers(&host);
        host.set_map(Map::ResponseHeaders, &[("x-trace-id", T32)]);
        r.on_response_headers(&host);
        assert_eq!(host.all(Map::ResponseHeaders, "x-trace-id"), vec![T32]);
    }

    #[test]
    fn auto_detects_zipkin_from_replaced_ids_then_writes_none_of_its_own() {
        let host = FakeHost::new();
        let p = plugin(&host, "{}");
        went_upstream(&host);
        let tracer_ids = "00000000000000000000000000000abc";
        request(&host, &p, &[("x-request-id", TRACED_ID)], |h| {
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
        assert_eq!(host.logged(log::Level::Warn).len(), 1);
        assert!(host.logged(log::Level::Warn)[0].contains("\"tracer\": \"zipkin\""));
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
        assert!(matches!(p.hop.state(), HopState::Undecided { .. }));
        went_upstream(&host);
        request(&host, &p, &[], |_| {});
        assert_eq!(p.hop.state(), HopState::Plain);
        assert!(host.logged(log::Level::Warn).is_empty());
    }

    /// Issue 11's bug: one request with a format the filter does not read switched a worker off.
    #[test]
    fn an_unread_format_neither_flows_on_nor_switches_the_worker() {
        let host = FakeHost::new();
        let p = plugin(&host, r#"{"precedence": ["w3c"], "outputs": ["w3c"]}"#);
        went_upstream(&host);
        request(&host, &p, &[("b3", &format!("{T32}-{S}-1"))], |_| {});
        assert_eq!(req(&host, "b3"), None, "the client's b3 does not go on");
        let tp = req(&host, "traceparent").unwrap();
        assert!(tp.contains(&told(&host).unwrap()));
        assert!(!matches!(p.hop.state(), HopState::Tracer(_)));
        request(&host, &p, &[], |_| {});
        assert!(req(&host, "traceparent").is_some() && told(&host).is_some());
    }

    #[test]
    fn undecided_without_envoys_mark_writes_no_span_tags() {
        let host = FakeHost::new();
        let p = plugin(&host, "{}");
        request(&host, &p, &[], |_| {});
        assert_eq!(host.calls_of("set_property"), 0);
        request(&host, &p, &[("x-request-id", TRACED_ID)], |_| {});
        assert_eq!(host.calls_of("set_property"), 5);
    }

    #[test]
    fn export_buffers_flushes_counts_and_stops_beside_a_tracer() {
        let host = FakeHost::new();
        let p = plugin(
            &host,
            r#"{"export": {"cluster": "zipkin", "buffer_limit": 2, "flush_interval_ms": 10}}"#,
        );
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
        // Envoy's tracer replaces the ids: export stops for good, with a warning.
        went_upstream(&host);
        request(&host, &p, &[("x-request-id", TRACED_ID)], |h| {
            zipkin_writes(h, "00000000000000000000000000000abc")
        });
        assert!(p.exporting().is_none());
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
            r#"{"export": {"cluster": "zipkin", "flush_interval_ms": 10}}"#,
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
        p.on_done(&host);
        assert_eq!(host.counter("trace_inject.export.spans_dropped"), 3);
        let warnings = host.logged(log::Level::Warn);
        assert!(
            warnings.iter().any(|w| w.contains("with 3 spans not sent")),
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
        assert!(matches!(p.hop.state(), HopState::Undecided { .. }));
        request(&host, &p, &[], |_| {});
        assert_eq!(p.hop.state(), HopState::Plain);
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
                .any(|l| l.contains("namespace=shop") && l.ends_with("tracer=none")),
            "{info:?}"
        );
        plugin(&host, r#"{"tracer": "opentelemetry"}"#);
        plugin(&host, "{}");
        let info = host.logged(log::Level::Info);
        assert!(
            info.iter().any(|l| l.ends_with("tracer=opentelemetry")),
            "{info:?}"
        );
        assert!(info.iter().any(|l| l.ends_with("tracer=auto")), "{info:?}");
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
}

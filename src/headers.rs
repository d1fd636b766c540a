//! The trace headers of one request as they arrived, and the edits the filter makes to them.
//! Every header name the filter reads or writes is in this one table.

/// B3 multi (openzipkin/b3-propagation).
pub const B3_TRACE_ID: &str = "x-b3-traceid";
pub const B3_SPAN_ID: &str = "x-b3-spanid";
pub const B3_PARENT_SPAN_ID: &str = "x-b3-parentspanid";
pub const B3_SAMPLED: &str = "x-b3-sampled";
pub const B3_FLAGS: &str = "x-b3-flags";
/// B3 single.
pub const B3: &str = "b3";
/// W3C Trace Context.
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";
/// Every header a trace context travels in: B3 multi and single, W3C (`tracestate` last).
pub const CONTEXT_HEADERS: [&str; 8] = [
    B3_TRACE_ID,
    B3_SPAN_ID,
    B3_PARENT_SPAN_ID,
    B3_SAMPLED,
    B3_FLAGS,
    B3,
    TRACEPARENT,
    TRACESTATE,
];
/// The context headers a request carries once at most: all but `tracestate`, a list that may
/// come over several lines.
pub const SINGLE_VALUED: &[&str] = match CONTEXT_HEADERS.split_last() {
    Some((_, single)) => single,
    None => &[],
};
/// The headers with which Envoy's connection manager decides to trace a request.
pub const ENVOY_TRACING_HEADERS: [&str; 3] = [REQUEST_ID, CLIENT_TRACE_ID, FORCE_TRACE];
/// Envoy's request id; its 15th character carries Envoy's trace reason.
pub const REQUEST_ID: &str = "x-request-id";
/// A caller's own request to be traced: Envoy's connection manager marks the request id "client"
/// (`client_sampling`, 100 % in Istio) on every hop that reads it.
pub const CLIENT_TRACE_ID: &str = "x-client-trace-id";
/// Datadog's trace id: Envoy's Datadog tracer joins it before `traceparent`.
pub const DATADOG_TRACE_ID: &str = "x-datadog-trace-id";
/// Envoy's "force trace": the connection manager marks the request id "forced".
pub const FORCE_TRACE: &str = "x-envoy-force-trace";
/// Set (and, from external callers, removed) by Envoy's connection manager where it uses the
/// remote address (`use_remote_address`); passed through as the client sent it elsewhere.
pub const ENVOY_INTERNAL: &str = "x-envoy-internal";

/// The `x-b3-*` header values of one request (the first of each name: "the first value wins").
#[derive(Default, Debug, Clone, Copy)]
pub struct MultiHeaders<'a> {
    pub trace_id: Option<&'a [u8]>,
    pub span_id: Option<&'a [u8]>,
    pub parent_span_id: Option<&'a [u8]>,
    pub sampled: Option<&'a [u8]>,
    pub flags: Option<&'a [u8]>,
}

impl MultiHeaders<'_> {
    pub fn is_empty(&self) -> bool {
        self.trace_id.is_none()
            && self.span_id.is_none()
            && self.parent_span_id.is_none()
            && self.sampled.is_none()
            && self.flags.is_none()
    }

    /// Whether header `name` (one of the `x-b3-*`) came with the request.
    pub fn has(&self, name: &str) -> bool {
        match name {
            B3_TRACE_ID => self.trace_id.is_some(),
            B3_SPAN_ID => self.span_id.is_some(),
            B3_PARENT_SPAN_ID => self.parent_span_id.is_some(),
            B3_SAMPLED => self.sampled.is_some(),
            B3_FLAGS => self.flags.is_some(),
            _ => false,
        }
    }
}

/// The trace headers of one request, as received (names matched case-insensitively).
#[derive(Default, Debug, Clone)]
pub struct TraceHeaders<'a> {
    pub b3: MultiHeaders<'a>,
    /// Some `x-b3-*` header came more than once (the first value wins; the rest are dropped).
    pub b3_repeated: bool,
    pub b3_single: Option<&'a [u8]>,
    pub b3_single_repeated: bool,
    pub traceparent: Option<&'a [u8]>,
    pub traceparent_repeated: bool,
    /// Every `tracestate` line, in order (several lines are one list).
    pub tracestate: Vec<&'a [u8]>,
    pub request_id: Option<&'a [u8]>,
    /// `x-envoy-internal: true` came with the request.
    pub envoy_internal: bool,
    pub client_trace_id: bool,
    pub force_trace: bool,
    /// A Datadog context came (`x-datadog-trace-id`).
    pub datadog: bool,
}

/// Envoy's tracing decision for a request, as its connection manager packs it into a UUID
/// `x-request-id` (the 15th character, where the UUID version digit `4` means "not traced"):
/// written with an HCM `tracing` block whether or not a tracer provider is configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceReason {
    NotTraced,
    /// `9`: random sampling (`random_sampling`).
    Sampled,
    /// `a`: `x-envoy-force-trace`.
    Forced,
    /// `b`: `x-client-trace-id` (`client_sampling`).
    Client,
}

/// The character Envoy writes for "not traced" (the UUID version digit).
const NOT_TRACED: u8 = b'4';

impl TraceReason {
    /// Reads a request id; `None` where it is not a UUID Envoy could have marked.
    pub fn of(request_id: &[u8]) -> Option<TraceReason> {
        if request_id.len() != 36 || request_id.get(8) != Some(&b'-') {
            return None;
        }
        match request_id.get(14)? {
            b'9' => Some(TraceReason::Sampled),
            b'a' => Some(TraceReason::Forced),
            b'b' => Some(TraceReason::Client),
            _ => Some(TraceReason::NotTraced),
        }
    }

    pub fn traced(self) -> bool {
        self != TraceReason::NotTraced
    }

    /// The request id with its mark cleared, so that the next connection manager decides
    /// afresh; `None` where there is no mark to clear.
    pub fn cleared(request_id: &[u8]) -> Option<String> {
        if !TraceReason::of(request_id)?.traced() {
            return None;
        }
        let mut id = request_id.to_vec();
        *id.get_mut(14)? = NOT_TRACED;
        String::from_utf8(id).ok()
    }
}

impl<'a> TraceHeaders<'a> {
    pub fn collect<I>(headers: I) -> Self
    where
        I: IntoIterator<Item = (&'a str, &'a [u8])>,
    {
        let mut h = TraceHeaders::default();
        fn first<'v>(slot: &mut Option<&'v [u8]>, v: &'v [u8], repeated: &mut bool) {
            if slot.is_some() {
                *repeated = true;
            } else {
                *slot = Some(v);
            }
        }
        for (name, value) in headers {
            // Dispatch on the length first: most headers of a request are none of ours.
            // Envoy's header names are lower case already: the exact comparison is the fast path.
            let is = |s: &str| name == s || name.eq_ignore_ascii_case(s);
            match name.len() {
                2 if is(B3) => first(&mut h.b3_single, value, &mut h.b3_single_repeated),
                10 if is(B3_FLAGS) => first(&mut h.b3.flags, value, &mut h.b3_repeated),
                10 if is(TRACESTATE) => h.tracestate.push(value),
                11 if is(B3_SPAN_ID) => first(&mut h.b3.span_id, value, &mut h.b3_repeated),
                11 if is(TRACEPARENT) => {
                    first(&mut h.traceparent, value, &mut h.traceparent_repeated)
                }
                12 if is(B3_TRACE_ID) => first(&mut h.b3.trace_id, value, &mut h.b3_repeated),
                12 if is(B3_SAMPLED) => first(&mut h.b3.sampled, value, &mut h.b3_repeated),
                12 if is(REQUEST_ID) => h.request_id = Some(value),
                16 if is(ENVOY_INTERNAL) => h.envoy_internal = value == b"true",
                17 if is(B3_PARENT_SPAN_ID) => {
                    first(&mut h.b3.parent_span_id, value, &mut h.b3_repeated)
                }
                17 if is(CLIENT_TRACE_ID) => h.client_trace_id = true,
                18 if is(DATADOG_TRACE_ID) => h.datadog = true,
                19 if is(FORCE_TRACE) => h.force_trace = true,
                _ => {}
            }
        }
        h
    }

    /// Whether the request came with header `name` (one of the trace headers).
    pub fn has(&self, name: &str) -> bool {
        match name {
            B3 => self.b3_single.is_some(),
            TRACEPARENT => self.traceparent.is_some(),
            TRACESTATE => !self.tracestate.is_empty(),
            REQUEST_ID => self.request_id.is_some(),
            CLIENT_TRACE_ID => self.client_trace_id,
            FORCE_TRACE => self.force_trace,
            _ => self.b3.has(name),
        }
    }

    /// Envoy's tracing decision, where the request id carries one.
    pub fn trace_reason(&self) -> Option<TraceReason> {
        self.request_id.and_then(TraceReason::of)
    }
}

/// One request-header change: set `name` to `value`, or remove it (`None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edit {
    pub name: &'static str,
    pub value: Option<String>,
}

impl Edit {
    pub fn set(name: &'static str, value: String) -> Edit {
        Edit {
            name,
            value: Some(value),
        }
    }

    pub fn remove(name: &'static str) -> Edit {
        Edit { name, value: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_the_first_of_each_and_notes_repeats() {
        let h = TraceHeaders::collect([
            ("X-B3-TraceId", &b"a"[..]),
            ("x-b3-traceid", b"b"),
            ("tracestate", b"x=1"),
            ("tracestate", b"y=2"),
            ("content-type", b"text/plain"),
        ]);
        assert_eq!(h.b3.trace_id, Some(&b"a"[..]));
        assert!(h.b3_repeated);
        assert_eq!(h.tracestate.len(), 2);
        assert!(h.has(TRACESTATE) && h.has(B3_TRACE_ID) && !h.has(B3_SPAN_ID));
    }

    #[test]
    fn envoys_trace_reason_in_the_request_id() {
        let id = |c: char| format!("83733a38-4bd4-{c}cc2-8e5b-1d5f6b7a8c9d");
        for (c, want) in [
            ('9', TraceReason::Sampled),
            ('a', TraceReason::Forced),
            ('b', TraceReason::Client),
            ('4', TraceReason::NotTraced),
        ] {
            let rid = id(c);
            let h = TraceHeaders::collect([(REQUEST_ID, rid.as_bytes())]);
            assert_eq!(h.trace_reason(), Some(want), "{c}");
            let cleared = TraceReason::cleared(rid.as_bytes());
            if want.traced() {
                assert_eq!(cleared, Some(id('4')));
            } else {
                assert_eq!(cleared, None);
            }
        }
        for junk in [&b"short"[..], b"83733a38x4bd4-9cc2-8e5b-1d5f6b7a8c9d", b""] {
            assert_eq!(TraceReason::of(junk), None);
            assert_eq!(TraceReason::cleared(junk), None);
        }
        assert_eq!(TraceHeaders::collect([]).trace_reason(), None);
    }

    /// Every name of the table is read, in any case; a name of the same length is not.
    #[test]
    fn reads_each_name_and_only_it() {
        let names: Vec<&str> = CONTEXT_HEADERS
            .iter()
            .chain(&ENVOY_TRACING_HEADERS)
            .chain(&[ENVOY_INTERNAL, DATADOG_TRACE_ID])
            .copied()
            .collect();
        let v = &b"true"[..];
        for &name in &names {
            let upper = name.to_ascii_uppercase();
            for n in [name, upper.as_str()] {
                let h = TraceHeaders::collect([(n, v)]);
                let read = if name == ENVOY_INTERNAL {
                    h.envoy_internal
                } else if name == DATADOG_TRACE_ID {
                    h.datadog
                } else {
                    h.has(name)
                };
                assert!(read, "{n}");
                // Nothing else was taken for it.
                for other in names.iter().filter(|o| **o != name) {
                    assert!(!h.has(other), "{n} read as {other}");
                }
            }
            // Same length, last byte changed: none of ours.
            let mut decoy = name.as_bytes().to_vec();
            if let Some(last) = decoy.last_mut() {
                *last = b'_';
            }
            let decoy = String::from_utf8(decoy).unwrap_or_default();
            let h = TraceHeaders::collect([(decoy.as_str(), v)]);
            assert!(h.request_id.is_none() && !h.envoy_internal, "{decoy}");
            assert!(names.iter().all(|o| !h.has(o)), "{decoy}");
        }
        let multi = TraceHeaders::collect([(B3_PARENT_SPAN_ID, &b"p"[..])]);
        assert!(multi.b3.has(B3_PARENT_SPAN_ID) && !multi.b3.has(B3_SPAN_ID));
        assert!(!TraceHeaders::collect([(ENVOY_INTERNAL, &b"false"[..])]).envoy_internal);
    }
}

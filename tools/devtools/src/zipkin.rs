//! Zipkin v2 span model, id normalisation and trace queries, as the Zipkin server does them
//! (zipkin2 `Span.Builder`, `Span.normalizeTraceId`, `QueryRequest`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A Zipkin v2 span (<https://zipkin.io/zipkin-api/#/default/post_spans>). Fields Zipkin does not
/// define are dropped, as Zipkin does.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    /// Lower-hex, 16 or 32 characters, normalised (see [`normalize_trace_id`]).
    pub trace_id: String,
    /// Lower-hex, 16 characters.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `CLIENT`, `SERVER`, `PRODUCER` or `CONSUMER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Start, in microseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u64>,
    /// Microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_endpoint: Option<Endpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_endpoint: Option<Endpoint>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<Annotation>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Annotation {
    pub timestamp: u64,
    pub value: String,
}

impl Span {
    /// `localEndpoint.serviceName`, if any.
    pub fn service_name(&self) -> Option<&str> {
        self.local_endpoint.as_ref()?.service_name.as_deref()
    }

    /// `remoteEndpoint.serviceName`, if any.
    pub fn remote_service_name(&self) -> Option<&str> {
        self.remote_endpoint.as_ref()?.service_name.as_deref()
    }

    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }

    /// Validates and normalises ids like Zipkin's `Span.Builder`: trace id via
    /// [`normalize_trace_id`], span ids left-padded to 16, an all-zero or self-referencing
    /// parent id dropped, zero timestamp/duration treated as absent.
    pub fn normalize(mut self) -> Result<Span, String> {
        self.trace_id = normalize_trace_id(&self.trace_id)?;
        self.id = normalize_span_id(&self.id).map_err(|e| format!("id: {e}"))?;
        if let Some(p) = self.parent_id.take() {
            let p = normalize_span_id_allow_zero(&p).map_err(|e| format!("parentId: {e}"))?;
            if p.bytes().any(|c| c != b'0') && p != self.id {
                self.parent_id = Some(p);
            }
        }
        if self.timestamp == Some(0) {
            self.timestamp = None;
        }
        if self.duration == Some(0) {
            self.duration = None;
        }
        Ok(self)
    }
}

/// Zipkin's `validateHexAndReturnZeroPrefix`: only lower-case hex, returns the count of leading
/// zeros.
fn hex_zero_prefix(id: &str) -> Result<usize, String> {
    if let Some(c) = id.bytes().find(|c| !matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!(
            "{id:?} should be lower-hex encoded with no prefix (found {:?})",
            c as char
        ));
    }
    Ok(id.bytes().take_while(|c| *c == b'0').count())
}

fn pad_left(id: &str, len: usize) -> String {
    format!("{id:0>len$}")
}

/// Zipkin's `Span.normalizeTraceId`: lower-hex, at most 32 characters, not all zeros; left-padded
/// to 16 or 32; a 32-character id whose upper 16 are zeros becomes its lower 16, so both spellings
/// name the same trace.
pub fn normalize_trace_id(id: &str) -> Result<String, String> {
    let len = id.len();
    if len == 0 {
        return Err("traceId is empty".into());
    }
    if len > 32 {
        return Err(format!("traceId.length > 32: {id:?}"));
    }
    let zeros = hex_zero_prefix(id).map_err(|e| format!("traceId: {e}"))?;
    if zeros == len {
        return Err("traceId is all zeros".into());
    }
    Ok(match len {
        32 if zeros >= 16 => id[16..].to_string(),
        16 | 32 => id.to_string(),
        l if l < 16 => pad_left(id, 16),
        // Zipkin stops at the padding; collapsing its zero upper half too makes the
        // normalisation idempotent, so every spelling of one trace id finds the trace.
        l if zeros + (32 - l) >= 16 => id[l - 16..].to_string(),
        _ => pad_left(id, 32),
    })
}

/// For lookups (`/api/v2/trace/{id}`, `wait_for_trace`): also accepts upper-case hex.
pub fn normalize_trace_id_lenient(id: &str) -> Result<String, String> {
    normalize_trace_id(&id.trim().to_ascii_lowercase())
}

fn normalize_span_id_allow_zero(id: &str) -> Result<String, String> {
    if id.is_empty() || id.len() > 16 {
        return Err(format!("{id:?} should be 1-16 lower-hex characters"));
    }
    hex_zero_prefix(id)?;
    Ok(pad_left(id, 16))
}

fn normalize_span_id(id: &str) -> Result<String, String> {
    let id = normalize_span_id_allow_zero(id)?;
    if id.bytes().all(|c| c == b'0') {
        return Err("span id is all zeros".into());
    }
    Ok(id)
}

/// Parses a `POST /api/v2/spans` body: a JSON array of spans, each normalised. Any invalid span
/// rejects the whole batch, as Zipkin does.
pub fn parse_spans(body: &[u8]) -> Result<Vec<Span>, String> {
    let spans: Vec<Span> = serde_json::from_slice(body)
        .map_err(|e| format!("not a JSON array of Zipkin v2 spans: {e}"))?;
    spans
        .into_iter()
        .enumerate()
        .map(|(i, s)| s.normalize().map_err(|e| format!("span {i}: {e}")))
        .collect()
}

/// `GET /api/v2/traces` parameters. `None`/empty means "no constraint".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceQuery {
    pub service_name: Option<String>,
    pub remote_service_name: Option<String>,
    pub span_name: Option<String>,
    /// `http.method=GET and error`: each term a `key=value` tag, or a tag key / annotation value.
    pub annotation_query: Option<String>,
    /// Microseconds.
    pub min_duration: Option<u64>,
    pub max_duration: Option<u64>,
    /// Milliseconds since the epoch; only applied when given (Zipkin defaults it to now).
    pub end_ts: Option<u64>,
    /// Milliseconds; only applied with `end_ts` or alone (then relative to now).
    pub lookback: Option<u64>,
    pub limit: usize,
}

impl TraceQuery {
    /// From URL query parameters; unknown ones are ignored, malformed numbers are an error.
    pub fn from_params(params: &[(String, String)]) -> Result<TraceQuery, String> {
        let mut q = TraceQuery {
            limit: 10,
            ..TraceQuery::default()
        };
        let num = |k: &str, v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{k} must be a non-negative integer, got {v:?}"))
        };
        for (k, v) in params {
            let text = (!v.is_empty()).then(|| v.clone());
            match k.as_str() {
                "serviceName" => q.service_name = text,
                "remoteServiceName" => q.remote_service_name = text,
                "spanName" => q.span_name = text.filter(|s| s != "all"),
                "annotationQuery" => q.annotation_query = text,
                "minDuration" => q.min_duration = Some(num(k, v)?),
                "maxDuration" => q.max_duration = Some(num(k, v)?),
                "endTs" => q.end_ts = Some(num(k, v)?),
                "lookback" => q.lookback = Some(num(k, v)?),
                "limit" => q.limit = num(k, v)? as usize,
                _ => {}
            }
        }
        Ok(q)
    }

    /// Whether a trace matches, per Zipkin's `QueryRequest.test`: the name, duration and
    /// annotation constraints must be met by spans of `serviceName` (any span if none given).
    pub fn matches(&self, trace: &[Span], now_ms: u64) -> bool {
        if self.end_ts.is_some() || self.lookback.is_some() {
            let end = self.end_ts.unwrap_or(now_ms).saturating_mul(1000);
            let start =
                end.saturating_sub(self.lookback.unwrap_or(end / 1000).saturating_mul(1000));
            let ts = trace.iter().filter_map(|s| s.timestamp).min();
            if !ts.is_some_and(|t| t >= start && t <= end) {
                return false;
            }
        }
        let eq = |a: Option<&str>, b: &Option<String>| match b {
            None => true,
            Some(b) => a.is_some_and(|a| a.eq_ignore_ascii_case(b)),
        };
        let ours: Vec<&Span> = trace
            .iter()
            .filter(|s| eq(s.service_name(), &self.service_name))
            .collect();
        if ours.is_empty() {
            return false;
        }
        if self.remote_service_name.is_some()
            && !ours
                .iter()
                .any(|s| eq(s.remote_service_name(), &self.remote_service_name))
        {
            return false;
        }
        if self.span_name.is_some() && !ours.iter().any(|s| eq(s.name.as_deref(), &self.span_name))
        {
            return false;
        }
        if self.min_duration.is_some() || self.max_duration.is_some() {
            let (lo, hi) = (
                self.min_duration.unwrap_or(0),
                self.max_duration.unwrap_or(u64::MAX),
            );
            if !ours
                .iter()
                .any(|s| s.duration.is_some_and(|d| d >= lo && d <= hi))
            {
                return false;
            }
        }
        if let Some(aq) = &self.annotation_query {
            for term in aq.split(" and ").map(str::trim).filter(|t| !t.is_empty()) {
                let hit = |s: &&Span| match term.split_once('=') {
                    Some((k, v)) => s.tag(k) == Some(v),
                    None => {
                        s.tags.contains_key(term) || s.annotations.iter().any(|a| a.value == term)
                    }
                };
                if !ours.iter().any(hit) {
                    return false;
                }
            }
        }
        true
    }
}

/// The start of a trace (its earliest span timestamp), for ordering.
pub fn trace_start(trace: &[Span]) -> Option<u64> {
    trace.iter().filter_map(|s| s.timestamp).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_id_normalisation_matches_zipkin() {
        let n = |s: &str| normalize_trace_id(s);
        assert_eq!(n("463ac35c9f6413ad").unwrap(), "463ac35c9f6413ad");
        assert_eq!(
            n("463ac35c9f6413ad48485a3953bb6124").unwrap(),
            "463ac35c9f6413ad48485a3953bb6124"
        );
        // Upper 64 bits zero: the same trace as the 64-bit id.
        assert_eq!(
            n("000000000000000048485a3953bb6124").unwrap(),
            "48485a3953bb6124"
        );
        // Fewer leading zeros than 16: stays 128-bit.
        assert_eq!(
            n("000000000000000148485a3953bb6124").unwrap(),
            "000000000000000148485a3953bb6124"
        );
        // Short ids are left-padded to 16, 17..31 to 32.
        assert_eq!(n("abc").unwrap(), "0000000000000abc");
        assert_eq!(
            n("1463ac35c9f6413ad").unwrap(),
            "0000000000000001463ac35c9f6413ad"
        );
        // ... unless the padded id's upper half is zeros: then the lower 16, like a 32-hex id.
        assert_eq!(n("00000000000000001").unwrap(), "0000000000000001");
        assert_eq!(
            n("0000000000000000463ac35c9f6413a").unwrap(),
            "0463ac35c9f6413a"
        );
        for bad in [
            "",
            "0000000000000000",
            "463AC35C9F6413AD",
            "0x463ac35c9f6413ad",
            "g",
            &"a".repeat(33),
        ] {
            assert!(n(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            normalize_trace_id_lenient("463AC35C9F6413AD").unwrap(),
            "463ac35c9f6413ad"
        );
    }

    #[test]
    fn span_normalisation() {
        let s = Span {
            trace_id: "00000000000000000000000000000abc".into(),
            id: "1".into(),
            parent_id: Some("0000000000000000".into()),
            timestamp: Some(0),
            ..Span::default()
        }
        .normalize()
        .unwrap();
        assert_eq!(s.trace_id, "0000000000000abc");
        assert_eq!(s.id, "0000000000000001");
        assert_eq!(s.parent_id, None);
        assert_eq!(s.timestamp, None);
        let self_parent = Span {
            trace_id: "1".into(),
            id: "2".into(),
            parent_id: Some("0000000000000002".into()),
            ..Span::default()
        };
        assert_eq!(self_parent.normalize().unwrap().parent_id, None);
        let bad = Span {
            trace_id: "1".into(),
            id: "0".into(),
            ..Span::default()
        };
        assert!(bad.normalize().is_err());
    }

    #[test]
    fn parses_envoy_batches_and_rejects_bad_ones() {
        let body = br#"[{"traceId":"463ac35c9f6413ad","id":"48485a3953bb6124","name":"ingress",
            "kind":"SERVER","timestamp":1700000000000000,"duration":1234,"shared":true,
            "localEndpoint":{"serviceName":"front","ipv4":"10.0.0.1","port":0},
            "tags":{"http.method":"GET","upstream_cluster":"echo"},"unknownField":1}]"#;
        let spans = parse_spans(body).unwrap();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].service_name(), Some("front"));
        assert_eq!(spans[0].tag("upstream_cluster"), Some("echo"));
        assert!(parse_spans(b"{}").is_err());
        assert!(parse_spans(b"[{\"id\":\"1\"}]").is_err());
        assert!(parse_spans(b"[{\"traceId\":\"XYZ\",\"id\":\"1\"}]")
            .unwrap_err()
            .contains("span 0"));
        assert_eq!(parse_spans(b"[]").unwrap(), vec![]);
    }

    fn span(svc: &str, name: &str, dur: u64, tags: &[(&str, &str)]) -> Span {
        Span {
            trace_id: "1".into(),
            id: "1".into(),
            name: Some(name.into()),
            timestamp: Some(1_000_000), // 1 s after the epoch
            duration: Some(dur),
            local_endpoint: Some(Endpoint {
                service_name: Some(svc.into()),
                ..Endpoint::default()
            }),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Span::default()
        }
    }

    #[test]
    fn queries() {
        let trace = vec![
            span("front", "ingress", 500, &[("http.method", "GET")]),
            span("back", "egress", 100, &[("error", "true")]),
        ];
        let q = |params: &[(&str, &str)]| {
            let p: Vec<(String, String)> = params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            TraceQuery::from_params(&p).unwrap().matches(&trace, 2_000)
        };
        assert!(q(&[]));
        assert!(q(&[("serviceName", "FRONT")]));
        assert!(!q(&[("serviceName", "other")]));
        assert!(q(&[("serviceName", "front"), ("spanName", "ingress")]));
        assert!(!q(&[("serviceName", "front"), ("spanName", "egress")]));
        assert!(q(&[("annotationQuery", "http.method=GET and error")]));
        assert!(!q(&[
            ("serviceName", "front"),
            ("annotationQuery", "error")
        ]));
        assert!(q(&[("minDuration", "400")]));
        assert!(!q(&[("serviceName", "back"), ("minDuration", "400")]));
        assert!(q(&[("endTs", "1500"), ("lookback", "1000")]));
        assert!(!q(&[("endTs", "900")]));
        assert!(TraceQuery::from_params(&[("limit".into(), "x".into())]).is_err());
        assert_eq!(TraceQuery::from_params(&[]).unwrap().limit, 10);
    }
}

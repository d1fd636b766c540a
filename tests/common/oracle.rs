//! An independent oracle: OpenTelemetry's own Python propagators (B3 multi, B3 single, W3C
//! TraceContext; `tests/oracle/extract.py`, installed by `scripts/install-oracle.sh`) read the
//! headers the upstream received, so the e2e tests do not judge the filter by its own parsers.
//! One Python process per batch of requests.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

const SCRIPT: &str = "tests/oracle/extract.py";
const DEFAULT_PYTHON: &str = ".tools/oracle-venv/bin/python";

/// One span context as an OpenTelemetry propagator extracted it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtelContext {
    /// 32 lower hex; a 64-bit B3 trace id comes left-padded with zeros.
    pub trace_id: String,
    pub span_id: String,
    pub sampled: bool,
    pub is_valid: bool,
    pub trace_flags: u8,
    pub tracestate: Option<String>,
}

/// What each format's propagator made of one request's headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extraction {
    pub b3_multi: Option<OtelContext>,
    pub b3_single: Option<OtelContext>,
    pub w3c: Option<OtelContext>,
    /// Whether any header of the format was there at all: (b3 multi, b3 single, w3c).
    pub present: (bool, bool, bool),
}

impl Extraction {
    /// `(name, present, extracted)` for each format.
    pub fn formats(&self) -> [(&'static str, bool, Option<&OtelContext>); 3] {
        [
            ("b3 multi", self.present.0, self.b3_multi.as_ref()),
            ("b3 single", self.present.1, self.b3_single.as_ref()),
            ("w3c", self.present.2, self.w3c.as_ref()),
        ]
    }

    /// The first valid context in the B3 spec's precedence (b3, x-b3-*, traceparent): what an
    /// ecosystem reader would continue.
    pub fn continued(&self) -> Option<&OtelContext> {
        [&self.b3_single, &self.b3_multi, &self.w3c]
            .into_iter()
            .flatten()
            .find(|c| c.is_valid)
    }
}

fn python() -> String {
    std::env::var("ORACLE_PYTHON").unwrap_or_else(|_| DEFAULT_PYTHON.to_string())
}

/// Runs the oracle over many requests' headers in one process.
pub fn extract_batch(requests: &[Vec<(String, String)>]) -> Vec<Extraction> {
    let py = python();
    assert!(
        std::path::Path::new(&py).exists() || std::env::var("ORACLE_PYTHON").is_ok(),
        "{py} is missing: run scripts/install-oracle.sh (make e2e does)"
    );
    let input: Vec<Vec<[&str; 2]>> = requests
        .iter()
        .map(|h| h.iter().map(|(n, v)| [n.as_str(), v.as_str()]).collect())
        .collect();
    let mut child = Command::new(&py)
        .arg(SCRIPT)
        .arg("--batch")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {py} {SCRIPT}: {e}"));
    let body = serde_json::to_vec(&input).expect("headers as JSON");
    child
        .stdin
        .take()
        .expect("oracle stdin")
        .write_all(&body)
        .expect("write to the oracle");
    let out = child.wait_with_output().expect("oracle output");
    assert!(
        out.status.success(),
        "the oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("oracle output is JSON");
    let list = doc.as_array().expect("oracle output is a list");
    assert_eq!(list.len(), requests.len(), "one result per request");
    list.iter().map(parse_extraction).collect()
}

/// Runs the oracle over one request's headers.
pub fn extract(headers: &[(String, String)]) -> Extraction {
    extract_batch(&[headers.to_vec()])
        .pop()
        .expect("one result")
}

fn parse_extraction(v: &Value) -> Extraction {
    let ctx = |key: &str| -> Option<OtelContext> {
        let c = v.get(key)?.as_object()?;
        let s = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_string);
        Some(OtelContext {
            trace_id: s("trace_id").expect("trace_id"),
            span_id: s("span_id").expect("span_id"),
            sampled: c.get("sampled").and_then(Value::as_bool).expect("sampled"),
            is_valid: c
                .get("is_valid")
                .and_then(Value::as_bool)
                .expect("is_valid"),
            trace_flags: c
                .get("trace_flags")
                .and_then(Value::as_u64)
                .and_then(|f| u8::try_from(f).ok())
                .expect("trace_flags"),
            tracestate: s("tracestate"),
        })
    };
    let present = |key: &str| v["present"][key].as_bool().expect("present flag");
    Extraction {
        b3_multi: ctx("b3_multi"),
        b3_single: ctx("b3_single"),
        w3c: ctx("w3c"),
        present: (present("b3_multi"), present("b3_single"), present("w3c")),
    }
}

/// Headers that carry one value each: a second line of any of them is ambiguous to a reader.
use trace_inject::headers::SINGLE_VALUED;

/// The checks of [`assert_one_context`], as an error message instead of a panic.
pub fn check_one_context(
    headers: &[(String, String)],
    e: &Extraction,
    x_trace_id: Option<&str>,
) -> Result<OtelContext, String> {
    for name in SINGLE_VALUED {
        let n = headers
            .iter()
            .filter(|(h, _)| h.eq_ignore_ascii_case(name))
            .count();
        if n > 1 {
            return Err(format!("{n} `{name}` headers upstream"));
        }
    }
    let mut agreed: Option<(&str, &OtelContext)> = None;
    for (name, present, ctx) in e.formats() {
        if !present {
            continue;
        }
        let ctx = match ctx {
            Some(c) if c.is_valid => c,
            other => {
                return Err(format!(
                    "{name} is present but OpenTelemetry extracts no valid context: {other:?}"
                ))
            }
        };
        match agreed {
            None => agreed = Some((name, ctx)),
            Some((first, a)) => {
                if (&a.trace_id, &a.span_id, a.sampled)
                    != (&ctx.trace_id, &ctx.span_id, ctx.sampled)
                {
                    return Err(format!("{first} and {name} disagree: {a:?} vs {ctx:?}"));
                }
            }
        }
    }
    let Some((_, first)) = agreed else {
        return Err("no trace context upstream".to_string());
    };
    // The W3C reading when there is one: it alone carries trace-flags and tracestate.
    let ctx = e.w3c.as_ref().filter(|_| e.present.2).unwrap_or(first);
    match x_trace_id {
        Some(id) if id == ctx.trace_id => Ok(ctx.clone()),
        other => Err(format!(
            "x-trace-id {other:?} does not name the upstream trace {}",
            ctx.trace_id
        )),
    }
}

/// Every format present upstream extracts as a valid context in OpenTelemetry, all name the
/// same trace, span and sampling, and `x_trace_id` (the response header) names that trace.
/// Returns the one context (as W3C reads it when `traceparent` is there: with trace-flags and
/// tracestate).
pub fn assert_one_context(
    upstream_headers: &[(String, String)],
    x_trace_id: Option<&str>,
) -> OtelContext {
    let e = extract(upstream_headers);
    check_one_context(upstream_headers, &e, x_trace_id)
        .unwrap_or_else(|why| panic!("{why}\nupstream headers: {upstream_headers:?}"))
}

/// Many requests checked by one oracle process: push each case, then [`Batch::check`].
#[derive(Default)]
pub struct Batch {
    cases: Vec<Case>,
}

/// One request: what was sent, what the upstream got, the `x-trace-id` the caller was told.
pub struct Case {
    pub label: String,
    pub sent: Vec<(String, String)>,
    pub upstream: Vec<(String, String)>,
    pub x_trace_id: Option<String>,
}

/// One checked request, with the oracle's reading of both sides.
pub struct Checked<'a> {
    pub case: &'a Case,
    /// What OpenTelemetry made of the headers the client sent.
    pub sent: Extraction,
    /// The one context upstream, or why there is not one.
    pub upstream: Result<OtelContext, String>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(
        &mut self,
        label: impl Into<String>,
        sent: &[(&str, &str)],
        upstream: &[(String, String)],
        x_trace_id: Option<String>,
    ) {
        self.cases.push(Case {
            label: label.into(),
            sent: sent
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            upstream: upstream.to_vec(),
            x_trace_id,
        });
    }

    /// Runs the oracle once over every case (sent and upstream headers).
    pub fn check(&self) -> Vec<Checked<'_>> {
        let mut all: Vec<Vec<(String, String)>> = Vec::with_capacity(self.cases.len() * 2);
        for c in &self.cases {
            all.push(c.sent.clone());
            all.push(c.upstream.clone());
        }
        let mut read = extract_batch(&all).into_iter();
        self.cases
            .iter()
            .map(|case| {
                let sent = read.next().expect("sent");
                let up = read.next().expect("upstream");
                let upstream = check_one_context(&case.upstream, &up, case.x_trace_id.as_deref());
                Checked {
                    case,
                    sent,
                    upstream,
                }
            })
            .collect()
    }

    /// Every case upstream passes [`assert_one_context`]; and where OpenTelemetry reads a valid
    /// context in what was sent, the upstream continues that trace. Reports every failing case
    /// at once. Only for inputs the specs call valid: OpenTelemetry is looser than them in places
    /// (`docs/b3-leniency.md`), and there the filter must not follow it.
    pub fn assert_one_context_continued(&self) {
        self.assert_all(true)
    }

    /// Every case upstream passes [`assert_one_context`] (what was sent is not compared).
    pub fn assert_one_context(&self) {
        self.assert_all(false)
    }

    fn assert_all(&self, continued: bool) {
        let mut failures = Vec::new();
        for c in self.check() {
            let why = match (&c.upstream, c.sent.continued()) {
                (Err(why), _) => Some(why.clone()),
                (Ok(up), Some(sent)) if continued && up.trace_id != sent.trace_id => Some(format!(
                    "OpenTelemetry reads trace {} in what was sent; upstream is trace {}",
                    sent.trace_id, up.trace_id
                )),
                _ => None,
            };
            if let Some(why) = why {
                failures.push(format!(
                    "[{}] {why}\n  sent: {:?}\n  upstream: {:?}",
                    c.case.label, c.case.sent, c.case.upstream
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} cases fail the oracle:\n{}",
            failures.len(),
            self.cases.len(),
            failures.join("\n")
        );
    }
}

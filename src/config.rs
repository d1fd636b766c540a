//! The plugin configuration (Envoy `configuration`, Istio `pluginConfig`): JSON, every field
//! optional, unknown fields refused, values validated after parsing. Errors name the field.

use serde_json::{Map, Number, Value};

use crate::context::Format;

#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(test, derive(serde::Deserialize))]
#[cfg_attr(test, serde(deny_unknown_fields, default))]
pub struct Config {
    /// Which incoming format wins when several valid ones disagree; formats not listed are not
    /// read. Default: `b3` single before multi (the B3 spec's rule, and Envoy's), then `w3c`.
    pub precedence: Vec<Format>,
    /// Formats written on every request; `[]`: no trace context leaves this filter (an egress).
    pub outputs: Vec<Format>,
    /// Share of new traces (no incoming decision) marked sampled, 0–100, with
    /// `new_trace_sampling` `decide` (which giving it implies).
    pub sampling_percent: Option<f64>,
    /// Whose incoming context is continued: `all`, `internal` (Envoy marked the request
    /// internal, or it came over mTLS from the mesh), `none` (every request starts a trace).
    pub trust_incoming: TrustIncoming,
    /// `envoy`: new traces follow Envoy's decision (its mark in `x-request-id`: the HCM's
    /// `tracing` sampling, Istio's rate); `decide`: sampled here by `sampling_percent`; `defer`:
    /// they carry no decision, and the next tracer makes it (B3's deferred state). Default:
    /// `envoy` on an Istio proxy unless `sampling_percent` is given, else `decide`.
    pub new_trace_sampling: Option<NewTraceSampling>,
    /// Response header carrying the trace id back to the caller; `null` turns it off.
    pub response_header: Option<String>,
    /// Which Envoy tracer the operator expects on this hop (docs/tracers.md): checked against what
    /// requests show; only `none` is acted on before a request has shown the hop.
    pub tracer: TracerMode,
    /// The `trace_context_option` of Envoy's Zipkin tracer on this hop (`USE_B3`, Envoy's and
    /// Istio's default, or `USE_B3_WITH_W3C_PROPAGATION`): whether it joins a `traceparent`.
    pub envoy_trace_context_option: TraceContextOption,
    pub log: LogConfig,
    pub workload: WorkloadOverrides,
    /// This filter reports its own span per request (Zipkin v2 or OTLP/HTTP JSON); off (`null`)
    /// by default. Only for hops where Envoy's tracer does not run.
    pub export: Option<ExportConfig>,
}

#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(test, derive(serde::Deserialize))]
#[cfg_attr(test, serde(deny_unknown_fields, default))]
pub struct ExportConfig {
    /// What the spans are posted as: Zipkin v2 JSON (the default) or OTLP/HTTP JSON.
    pub protocol: ExportProtocol,
    /// The Envoy cluster of the collector (Istio: `outbound|9411||jaeger-collector.istio-system.svc.cluster.local`).
    pub cluster: String,
    /// Default: the protocol's (`ExportProtocol::default_path`).
    pub path: Option<String>,
    /// `:authority` of the export requests; default: the host of an Istio cluster name
    /// (`outbound|PORT|SUBSET|HOST` → `HOST`, as Istio sets its own tracers'), else the cluster
    /// name. Must be a valid Host header: Go servers answer 400 otherwise.
    pub authority: Option<String>,
    /// `localEndpoint.serviceName` / `service.name`; default: the resolved workload's service.
    pub service_name: Option<String>,
    /// Spans per POST.
    pub batch_size: usize,
    pub flush_interval_ms: u64,
    /// Spans held per worker while the collector is slow or down; the oldest go first.
    pub buffer_limit: usize,
    /// Bytes of spans held per worker (as `SpanBuffer` counts them); the oldest go first.
    pub buffer_bytes: usize,
    pub timeout_ms: u64,
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            protocol: ExportProtocol::Zipkin,
            cluster: String::new(),
            path: None,
            authority: None,
            service_name: None,
            batch_size: 100,
            flush_interval_ms: 1000,
            buffer_limit: 1000,
            buffer_bytes: 1 << 20,
            timeout_ms: 2000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Deserialize))]
#[cfg_attr(test, serde(rename_all = "lowercase"))]
pub enum ExportProtocol {
    /// Zipkin v2 JSON, `POST /api/v2/spans` (Jaeger, Zipkin, the OTel Collector's zipkin receiver).
    Zipkin,
    /// OTLP/HTTP with the JSON encoding, `POST /v1/traces` (the OTel Collector, Tempo, Jaeger 1.35+).
    Otlp,
}

impl ExportProtocol {
    pub fn default_path(self) -> &'static str {
        match self {
            ExportProtocol::Zipkin => "/api/v2/spans",
            ExportProtocol::Otlp => "/v1/traces",
        }
    }

    /// Both are JSON (OTLP/HTTP requires this content type for its JSON encoding).
    pub fn content_type(self) -> &'static str {
        "application/json"
    }
}

/// Byte range of `export.buffer_bytes`: at least a few hundred bounded spans, at most 256 MiB.
pub const BUFFER_BYTES_RANGE: (u64, u64) = (16 << 10, 256 << 20);

impl ExportConfig {
    /// The request path: `path`, or the protocol's default.
    pub fn resolved_path(&self) -> &str {
        self.path
            .as_deref()
            .unwrap_or_else(|| self.protocol.default_path())
    }

    /// The `:authority` of export requests: `authority`, or the host `cluster` stands for
    /// (`authority::from_cluster`). Valid once `Config::parse` accepted the configuration.
    pub fn resolved_authority(&self) -> &str {
        match &self.authority {
            Some(a) => a,
            None => crate::authority::from_cluster(&self.cluster),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let cluster = if self.cluster.trim().is_empty() {
            Err(err(
                "export.cluster",
                "is required: the Envoy cluster of the collector",
            ))
        } else {
            self.validate_authority()
        };
        let path = match &self.path {
            Some(p)
                if !p.starts_with('/')
                    || p.len() > 1024
                    || !p.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                Err(err(
                    "export.path",
                    format!("{p:?} must start with '/' and hold only visible ASCII (at most 1024 bytes)"),
                ))
            }
            _ => Ok(()),
        };
        let service_name = match self.service_name.as_deref() {
            Some(a) if a.trim().is_empty() => Err(err(
                "export.service_name",
                "must not be empty (leave it out for the workload's service)",
            )),
            _ => Ok(()),
        };
        ConfigError::all([cluster, path, service_name, self.validate_ranges()])
    }

    /// A Host header a real server accepts: given, or derived from an Istio cluster name.
    fn validate_authority(&self) -> Result<(), ConfigError> {
        match &self.authority {
            Some(a) if !crate::authority::is_valid_host_header(a) => {
                return Err(err(
                    "export.authority",
                    format!(
                        "{a:?} is not a valid Host header: a host name or IP literal, optionally with :port (RFC 3986 §3.2.2); leave it out to derive it from the cluster"
                    ),
                ));
            }
            Some(_) => {}
            None => {
                let derived = self.resolved_authority();
                if !crate::authority::is_valid_host_header(derived) {
                    return Err(err(
                        "export.authority",
                        format!(
                            "is required: the cluster name {derived:?} is not a valid Host header (a collector written in Go answers 400 Bad Request); set it to the collector's host name"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_ranges(&self) -> Result<(), ConfigError> {
        let ranges = [
            ("export.batch_size", self.batch_size as u64, 1, 10_000),
            (
                "export.flush_interval_ms",
                self.flush_interval_ms,
                10,
                600_000,
            ),
            (
                "export.buffer_limit",
                self.buffer_limit as u64,
                1,
                1_000_000,
            ),
            (
                "export.buffer_bytes",
                self.buffer_bytes as u64,
                BUFFER_BYTES_RANGE.0,
                BUFFER_BYTES_RANGE.1,
            ),
            ("export.timeout_ms", self.timeout_ms, 10, 600_000),
        ]
        .map(|(field, v, lo, hi)| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(err(field, format!("must be between {lo} and {hi}")))
            }
        });
        ConfigError::all(ranges)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Deserialize))]
#[cfg_attr(test, serde(rename_all = "lowercase"))]
pub enum TrustIncoming {
    All,
    Internal,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Deserialize))]
#[cfg_attr(test, serde(rename_all = "lowercase"))]
pub enum NewTraceSampling {
    Decide,
    Defer,
    Envoy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Deserialize))]
#[cfg_attr(test, serde(rename_all = "lowercase"))]
pub enum TracerMode {
    /// No expectation: the filter learns the hop from the first completed request.
    Auto,
    /// Envoy's Zipkin tracer is expected (Istio's `zipkin` provider); `envoy_trace_context_option`
    /// says whether it reads W3C. Reported once if a request shows otherwise.
    Zipkin,
    /// The same as `zipkin` (the name before the OpenTelemetry tracer was modelled).
    Envoy,
    /// Envoy's OpenTelemetry tracer is expected (Istio's `opentelemetry` provider).
    OpenTelemetry,
    /// No tracer on this hop: the filter writes its context from the first request (and still
    /// checks, and follows, what requests show).
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Deserialize))]
#[allow(clippy::upper_case_acronyms, non_camel_case_types)]
pub enum TraceContextOption {
    USE_B3,
    USE_B3_WITH_W3C_PROPAGATION,
}

#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(test, derive(serde::Deserialize))]
#[cfg_attr(test, serde(deny_unknown_fields, default))]
pub struct LogConfig {
    /// One JSON line per request, written when the request completes.
    pub enabled: bool,
    pub level: LogLevel,
    /// Keep the query string in the logged `path`.
    pub include_query: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Deserialize))]
#[cfg_attr(test, serde(rename_all = "lowercase"))]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Values that take precedence over what Envoy's node metadata says.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(test, derive(serde::Deserialize))]
#[cfg_attr(test, serde(deny_unknown_fields, default))]
pub struct WorkloadOverrides {
    pub service: Option<String>,
    pub namespace: Option<String>,
    pub version: Option<String>,
    pub workload: Option<String>,
    pub cluster: Option<String>,
    pub mesh: Option<String>,
    pub pod: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            precedence: vec![Format::B3Single, Format::B3Multi, Format::W3c],
            outputs: vec![Format::B3Multi, Format::W3c],
            sampling_percent: None,
            trust_incoming: TrustIncoming::All,
            new_trace_sampling: None,
            response_header: Some("x-trace-id".to_string()),
            tracer: TracerMode::Auto,
            envoy_trace_context_option: TraceContextOption::USE_B3,
            log: LogConfig::default(),
            workload: WorkloadOverrides::default(),
            export: None,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            enabled: true,
            level: LogLevel::Info,
            include_query: false,
        }
    }
}

/// Why a configuration was refused: the field (dotted path) and the reason; every further
/// problem found in the same configuration in `more`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
    pub more: Vec<ConfigError>,
}

impl ConfigError {
    /// Each problem on its own: `field `x`: reason`.
    pub fn problems(&self) -> impl Iterator<Item = String> + '_ {
        std::iter::once(self).chain(&self.more).map(|e| {
            if e.field.is_empty() {
                e.reason.clone()
            } else {
                format!("field `{}`: {}", e.field, e.reason)
            }
        })
    }

    /// All of `errors` as one, or `Ok` where there are none.
    fn all(errors: impl IntoIterator<Item = Result<(), ConfigError>>) -> Result<(), ConfigError> {
        let mut found = errors.into_iter().filter_map(Result::err);
        let Some(mut first) = found.next() else {
            return Ok(());
        };
        for e in found {
            let ConfigError {
                field,
                reason,
                more,
            } = e;
            first.more.push(err(&field, reason));
            first.more.extend(more);
        }
        Err(first)
    }
}

/// One line, for Envoy's log: every problem, separated by `; `.
impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let problems: Vec<String> = self.problems().collect();
        write!(f, "invalid plugin configuration: {}", problems.join("; "))
    }
}

impl std::error::Error for ConfigError {}

fn err(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.to_string(),
        reason: reason.into(),
        more: Vec::new(),
    }
}

impl Config {
    /// Parses and validates. Empty input (no configuration at all) means the defaults.
    pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Config::default());
        }
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| err("", format!("not JSON: {e}")))?;
        let config = config_section(&value)?;
        config.validate()?;
        Ok(config)
    }

    /// Every check, every problem reported.
    fn validate(&self) -> Result<(), ConfigError> {
        ConfigError::all([
            distinct(&self.precedence, "precedence", false),
            distinct(&self.outputs, "outputs", true),
            self.validate_sampling(),
            self.response_header
                .as_deref()
                .map_or(Ok(()), validate_response_header),
            self.export.as_ref().map_or(Ok(()), ExportConfig::validate),
            self.export
                .as_ref()
                .map_or(Ok(()), |_| self.validate_beside_export()),
            self.workload.validate(),
        ])
    }

    fn validate_sampling(&self) -> Result<(), ConfigError> {
        let defer = self.new_trace_sampling == Some(NewTraceSampling::Defer);
        if defer && !self.outputs.is_empty() && !self.outputs.iter().any(|f| *f != Format::W3c) {
            return Err(err(
                "new_trace_sampling",
                "\"defer\" needs a B3 output: W3C has no deferred decision (a traceparent says sampled or not)",
            ));
        }
        let Some(p) = self.sampling_percent else {
            return Ok(());
        };
        if !(0.0..=100.0).contains(&p) {
            return Err(err("sampling_percent", "must be between 0 and 100"));
        }
        if self.new_trace_sampling == Some(NewTraceSampling::Envoy) {
            return Err(err(
                "sampling_percent",
                "is not used with \"new_trace_sampling\": \"envoy\" (Envoy's decision samples new traces): leave one out",
            ));
        }
        Ok(())
    }

    /// What `export` cannot be combined with.
    fn validate_beside_export(&self) -> Result<(), ConfigError> {
        if self.new_trace_sampling == Some(NewTraceSampling::Defer) {
            return Err(err(
                "new_trace_sampling",
                "\"defer\" cannot be used with \"export\": no span of a trace whose sampling is left to the next hop can be reported here; use \"envoy\" or \"decide\"",
            ));
        }
        if !matches!(self.tracer, TracerMode::Auto | TracerMode::None) {
            return Err(err(
                "export",
                "cannot be used beside Envoy's tracer (\"tracer\": \"zipkin\", \"envoy\" or \"opentelemetry\"): it reports this hop's spans already",
            ));
        }
        Ok(())
    }
}

fn validate_response_header(name: &str) -> Result<(), ConfigError> {
    if !is_header_name(name) {
        return Err(err(
            "response_header",
            format!("{name:?} is not a lower-case HTTP header name (use null to turn it off)"),
        ));
    }
    match reserved_response_header(name) {
        Some(why) => Err(err(
            "response_header",
            format!("{name:?} {why}: choose another name, e.g. \"x-trace-id\""),
        )),
        None => Ok(()),
    }
}

impl WorkloadOverrides {
    fn validate(&self) -> Result<(), ConfigError> {
        let checks = [
            ("workload.service", &self.service),
            ("workload.namespace", &self.namespace),
            ("workload.version", &self.version),
            ("workload.workload", &self.workload),
            ("workload.cluster", &self.cluster),
            ("workload.mesh", &self.mesh),
            ("workload.pod", &self.pod),
        ]
        .map(|(field, v)| {
            if v.as_deref().is_some_and(|s| s.trim().is_empty()) {
                Err(err(
                    field,
                    "must not be empty (leave it out to use node metadata)",
                ))
            } else {
                Ok(())
            }
        });
        ConfigError::all(checks)
    }
}

/// Why a response header name cannot carry the trace id, or `None` where it can: a name that
/// frames or routes the message, is hop-by-hop, sets state in the client, or is a trace header
/// this filter reads on the next hop.
fn reserved_response_header(name: &str) -> Option<&'static str> {
    match name {
        "connection" | "keep-alive" | "proxy-connection" | "te" | "trailer"
        | "transfer-encoding" | "upgrade" => Some("is a hop-by-hop header"),
        "content-length" | "content-type" | "content-encoding" | "content-range" => {
            Some("describes the response body")
        }
        "host" | "date" | "server" | "location" | "via" => {
            Some("has a meaning in HTTP that a trace id would break")
        }
        "set-cookie" | "www-authenticate" | "proxy-authenticate" => {
            Some("makes the client keep or send state")
        }
        _ if crate::headers::CONTEXT_HEADERS.contains(&name)
            || crate::headers::ENVOY_TRACING_HEADERS.contains(&name) =>
        {
            Some("is a trace context header")
        }
        _ => None,
    }
}

fn distinct(list: &[Format], field: &str, may_be_empty: bool) -> Result<(), ConfigError> {
    if list.is_empty() && !may_be_empty {
        return Err(err(
            field,
            "must name at least one of \"b3\", \"b3-single\", \"w3c\"",
        ));
    }
    for (i, f) in list.iter().enumerate() {
        if list.iter().skip(i + 1).any(|g| g == f) {
            return Err(err(field, format!("{:?} is listed twice", f.name())));
        }
    }
    Ok(())
}

/// RFC 9110 token, lower case (Envoy's header maps are lower case), no pseudo-headers.
fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&c)
        })
}

// The configuration is read from serde_json's `Value` by hand, not by serde's derived
// `Deserialize`: the derived code (one monomorphisation per struct, enum and deserializer, and
// core's float formatting behind serde's messages) made the .wasm some 55 KB larger, and Envoy's
// V8 compiles every function of a module when it loads it, which costs resident memory in every
// Envoy (docs/memory.md). The structs above keep their serde attributes (deny_unknown_fields) as
// the specification: the unit tests check this reader against the derived implementation
// (`mod oracle`) on generated configurations, message for message. The sections are
// #[inline(never)]: cold code, kept in functions of a few KB each.

/// The top-level section: every field's problem reported (a nested section's by its full path).
#[inline(never)]
fn config_section(value: &Value) -> Result<Config, ConfigError> {
    let obj = object(value, "")?;
    let mut c = Config::default();
    let each: Vec<Result<(), ConfigError>> = obj
        .iter()
        .map(|(key, v)| {
            let r = match key.as_str() {
                "log" => return log_section(v).map(|x| c.log = x),
                "workload" => return workload_section(v).map(|x| c.workload = x),
                "export" if v.is_null() => Ok(()), // the default: off
                "export" => return export_section(v).map(|x| c.export = Some(x)),
                "precedence" => formats(v).map(|x| c.precedence = x),
                "outputs" => formats(v).map(|x| c.outputs = x),
                "sampling_percent" => optional(v, f64_value).map(|x| c.sampling_percent = x),
                "trust_incoming" => variant(v, TRUST_INCOMING).map(|x| c.trust_incoming = x),
                "new_trace_sampling" => optional(v, |v| variant(v, NEW_TRACE_SAMPLING))
                    .map(|x| c.new_trace_sampling = x),
                "response_header" => optional(v, string).map(|x| c.response_header = x),
                "tracer" => variant(v, TRACER_MODE).map(|x| c.tracer = x),
                "envoy_trace_context_option" => {
                    variant(v, TRACE_CONTEXT_OPTION).map(|x| c.envoy_trace_context_option = x)
                }
                _ => Err(unknown_field(key, CONFIG_FIELDS)),
            };
            r.map_err(|reason| err(key, in_words(&reason)))
        })
        .collect();
    ConfigError::all(each)?;
    Ok(c)
}

const CONFIG_FIELDS: &[&str] = &[
    "precedence",
    "outputs",
    "sampling_percent",
    "trust_incoming",
    "new_trace_sampling",
    "response_header",
    "tracer",
    "envoy_trace_context_option",
    "log",
    "workload",
    "export",
];

#[inline(never)]
fn log_section(value: &Value) -> Result<LogConfig, ConfigError> {
    let mut c = LogConfig::default();
    each_field(value, "log", &mut |key, v| match key {
        "enabled" => bool_value(v).map(|x| c.enabled = x),
        "level" => variant(v, LOG_LEVEL).map(|x| c.level = x),
        "include_query" => bool_value(v).map(|x| c.include_query = x),
        _ => Err(unknown_field(key, &["enabled", "level", "include_query"])),
    })?;
    Ok(c)
}

const WORKLOAD_FIELDS: &[&str] = &[
    "service",
    "namespace",
    "version",
    "workload",
    "cluster",
    "mesh",
    "pod",
];

#[inline(never)]
fn workload_section(value: &Value) -> Result<WorkloadOverrides, ConfigError> {
    let mut w = WorkloadOverrides::default();
    each_field(value, "workload", &mut |key, v| {
        let slot = match key {
            "service" => &mut w.service,
            "namespace" => &mut w.namespace,
            "version" => &mut w.version,
            "workload" => &mut w.workload,
            "cluster" => &mut w.cluster,
            "mesh" => &mut w.mesh,
            "pod" => &mut w.pod,
            _ => return Err(unknown_field(key, WORKLOAD_FIELDS)),
        };
        optional(v, string).map(|x| *slot = x)
    })?;
    Ok(w)
}

const EXPORT_FIELDS: &[&str] = &[
    "protocol",
    "cluster",
    "path",
    "authority",
    "service_name",
    "batch_size",
    "flush_interval_ms",
    "buffer_limit",
    "buffer_bytes",
    "timeout_ms",
];

#[inline(never)]
fn export_section(value: &Value) -> Result<ExportConfig, ConfigError> {
    let mut e = ExportConfig::default();
    each_field(value, "export", &mut |key, v| match key {
        "protocol" => variant(v, EXPORT_PROTOCOL).map(|x| e.protocol = x),
        "cluster" => string(v).map(|x| e.cluster = x),
        "path" => optional(v, string).map(|x| e.path = x),
        "authority" => optional(v, string).map(|x| e.authority = x),
        "service_name" => optional(v, string).map(|x| e.service_name = x),
        "batch_size" => usize_value(v).map(|x| e.batch_size = x),
        "flush_interval_ms" => u64_value(v).map(|x| e.flush_interval_ms = x),
        "buffer_limit" => usize_value(v).map(|x| e.buffer_limit = x),
        "buffer_bytes" => usize_value(v).map(|x| e.buffer_bytes = x),
        "timeout_ms" => u64_value(v).map(|x| e.timeout_ms = x),
        _ => Err(unknown_field(key, EXPORT_FIELDS)),
    })?;
    Ok(e)
}

/// Reads a leaf section field by field; every field's problem is reported, by its full path
/// (`section.key`), in a user's words.
fn each_field(
    value: &Value,
    section: &str,
    read: &mut dyn FnMut(&str, &Value) -> Result<(), String>,
) -> Result<(), ConfigError> {
    let obj = object(value, section)?;
    let each: Vec<Result<(), ConfigError>> = obj
        .iter()
        .map(|(key, v)| {
            read(key, v).map_err(|reason| err(&format!("{section}.{key}"), in_words(&reason)))
        })
        .collect();
    ConfigError::all(each)
}

/// A section's object; a configuration section is never an array (which serde would take).
fn object<'a>(value: &'a Value, section: &str) -> Result<&'a Map<String, Value>, ConfigError> {
    value.as_object().ok_or_else(|| {
        err(
            section,
            format!("must be a JSON object, not {}", kind(value)),
        )
    })
}

const TRUST_INCOMING: &[(&str, TrustIncoming)] = &[
    ("all", TrustIncoming::All),
    ("internal", TrustIncoming::Internal),
    ("none", TrustIncoming::None),
];
const NEW_TRACE_SAMPLING: &[(&str, NewTraceSampling)] = &[
    ("decide", NewTraceSampling::Decide),
    ("defer", NewTraceSampling::Defer),
    ("envoy", NewTraceSampling::Envoy),
];
const TRACER_MODE: &[(&str, TracerMode)] = &[
    ("auto", TracerMode::Auto),
    ("zipkin", TracerMode::Zipkin),
    ("envoy", TracerMode::Envoy),
    ("opentelemetry", TracerMode::OpenTelemetry),
    ("none", TracerMode::None),
];
const TRACE_CONTEXT_OPTION: &[(&str, TraceContextOption)] = &[
    ("USE_B3", TraceContextOption::USE_B3),
    (
        "USE_B3_WITH_W3C_PROPAGATION",
        TraceContextOption::USE_B3_WITH_W3C_PROPAGATION,
    ),
];
const LOG_LEVEL: &[(&str, LogLevel)] = &[
    ("trace", LogLevel::Trace),
    ("debug", LogLevel::Debug),
    ("info", LogLevel::Info),
    ("warn", LogLevel::Warn),
    ("error", LogLevel::Error),
];
const EXPORT_PROTOCOL: &[(&str, ExportProtocol)] = &[
    ("zipkin", ExportProtocol::Zipkin),
    ("otlp", ExportProtocol::Otlp),
];
const FORMAT: &[(&str, Format)] = &[
    ("b3", Format::B3Multi),
    ("b3-single", Format::B3Single),
    ("w3c", Format::W3c),
];

/// `null` is `None`, as serde reads an `Option`.
fn optional<T>(v: &Value, read: impl Fn(&Value) -> Result<T, String>) -> Result<Option<T>, String> {
    match v {
        Value::Null => Ok(None),
        other => read(other).map(Some),
    }
}

fn formats(v: &Value) -> Result<Vec<Format>, String> {
    match v {
        Value::Array(items) => items.iter().map(|f| variant(f, FORMAT)).collect(),
        other => Err(invalid_type(other, "a sequence")),
    }
}

/// A unit-only enum as serde_json's `Value` reads one: a string names the variant; a map of one
/// entry does too, its value then has to be `null` (a unit variant holds nothing).
fn variant<T: Copy>(v: &Value, variants: &[(&str, T)]) -> Result<T, String> {
    let (name, inner) = match v {
        Value::String(s) => (s, None),
        Value::Object(m) if m.len() == 1 => match m.iter().next() {
            Some((k, inner)) => (k, Some(inner)),
            None => return Err("invalid value: map, expected map with a single key".into()),
        },
        Value::Object(_) => return Err("invalid value: map, expected map with a single key".into()),
        other => return Err(invalid_type(other, "string or map")),
    };
    let Some(&(_, found)) = variants.iter().find(|(n, _)| n == name) else {
        let names: Vec<&str> = variants.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "unknown variant `{name}`, expected {}",
            one_of(&names)
        ));
    };
    match inner {
        Some(i) if !i.is_null() => Err(invalid_type(i, "unit")),
        _ => Ok(found),
    }
}

fn string(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(invalid_type(other, "a string")),
    }
}

fn bool_value(v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        other => Err(invalid_type(other, "a boolean")),
    }
}

fn f64_value(v: &Value) -> Result<f64, String> {
    match v.as_f64() {
        Some(f) if v.is_number() => Ok(f),
        _ => Err(invalid_type(v, "f64")),
    }
}

fn u64_value(v: &Value) -> Result<u64, String> {
    unsigned(v, "u64", u64::MAX)
}

fn usize_value(v: &Value) -> Result<usize, String> {
    // usize is 32 bits in the .wasm: serde refuses what does not fit, and so does this.
    unsigned(v, "usize", usize::MAX as u64).map(|n| n as usize)
}

fn unsigned(v: &Value, ty: &str, max: u64) -> Result<u64, String> {
    let Value::Number(n) = v else {
        return Err(invalid_type(v, ty));
    };
    if let Some(u) = n.as_u64() {
        return if u <= max {
            Ok(u)
        } else {
            Err(format!("invalid value: integer `{u}`, expected {ty}"))
        };
    }
    match n.as_i64() {
        Some(i) => Err(format!("invalid value: integer `{i}`, expected {ty}")),
        None => Err(invalid_type(v, ty)),
    }
}

/// serde_json's "invalid type" message, its words for each kind of value included.
fn invalid_type(v: &Value, expected: &str) -> String {
    let unexpected = match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("boolean `{b}`"),
        Value::Number(n) => number_words(n),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "sequence".to_string(),
        Value::Object(_) => "map".to_string(),
    };
    format!("invalid type: {unexpected}, expected {expected}")
}

/// `integer `5``, `integer `-5``, `floating point `1.5``: the float as serde_json writes it (its
/// own shortest form, not core's float formatting, which would bring 20 KB of code).
fn number_words(n: &Number) -> String {
    if n.is_f64() {
        format!("floating point `{n}`")
    } else {
        format!("integer `{n}`")
    }
}

/// serde's `unknown field` message.
fn unknown_field(key: &str, fields: &[&str]) -> String {
    format!("unknown field `{key}`, expected {}", one_of(fields))
}

/// serde's list of what was expected: "`a`", "`a` or `b`", "one of `a`, `b`, `c`".
fn one_of(names: &[&str]) -> String {
    match names {
        [] => "nothing".to_string(),
        [a] => format!("`{a}`"),
        [a, b] => format!("`{a}` or `{b}`"),
        _ => {
            let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            format!("one of {}", quoted.join(", "))
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// serde's message in a user's words: Rust's type names as what JSON calls them, and without the
/// "at line 1 column 0" serde_json appends to errors from a `Value` (it means nothing here).
fn in_words(msg: &str) -> String {
    let msg = match msg.find(" at line ") {
        Some(i) => msg.get(..i).unwrap_or(msg),
        None => msg,
    };
    let mut words = msg.to_string();
    for (rust, json) in [
        ("expected f64", "expected a number"),
        ("expected usize", "expected a whole number"),
        ("expected u64", "expected a whole number"),
        ("expected u32", "expected a whole number"),
        ("expected a sequence", "expected a list"),
        ("floating point", "number"),
    ] {
        words = words.replace(rust, json);
    }
    words
}

/// The derived-`Deserialize` reading of the configuration (serde's own field matching and
/// messages, deny_unknown_fields): the specification `config_section` is checked against.
#[cfg(test)]
mod oracle {
    use super::*;
    use serde::de::DeserializeOwned;

    pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Config::default());
        }
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| err("", format!("not JSON: {e}")))?;
        let config = deserialize_section::<Config>(&value, "")?;
        config.validate()?;
        Ok(config)
    }

    /// Sections whose fields are themselves objects, so an error inside is reported by full path.
    trait Section: DeserializeOwned {
        fn nested(_key: &str, _value: &Value, _path: &str) -> Option<ConfigError> {
            None
        }
    }

    impl Section for Config {
        fn nested(key: &str, value: &Value, path: &str) -> Option<ConfigError> {
            match key {
                "log" => deserialize_section::<LogConfig>(value, path).err(),
                "workload" => deserialize_section::<WorkloadOverrides>(value, path).err(),
                "export" if !value.is_null() => {
                    deserialize_section::<ExportConfig>(value, path).err()
                }
                _ => None,
            }
        }
    }
    impl Section for LogConfig {}
    impl Section for ExportConfig {}
    impl Section for WorkloadOverrides {}

    /// Deserializes a section; on failure, finds the field to blame by trying each one alone
    /// (serde_json's own messages say what is wrong but not, for a wrong type, where).
    fn deserialize_section<T: Section>(value: &Value, prefix: &str) -> Result<T, ConfigError> {
        let section = if prefix.is_empty() {
            ""
        } else {
            prefix.trim_end_matches('.')
        };
        // serde would also take a struct from an array; a configuration section is an object.
        let Some(obj) = value.as_object() else {
            return Err(err(
                section,
                format!("must be a JSON object, not {}", kind(value)),
            ));
        };
        // Every field to blame: a nested section's own fields by their full path (checked on its
        // own: serde would take a struct from an array), every other field tried alone.
        let each: Vec<Result<(), ConfigError>> = obj
            .iter()
            .map(|(key, v)| {
                if let Some(inner) = T::nested(key, v, &format!("{prefix}{key}.")) {
                    return Err(inner);
                }
                let mut single = Map::new();
                single.insert(key.clone(), v.clone());
                match T::deserialize(Value::Object(single)) {
                    Ok(_) => Ok(()),
                    Err(e) => Err(err(&format!("{prefix}{key}"), in_words(&e.to_string()))),
                }
            })
            .collect();
        ConfigError::all(each)?;
        // An owned `Value`, as in the per-field tries above: one deserializer type instead of two
        // (`Value` and `&Value`), some 22 KB less generated code. Cold code, but Envoy's V8 compiles
        // every function when it loads the module, and that costs memory (docs/memory.md).
        let e = match T::deserialize(value.clone()) {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        Err(err(section, in_words(&e.to_string())))
    }
}

#[cfg(test)]
mod same_as_serde {
    use super::*;
    use proptest::prelude::*;

    const KEYS: &[&str] = &[
        "precedence",
        "outputs",
        "sampling_percent",
        "trust_incoming",
        "new_trace_sampling",
        "response_header",
        "tracer",
        "envoy_trace_context_option",
        "log",
        "workload",
        "export",
        "enabled",
        "level",
        "include_query",
        "service",
        "namespace",
        "version",
        "pod",
        "mesh",
        "cluster",
        "protocol",
        "path",
        "authority",
        "service_name",
        "batch_size",
        "flush_interval_ms",
        "buffer_limit",
        "buffer_bytes",
        "timeout_ms",
        "sampling",
        "",
        "b3",
        "w3c",
        "b3-single",
        "zipkin",
        "otlp",
        "all",
        "none",
        "debug",
        "USE_B3",
    ];
    const STRINGS: &[&str] = &[
        "b3",
        "b3-single",
        "w3c",
        "all",
        "internal",
        "none",
        "decide",
        "defer",
        "envoy",
        "auto",
        "zipkin",
        "envoy",
        "opentelemetry",
        "USE_B3",
        "USE_B3_WITH_W3C_PROPAGATION",
        "trace",
        "debug",
        "info",
        "warn",
        "error",
        "otlp",
        "x-trace-id",
        "collector",
        "/v1/traces",
        "Zipkin",
        "",
        " ",
        "a\"b\\c\n\u{7f}é\u{1F600}",
        "outbound|9411||zipkin.istio-system.svc",
    ];

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            prop::sample::select(vec![
                0i64,
                1,
                5,
                10,
                100,
                1000,
                10_000,
                600_000,
                1_000_000,
                -1,
                -100,
                i64::MAX,
                i64::MIN,
                4_294_967_295,
                4_294_967_296,
            ])
            .prop_map(Value::from),
            Just(Value::from(u64::MAX)),
            prop::sample::select(vec![
                0.0f64,
                -0.0,
                0.5,
                1.5,
                12.5,
                99.99,
                100.0,
                100.5,
                -3.25,
                1e21,
                1e-7,
                1e300,
                123456789.0,
                0.1,
                2.5e-5,
                1e16,
            ])
            .prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            prop::sample::select(STRINGS.to_vec()).prop_map(Value::from),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((prop::sample::select(KEYS.to_vec()), inner), 0..4).prop_map(
                    |kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
                ),
            ]
        })
    }

    /// A configuration: mostly known top-level keys, with sections that are mostly objects.
    fn config() -> impl Strategy<Value = Value> {
        prop::collection::vec((prop::sample::select(KEYS.to_vec()), value()), 0..5)
            .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn any_configuration(v in config()) {
            let json = v.to_string();
            prop_assert_eq!(Config::parse(json.as_bytes()), oracle::parse(json.as_bytes()), "{}", json);
        }

        #[test]
        fn any_value(v in value()) {
            let json = v.to_string();
            prop_assert_eq!(Config::parse(json.as_bytes()), oracle::parse(json.as_bytes()), "{}", json);
        }
    }

    #[test]
    fn the_corners() {
        for json in [
            r#"{"outputs": 1.5}"#,
            r#"{"outputs": -0.0}"#,
            r#"{"outputs": 1e300}"#,
            r#"{"outputs": [{"b3": null}]}"#,
            r#"{"outputs": [{"b3": 1}]}"#,
            r#"{"outputs": [{"b4": null}]}"#,
            r#"{"outputs": [{}]}"#,
            r#"{"outputs": [{"b3": null, "w3c": null}]}"#,
            r#"{"tracer": {"zipkin": null}}"#,
            r#"{"tracer": {"zipkin": {}}}"#,
            r#"{"trust_incoming": true}"#,
            r#"{"sampling_percent": "all"}"#,
            r#"{"sampling_percent": null}"#,
            r#"{"sampling_percent": -1}"#,
            r#"{"export": {"cluster": "c", "batch_size": -1}}"#,
            r#"{"export": {"cluster": "c", "batch_size": 1.0}}"#,
            r#"{"export": {"cluster": "c", "batch_size": 18446744073709551615}}"#,
            r#"{"export": {"cluster": "c", "timeout_ms": -5}}"#,
            r#"{"export": {"cluster": 5}}"#,
            r#"{"export": {"cluster": null}}"#,
            r#"{"export": {"clustr": "c"}}"#,
            r#"{"export": "zipkin"}"#,
            r#"{"export": null}"#,
            r#"{"export": []}"#,
            r#"{"log": {"level": "loud"}, "aaa": 1}"#,
            r#"{"log": [], "zzz": 1}"#,
            r#"{"workload": {"service": 1}}"#,
            r#"{"workload": {"owner": "x"}}"#,
            r#"{"response_header": ["x"]}"#,
            r#"[]"#,
            r#"5"#,
            r#"null"#,
            r#"not json"#,
            r#"{"a": 1,}"#,
        ] {
            assert_eq!(
                Config::parse(json.as_bytes()),
                oracle::parse(json.as_bytes()),
                "{json}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(json: &str) -> ConfigError {
        Config::parse(json.as_bytes()).unwrap_err()
    }

    /// A response header that frames, routes or sets state, or that carries a trace context,
    /// cannot carry the trace id; a percentage beside Envoy's decision, and deferred sampling
    /// with export (no span of an undecided trace can be reported), are refused by field.
    #[test]
    fn combinations_that_cannot_work_are_refused_by_field() {
        for name in [
            "content-length",
            "transfer-encoding",
            "connection",
            "set-cookie",
            "te",
            "traceparent",
            "x-b3-traceid",
            "x-request-id",
        ] {
            let e = refused(&format!(r#"{{"response_header": "{name}"}}"#));
            assert_eq!(e.field, "response_header", "{name}");
        }
        assert!(Config::parse(br#"{"response_header": "x-trace"}"#).is_ok());
        let e = refused(r#"{"new_trace_sampling": "envoy", "sampling_percent": 10}"#);
        assert_eq!(e.field, "sampling_percent");
        let e = refused(r#"{"new_trace_sampling": "defer", "export": {"cluster": "z"}}"#);
        assert_eq!(e.field, "new_trace_sampling");
        assert!(
            Config::parse(br#"{"new_trace_sampling": "envoy", "export": {"cluster": "z"}}"#)
                .is_ok()
        );
    }

    #[test]
    fn empty_and_braces_are_the_defaults() {
        assert_eq!(Config::parse(b"").unwrap(), Config::default());
        assert_eq!(Config::parse(b"  \n").unwrap(), Config::default());
        assert_eq!(Config::parse(b"{}").unwrap(), Config::default());
        let d = Config::default();
        assert_eq!(d.outputs, vec![Format::B3Multi, Format::W3c]);
        assert_eq!(d.response_header.as_deref(), Some("x-trace-id"));
        assert_eq!(d.sampling_percent, None);
        assert_eq!(d.new_trace_sampling, None);
    }

    #[test]
    fn every_field_parses() {
        let c = Config::parse(
            br#"{"precedence":["w3c","b3"],"outputs":["b3-single"],"sampling_percent":12.5,
                "response_header":null,"tracer":"envoy","envoy_trace_context_option":"USE_B3_WITH_W3C_PROPAGATION",
                "log":{"enabled":false,"level":"debug","include_query":true},
                "workload":{"service":"checkout","namespace":"shop","version":"v2","workload":"checkout-v2",
                            "cluster":"c1","mesh":"m1","pod":"checkout-v2-abc"}}"#,
        )
        .unwrap();
        assert_eq!(c.precedence, vec![Format::W3c, Format::B3Multi]);
        assert_eq!(c.outputs, vec![Format::B3Single]);
        assert_eq!(c.sampling_percent, Some(12.5));
        assert_eq!(c.response_header, None);
        assert_eq!(c.tracer, TracerMode::Envoy);
        assert_eq!(
            c.envoy_trace_context_option,
            TraceContextOption::USE_B3_WITH_W3C_PROPAGATION
        );
        assert!(!c.log.enabled);
        assert_eq!(c.log.level, LogLevel::Debug);
        assert_eq!(c.workload.pod.as_deref(), Some("checkout-v2-abc"));
    }

    #[test]
    fn errors_name_the_field() {
        let e = refused(r#"{"sampling":100}"#);
        assert_eq!(e.field, "sampling");
        assert!(e.reason.contains("unknown field `sampling`"), "{e}");
        assert!(
            e.reason.contains("sampling_percent"),
            "lists the known fields: {e}"
        );

        let e = refused(r#"{"outputs":["b3"],"sampling_percent":"all"}"#);
        assert_eq!(e.field, "sampling_percent");
        assert!(e.reason.contains("invalid type"), "{e}");

        let e = refused(r#"{"precedence":["b3","zipkin"]}"#);
        assert_eq!(e.field, "precedence");
        assert!(e.reason.contains("unknown variant `zipkin`"), "{e}");

        let e = refused(r#"{"log":{"level":"loud"}}"#);
        assert_eq!(e.field, "log.level");
        let e = refused(r#"{"log":{"colour":true}}"#);
        assert_eq!(e.field, "log.colour");
        let e = refused(r#"{"workload":{"service":5}}"#);
        assert_eq!(e.field, "workload.service");
        let e = refused(r#"{"log":[]}"#);
        assert_eq!(e.field, "log");
        assert!(e.reason.contains("JSON object"), "{e}");
        let e = refused(r#"{"tracer":"jaeger"}"#);
        assert_eq!(e.field, "tracer");
        assert_eq!(
            e.to_string(),
            format!("invalid plugin configuration: field `tracer`: {}", e.reason)
        );
    }

    /// Every problem of a configuration is reported, in words a user knows ("a number").
    #[test]
    fn every_problem_is_reported_in_a_users_words() {
        let e = refused(
            r#"{"sampling":1, "sampling_percent":"all", "log":{"level":"loud","colour":1}}"#,
        );
        let problems: Vec<String> = e.problems().collect();
        assert_eq!(problems.len(), 4, "{problems:?}");
        for field in ["sampling", "sampling_percent", "log.level", "log.colour"] {
            assert!(
                problems
                    .iter()
                    .any(|p| p.starts_with(&format!("field `{field}`:"))),
                "{field}: {problems:?}"
            );
        }
        assert!(e.to_string().contains("expected a number"), "{e}");
        assert!(!e.to_string().contains("f64"), "{e}");
        let e = refused(r#"{"outputs":["b3","b3"],"sampling_percent":101,"response_header":"te"}"#);
        assert_eq!(e.problems().count(), 3, "{e}");
        let e = refused(r#"{"export":{"cluster":"","batch_size":0,"timeout_ms":5}}"#);
        assert_eq!(e.problems().count(), 3, "{e}");
        assert!(e
            .to_string()
            .starts_with("invalid plugin configuration: field `export.cluster`"));
        let e = refused(r#"{"export":{"cluster":"z","batch_size":1.5}}"#);
        assert!(e.to_string().contains("expected a whole number"), "{e}");
    }

    #[test]
    fn validation_after_parsing() {
        assert_eq!(
            refused(r#"{"sampling_percent":101}"#).field,
            "sampling_percent"
        );
        assert_eq!(
            refused(r#"{"sampling_percent":-1}"#).field,
            "sampling_percent"
        );
        assert_eq!(refused(r#"{"precedence":[]}"#).field, "precedence");
        assert!(
            Config::parse(br#"{"outputs":[]}"#).is_ok(),
            "an egress sends no context"
        );
        assert_eq!(
            refused(r#"{"trust_incoming":"some"}"#).field,
            "trust_incoming"
        );
        assert_eq!(
            refused(r#"{"new_trace_sampling":true}"#).field,
            "new_trace_sampling"
        );
        // "defer" needs a B3 output (W3C cannot say "not decided"); no outputs at all is fine.
        let defer = |outputs: &str| {
            Config::parse(
                format!(r#"{{"new_trace_sampling":"defer","outputs":{outputs}}}"#).as_bytes(),
            )
            .map_err(|e| e.field)
        };
        assert_eq!(defer(r#"["w3c"]"#), Err("new_trace_sampling".into()));
        assert!(defer(r#"["w3c","b3"]"#).is_ok());
        assert!(defer(r#"["b3-single"]"#).is_ok());
        assert!(defer("[]").is_ok());
        assert_eq!(refused(r#"{"precedence":["b3","b3"]}"#).field, "precedence");
        assert_eq!(
            refused(r#"{"response_header":"X-Trace-Id"}"#).field,
            "response_header"
        );
        assert_eq!(
            refused(r#"{"response_header":""}"#).field,
            "response_header"
        );
        assert_eq!(
            refused(r#"{"response_header":":status"}"#).field,
            "response_header"
        );
        assert_eq!(
            refused(r#"{"workload":{"service":" "}}"#).field,
            "workload.service"
        );
    }

    #[test]
    fn export_section() {
        let c = Config::parse(br#"{"export": {"cluster": "zipkin"}}"#).unwrap();
        let e = c.export.unwrap();
        assert_eq!(
            (
                e.resolved_path(),
                e.batch_size,
                e.buffer_limit,
                e.buffer_bytes
            ),
            ("/api/v2/spans", 100, 1000, 1 << 20)
        );
        assert_eq!(e.protocol, ExportProtocol::Zipkin);
        assert_eq!(e.resolved_authority(), "zipkin");
        assert_eq!(Config::parse(br#"{"export": null}"#).unwrap().export, None);
        assert_eq!(refused(r#"{"export": {}}"#).field, "export.cluster");
        assert_eq!(
            refused(r#"{"export": {"cluster": "z", "batch_size": 0}}"#).field,
            "export.batch_size"
        );
        assert_eq!(
            refused(r#"{"export": {"cluster": "z", "path": "api"}}"#).field,
            "export.path"
        );
        assert_eq!(
            refused(r#"{"export": {"cluster": "z", "colour": 1}}"#).field,
            "export.colour"
        );
        assert_eq!(
            refused(r#"{"export": {"cluster": "z", "timeout_ms": "1s"}}"#).field,
            "export.timeout_ms"
        );
        let e = refused(r#"{"tracer": "envoy", "export": {"cluster": "z"}}"#);
        assert_eq!(e.field, "export");
        assert!(e.reason.contains("Envoy's tracer"), "{e}");
    }

    #[test]
    fn export_protocol_and_path() {
        let otlp = |extra: &str| {
            Config::parse(
                format!(r#"{{"export": {{"cluster": "otel", "protocol": "otlp"{extra}}}}}"#)
                    .as_bytes(),
            )
            .unwrap()
            .export
            .unwrap()
        };
        assert_eq!(otlp("").protocol, ExportProtocol::Otlp);
        assert_eq!(otlp("").resolved_path(), "/v1/traces");
        // OTLP/HTTP's JSON encoding and Zipkin's v2 API both take JSON.
        for p in [ExportProtocol::Otlp, ExportProtocol::Zipkin] {
            assert_eq!(p.content_type(), "application/json");
        }
        assert_eq!(
            otlp(r#", "path": "/otlp/v1/traces""#).resolved_path(),
            "/otlp/v1/traces"
        );
        let e = refused(r#"{"export": {"cluster": "z", "protocol": "jaeger"}}"#);
        assert_eq!(e.field, "export.protocol");
        assert!(e.reason.contains("unknown variant `jaeger`"), "{e}");
        let longest = format!("/{}", "p".repeat(1023));
        assert_eq!(
            otlp(&format!(r#", "path": "{longest}""#)).resolved_path(),
            longest
        );
        let too_long = format!(r#""/{}""#, "p".repeat(1024));
        for bad in [r#""a b""#, r#""/a b""#, r#""/\u00e9""#, &too_long] {
            let e = refused(&format!(
                r#"{{"export": {{"cluster": "z", "path": {bad}}}}}"#
            ));
            assert_eq!(e.field, "export.path", "{bad}");
        }
    }

    #[test]
    fn export_authority_is_a_host_a_go_server_accepts() {
        let parse = |export: &str| {
            Config::parse(format!(r#"{{"export": {export}}}"#).as_bytes())
                .map(|c| c.export.unwrap().resolved_authority().to_string())
        };
        let host = "jaeger-collector.istio-system.svc.cluster.local";
        assert_eq!(
            parse(&format!(r#"{{"cluster": "outbound|9411||{host}"}}"#)).unwrap(),
            host,
            "Istio's cluster name gives the service host, as Istio's own collector_hostname"
        );
        assert_eq!(parse(r#"{"cluster": "zipkin"}"#).unwrap(), "zipkin");
        assert_eq!(
            parse(r#"{"cluster": "outbound|9411||x", "authority": "collector:9411"}"#).unwrap(),
            "collector:9411",
            "an explicit authority wins"
        );
        let e = parse(r#"{"cluster": "my|collector"}"#).unwrap_err();
        assert_eq!(e.field, "export.authority");
        assert!(
            e.reason.contains("is required") && e.reason.contains("my|collector"),
            "{e}"
        );
        for bad in ["outbound|9411||x", "a b", "host:99999", "", " "] {
            let e = parse(&format!(r#"{{"cluster": "z", "authority": "{bad}"}}"#)).unwrap_err();
            assert_eq!(e.field, "export.authority", "{bad:?}");
            assert!(e.reason.contains("not a valid Host header"), "{e}");
        }
    }

    #[test]
    fn export_buffer_bytes_range() {
        let c = Config::parse(br#"{"export": {"cluster": "z", "buffer_bytes": 65536}}"#).unwrap();
        assert_eq!(c.export.unwrap().buffer_bytes, 65536);
        for bad in ["0", "1024", "1073741824"] {
            let e = refused(&format!(
                r#"{{"export": {{"cluster": "z", "buffer_bytes": {bad}}}}}"#
            ));
            assert_eq!(e.field, "export.buffer_bytes", "{bad}");
            assert!(e.reason.contains("between 16384 and 268435456"), "{e}");
        }
    }

    #[test]
    fn not_json_or_not_an_object() {
        let e = refused("{");
        assert_eq!(e.field, "");
        assert!(e.reason.starts_with("not JSON"), "{e}");
        let e = refused("[1]");
        assert!(e.reason.contains("a JSON object, not an array"), "{e}");
        let e = refused("\"x-trace-id\"");
        assert!(e.reason.contains("a JSON object, not a string"), "{e}");
        let e = refused(r#"{"workload": 5}"#);
        assert_eq!(e.field, "workload");
        assert!(e.reason.contains("not a number"), "{e}");
    }
}

//! The proxy-wasm adapter: reads headers, runs the pure decision, applies its edits.
//! Everything here is host plumbing; the logic lives in the pure modules.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use crate::config::{
    Config, ExportConfig, LogLevel as ConfigLogLevel, TraceContextOption, TracerMode,
};
use crate::context::{Format, Parsed, TraceContext};
use crate::host;
use crate::ids::{IdSource, TraceId};
use crate::log_record::{loggable_path, LogRecord};
use crate::propagate::{self, Decision, Hop, Source, TraceHeaders};
use crate::span::{self, FinishedSpan, SpanBuffer};
use crate::workload::{NodeInfo, Workload};
use crate::{b3, envoy_tracer, w3c};

proxy_wasm::main! {{
    let _ = log::set_logger(&HOST_LOGGER);
    log::set_max_level(log::LevelFilter::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// A counter defined once per VM; increments are summed locally and handed to Envoy on the
/// root context's tick (a host call per request saved; `/stats` lags by at most a tick).
#[derive(Default)]
struct Counter {
    id: Option<u32>,
    pending: Cell<u64>,
}

impl Counter {
    fn new(name: &str) -> Counter {
        Counter {
            id: host::define_counter(&format!("trace_inject.{name}")),
            pending: Cell::new(0),
        }
    }

    fn add(&self, n: u64) {
        self.pending.set(self.pending.get().saturating_add(n));
    }

    fn bump(&self) {
        self.add(1);
    }

    fn flush(&self) {
        let n = self.pending.replace(0);
        if n > 0 {
            host::add(self.id, n);
        }
    }
}

/// Counters, defined once per VM in the root context.
#[derive(Default)]
struct Metrics {
    by_source: [Counter; 5],
    malformed: Counter,
    conflicts: Counter,
    config_rejected: Counter,
    tracer_detected: Counter,
    spans_sent: Counter,
    spans_dropped: Counter,
    spans_failed: Counter,
    export_disabled: Counter,
}

impl Metrics {
    fn define() -> Metrics {
        let c = Counter::new;
        Metrics {
            by_source: [
                c("requests.b3"),
                c("requests.b3_single"),
                c("requests.w3c"),
                c("requests.injected"),
                c("requests.repaired"),
            ],
            malformed: c("malformed"),
            conflicts: c("conflicts"),
            config_rejected: c("config_rejected"),
            tracer_detected: c("tracer_detected"),
            spans_sent: c("export.spans_sent"),
            spans_dropped: c("export.spans_dropped"),
            spans_failed: c("export.spans_failed"),
            export_disabled: c("export.disabled"),
        }
    }

    fn source(&self, s: Source) -> Option<&Counter> {
        let i = match s {
            Source::B3Multi => 0,
            Source::B3Single => 1,
            Source::W3c => 2,
            Source::Injected => 3,
            Source::Repaired => 4,
        };
        self.by_source.get(i)
    }

    fn flush(&self) {
        for c in self.by_source.iter().chain([
            &self.malformed,
            &self.conflicts,
            &self.config_rejected,
            &self.tracer_detected,
            &self.spans_sent,
            &self.spans_dropped,
            &self.spans_failed,
            &self.export_disabled,
        ]) {
            c.flush();
        }
    }
}

/// Ids from `rand`'s StdRng, seeded once per VM from WASI `random_get`.
struct Ids(RefCell<StdRng>, Cell<u64>);

impl Ids {
    fn seeded() -> Ids {
        let rng = StdRng::try_from_os_rng().unwrap_or_else(|e| {
            log::error!("random_get failed ({e}); seeding ids from the clock");
            StdRng::seed_from_u64(host::now_nanos().unwrap_or(0x9e37_79b9_7f4a_7c15))
        });
        Ids(RefCell::new(rng), Cell::new(0))
    }
}

impl IdSource for &Ids {
    fn next_u64(&mut self) -> u64 {
        match self.0.try_borrow_mut() {
            Ok(mut rng) => RngCore::next_u64(&mut *rng),
            // Unreachable (one thread, no re-entry); a splitmix step keeps ids flowing anyway.
            Err(_) => {
                let x = self.1.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
                self.1.set(x);
                let z = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z ^ (z >> 31)
            }
        }
    }
}

/// Whether Envoy's tracer runs on this hop, as far as this VM knows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HopState {
    /// `tracer: auto`, nothing seen yet.
    Unknown,
    /// `tracer: none`, or `auto` after a request went upstream with the filter's ids intact.
    Plain,
    /// `tracer: envoy`, or `auto` after Envoy's tracer was seen replacing the filter's ids.
    Tracer,
}

/// What every HTTP context of this plugin shares.
struct Shared {
    config: Config,
    metrics: Metrics,
    ids: Ids,
    workload: Workload,
    hop: Cell<HopState>,
    exporter: Option<Exporter>,
    /// Envoy's log level for Wasm, re-read on every tick rather than asked per request.
    envoy_log_level: Cell<u32>,
}

/// The filter's own spans (config `export`): buffered per worker, posted from the root context.
struct Exporter {
    config: ExportConfig,
    service: String,
    buffer: RefCell<SpanBuffer>,
    /// Off for good once Envoy's tracer was seen on this hop (spans would be doubled).
    active: Cell<bool>,
    last_flush_ns: Cell<u64>,
}

impl Shared {
    fn reads_w3c(&self) -> bool {
        self.config.envoy_trace_context_option == TraceContextOption::USE_B3_WITH_W3C_PROPAGATION
    }

    fn log_level(&self) -> log::Level {
        match self.config.log.level {
            ConfigLogLevel::Trace => log::Level::Trace,
            ConfigLogLevel::Debug => log::Level::Debug,
            ConfigLogLevel::Info => log::Level::Info,
            ConfigLogLevel::Warn => log::Level::Warn,
            ConfigLogLevel::Error => log::Level::Error,
        }
    }

    fn exporting(&self) -> Option<&Exporter> {
        self.exporter.as_ref().filter(|e| e.active.get())
    }

    /// Auto-detection saw Envoy's tracer replace this filter's ids: once per VM, say so.
    fn tracer_detected(&self) {
        if self.hop.replace(HopState::Tracer) == HopState::Tracer {
            return;
        }
        self.metrics.tracer_detected.bump();
        if let Some(e) = self.exporting() {
            e.active.set(false);
            e.buffer.borrow_mut().take(usize::MAX);
            self.metrics.export_disabled.bump();
            log::warn!(
                "Envoy's tracer reports this hop's spans: this filter stops exporting its own (they would be doubled); remove \"export\" from the plugin configuration of this hop"
            );
        }
        log::warn!(
            "Envoy's tracer runs on this hop and replaced the ids this filter wrote: set \"tracer\": \"envoy\" (and \"envoy_trace_context_option\" to the Zipkin tracer's trace_context_option) in the plugin configuration; until a worker has seen this, \"auto\" may report a trace id the collector never receives"
        );
    }
}

/// Reads a property under Envoy's `xds.node` (older Envoys: `node`) as UTF-8.
fn node_property(path: &[&str]) -> Option<String> {
    let read = |prefix: &[&str]| {
        let full: Vec<&str> = prefix.iter().chain(path).copied().collect();
        host::property(&full).and_then(|b| String::from_utf8(b).ok())
    };
    read(&["xds", "node"]).or_else(|| read(&["node"]))
}

#[derive(Default)]
struct Root {
    shared: Option<Rc<Shared>>,
    /// Export calls in flight: token -> number of spans.
    in_flight: std::collections::HashMap<u32, u64>,
}

/// Filter-state keys for the span tags, in `Workload::fields` order.
const SPAN_TAG_KEYS: [&str; 5] = [
    "trace_inject.service",
    "trace_inject.namespace",
    "trace_inject.version",
    "trace_inject.workload",
    "trace_inject.cluster",
];

/// The root context's tick, in milliseconds (shorter when export flushes more often).
const TICK_MS: u64 = 1000;

/// At most this many export calls are dispatched per tick (the rest wait, bounded by the buffer).
const MAX_CALLS_PER_TICK: usize = 4;

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        _body: usize,
        _trailers: usize,
    ) {
        let (Some(shared), Some(n)) = (&self.shared, self.in_flight.remove(&token)) else {
            return;
        };
        let status = host::header(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| std::str::from_utf8(&s).ok()?.parse::<u16>().ok());
        match status {
            Some(200..=299) => shared.metrics.spans_sent.add(n),
            other => {
                shared.metrics.spans_failed.add(n);
                log::debug!("span export: collector answered {other:?}; {n} spans lost");
            }
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        if let Some(level) = host::log_level() {
            log::set_max_level(level_filter(level));
        }
        let metrics = Metrics::define();
        let raw = host::plugin_configuration().unwrap_or_default();
        let config = match Config::parse(&raw) {
            Ok(c) => c,
            Err(e) => {
                log::error!("{e}");
                // No tick will come for a refused configuration: count it now.
                metrics.config_rejected.bump();
                metrics.config_rejected.flush();
                return false;
            }
        };
        let workload = Workload::resolve(&NodeInfo::read(node_property), &config.workload);
        log::info!(
            "configured: service={} namespace={} version={} workload={} cluster={} tracer={:?}",
            workload.service,
            workload.namespace,
            workload.version,
            workload.workload,
            workload.cluster,
            config.tracer
        );
        let hop = Cell::new(match config.tracer {
            TracerMode::Auto => HopState::Unknown,
            TracerMode::None => HopState::Plain,
            TracerMode::Envoy => HopState::Tracer,
        });
        // The tick hands counters to Envoy, re-reads the log level, and flushes exported spans.
        let tick_ms = config
            .export
            .as_ref()
            .map_or(TICK_MS, |e| e.flush_interval_ms.min(TICK_MS));
        host::set_tick_period_ms(u32::try_from(tick_ms).unwrap_or(1000));
        let exporter = config.export.clone().map(|e| Exporter {
            last_flush_ns: Cell::new(0),
            service: e
                .service_name
                .clone()
                .unwrap_or_else(|| workload.service.clone()),
            buffer: RefCell::new(SpanBuffer::new(e.buffer_limit)),
            active: Cell::new(true),
            config: e,
        });
        let ids = match self.shared.take() {
            // A reconfiguration keeps the seeded generator.
            Some(old) => match Rc::try_unwrap(old) {
                Ok(s) => s.ids,
                Err(_) => Ids::seeded(),
            },
            None => Ids::seeded(),
        };
        self.shared = Some(Rc::new(Shared {
            config,
            metrics,
            ids,
            workload,
            hop,
            exporter,
            envoy_log_level: Cell::new(host::log_level().unwrap_or(2)),
        }));
        true
    }

    fn on_tick(&mut self) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        shared.metrics.flush();
        if let Some(level) = host::log_level() {
            shared.envoy_log_level.set(level);
            log::set_max_level(level_filter(level));
        }
        let Some(e) = shared.exporting() else {
            return;
        };
        let c = &e.config;
        let now = host::now_nanos().unwrap_or(0);
        let interval_ns = c.flush_interval_ms.saturating_mul(1_000_000);
        if now.saturating_sub(e.last_flush_ns.get()) < interval_ns {
            return;
        }
        e.last_flush_ns.set(now);
        let authority = c.authority.as_deref().unwrap_or(&c.cluster);
        for _ in 0..MAX_CALLS_PER_TICK {
            let batch = e.buffer.borrow_mut().take(c.batch_size);
            if batch.is_empty() {
                break;
            }
            let n = batch.len() as u64;
            let common: Vec<(&str, &str)> = shared.workload.fields().into_iter().take(5).collect();
            let body = span::zipkin_json(&batch, &e.service, &common);
            let headers = vec![
                (":method", "POST"),
                (":path", c.path.as_str()),
                (":authority", authority),
                ("content-type", "application/json"),
            ];
            let timeout = std::time::Duration::from_millis(c.timeout_ms);
            match host::http_call(&c.cluster, headers, body.as_bytes(), timeout) {
                Some(token) => {
                    self.in_flight.insert(token, n);
                }
                None => {
                    shared.metrics.spans_failed.add(n);
                    log::debug!(
                        "span export: cannot call cluster {:?}; {n} spans lost",
                        c.cluster
                    );
                }
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let shared = self.shared.clone()?;
        Some(Box::new(Request {
            shared,
            decision: None,
            report: None,
            checks_hop: false,
            tracer_would_inject: false,
            span_start_ns: None,
            span_line: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Request {
    shared: Rc<Shared>,
    /// Kept from the request phase: request headers cannot be read in the response phase.
    decision: Option<Decision>,
    /// The trace id the caller is told (see `Decision::report`).
    report: Option<TraceId>,
    /// `auto` mode, hop not known yet: `on_log` checks whether the ids were replaced.
    checks_hop: bool,
    /// A tracer on this hop would have made a span and injected its ids (by the model of
    /// Envoy's extraction): ids found intact after an upstream request then prove there is none.
    tracer_would_inject: bool,
    /// When this filter reports a span for the request (export on, sampled): its start, and
    /// the request line, kept from the request phase (no header map read in `on_log` for it).
    span_start_ns: Option<u64>,
    span_line: Option<OwnedLine>,
}

/// Method, path and authority, owned.
struct OwnedLine {
    method: Option<String>,
    path: Option<String>,
    authority: Option<String>,
}

impl Context for Request {}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(pairs) = host::header_pairs(MapType::HttpRequestHeaders) else {
            return Action::Continue;
        };
        let shared = &*self.shared;
        let headers = TraceHeaders::collect(pairs.iter());
        let state = shared.hop.get();
        let hop = match state {
            HopState::Tracer => Hop::Tracer {
                reads_w3c: shared.reads_w3c(),
            },
            HopState::Plain | HopState::Unknown => Hop::Plain,
        };
        let mut decision =
            propagate::decide_for_hop(&headers, &shared.config, hop, &mut &shared.ids);
        if hop == Hop::Plain && shared.exporting().is_some() {
            let span_id = (&shared.ids).span_id();
            decision = propagate::as_participant(decision, &headers, &shared.config, span_id);
            if decision.context.sampling.sampled() {
                self.span_start_ns = host::now_nanos();
                let line = request_line(Some(&pairs));
                self.span_line = Some(OwnedLine {
                    method: line.method.map(str::to_string),
                    path: line.path.map(|p| loggable_path(p, false).to_string()),
                    authority: line.authority.map(str::to_string),
                });
            }
        }
        self.report = match state {
            // A tracer may run here (Envoy marked the request id as traced): only an id that holds
            // either way.
            HopState::Unknown if headers.tracer_hint() => {
                propagate::report_either_way(&decision, &headers, shared.reads_w3c())
            }
            _ => decision.report,
        };
        self.checks_hop = state == HopState::Unknown;
        if self.checks_hop {
            self.tracer_would_inject = envoy_tracer::predict(&headers, shared.reads_w3c()).outcome
                != envoy_tracer::Outcome::NoSpan;
        }
        for edit in &decision.edits {
            let map = MapType::HttpRequestHeaders;
            match (&edit.value, headers.has(edit.name)) {
                (Some(v), false) => host::add_header(map, edit.name, v.as_bytes()),
                (value, _) => host::set_header(map, edit.name, value.as_deref().map(str::as_bytes)),
            };
        }
        let m = &shared.metrics;
        if let Some(c) = m.source(decision.source) {
            c.bump();
        }
        if !decision.malformed.is_empty() {
            m.malformed.bump();
            if host_logs(shared, log::Level::Debug) {
                for (header, why) in &decision.malformed {
                    log::debug!("replaced malformed {header}: {why}");
                }
            }
        }
        if decision.conflict {
            m.conflicts.bump();
        }
        if state != HopState::Plain {
            // Span tags: Envoy's tracing custom tags read these as %FILTER_STATE(wasm.trace_inject.*:PLAIN)%.
            for (key, (_, value)) in SPAN_TAG_KEYS.iter().zip(shared.workload.fields()) {
                host::set_property(&[key], value.as_bytes());
            }
        }
        self.decision = Some(decision);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let (Some(name), Some(trace_id)) = (&self.shared.config.response_header, self.report)
        else {
            return Action::Continue;
        };
        // An id already there (Envoy's %TRACE_ID%, or this filter on the next hop) is kept.
        if let Ok(None) = host::header(MapType::HttpResponseHeaders, name) {
            let value = propagate::response_trace_id(trace_id);
            host::add_header(MapType::HttpResponseHeaders, name, value.as_bytes());
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        let shared = Rc::clone(&self.shared);
        let log_enabled = shared.config.log.enabled && host_logs(&shared, shared.log_level());
        if !log_enabled && !self.checks_hop && self.span_start_ns.is_none() {
            return;
        }
        let Some(decision) = &self.decision else {
            return;
        };
        // In on_log the request headers are the final ones: with Envoy's tracer, its ids.
        let pairs = if log_enabled || self.checks_hop {
            host::header_pairs(MapType::HttpRequestHeaders)
        } else {
            None
        };
        let headers = pairs
            .as_ref()
            .map(|p| TraceHeaders::collect(p.iter()))
            .unwrap_or_default();
        let carried = carried_context(&headers);
        if self.checks_hop && shared.hop.get() == HopState::Unknown {
            self.check_hop(decision, carried.as_ref());
        }
        let status = host::property(&["response", "code"]).and_then(|b| le_u64(&b));
        let upstream_cluster =
            host::property(&["xds", "cluster_name"]).and_then(|b| String::from_utf8(b).ok());
        let line = request_line(pairs.as_ref());
        if let (Some(start), Some(e)) = (self.span_start_ns, shared.exporting()) {
            let kept = self.span_line.as_ref().map(|l| RequestLine {
                method: l.method.as_deref(),
                path: l.path.as_deref(),
                authority: l.authority.as_deref(),
            });
            let span = own_span(
                decision,
                start,
                kept.as_ref().unwrap_or(&line),
                status,
                upstream_cluster.as_deref(),
            );
            let dropped = e.buffer.borrow_mut().push(span);
            shared.metrics.spans_dropped.add(dropped);
        }
        if !log_enabled {
            return;
        }
        let (trace_id, span_id, sampled) = match carried {
            Some(c) => (
                Some(c.trace_id.to_hex32()),
                Some(c.span_id.to_hex()),
                c.sampling.decision(),
            ),
            None => (self.report.map(TraceId::to_hex32), None, None),
        };
        let duration_us = host::property(&["request", "duration"])
            .and_then(|b| le_u64(&b))
            .map(|ns| ns / 1000);
        let record = LogRecord {
            trace_id,
            span_id,
            sampled,
            context: decision.source.name(),
            workload: &shared.workload,
            method: line.method,
            path: line
                .path
                .map(|p| loggable_path(p, shared.config.log.include_query)),
            status,
            duration_us,
            upstream_cluster: upstream_cluster.as_deref(),
        };
        log::log!(shared.log_level(), "{}", record.to_json());
    }
}

impl Request {
    /// `auto`: if the ids the request carried are not the ones this filter left, Envoy's tracer
    /// replaced them; if they are, after an upstream request for which a tracer would have
    /// injected its own, there is no tracer.
    fn check_hop(&self, decision: &Decision, carried: Option<&TraceContext>) {
        let Some(carried) = carried else {
            return;
        };
        let left = decision.context;
        if carried.span_id != left.span_id || !carried.trace_id.same_trace(&left.trace_id) {
            self.shared.tracer_detected();
        } else if self.tracer_would_inject && host::property(&["upstream", "address"]).is_some() {
            self.shared.hop.set(HopState::Plain);
        }
    }
}

/// The context the request left with: `b3` first (Envoy's tracer writes it back where it came
/// in), then `x-b3-*`, then `traceparent`.
fn carried_context(h: &TraceHeaders) -> Option<TraceContext> {
    let from = |f: Format| match f {
        Format::B3Single => h.b3_single.map(b3::parse_single),
        Format::B3Multi => Some(b3::parse_multi(&h.b3)),
        Format::W3c => h.traceparent.map(|v| w3c::parse(v).0),
    };
    Format::ALL.into_iter().find_map(|f| match from(f) {
        Some(Parsed::Context(c)) => Some(c),
        _ => None,
    })
}

/// The request's pseudo-headers, as the log line and the span need them.
#[derive(Default)]
struct RequestLine<'a> {
    method: Option<&'a str>,
    path: Option<&'a str>,
    authority: Option<&'a str>,
}

fn request_line(pairs: Option<&host::HeaderPairs>) -> RequestLine<'_> {
    let mut line = RequestLine::default();
    for (n, v) in pairs.into_iter().flat_map(|p| p.iter()) {
        let v = std::str::from_utf8(v).ok();
        match n {
            ":method" => line.method = v,
            ":path" => line.path = v,
            ":authority" => line.authority = v,
            _ => {}
        }
    }
    line
}

/// This filter's span for the request (export on): a SERVER span, child of the incoming context.
fn own_span(
    decision: &Decision,
    start_ns: u64,
    line: &RequestLine,
    status: Option<u64>,
    upstream_cluster: Option<&str>,
) -> FinishedSpan {
    let end_ns = host::now_nanos().unwrap_or(start_ns);
    let mut tags: Vec<(&'static str, String)> = Vec::with_capacity(6);
    if let Some(m) = line.method {
        tags.push(("http.method", m.to_string()));
    }
    if let Some(p) = line.path {
        tags.push(("http.path", loggable_path(p, false).to_string()));
    }
    if let Some(s) = status {
        tags.push(("http.status_code", s.to_string()));
        if s >= 500 {
            tags.push(("error", s.to_string()));
        }
    }
    if let Some(c) = upstream_cluster {
        tags.push(("upstream_cluster", c.to_string()));
    }
    let c = decision.context;
    FinishedSpan {
        trace_id: c.trace_id,
        id: c.span_id,
        parent_id: c.parent_span_id,
        name: line.authority.unwrap_or("-").to_string(),
        timestamp_us: start_ns / 1000,
        duration_us: end_ns.saturating_sub(start_ns) / 1000,
        debug: c.sampling == crate::context::Sampling::Debug,
        tags,
    }
}

/// Envoy serialises integer properties as 8 little-endian bytes.
fn le_u64(b: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(<[u8; 8]>::try_from(b).ok()?))
}

/// Whether Envoy logs `level` for Wasm, as of the last tick. Re-read each tick, not only at
/// configure: the level can change at runtime (`istioctl proxy-config log --level wasm:info`,
/// admin `/logging`), and the lines must then appear without a restart.
fn host_logs(shared: &Shared, level: log::Level) -> bool {
    level <= level_filter(shared.envoy_log_level.get())
}

fn level_filter(envoy_level: u32) -> log::LevelFilter {
    match envoy_level {
        0 => log::LevelFilter::Trace,
        1 => log::LevelFilter::Debug,
        2 => log::LevelFilter::Info,
        3 => log::LevelFilter::Warn,
        4 | 5 => log::LevelFilter::Error,
        _ => log::LevelFilter::Off,
    }
}

/// `log` records go to Envoy's log through `proxy_log`.
struct HostLogger;
static HOST_LOGGER: HostLogger = HostLogger;

impl log::Log for HostLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Trace => LogLevel::Trace,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        match record.args().as_str() {
            Some(s) => host::log(level, s),
            None => host::log(level, &record.args().to_string()),
        }
    }

    fn flush(&self) {}
}

//! The proxy-wasm adapter: reads headers, runs the pure decision, applies its edits.
//! Everything here is host plumbing; the logic lives in the pure modules.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use crate::config::Config;
use crate::host;
use crate::ids::{IdSource, TraceId};
use crate::propagate::{self, Source, TraceHeaders};

proxy_wasm::main! {{
    let _ = log::set_logger(&HOST_LOGGER);
    log::set_max_level(log::LevelFilter::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// Counters, defined once per VM in the root context.
#[derive(Default)]
struct Metrics {
    by_source: [Option<u32>; 5],
    malformed: Option<u32>,
    conflicts: Option<u32>,
    config_rejected: Option<u32>,
}

impl Metrics {
    fn define() -> Metrics {
        let c = |name: &str| host::define_counter(&format!("trace_inject.{name}"));
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
        }
    }

    fn source(&self, s: Source) -> Option<u32> {
        let i = match s {
            Source::B3Multi => 0,
            Source::B3Single => 1,
            Source::W3c => 2,
            Source::Injected => 3,
            Source::Repaired => 4,
        };
        self.by_source.get(i).copied().flatten()
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

/// What every HTTP context of this plugin shares.
struct Shared {
    config: Config,
    metrics: Metrics,
    ids: Ids,
}

struct Root {
    shared: Option<Rc<Shared>>,
}

impl Default for Root {
    fn default() -> Self {
        Root { shared: None }
    }
}

impl Context for Root {}

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
                host::increment(metrics.config_rejected);
                return false;
            }
        };
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
        }));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let shared = self.shared.clone()?;
        Some(Box::new(Request {
            shared,
            trace_id: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Request {
    shared: Rc<Shared>,
    /// Kept from the request phase: request headers cannot be read in the response phase.
    trace_id: Option<TraceId>,
}

impl Context for Request {}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(pairs) = host::header_pairs(MapType::HttpRequestHeaders) else {
            return Action::Continue;
        };
        let shared = &*self.shared;
        let decision = {
            let headers = TraceHeaders::collect(pairs.iter());
            propagate::decide(&headers, &shared.config, &mut &shared.ids)
        };
        for edit in &decision.edits {
            host::set_header(
                MapType::HttpRequestHeaders,
                edit.name,
                edit.value.as_deref().map(str::as_bytes),
            );
        }
        let m = &shared.metrics;
        host::increment(m.source(decision.source));
        if !decision.malformed.is_empty() {
            host::increment(m.malformed);
            if log::log_enabled!(log::Level::Debug) {
                for (header, why) in &decision.malformed {
                    log::debug!("replaced malformed {header}: {why}");
                }
            }
        }
        if decision.conflict {
            host::increment(m.conflicts);
        }
        self.trace_id = Some(decision.context.trace_id);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let (Some(name), Some(trace_id)) = (&self.shared.config.response_header, self.trace_id)
        else {
            return Action::Continue;
        };
        // An id already there (Envoy's %TRACE_ID%, or this filter on the next hop) is kept.
        if let Ok(None) = host::header(MapType::HttpResponseHeaders, name) {
            let value = propagate::response_trace_id(trace_id);
            host::set_header(MapType::HttpResponseHeaders, name, Some(value.as_bytes()));
        }
        Action::Continue
    }
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

//! What one plugin instance (a VM on one worker) holds and does outside requests: the settings
//! compiled at configure, the workload, counters, ids, what it knows of the hop, the export
//! buffer; and the tick that hands counters over, re-reads the log level and flushes spans.

use std::cell::Cell;

use crate::export::Exporter;
use crate::hop::{Change, Evidence, Hop, HopKnowledge};
use crate::host::{level_filter, Host};
use crate::ids::Ids;
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::workload::{NodeInfo, Workload};

/// The root context's tick, in milliseconds (shorter when export flushes more often).
pub const TICK_MS: u64 = 1000;

/// Shared-data key of what this plugin learnt about the hop (with the plugin's name: another
/// plugin of this module in the same Envoy may sit on another hop).
const HOP_KEY: &str = "trace_inject.hop";

pub struct Plugin {
    pub settings: Settings,
    pub metrics: Metrics,
    pub ids: Ids,
    pub workload: Workload,
    pub hop: HopKnowledge,
    pub exporter: Option<Exporter>,
    /// Envoy's log level for Wasm, re-read on every tick rather than asked per request: the level
    /// can change at runtime (`istioctl proxy-config log`, admin `/logging`) and lines must then
    /// appear without a restart.
    envoy_log_level: Cell<u32>,
    /// The configured `tracer` was contradicted by a request, and said so.
    mismatch_reported: Cell<bool>,
    /// When a change of the hop was last said (a listener draining its old connections can show
    /// both hops for a while: said at most once a minute).
    change_said_ns: Cell<Option<u64>>,
}

/// A change of the hop is said at most this often (nanoseconds).
const CHANGE_SAID_EVERY_NS: u64 = 60_000_000_000;

impl Plugin {
    /// `on_configure`: the plugin, or `None` with one error line naming the field. A
    /// reconfiguration passes the previous plugin's ids (the generator is seeded once per VM).
    pub fn configure(host: &impl Host, ids: Option<Ids>) -> Option<Plugin> {
        let metrics = Metrics::define(host);
        let raw = host.plugin_configuration().unwrap_or_default();
        let node = NodeInfo::read(|p| node_property(host, p));
        let settings = match Settings::parse(&raw, node.is_istio()) {
            Ok(s) => s,
            Err(e) => {
                host.log(log::Level::Error, &e.to_string());
                // No tick will come for a refused configuration: count it now.
                metrics.config_rejected.bump();
                metrics.config_rejected.flush(host);
                return None;
            }
        };
        let workload = Workload::resolve(&node, &settings.workload);
        let plugin_name = host
            .property(&["plugin_name"])
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        let hop = HopKnowledge::new(settings.starting_hop(), format!("{HOP_KEY}.{plugin_name}"));
        // What a worker learnt before a configuration update still holds.
        hop.adopt_shared(host);
        log_configured(host, &settings, &workload, hop.get());
        let exporter = settings
            .export
            .clone()
            .map(|e| Exporter::new(e, &workload, &node));
        let tick_ms = exporter
            .as_ref()
            .map_or(TICK_MS, |e| e.flush_interval_ms().min(TICK_MS));
        host.set_tick_period_ms(u32::try_from(tick_ms).unwrap_or(1000));
        Some(Plugin {
            hop,
            settings,
            metrics,
            ids: ids.unwrap_or_else(|| seeded_ids(host)),
            workload,
            exporter,
            envoy_log_level: Cell::new(host.log_level().unwrap_or(2)),
            mismatch_reported: Cell::new(false),
            change_said_ns: Cell::new(None),
        })
    }

    pub fn tick(&self, host: &impl Host) {
        if let Some(change) = self.hop.adopt_shared(host) {
            self.hop_changed(host, change, false);
        }
        self.metrics.flush(host);
        if let Some(level) = host.log_level() {
            self.envoy_log_level.set(level);
        }
        if let Some(e) = self.exporting() {
            e.flush(host, &self.workload, &self.metrics);
        }
    }

    pub fn on_http_call_response(&self, host: &impl Host, token: u32) {
        if let Some(e) = &self.exporter {
            e.on_response(host, token, &self.metrics);
        }
    }

    /// The VM goes away (Envoy reloads or removes the plugin): spans not yet sent, and those
    /// still waiting for the collector's answer, are lost; say how many, since no counter will
    /// be flushed after this.
    pub fn on_done(&self, host: &impl Host) {
        let (waiting, in_flight) = self
            .exporter
            .as_ref()
            .map_or((0, 0), |e| (e.pending(), e.in_flight_spans()));
        let lost = waiting as u64 + in_flight;
        if lost > 0 {
            self.metrics.spans_dropped.add(lost);
            host.log(
                log::Level::Warn,
                &format!(
                    "span export: the plugin stops with {waiting} spans not sent and {in_flight} not answered; they are lost"
                ),
            );
        }
        self.metrics.flush(host);
    }

    /// Whether Envoy logs `level` for Wasm, as of the last tick.
    pub fn logs(&self, level: log::Level) -> bool {
        level <= level_filter(self.envoy_log_level.get())
    }

    /// The exporter, where it may report: not beside Envoy's tracer (spans would be doubled).
    pub fn exporting(&self) -> Option<&Exporter> {
        self.exporter
            .as_ref()
            .filter(|_| !matches!(self.hop.get(), Hop::Tracer(_)))
    }

    /// One completed request's evidence about the hop.
    pub fn learn_hop(&self, host: &impl Host, e: Evidence) {
        if let Some(change) = self.hop.learn(host, e) {
            self.hop_changed(host, change, true);
        }
    }

    /// What a change of the hop does; said in the log by the worker that saw it (`seen_here`),
    /// once: a configured `tracer` the hop contradicts, the hop learnt, or the hop changed.
    fn hop_changed(&self, host: &impl Host, change: Change, seen_here: bool) {
        let tracer = matches!(change.to, Hop::Tracer(_));
        if let (true, Some(e)) = (tracer, &self.exporter) {
            e.discard();
        }
        // Counted and said once per Envoy: by the worker that saw it (the others, and Envoy's
        // main-thread VM, take it from shared data).
        if !seen_here {
            return;
        }
        if tracer {
            self.metrics.tracer_detected.bump();
            if self.exporter.is_some() {
                self.metrics.export_disabled.bump();
            }
        }
        let expected = self.settings.expected_hop;
        let (level, message) = match expected {
            Some(e) if e != change.to && !self.mismatch_reported.replace(true) => (
                log::Level::Warn,
                format!(
                    "the plugin configuration says {}, but this hop shows {}: the filter follows what the hop shows; set {} (or leave \"tracer\" out: the filter learns it)",
                    e.setting(),
                    change.to.describe(),
                    change.to.setting(),
                ),
            ),
            _ if change.from == Hop::Unknown => (
                log::Level::Info,
                format!("this hop: {} (shown by a completed request)", change.to.describe()),
            ),
            _ => {
                let now = host.now_nanos().unwrap_or(0);
                let recent = self
                    .change_said_ns
                    .get()
                    .is_some_and(|t| now.saturating_sub(t) < CHANGE_SAID_EVERY_NS);
                if recent {
                    return;
                }
                self.change_said_ns.set(Some(now));
                (
                    log::Level::Warn,
                    format!(
                        "this hop changed: {} before, {} now (a tracing provider added or removed?); the filter follows what it shows",
                        change.from.describe(),
                        change.to.describe(),
                    ),
                )
            }
        };
        host.log(level, &message);
        if self.exporter.is_some() && matches!(change.to, Hop::Tracer(_)) {
            host.log(
                log::Level::Warn,
                "Envoy's tracer reports this hop's spans: this filter stops exporting its own (they would be doubled); remove \"export\" from the plugin configuration of this hop",
            );
        }
    }
}

/// The id generator of a new VM, seeded from WASI's random_get (the clock where it fails).
fn seeded_ids(host: &impl Host) -> Ids {
    let (ids, err) = Ids::seeded(host.now_nanos().unwrap_or(0x9e37_79b9_7f4a_7c15));
    if let Some(e) = err {
        host.log(
            log::Level::Error,
            &format!("random_get failed ({e}); seeding ids from the clock"),
        );
    }
    ids
}

/// The one info line of a configuration taken: the workload and how the hop and sampling start.
fn log_configured(host: &impl Host, settings: &Settings, workload: &Workload, hop: Hop) {
    host.log(
        log::Level::Info,
        &format!(
            "configured: service={} namespace={} version={} workload={} cluster={} tracer={} hop={} new_trace_sampling={}",
            workload.service,
            workload.namespace,
            workload.version,
            workload.workload,
            workload.cluster,
            settings.tracer_name(),
            hop.describe(),
            settings.new_traces.describe(),
        ),
    );
}

/// Reads a property under Envoy's `xds.node` (older Envoys: `node`) as UTF-8.
fn node_property(host: &impl Host, path: &[&str]) -> Option<String> {
    let read = |prefix: &[&str]| {
        let full: Vec<&str> = prefix.iter().chain(path).copied().collect();
        host.property(&full).and_then(|b| String::from_utf8(b).ok())
    };
    read(&["xds", "node"]).or_else(|| read(&["node"]))
}

//! What one plugin instance (a VM on one worker) holds and does outside requests: the settings
//! compiled at configure, the workload, counters, ids, what it knows of the hop, the export
//! buffer; and the tick that hands counters over, re-reads the log level and flushes spans.

use std::cell::Cell;

use crate::export::Exporter;
use crate::hop::Hop;
use crate::host::{level_filter, Host};
use crate::ids::Ids;
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::tracer::TracerKind;
use crate::workload::{NodeInfo, Workload};

/// The root context's tick, in milliseconds (shorter when export flushes more often).
pub const TICK_MS: u64 = 1000;

/// Filter-state keys for the span tags, in `Workload::fields` order. Envoy's tracing custom tags
/// read them as `%FILTER_STATE(wasm.trace_inject.service:PLAIN)%`.
pub const SPAN_TAG_KEYS: [&str; 5] = [
    "trace_inject.service",
    "trace_inject.namespace",
    "trace_inject.version",
    "trace_inject.workload",
    "trace_inject.cluster",
];

pub struct Plugin {
    pub settings: Settings,
    pub metrics: Metrics,
    pub ids: Ids,
    pub workload: Workload,
    pub hop: Hop,
    pub exporter: Option<Exporter>,
    /// Envoy's log level for Wasm, re-read on every tick rather than asked per request: the level
    /// can change at runtime (`istioctl proxy-config log`, admin `/logging`) and lines must then
    /// appear without a restart.
    envoy_log_level: Cell<u32>,
}

impl Plugin {
    /// `on_configure`: the plugin, or `None` with one error line naming the field. A
    /// reconfiguration passes the previous plugin's ids (the generator is seeded once per VM).
    pub fn configure(host: &impl Host, ids: Option<Ids>) -> Option<Plugin> {
        let metrics = Metrics::define(host);
        let raw = host.plugin_configuration().unwrap_or_default();
        let settings = match Settings::parse(&raw) {
            Ok(s) => s,
            Err(e) => {
                host.log(log::Level::Error, &e.to_string());
                // No tick will come for a refused configuration: count it now.
                metrics.config_rejected.bump();
                metrics.config_rejected.flush(host);
                return None;
            }
        };
        let node = NodeInfo::read(|p| node_property(host, p));
        let workload = Workload::resolve(&node, &settings.workload);
        host.log(
            log::Level::Info,
            &format!(
                "configured: service={} namespace={} version={} workload={} cluster={} tracer={}",
                workload.service,
                workload.namespace,
                workload.version,
                workload.workload,
                workload.cluster,
                settings.tracer.name()
            ),
        );
        let exporter = settings
            .export
            .clone()
            .map(|e| Exporter::new(e, &workload, &node));
        let tick_ms = exporter
            .as_ref()
            .map_or(TICK_MS, |e| e.flush_interval_ms().min(TICK_MS));
        host.set_tick_period_ms(u32::try_from(tick_ms).unwrap_or(1000));
        let ids = ids.unwrap_or_else(|| {
            let (ids, err) = Ids::seeded(host.now_nanos().unwrap_or(0x9e37_79b9_7f4a_7c15));
            if let Some(e) = err {
                host.log(
                    log::Level::Error,
                    &format!("random_get failed ({e}); seeding ids from the clock"),
                );
            }
            ids
        });
        Some(Plugin {
            hop: Hop::new(settings.tracer),
            settings,
            metrics,
            ids,
            workload,
            exporter,
            envoy_log_level: Cell::new(host.log_level().unwrap_or(2)),
        })
    }

    pub fn tick(&self, host: &impl Host) {
        self.metrics.flush(host);
        if let Some(level) = host.log_level() {
            self.envoy_log_level.set(level);
        }
        if let Some(e) = &self.exporter {
            e.flush(host, &self.workload, &self.metrics);
        }
    }

    pub fn on_http_call_response(&self, host: &impl Host, token: u32) {
        if let Some(e) = &self.exporter {
            e.on_response(host, token, &self.metrics);
        }
    }

    /// The VM goes away (Envoy reloads or removes the plugin): spans not yet sent are lost; say
    /// how many, since no counter will be flushed after this.
    pub fn on_done(&self, host: &impl Host) {
        let lost = self.exporter.as_ref().map_or(0, Exporter::pending);
        if lost > 0 {
            self.metrics.spans_dropped.add(lost as u64);
            self.metrics.flush(host);
            host.log(
                log::Level::Warn,
                &format!("span export: the plugin stops with {lost} spans not sent; they are lost"),
            );
        } else {
            self.metrics.flush(host);
        }
    }

    /// Whether Envoy logs `level` for Wasm, as of the last tick.
    pub fn logs(&self, level: log::Level) -> bool {
        level <= level_filter(self.envoy_log_level.get())
    }

    /// The exporter, while it is on.
    pub fn exporting(&self) -> Option<&Exporter> {
        self.exporter.as_ref().filter(|e| e.active())
    }

    /// `auto` saw Envoy's tracer replace this filter's ids: once per VM, say so.
    pub fn tracer_detected(&self, host: &impl Host, kind: TracerKind) {
        self.metrics.tracer_detected.bump();
        if self.exporter.as_ref().is_some_and(Exporter::stop) {
            self.metrics.export_disabled.bump();
            host.log(
                log::Level::Warn,
                "Envoy's tracer reports this hop's spans: this filter stops exporting its own (they would be doubled); remove \"export\" from the plugin configuration of this hop",
            );
        }
        host.log(
            log::Level::Warn,
            &format!(
                "Envoy's tracer runs on this hop and replaced the ids this filter wrote: set {} in the plugin configuration; until a worker has seen this, \"auto\" may report a trace id the collector never receives",
                kind.setting()
            ),
        );
    }
}

/// Reads a property under Envoy's `xds.node` (older Envoys: `node`) as UTF-8.
fn node_property(host: &impl Host, path: &[&str]) -> Option<String> {
    let read = |prefix: &[&str]| {
        let full: Vec<&str> = prefix.iter().chain(path).copied().collect();
        host.property(&full).and_then(|b| String::from_utf8(b).ok())
    };
    read(&["xds", "node"]).or_else(|| read(&["node"]))
}

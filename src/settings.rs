//! The runtime settings: the plugin configuration compiled once, at configure, into what the
//! request path uses as it is (sampling as an integer threshold, outputs as a set, one tracer
//! vocabulary). Nothing here is re-derived per request.

use crate::config::{
    Config, ConfigError, ExportConfig, LogLevel, NewTraceSampling, TraceContextOption, TracerMode,
    TrustIncoming, WorkloadOverrides,
};
use crate::context::{Format, FormatSet};
use crate::tracer::TracerKind;

/// What the configuration says about Envoy's tracer on this hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tracer {
    /// Tell from what each worker sees; `zipkin` is the Zipkin tracer it would be (the other
    /// candidate is OpenTelemetry).
    Auto {
        zipkin: TracerKind,
    },
    None,
    Envoy(TracerKind),
}

impl Tracer {
    /// For the configure log line.
    pub fn name(self) -> &'static str {
        match self {
            Tracer::Auto { .. } => "auto",
            Tracer::None => "none",
            Tracer::Envoy(kind) => kind.name(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct LogSettings {
    pub enabled: bool,
    pub level: log::Level,
    pub include_query: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Which valid incoming format wins; only these are read as input.
    pub precedence: Vec<Format>,
    pub outputs: FormatSet,
    /// New traces sampled, per million.
    pub sampling_per_million: u32,
    /// New traces carry no sampling decision: the next tracer makes it.
    pub defer_new_traces: bool,
    pub trust: TrustIncoming,
    pub response_header: Option<String>,
    pub tracer: Tracer,
    pub log: LogSettings,
    pub workload: WorkloadOverrides,
    pub export: Option<ExportConfig>,
}

impl Settings {
    /// Parses, validates and compiles a plugin configuration.
    pub fn parse(bytes: &[u8]) -> Result<Settings, ConfigError> {
        Config::parse(bytes).map(Settings::from)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::from(Config::default())
    }
}

impl From<Config> for Settings {
    fn from(c: Config) -> Settings {
        let zipkin = TracerKind::Zipkin {
            reads_w3c: c.envoy_trace_context_option
                == TraceContextOption::USE_B3_WITH_W3C_PROPAGATION,
        };
        Settings {
            outputs: FormatSet::of(&c.outputs),
            sampling_per_million: (c.sampling_percent * 10_000.0).round() as u32,
            defer_new_traces: c.new_trace_sampling == NewTraceSampling::Defer,
            trust: c.trust_incoming,
            tracer: match c.tracer {
                TracerMode::Auto => Tracer::Auto { zipkin },
                TracerMode::None => Tracer::None,
                TracerMode::Envoy | TracerMode::Zipkin => Tracer::Envoy(zipkin),
                TracerMode::OpenTelemetry => Tracer::Envoy(TracerKind::OpenTelemetry),
            },
            log: LogSettings {
                enabled: c.log.enabled,
                level: match c.log.level {
                    LogLevel::Trace => log::Level::Trace,
                    LogLevel::Debug => log::Level::Debug,
                    LogLevel::Info => log::Level::Info,
                    LogLevel::Warn => log::Level::Warn,
                    LogLevel::Error => log::Level::Error,
                },
                include_query: c.log.include_query,
            },
            precedence: c.precedence,
            response_header: c.response_header,
            workload: c.workload,
            export: c.export,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_once_what_the_request_path_needs() {
        let s = Settings::parse(
            br#"{"sampling_percent": 12.5, "outputs": ["w3c"], "tracer": "envoy",
                 "envoy_trace_context_option": "USE_B3_WITH_W3C_PROPAGATION"}"#,
        )
        .unwrap();
        assert_eq!(s.sampling_per_million, 125_000);
        assert!(s.outputs.contains(Format::W3c) && !s.outputs.contains(Format::B3Multi));
        assert_eq!(
            s.tracer,
            Tracer::Envoy(TracerKind::Zipkin { reads_w3c: true })
        );
        let d = Settings::default();
        assert_eq!(d.sampling_per_million, 1_000_000);
        assert_eq!(
            d.tracer,
            Tracer::Auto {
                zipkin: TracerKind::Zipkin { reads_w3c: false }
            }
        );
        assert_eq!(d.log.level, log::Level::Info);
    }
}

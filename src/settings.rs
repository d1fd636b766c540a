//! The runtime settings: the plugin configuration compiled once, at configure, into what the
//! request path uses as it is (sampling as an integer threshold, outputs as a set, one tracer
//! vocabulary). Nothing here is re-derived per request.

use crate::config::{
    Config, ConfigError, ExportConfig, LogLevel, NewTraceSampling, TraceContextOption, TracerMode,
    TrustIncoming, WorkloadOverrides,
};
use crate::context::{Format, FormatSet};
use crate::hop::Hop;
use crate::tracer::TracerKind;

/// How a new trace (no incoming sampling decision) is sampled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewTraces {
    /// Envoy's decision, from its mark in `x-request-id` (the HCM's `tracing` sampling).
    Envoy,
    /// Sampled here: this many in a million.
    PerMillion(u32),
    /// No decision: the next tracer makes it.
    Defer,
}

impl NewTraces {
    /// For the configure log line.
    pub fn describe(self) -> String {
        match self {
            NewTraces::Envoy => "envoy (the x-request-id mark)".to_string(),
            // Integer arithmetic: float formatting would bring some 12 KB of code.
            NewTraces::PerMillion(n) => {
                let fraction = format!("{:04}", n % 10_000);
                let fraction = fraction.trim_end_matches('0');
                let dot = if fraction.is_empty() { "" } else { "." };
                format!("decide ({}{dot}{fraction}%)", n / 10_000)
            }
            NewTraces::Defer => "defer".to_string(),
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
    pub new_traces: NewTraces,
    /// Share of deferred incoming decisions sampled here, per million (`sampling_percent`).
    pub deferred_per_million: u32,
    pub trust: TrustIncoming,
    pub response_header: Option<String>,
    /// What the configuration says runs on this hop (`None`: `auto`). Checked against what
    /// requests show; only `Plain` is acted on before a request has shown it.
    pub expected_hop: Option<Hop>,
    pub log: LogSettings,
    pub workload: WorkloadOverrides,
    pub export: Option<ExportConfig>,
}

impl Settings {
    /// Parses, validates and compiles a plugin configuration for a proxy; `istio`: the node
    /// metadata says Istio (its connection managers carry a `tracing` block, so Envoy marks its
    /// sampling decision in every request id).
    pub fn parse(bytes: &[u8], istio: bool) -> Result<Settings, ConfigError> {
        Config::parse(bytes).map(|c| Settings::compile(c, istio))
    }

    pub fn compile(c: Config, istio: bool) -> Settings {
        let per_million = |p: f64| (p * 10_000.0).round() as u32;
        let percent = c.sampling_percent.map_or(1_000_000, per_million);
        let new_traces = match (c.new_trace_sampling, c.sampling_percent) {
            (Some(NewTraceSampling::Envoy), _) => NewTraces::Envoy,
            (Some(NewTraceSampling::Defer), _) => NewTraces::Defer,
            (Some(NewTraceSampling::Decide), _) | (None, Some(_)) => NewTraces::PerMillion(percent),
            (None, None) if istio => NewTraces::Envoy,
            (None, None) => NewTraces::PerMillion(percent),
        };
        let zipkin = TracerKind::Zipkin {
            reads_w3c: c.envoy_trace_context_option
                == TraceContextOption::USE_B3_WITH_W3C_PROPAGATION,
        };
        Settings {
            outputs: FormatSet::of(&c.outputs),
            new_traces,
            deferred_per_million: percent,
            trust: c.trust_incoming,
            expected_hop: match c.tracer {
                TracerMode::Auto => None,
                TracerMode::None => Some(Hop::Plain),
                TracerMode::Envoy | TracerMode::Zipkin => Some(Hop::Tracer(zipkin)),
                TracerMode::OpenTelemetry => Some(Hop::Tracer(TracerKind::OpenTelemetry)),
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

    /// The hop before any request has shown it: the configuration's word is taken for "no
    /// tracer" (the filter then writes its context from the first request), never for a tracer
    /// (beside a tracer the filter removes what the caller sent; on a setting's word alone, it
    /// would remove a caller's context where no tracer runs).
    pub fn starting_hop(&self) -> Hop {
        match self.expected_hop {
            Some(Hop::Plain) => Hop::Plain,
            _ => Hop::Unknown,
        }
    }

    /// For the configure log line.
    pub fn tracer_name(&self) -> &'static str {
        match self.expected_hop {
            None | Some(Hop::Unknown) => "auto",
            Some(Hop::Plain) => "none",
            Some(Hop::Tracer(kind)) => kind.name(),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::compile(Config::default(), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configure_line_says_the_percentage() {
        for (n, want) in [
            (1_000_000, "decide (100%)"),
            (125_000, "decide (12.5%)"),
            (1, "decide (0.0001%)"),
            (0, "decide (0%)"),
        ] {
            assert_eq!(NewTraces::PerMillion(n).describe(), want);
        }
    }

    #[test]
    fn compiles_once_what_the_request_path_needs() {
        let s = Settings::parse(
            br#"{"sampling_percent": 12.5, "outputs": ["w3c"], "tracer": "envoy",
                 "envoy_trace_context_option": "USE_B3_WITH_W3C_PROPAGATION"}"#,
            true,
        )
        .unwrap();
        assert_eq!(
            s.new_traces,
            NewTraces::PerMillion(125_000),
            "a percentage given: decide"
        );
        assert!(s.outputs.contains(Format::W3c) && !s.outputs.contains(Format::B3Multi));
        assert_eq!(
            s.expected_hop,
            Some(Hop::Tracer(TracerKind::Zipkin { reads_w3c: true }))
        );
        assert_eq!(
            s.starting_hop(),
            Hop::Unknown,
            "a tracer is never taken on its word"
        );
        let d = Settings::default();
        assert_eq!(d.new_traces, NewTraces::PerMillion(1_000_000));
        assert_eq!(d.expected_hop, None);
        assert_eq!(d.starting_hop(), Hop::Unknown);
        assert_eq!(d.log.level, log::Level::Info);
        let none = Settings::parse(br#"{"tracer": "none"}"#, false).unwrap();
        assert_eq!(none.starting_hop(), Hop::Plain);
    }

    /// The default follows the mesh on an Istio proxy (its connection managers mark Envoy's
    /// decision) and decides 100 % elsewhere; a percentage or an explicit value wins.
    #[test]
    fn new_trace_sampling_defaults_to_envoys_decision_on_istio_only() {
        let new = |json: &str, istio| Settings::parse(json.as_bytes(), istio).unwrap().new_traces;
        assert_eq!(new("{}", true), NewTraces::Envoy);
        assert_eq!(new("{}", false), NewTraces::PerMillion(1_000_000));
        assert_eq!(
            new(r#"{"sampling_percent": 5}"#, true),
            NewTraces::PerMillion(50_000)
        );
        assert_eq!(
            new(r#"{"new_trace_sampling": "envoy"}"#, false),
            NewTraces::Envoy
        );
        assert_eq!(
            new(r#"{"new_trace_sampling": "decide"}"#, true),
            NewTraces::PerMillion(1_000_000)
        );
        assert_eq!(
            new(r#"{"new_trace_sampling": "defer"}"#, true),
            NewTraces::Defer
        );
    }
}

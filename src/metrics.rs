//! The filter's counters (`trace_inject.*` in Envoy's stats). Increments are summed locally and
//! handed to Envoy on the root context's tick: a host call per request saved; `/stats` lags by at
//! most a tick.

use std::cell::Cell;

use crate::decision::Source;
use crate::host::Host;

#[derive(Default)]
pub struct Counter {
    id: Option<u32>,
    pending: Cell<u64>,
}

impl Counter {
    fn define(host: &impl Host, name: &str) -> Counter {
        Counter {
            id: host.define_counter(&format!("trace_inject.{name}")),
            pending: Cell::new(0),
        }
    }

    pub fn add(&self, n: u64) {
        self.pending.set(self.pending.get().saturating_add(n));
    }

    pub fn bump(&self) {
        self.add(1);
    }

    pub fn flush(&self, host: &impl Host) {
        let n = self.pending.replace(0);
        if let (Some(id), true) = (self.id, n > 0) {
            host.add_counter(id, n);
        }
    }
}

/// Counters, defined once per VM in the root context.
#[derive(Default)]
pub struct Metrics {
    /// By `Source::ALL` position: `requests.b3`, `.b3_single`, `.w3c`, `.injected`, `.repaired`.
    by_source: [Counter; 5],
    pub malformed: Counter,
    pub normalised: Counter,
    pub restarted: Counter,
    /// Requests the filter handled before any request had shown what runs on the hop.
    pub unknown_hop: Counter,
    pub conflicts: Counter,
    pub config_rejected: Counter,
    pub tracer_detected: Counter,
    pub spans_sent: Counter,
    pub spans_dropped: Counter,
    pub spans_failed: Counter,
    pub export_disabled: Counter,
    /// gRPC calls, and those that ended in a server error (`grpc::is_server_error`).
    pub grpc_calls: Counter,
    pub grpc_errors: Counter,
}

impl Metrics {
    pub fn define(host: &impl Host) -> Metrics {
        let c = |name: &str| Counter::define(host, name);
        Metrics {
            by_source: Source::ALL.map(|s| c(&format!("requests.{}", s.counter()))),
            malformed: c("malformed"),
            normalised: c("normalised"),
            restarted: c("requests.restarted"),
            unknown_hop: c("requests.unknown_hop"),
            conflicts: c("conflicts"),
            config_rejected: c("config_rejected"),
            tracer_detected: c("tracer_detected"),
            spans_sent: c("export.spans_sent"),
            spans_dropped: c("export.spans_dropped"),
            spans_failed: c("export.spans_failed"),
            export_disabled: c("export.disabled"),
            grpc_calls: c("grpc.calls"),
            grpc_errors: c("grpc.errors"),
        }
    }

    pub fn source(&self, s: Source) -> Option<&Counter> {
        let i = Source::ALL.iter().position(|x| *x == s)?;
        self.by_source.get(i)
    }

    pub fn flush(&self, host: &impl Host) {
        for c in self.by_source.iter().chain([
            &self.malformed,
            &self.normalised,
            &self.restarted,
            &self.unknown_hop,
            &self.conflicts,
            &self.config_rejected,
            &self.tracer_detected,
            &self.spans_sent,
            &self.spans_dropped,
            &self.spans_failed,
            &self.export_disabled,
            &self.grpc_calls,
            &self.grpc_errors,
        ]) {
            c.flush(host);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::FakeHost;

    #[test]
    fn sums_locally_and_hands_over_on_flush() {
        let host = FakeHost::new();
        let m = Metrics::define(&host);
        m.source(Source::B3Single).unwrap().bump();
        m.source(Source::B3Single).unwrap().bump();
        m.malformed.add(3);
        assert_eq!(host.counter("trace_inject.requests.b3_single"), 0);
        m.flush(&host);
        assert_eq!(host.counter("trace_inject.requests.b3_single"), 2);
        assert_eq!(host.counter("trace_inject.malformed"), 3);
        m.flush(&host);
        assert_eq!(host.counter("trace_inject.malformed"), 3, "flushed once");
        assert_eq!(
            host.calls_of("add_counter"),
            2,
            "nothing to add: no host call"
        );
    }
}

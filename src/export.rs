//! The filter's own spans (`export`), per worker: buffered as requests complete, posted from the
//! root context on its tick, answers counted. Spans buffered and bodies waiting for the collector
//! share one bound in bytes (`buffer_bytes`). The first failure is logged with its reason.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use crate::config::{ExportConfig, ExportProtocol};
use crate::host::{Host, Map};
use crate::metrics::Metrics;
use crate::span::{self, FinishedSpan, OtlpResource, SpanBuffer};
use crate::workload::{NodeInfo, Workload};

/// At most this many export calls are dispatched per tick (the rest wait, bounded by the buffer).
pub const MAX_CALLS_PER_TICK: usize = 4;

pub struct Exporter {
    config: ExportConfig,
    service: String,
    /// A Host header a real server accepts (derived from an Istio cluster name at configure).
    authority: String,
    path: String,
    /// The OTLP resource, encoded once (protocol `otlp`).
    resource: OtlpResource,
    buffer: RefCell<SpanBuffer>,
    last_flush_ns: Cell<u64>,
    /// Calls in flight: token -> (spans, body bytes). Envoy holds each body until the collector
    /// answers or `timeout_ms` passes.
    in_flight: RefCell<HashMap<u32, (u64, usize)>>,
    /// A failure was logged (later ones are counted only).
    failure_logged: Cell<bool>,
}

impl Exporter {
    pub fn new(config: ExportConfig, workload: &Workload, node: &NodeInfo) -> Exporter {
        let service = config
            .service_name
            .clone()
            .unwrap_or_else(|| workload.service.clone());
        Exporter {
            resource: OtlpResource::new(&service, workload, node),
            service,
            authority: config.resolved_authority().to_string(),
            path: config.resolved_path().to_string(),
            buffer: RefCell::new(SpanBuffer::new(config.buffer_limit, config.buffer_bytes)),
            last_flush_ns: Cell::new(0),
            in_flight: RefCell::new(HashMap::new()),
            failure_logged: Cell::new(false),
            config,
        }
    }

    pub fn flush_interval_ms(&self) -> u64 {
        self.config.flush_interval_ms
    }

    /// Buffers a finished span; counts the ones the bound pushed out.
    pub fn push(&self, span: FinishedSpan, metrics: &Metrics) {
        if let Ok(mut b) = self.buffer.try_borrow_mut() {
            metrics.spans_dropped.add(b.push(span));
        }
    }

    /// Drops what is buffered (Envoy's tracer reports this hop: the spans would be doubled).
    pub fn discard(&self) {
        if let Ok(mut b) = self.buffer.try_borrow_mut() {
            b.take(usize::MAX);
        }
    }

    /// Spans still waiting (what a VM that goes away loses).
    pub fn pending(&self) -> usize {
        self.buffer.try_borrow().map_or(0, |b| b.len())
    }

    /// Spans posted and not answered yet (also lost when the VM goes away).
    pub fn in_flight_spans(&self) -> u64 {
        self.in_flight
            .try_borrow()
            .map_or(0, |m| m.values().map(|(n, _)| n).sum())
    }

    fn in_flight_bytes(&self) -> usize {
        self.in_flight
            .try_borrow()
            .map_or(0, |m| m.values().map(|(_, b)| b).sum())
    }

    /// Logs the first failure at warning, with the cluster and the reason; later ones are counted
    /// only (`spans_failed`), at debug.
    fn failed(&self, host: &impl Host, n: u64, why: &str, metrics: &Metrics) {
        metrics.spans_failed.add(n);
        let first = !self.failure_logged.replace(true);
        let level = if first {
            log::Level::Warn
        } else {
            log::Level::Debug
        };
        host.log(
            level,
            &format!(
                "span export to cluster {:?} failed: {why}; {n} spans lost{}",
                self.config.cluster,
                if first {
                    " (later failures are counted in trace_inject.export.spans_failed)"
                } else {
                    ""
                }
            ),
        );
    }

    /// On the tick: once per flush interval, posts up to `MAX_CALLS_PER_TICK` batches.
    pub fn flush(&self, host: &impl Host, workload: &Workload, metrics: &Metrics) {
        let c = &self.config;
        let now = host.now_nanos().unwrap_or(0);
        if now.saturating_sub(self.last_flush_ns.get())
            < c.flush_interval_ms.saturating_mul(1_000_000)
        {
            return;
        }
        self.last_flush_ns.set(now);
        let common = workload.span_tags().map(|(tag, _, value)| (tag, value));
        for _ in 0..MAX_CALLS_PER_TICK {
            let batch = match self.buffer.try_borrow_mut() {
                Ok(mut b) => b.take(c.batch_size),
                Err(_) => break,
            };
            if batch.is_empty() {
                break;
            }
            let n = batch.len() as u64;
            let body = match c.protocol {
                ExportProtocol::Zipkin => span::zipkin_json(&batch, &self.service, &common),
                ExportProtocol::Otlp => span::otlp_json(&batch, &self.resource),
            };
            // Bodies Envoy holds for a collector that does not answer count against the same
            // bound as the buffer: past it, this batch is dropped like the buffer's oldest.
            let held = self.in_flight_bytes();
            if held.saturating_add(body.len()) > c.buffer_bytes {
                metrics.spans_dropped.add(n);
                continue;
            }
            let headers = [
                (":method", "POST"),
                (":path", self.path.as_str()),
                (":authority", self.authority.as_str()),
                ("content-type", c.protocol.content_type()),
            ];
            match host.http_call(&c.cluster, &headers, body.as_bytes(), c.timeout_ms) {
                Some(token) => {
                    self.in_flight.borrow_mut().insert(token, (n, body.len()));
                }
                None => self.failed(
                    host,
                    n,
                    "Envoy refused the call (no such cluster?)",
                    metrics,
                ),
            }
        }
        self.reserve_in_flight();
    }

    /// The buffer keeps room for the bodies in flight.
    fn reserve_in_flight(&self) {
        let held = self.in_flight_bytes();
        if let Ok(mut b) = self.buffer.try_borrow_mut() {
            b.reserve(held);
        }
    }

    /// The collector's answer to call `token`.
    pub fn on_response(&self, host: &impl Host, token: u32, metrics: &Metrics) {
        let Some((n, _)) = self.in_flight.borrow_mut().remove(&token) else {
            return;
        };
        self.reserve_in_flight();
        let status = host
            .header(Map::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| std::str::from_utf8(&s).ok()?.parse::<u16>().ok());
        match status {
            Some(200..=299) => metrics.spans_sent.add(n),
            Some(code) => self.failed(host, n, &format!("the collector answered {code}"), metrics),
            // Envoy's own failures (connection refused, timeout, no healthy host) come with no
            // answer headers.
            None => self.failed(
                host,
                n,
                "no answer (connection refused, timeout, or no healthy host)",
                metrics,
            ),
        }
    }
}

//! The filter's own spans (`export`), per worker: buffered as requests complete, posted from the
//! root context on its tick, answers counted. Envoy's tracer on the same hop stops it for good.

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
    /// Off for good once Envoy's tracer was seen on this hop (spans would be doubled).
    active: Cell<bool>,
    last_flush_ns: Cell<u64>,
    /// Calls in flight: token -> number of spans.
    in_flight: RefCell<HashMap<u32, u64>>,
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
            active: Cell::new(true),
            last_flush_ns: Cell::new(0),
            in_flight: RefCell::new(HashMap::new()),
            config,
        }
    }

    pub fn active(&self) -> bool {
        self.active.get()
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

    /// Stops exporting (Envoy's tracer reports this hop); returns whether it was on.
    pub fn stop(&self) -> bool {
        if let Ok(mut b) = self.buffer.try_borrow_mut() {
            b.take(usize::MAX);
        }
        self.active.replace(false)
    }

    /// Spans still waiting (what a VM that goes away loses).
    pub fn pending(&self) -> usize {
        self.buffer.try_borrow().map_or(0, |b| b.len())
    }

    /// On the tick: once per flush interval, posts up to `MAX_CALLS_PER_TICK` batches.
    pub fn flush(&self, host: &impl Host, workload: &Workload, metrics: &Metrics) {
        if !self.active.get() {
            return;
        }
        let c = &self.config;
        let now = host.now_nanos().unwrap_or(0);
        if now.saturating_sub(self.last_flush_ns.get())
            < c.flush_interval_ms.saturating_mul(1_000_000)
        {
            return;
        }
        self.last_flush_ns.set(now);
        let common: Vec<(&str, &str)> = workload.fields().into_iter().take(5).collect();
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
            let headers = [
                (":method", "POST"),
                (":path", self.path.as_str()),
                (":authority", self.authority.as_str()),
                ("content-type", c.protocol.content_type()),
            ];
            match host.http_call(&c.cluster, &headers, body.as_bytes(), c.timeout_ms) {
                Some(token) => {
                    self.in_flight.borrow_mut().insert(token, n);
                }
                None => {
                    metrics.spans_failed.add(n);
                    host.log(
                        log::Level::Debug,
                        &format!(
                            "span export: cannot call cluster {:?}; {n} spans lost",
                            c.cluster
                        ),
                    );
                }
            }
        }
    }

    /// The collector's answer to call `token`.
    pub fn on_response(&self, host: &impl Host, token: u32, metrics: &Metrics) {
        let Some(n) = self.in_flight.borrow_mut().remove(&token) else {
            return;
        };
        let status = host
            .header(Map::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| std::str::from_utf8(&s).ok()?.parse::<u16>().ok());
        match status {
            Some(200..=299) => metrics.spans_sent.add(n),
            other => {
                metrics.spans_failed.add(n);
                host.log(
                    log::Level::Debug,
                    &format!("span export: collector answered {other:?}; {n} spans lost"),
                );
            }
        }
    }
}

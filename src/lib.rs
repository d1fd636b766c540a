//! trace-inject: a proxy-wasm HTTP filter that keeps one valid trace context on every request.
//!
//! Pure modules (no host calls, unit-tested natively): the formats (`b3`, `w3c`, one
//! `propagator` interface), the `decision`, the `tracer` models, the `settings`, the `workload`,
//! the `log_record`, the `span` encoders. The adapter (`plugin`, `request`, `hop`, `export`,
//! `metrics`) reaches Envoy only through the `host` trait, so it is tested natively with a fake
//! host; `filter` is the thin proxy-wasm glue, compiled for wasm32 only.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod authority;
pub mod b3;
pub mod config;
pub mod context;
pub mod decision;
pub mod export;
pub mod formats;
pub mod grpc;
pub mod headers;
pub mod hop;
pub mod host;
pub mod ids;
pub mod log_record;
pub mod metrics;
pub mod plugin;
pub mod propagator;
pub mod request;
pub mod settings;
pub mod span;
pub mod text;
pub mod tracer;
pub mod w3c;
pub mod workload;

#[cfg(target_arch = "wasm32")]
mod filter;
#[doc(hidden)]
pub mod fixtures;

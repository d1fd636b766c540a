//! trace-inject: a proxy-wasm HTTP filter that keeps one valid trace context on every request.
//!
//! Everything but `filter` (and its host shim) is pure Rust with no host calls, unit-tested
//! natively; `filter` adapts it to proxy-wasm and is compiled for wasm32 only.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod authority;
pub mod b3;
pub mod config;
pub mod context;
pub mod envoy_tracer;
pub mod ids;
pub mod log_record;
pub mod propagate;
pub mod span;
pub mod w3c;
pub mod workload;

#[cfg(target_arch = "wasm32")]
mod filter;
#[cfg(target_arch = "wasm32")]
mod host;

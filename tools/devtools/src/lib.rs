//! Native helpers for trying and testing trace-inject, used by the e2e tests (as a library) and by
//! `make run` / `make traces` (the `trace-inject-devtools` binary):
//!
//! - [`EchoServer`]: an upstream that answers every request with the headers it received.
//! - [`Collector`]: an in-memory trace collector: the Zipkin v2 API (what Envoy's Zipkin tracer
//!   posts to) and OTLP/HTTP `POST /v1/traces` (what its OpenTelemetry tracer posts), one store.
//! - [`tree`]: traces rendered as indented trees for the terminal.
//! - [`term`]: text from the network escaped for printing on a terminal.
//! - [`envoy`]: a harness that runs a real Envoy on a config file for one test.
//! - [`http`]: a raw HTTP/1.1 client that sends header bytes exactly as given.
//! - [`h2`]: a minimal HTTP/2 (h2c) client that does the same over HTTP/2.
//!
//! The servers listen on 127.0.0.1 only; only the trace viewer may talk to another host.

mod chunked;
pub mod collector;
pub mod echo;
pub mod envoy;
pub mod h2;
pub mod http;
pub mod otlp;
mod server;
pub mod term;
pub mod tree;
pub mod zipkin;

pub use collector::Collector;
pub use echo::{EchoServer, RecordedRequest};
pub use envoy::{envoy_version, free_port, Envoy, EnvoyBuilder};
pub use http::{request, request_with_body, Response};
pub use zipkin::Span;

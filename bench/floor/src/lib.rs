//! The job floor `make bench` measures trace-inject against: a proxy-wasm filter that makes
//! exactly the host calls trace-inject's job needs and nothing else. Per request it reads the
//! request header map once (as bytes), adds the four context headers, and on the response looks
//! up `x-trace-id`, then adds it. No parsing, no decision: the ids come from the context id.
//! Whatever trace-inject costs beyond this is its logic; this is the limit for any proxy-wasm
//! filter doing this job.
//!
//! With the plugin configuration `tracer`, the floor of a hop where Envoy's tracer runs: it reads
//! the header map, writes the five span-tag filter-state values a tracer's custom tags read, and
//! looks up `x-trace-id` (the route's `%TRACE_ID%`), writing no header: what a filter that tags
//! every span must do on every request.
#![cfg(target_arch = "wasm32")]

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(FloorRoot::default()) });
}}

#[derive(Default)]
struct FloorRoot {
    tracer_hop: bool,
}

impl Context for FloorRoot {}

impl RootContext for FloorRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        self.tracer_hop = self.get_plugin_configuration().as_deref() == Some(b"tracer");
        true
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        if self.tracer_hop {
            return Some(Box::new(TracerFloor));
        }
        Some(Box::new(Floor {
            id: context_id,
            trace_id: String::new(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// A fixed high half, so that the trace id is 128 bits and never all zeros.
const HIGH: u64 = 0x463a_c35c_9f64_13ad;

struct Floor {
    id: u32,
    /// Kept from the request phase: the request headers cannot be read in the response phase.
    trace_id: String,
}

impl Context for Floor {}

impl HttpContext for Floor {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // The one read of the map a filter needs to see whatever context came in; unused here.
        drop(self.get_http_request_headers_bytes());
        // Ids trivially derived from the context id: unique per request on this worker.
        let trace_id = format!("{HIGH:016x}{:016x}", self.id);
        let span_id = format!("{:016x}", self.id);
        self.add_http_request_header("x-b3-traceid", &trace_id);
        self.add_http_request_header("x-b3-spanid", &span_id);
        self.add_http_request_header("x-b3-sampled", "1");
        self.add_http_request_header("traceparent", &format!("00-{trace_id}-{span_id}-01"));
        self.trace_id = trace_id;
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // As trace-inject does: never a second x-trace-id beside one the upstream set.
        if self.get_http_response_header_bytes("x-trace-id").is_none() {
            self.add_http_response_header("x-trace-id", &self.trace_id);
        }
        Action::Continue
    }
}

/// The tracer-hop floor: the span tags on every request, and the look-up of the id the route
/// returns.
struct TracerFloor;

impl Context for TracerFloor {}

const SPAN_TAGS: [(&str, &str); 5] = [
    ("trace_inject.service", "backend"),
    ("trace_inject.namespace", "default"),
    ("trace_inject.version", "v1"),
    ("trace_inject.workload", "backend-v1"),
    ("trace_inject.cluster", "Kubernetes"),
];

impl HttpContext for TracerFloor {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        drop(self.get_http_request_headers_bytes());
        for (key, value) in SPAN_TAGS {
            self.set_property(vec![key], Some(value.as_bytes()));
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        drop(self.get_http_response_header_bytes("x-trace-id"));
        Action::Continue
    }
}

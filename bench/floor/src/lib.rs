//! The job floor `make bench` measures trace-inject against: a proxy-wasm filter that makes
//! exactly the host calls trace-inject's job needs and nothing else. Per request it reads the
//! request header map once (as bytes), adds the four context headers, and on the response looks
//! up `x-trace-id`, then adds it. No parsing, no decision, no configuration: the ids come from the
//! context id. Whatever trace-inject costs beyond this is its logic; this is the limit for any
//! proxy-wasm filter doing this job.
#![cfg(target_arch = "wasm32")]

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(FloorRoot) });
}}

struct FloorRoot;

impl Context for FloorRoot {}

impl RootContext for FloorRoot {
    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
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

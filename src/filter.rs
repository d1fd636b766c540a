//! The proxy-wasm glue (wasm32 only): the SDK's root and HTTP contexts, each callback handing
//! off to `plugin` and `request` with the real host. No logic lives here.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

use crate::host::abi::{self, Abi};
use crate::plugin::Plugin;
use crate::request::RequestFilter;

proxy_wasm::main! {{
    // A panic aborts the VM (Envoy then fails or bypasses the worker's requests, per its
    // failure_policy): say why at critical before it does, so it is never silent.
    std::panic::set_hook(Box::new(|info| {
        abi::log(LogLevel::Critical, &format!("trace-inject panicked: {info}"));
    }));
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

#[derive(Default)]
struct Root {
    plugin: Option<Rc<Plugin>>,
}

impl Context for Root {
    fn on_done(&mut self) -> bool {
        if let Some(p) = &self.plugin {
            p.on_done(&Abi);
        }
        true
    }

    fn on_http_call_response(&mut self, token: u32, _: usize, _: usize, _: usize) {
        if let Some(p) = &self.plugin {
            p.on_http_call_response(&Abi, token);
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        // A reconfiguration keeps the seeded generator.
        let ids = self
            .plugin
            .take()
            .and_then(|old| Rc::try_unwrap(old).ok())
            .map(|old| old.ids);
        self.plugin = Plugin::configure(&Abi, ids).map(Rc::new);
        self.plugin.is_some()
    }

    fn on_tick(&mut self) {
        if let Some(p) = &self.plugin {
            p.tick(&Abi);
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let plugin = self.plugin.clone()?;
        Some(Box::new(Request(RequestFilter::new(plugin))))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Request(RequestFilter);

impl Context for Request {}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.0.on_request_headers(&Abi);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.0.on_response_headers(&Abi);
        Action::Continue
    }

    fn on_log(&mut self) {
        self.0.on_log(&Abi);
    }
}

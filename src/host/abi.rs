//! The real host: the proxy-wasm ABI calls this filter makes, each returning a `Result`/`Option`
//! and never panicking.
//!
//! proxy-wasm 0.2.5's own wrappers `panic!` on any status they do not expect (and its `String`
//! accessors `unwrap` UTF-8 conversions), which kills the VM and fails the worker's traffic. These
//! declare the same ABI imports and turn every status into a value the filter handles.

use std::ptr::null_mut;

use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType};

use super::{HeaderPairs, Host, Map};

const OK: u32 = 0;
const NOT_FOUND: u32 = 1;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: LogLevel, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_log_level(return_level: *mut u32) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: BufferType,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_add_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
    ) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_set_property(
        path_data: *const u8,
        path_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_define_metric(
        metric_type: MetricType,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
}

/// Takes ownership of a buffer the host allocated through the SDK's `proxy_on_memory_allocate`.
fn owned(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() || size == 0 {
        return Vec::new();
    }
    // SAFETY: the host filled `size` bytes at `data`, allocated by the SDK's allocator as a
    // `Vec<u8>` of exactly that capacity; ownership passes to us.
    unsafe { Vec::from_raw_parts(data, size, size) }
}

pub fn log(level: LogLevel, message: &str) {
    // SAFETY: pointer and length of a live &str.
    let _ = unsafe { proxy_log(level, message.as_ptr(), message.len()) };
}

/// Envoy's current log level for Wasm, so disabled levels cost nothing.
fn log_level() -> Option<u32> {
    let mut level = 0u32;
    // SAFETY: `level` outlives the call.
    (unsafe { proxy_get_log_level(&mut level) } == OK).then_some(level)
}

pub fn now_nanos() -> Option<u64> {
    let mut t = 0u64;
    // SAFETY: `t` outlives the call.
    (unsafe { proxy_get_current_time_nanoseconds(&mut t) } == OK).then_some(t)
}

fn plugin_configuration() -> Option<Vec<u8>> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: out-pointers to locals.
    let status = unsafe {
        proxy_get_buffer_bytes(
            BufferType::PluginConfiguration,
            0,
            usize::MAX,
            &mut data,
            &mut size,
        )
    };
    (status == OK).then(|| owned(data, size))
}

fn header_pairs(map: MapType) -> Option<HeaderPairs> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: out-pointers to locals.
    let status = unsafe { proxy_get_header_map_pairs(map, &mut data, &mut size) };
    (status == OK).then(|| HeaderPairs::parse(owned(data, size)))
}

/// `Ok(None)` when absent; `Err(status)` when the map cannot be read (e.g. request headers
/// after the request phase).
fn header(map: MapType, name: &str) -> Result<Option<Vec<u8>>, u32> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: key pointer/length of a live &str; out-pointers to locals.
    let status =
        unsafe { proxy_get_header_map_value(map, name.as_ptr(), name.len(), &mut data, &mut size) };
    match status {
        OK => Ok(Some(owned(data, size))),
        NOT_FOUND => Ok(None),
        other => Err(other),
    }
}

/// Sets (replacing every value of) `name`, or removes it when `value` is `None`.
fn set_header(map: MapType, name: &str, value: Option<&[u8]>) -> bool {
    // SAFETY: pointers/lengths of live slices.
    let status = unsafe {
        match value {
            Some(v) => {
                proxy_replace_header_map_value(map, name.as_ptr(), name.len(), v.as_ptr(), v.len())
            }
            None => proxy_remove_header_map_value(map, name.as_ptr(), name.len()),
        }
    };
    status == OK
}

/// Adds a value for `name` (cheaper than a replace for a header known to be absent).
fn add_header(map: MapType, name: &str, value: &[u8]) -> bool {
    // SAFETY: pointers/lengths of live slices.
    let status = unsafe {
        proxy_add_header_map_value(map, name.as_ptr(), name.len(), value.as_ptr(), value.len())
    };
    status == OK
}

fn property_path(path: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.iter().map(|p| p.len() + 1).sum());
    for (i, p) in path.iter().enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(p.as_bytes());
    }
    out
}

fn property(path: &[&str]) -> Option<Vec<u8>> {
    let path = property_path(path);
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: path pointer/length of a live Vec; out-pointers to locals.
    let status = unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) };
    (status == OK).then(|| owned(data, size))
}

/// Writes filter state (`wasm.<name>` in Envoy), readable by access logs and tracing custom tags.
fn set_property(path: &[&str], value: &[u8]) -> bool {
    let path = property_path(path);
    // SAFETY: pointers/lengths of live slices.
    let status =
        unsafe { proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len()) };
    status == OK
}

fn define_counter(name: &str) -> Option<u32> {
    let mut id = 0u32;
    // SAFETY: name pointer/length of a live &str; out-pointer to a local.
    let status =
        unsafe { proxy_define_metric(MetricType::Counter, name.as_ptr(), name.len(), &mut id) };
    (status == OK).then_some(id)
}

fn add(id: u32, n: u64) {
    // SAFETY: plain values.
    let _ = unsafe { proxy_increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX)) };
}

fn set_tick_period_ms(ms: u32) -> bool {
    // SAFETY: a plain value.
    (unsafe { proxy_set_tick_period_milliseconds(ms) }) == OK
}

/// Dispatches an HTTP call from the current (root) context. This one goes through the SDK: its
/// dispatcher must register the token to route the response back (it panics on a token it does
/// not know). Its wrapper panics on a status other than Ok/BadArgument/InternalFailure, the only
/// ones Envoy's `httpCall` returns.
fn shared_data(key: &str) -> Option<(Vec<u8>, u32)> {
    let (mut data, mut size, mut cas) = (null_mut(), 0usize, 0u32);
    let status =
        unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
    (status == OK).then(|| (owned(data, size), cas))
}

fn set_shared_data(key: &str, value: &[u8]) -> bool {
    // cas 0: write whatever version is there (the latest evidence wins).
    let status =
        unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), 0) };
    status == OK
}

fn http_call(
    cluster: &str,
    headers: Vec<(&str, &str)>,
    body: &[u8],
    timeout: std::time::Duration,
) -> Option<u32> {
    proxy_wasm::hostcalls::dispatch_http_call(cluster, headers, Some(body), vec![], timeout).ok()
}

fn map_type(map: Map) -> MapType {
    match map {
        Map::RequestHeaders => MapType::HttpRequestHeaders,
        Map::ResponseHeaders => MapType::HttpResponseHeaders,
        Map::HttpCallResponseHeaders => MapType::HttpCallResponseHeaders,
    }
}

/// The proxy-wasm host this module runs in.
pub struct Abi;

impl Host for Abi {
    fn header_pairs(&self, map: Map) -> Option<HeaderPairs> {
        header_pairs(map_type(map))
    }

    fn header(&self, map: Map, name: &str) -> Result<Option<Vec<u8>>, u32> {
        header(map_type(map), name)
    }

    fn set_header(&self, map: Map, name: &str, value: Option<&[u8]>) -> bool {
        set_header(map_type(map), name, value)
    }

    fn add_header(&self, map: Map, name: &str, value: &[u8]) -> bool {
        add_header(map_type(map), name, value)
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        property(path)
    }

    fn set_property(&self, path: &[&str], value: &[u8]) -> bool {
        set_property(path, value)
    }

    fn now_nanos(&self) -> Option<u64> {
        now_nanos()
    }

    fn log_level(&self) -> Option<u32> {
        log_level()
    }

    fn log(&self, level: log::Level, message: &str) {
        log(
            match level {
                log::Level::Trace => LogLevel::Trace,
                log::Level::Debug => LogLevel::Debug,
                log::Level::Info => LogLevel::Info,
                log::Level::Warn => LogLevel::Warn,
                log::Level::Error => LogLevel::Error,
            },
            message,
        )
    }

    fn plugin_configuration(&self) -> Option<Vec<u8>> {
        plugin_configuration()
    }

    fn define_counter(&self, name: &str) -> Option<u32> {
        define_counter(name)
    }

    fn add_counter(&self, id: u32, n: u64) {
        add(id, n)
    }

    fn set_tick_period_ms(&self, ms: u32) -> bool {
        set_tick_period_ms(ms)
    }

    fn shared_data(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        shared_data(key)
    }

    fn set_shared_data(&self, key: &str, value: &[u8]) -> bool {
        set_shared_data(key, value)
    }

    fn http_call(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Option<u32> {
        http_call(
            cluster,
            headers.to_vec(),
            body,
            std::time::Duration::from_millis(timeout_ms),
        )
    }
}

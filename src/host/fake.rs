//! An in-memory host for native tests of the adapter: header maps, properties, counters, logs and
//! HTTP calls as plain data, with the failure modes Envoy has (request headers unreadable in the
//! response phase).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use super::{HeaderPairs, Host, Map};

/// A header map: (name, value) in order.
pub type Pairs = Vec<(String, Vec<u8>)>;
/// Process-wide shared data: key -> (value, version).
pub type Shared = Rc<RefCell<HashMap<String, (Vec<u8>, u32)>>>;
/// An export call: (cluster, headers, body).
pub type Call = (String, Vec<(String, String)>, Vec<u8>);

#[derive(Default)]
pub struct FakeHost {
    pub headers: RefCell<HashMap<Map, Pairs>>,
    /// Maps that answer with an error status (Envoy: request headers after the request phase).
    pub unreadable: RefCell<Vec<Map>>,
    pub properties: RefCell<HashMap<Vec<String>, Vec<u8>>>,
    pub set_properties: RefCell<Vec<(Vec<String>, Vec<u8>)>>,
    pub now: Cell<u64>,
    pub envoy_log_level: Cell<u32>,
    pub logs: RefCell<Vec<(log::Level, String)>>,
    pub configuration: RefCell<Vec<u8>>,
    pub counters: RefCell<Vec<(String, u64)>>,
    pub tick_ms: Cell<u32>,
    /// (cluster, headers, body) of every call dispatched.
    pub calls: RefCell<Vec<Call>>,
    /// Whether `http_call` succeeds (Envoy refuses an unknown cluster).
    pub calls_fail: Cell<bool>,
    /// Host calls made, by kind, to check what the request path costs.
    pub call_counts: RefCell<HashMap<&'static str, u32>>,
    /// Process-wide shared data: (value, version). Clone the `Rc` into another fake to stand
    /// for another worker of the same Envoy.
    pub shared: Shared,
}

impl FakeHost {
    pub fn new() -> FakeHost {
        let h = FakeHost::default();
        h.envoy_log_level.set(2);
        h.now.set(1_700_000_000_000_000_000);
        h
    }

    /// Another worker of the same Envoy: its own maps and counters, the same shared data and
    /// plugin configuration.
    pub fn another_worker(&self) -> FakeHost {
        let mut h = FakeHost::new();
        h.shared.clone_from(&self.shared);
        h.configuration.replace(self.configuration.borrow().clone());
        h
    }

    fn count(&self, kind: &'static str) {
        *self.call_counts.borrow_mut().entry(kind).or_default() += 1;
    }

    pub fn calls_of(&self, kind: &'static str) -> u32 {
        self.call_counts.borrow().get(kind).copied().unwrap_or(0)
    }

    pub fn reset_call_counts(&self) {
        self.call_counts.borrow_mut().clear();
    }

    pub fn set_map(&self, map: Map, pairs: &[(&str, &str)]) {
        self.headers.borrow_mut().insert(
            map,
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
        );
    }

    /// The first value of `name` in `map`, as a string.
    pub fn get(&self, map: Map, name: &str) -> Option<String> {
        self.headers.borrow().get(&map).and_then(|m| {
            m.iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        })
    }

    pub fn all(&self, map: Map, name: &str) -> Vec<String> {
        self.headers
            .borrow()
            .get(&map)
            .map(|m| {
                m.iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn set_prop(&self, path: &[&str], value: &[u8]) {
        self.properties
            .borrow_mut()
            .insert(path.iter().map(|p| p.to_string()).collect(), value.to_vec());
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.counters
            .borrow()
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| *v)
    }

    pub fn logged(&self, level: log::Level) -> Vec<String> {
        self.logs
            .borrow()
            .iter()
            .filter(|(l, _)| *l == level)
            .map(|(_, m)| m.clone())
            .collect()
    }
}

impl Host for FakeHost {
    fn header_pairs(&self, map: Map) -> Option<HeaderPairs> {
        self.count("header_pairs");
        if self.unreadable.borrow().contains(&map) {
            return None;
        }
        let headers = self.headers.borrow();
        let pairs = headers.get(&map)?;
        let buf = HeaderPairs::serialize(pairs.iter().map(|(n, v)| (n.as_str(), v.as_slice())));
        Some(HeaderPairs::parse(buf))
    }

    fn header(&self, map: Map, name: &str) -> Result<Option<Vec<u8>>, u32> {
        self.count("header");
        if self.unreadable.borrow().contains(&map) {
            return Err(2);
        }
        Ok(self.headers.borrow().get(&map).and_then(|m| {
            m.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        }))
    }

    fn set_header(&self, map: Map, name: &str, value: Option<&[u8]>) -> bool {
        self.count("set_header");
        let mut headers = self.headers.borrow_mut();
        let m = headers.entry(map).or_default();
        m.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if let Some(v) = value {
            m.push((name.to_string(), v.to_vec()));
        }
        true
    }

    fn add_header(&self, map: Map, name: &str, value: &[u8]) -> bool {
        self.count("add_header");
        self.headers
            .borrow_mut()
            .entry(map)
            .or_default()
            .push((name.to_string(), value.to_vec()));
        true
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.count("property");
        let key: Vec<String> = path.iter().map(|p| p.to_string()).collect();
        self.properties.borrow().get(&key).cloned()
    }

    fn set_property(&self, path: &[&str], value: &[u8]) -> bool {
        self.count("set_property");
        self.set_properties
            .borrow_mut()
            .push((path.iter().map(|p| p.to_string()).collect(), value.to_vec()));
        true
    }

    fn now_nanos(&self) -> Option<u64> {
        Some(self.now.get())
    }

    fn log_level(&self) -> Option<u32> {
        Some(self.envoy_log_level.get())
    }

    fn log(&self, level: log::Level, message: &str) {
        self.count("log");
        self.logs.borrow_mut().push((level, message.to_string()));
    }

    fn plugin_configuration(&self) -> Option<Vec<u8>> {
        Some(self.configuration.borrow().clone())
    }

    fn define_counter(&self, name: &str) -> Option<u32> {
        let mut c = self.counters.borrow_mut();
        c.push((name.to_string(), 0));
        u32::try_from(c.len() - 1).ok()
    }

    fn add_counter(&self, id: u32, n: u64) {
        self.count("add_counter");
        if let Some((_, v)) = self.counters.borrow_mut().get_mut(id as usize) {
            *v += n;
        }
    }

    fn set_tick_period_ms(&self, ms: u32) -> bool {
        self.tick_ms.set(ms);
        true
    }

    fn shared_data(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.count("shared_data");
        self.shared.borrow().get(key).cloned()
    }

    fn set_shared_data(&self, key: &str, value: &[u8]) -> bool {
        self.count("set_shared_data");
        let mut shared = self.shared.borrow_mut();
        let version = shared.get(key).map_or(1, |(_, v)| v + 1);
        shared.insert(key.to_string(), (value.to_vec(), version));
        true
    }

    fn http_call(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        _timeout_ms: u64,
    ) -> Option<u32> {
        if self.calls_fail.get() {
            return None;
        }
        let mut calls = self.calls.borrow_mut();
        calls.push((
            cluster.to_string(),
            headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body.to_vec(),
        ));
        u32::try_from(calls.len()).ok()
    }
}

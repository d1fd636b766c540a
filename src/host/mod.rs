//! The host boundary: every call the filter makes into Envoy, as one trait whose methods return
//! values and never panic. `abi` implements it over the proxy-wasm ABI (wasm32 only); `fake`
//! implements it in memory, so the adapter's logic runs in native tests.

#[cfg(target_arch = "wasm32")]
pub mod abi;
#[cfg(test)]
pub mod fake;

/// The header maps the filter touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Map {
    RequestHeaders,
    ResponseHeaders,
    /// Headers of the collector's answer to an export call.
    HttpCallResponseHeaders,
}

/// Log levels, as Envoy numbers them (`proxy_get_log_level`).
pub fn level_filter(envoy_level: u32) -> log::LevelFilter {
    match envoy_level {
        0 => log::LevelFilter::Trace,
        1 => log::LevelFilter::Debug,
        2 => log::LevelFilter::Info,
        3 => log::LevelFilter::Warn,
        4 | 5 => log::LevelFilter::Error,
        _ => log::LevelFilter::Off,
    }
}

pub trait Host {
    /// The whole map in one call, raw bytes (a header value can be any bytes).
    fn header_pairs(&self, map: Map) -> Option<HeaderPairs>;
    /// `Ok(None)` when absent; `Err(status)` when the map cannot be read (e.g. request headers
    /// after the request phase).
    fn header(&self, map: Map, name: &str) -> Result<Option<Vec<u8>>, u32>;
    /// Sets (replacing every value of) `name`, or removes it when `value` is `None`.
    fn set_header(&self, map: Map, name: &str, value: Option<&[u8]>) -> bool;
    /// Adds a value (cheaper than a replace for a header known to be absent).
    fn add_header(&self, map: Map, name: &str, value: &[u8]) -> bool;
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;
    /// Filter state (`wasm.<name>` in Envoy), readable by access logs and tracing custom tags.
    fn set_property(&self, path: &[&str], value: &[u8]) -> bool;
    fn now_nanos(&self) -> Option<u64>;
    /// Envoy's current log level for Wasm (Envoy's numbering).
    fn log_level(&self) -> Option<u32>;
    fn log(&self, level: log::Level, message: &str);
    fn plugin_configuration(&self) -> Option<Vec<u8>>;
    fn define_counter(&self, name: &str) -> Option<u32>;
    fn add_counter(&self, id: u32, n: u64);
    fn set_tick_period_ms(&self, ms: u32) -> bool;
    /// Process-wide shared data (every worker's VM sees it): the value and its version, which
    /// changes with every write.
    fn shared_data(&self, key: &str) -> Option<(Vec<u8>, u32)>;
    fn set_shared_data(&self, key: &str, value: &[u8]) -> bool;
    /// Dispatches an HTTP call from the root context; the token routes the answer back.
    fn http_call(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Option<u32>;
}

/// A header map as the host serialises it, with accessors that never index out of bounds.
pub struct HeaderPairs {
    buf: Vec<u8>,
    /// (name start, name len, value start, value len) into `buf`.
    spans: Vec<(usize, usize, usize, usize)>,
}

impl HeaderPairs {
    /// Layout: u32 count, count × (u32 name len, u32 value len), then each name and value
    /// followed by a NUL. Anything inconsistent ends the list where it stops making sense.
    pub fn parse(buf: Vec<u8>) -> HeaderPairs {
        let u32_at = |at: usize| -> Option<usize> {
            let b = buf.get(at..at.checked_add(4)?)?;
            Some(u32::from_le_bytes(<[u8; 4]>::try_from(b).ok()?) as usize)
        };
        let count = u32_at(0).unwrap_or(0);
        let mut spans = Vec::with_capacity(count.min(256));
        let mut data = 4usize.saturating_add(count.saturating_mul(8));
        for i in 0..count {
            let (Some(nl), Some(vl)) = (u32_at(4 + i * 8), u32_at(8 + i * 8)) else {
                break;
            };
            let name_at = data;
            let value_at = name_at.saturating_add(nl).saturating_add(1);
            let end = value_at.saturating_add(vl).saturating_add(1);
            if end > buf.len() {
                break;
            }
            spans.push((name_at, nl, value_at, vl));
            data = end;
        }
        HeaderPairs { buf, spans }
    }

    /// The host's serialisation of `pairs` (what `parse` reads), for fakes and tests.
    pub fn serialize<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a [u8])> + Clone) -> Vec<u8> {
        let pairs: Vec<(&str, &[u8])> = pairs.into_iter().collect();
        let mut out = Vec::new();
        out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
        for (n, v) in &pairs {
            out.extend_from_slice(&(n.len() as u32).to_le_bytes());
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        }
        for (n, v) in &pairs {
            out.extend_from_slice(n.as_bytes());
            out.push(0);
            out.extend_from_slice(v);
            out.push(0);
        }
        out
    }

    /// (name, value) pairs; a name that is not UTF-8 (Envoy's codecs do not allow one) is skipped.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.spans.iter().filter_map(|&(n, nl, v, vl)| {
            let name = std::str::from_utf8(self.buf.get(n..n + nl)?).ok()?;
            Some((name, self.buf.get(v..v + vl)?))
        })
    }

    /// The first value of `name`, raw.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The first value of `name`, as UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_pairs_round_trip_and_survive_garbage() {
        let buf = HeaderPairs::serialize([(":path", &b"/a"[..]), ("x", b"\xff\x00y")]);
        let p = HeaderPairs::parse(buf.clone());
        let got: Vec<_> = p.iter().collect();
        assert_eq!(got, vec![(":path", &b"/a"[..]), ("x", &b"\xff\x00y"[..])]);
        assert_eq!(p.get_str(":path"), Some("/a"));
        // Truncated or lying buffers end the list; they never panic.
        for cut in 0..buf.len() {
            let p = HeaderPairs::parse(buf[..cut].to_vec());
            assert!(p.iter().count() <= 2);
        }
        let mut lying = buf;
        lying[0] = 0xff;
        assert!(HeaderPairs::parse(lying).iter().count() <= 2);
    }

    /// Envoy's levels (`proxy_get_log_level`): trace 0, debug 1, info 2, warn 3, error 4,
    /// critical 5, off 6.
    #[test]
    fn envoy_levels() {
        use log::LevelFilter as L;
        let want = [
            L::Trace,
            L::Debug,
            L::Info,
            L::Warn,
            L::Error,
            L::Error,
            L::Off,
            L::Off,
        ];
        for (envoy, want) in want.into_iter().enumerate() {
            assert_eq!(level_filter(envoy as u32), want, "{envoy}");
        }
    }
}

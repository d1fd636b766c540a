//! The `:authority` (Host header) of the filter's export requests: derived from an Istio cluster
//! name, checked against RFC 3986, and split into host and port for `server.address`.
//!
//! Why it matters: Go's `net/http` (Jaeger, the OpenTelemetry Collector) answers
//! `400 Bad Request: malformed Host header` to any byte outside RFC 3986's host alphabet
//! (`httpguts.ValidHostHeader`), and an Istio cluster name such as
//! `outbound|9411||jaeger-collector.istio-system.svc.cluster.local` holds `|`.

/// The longest authority accepted in configuration: a DNS name is at most 253 bytes, plus
/// `:65535`.
pub const MAX_CONFIG_AUTHORITY: usize = 259;

/// The Host an Envoy cluster name stands for. Istio names its outbound clusters
/// `outbound|PORT|SUBSET|HOST` (and inbound ones `inbound|PORT|SUBSET|HOST`): that is the
/// service host, which is what Istio itself sets as the `collector_hostname` of Envoy's Zipkin
/// tracer (pilot `LookupCluster` returns `svc.Hostname`, without the port). Any other name is
/// returned as it is.
pub fn from_cluster(cluster: &str) -> &str {
    let mut parts = cluster.split('|');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some("outbound" | "inbound"), Some(port), Some(_subset), Some(host), None)
            if !host.is_empty()
                && (port.is_empty() || port.bytes().all(|b| b.is_ascii_digit())) =>
        {
            host
        }
        _ => cluster,
    }
}

/// Whether `s` is a valid Host header: `host [ ":" port ]` with `host` an IP-literal
/// (`[v6]` or `[vX.future]`), an IPv4 address or a non-empty reg-name (unreserved,
/// pct-encoded, sub-delims), and `port` 1–65535 (RFC 9110 §7.2, RFC 3986 §3.2.2–3.2.3).
/// Stricter than Go's byte check, so whatever passes here passes there.
pub fn is_valid_host_header(s: &str) -> bool {
    if s.is_empty() || s.len() > MAX_CONFIG_AUTHORITY {
        return false;
    }
    match split_host_port(s) {
        Some((host, port)) => valid_host(host) && port.is_none_or(valid_port),
        None => false,
    }
}

/// `host[:port]` split in two; an IP-literal keeps its brackets. `None` when brackets are
/// unbalanced or followed by something other than `:port`.
pub fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if s.starts_with('[') {
        let end = s.find(']')?;
        let (host, rest) = s.split_at(end + 1);
        return match rest.strip_prefix(':') {
            Some(port) => Some((host, Some(port))),
            None if rest.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match s.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(port))),
        None => Some((s, None)),
    }
}

fn valid_port(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 5
        && p.bytes().all(|b| b.is_ascii_digit())
        && p.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n))
}

fn valid_host(h: &str) -> bool {
    if let Some(inner) = h.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        // IPv6 by its characters (hex, ':', '.' for an embedded IPv4), not a full parse: what a
        // Host header may hold is the point, and std's parser costs 3.5 KB of the module.
        let ipv6 = inner.contains(':')
            && inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        return ipv6 || is_ipv_future(inner);
    }
    // An IPv4 address is also a reg-name by these rules; a malformed one (`1.2.3`) is a
    // name a resolver may still take, as Go does.
    !h.is_empty() && is_reg_name(h.as_bytes())
}

/// `"v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )`
fn is_ipv_future(s: &str) -> bool {
    let Some(rest) = s.strip_prefix(['v', 'V']) else {
        return false;
    };
    let Some((ver, tail)) = rest.split_once('.') else {
        return false;
    };
    !ver.is_empty()
        && ver.bytes().all(|b| b.is_ascii_hexdigit())
        && !tail.is_empty()
        && tail
            .bytes()
            .all(|b| is_unreserved(b) || is_sub_delim(b) || b == b':')
}

fn is_reg_name(b: &[u8]) -> bool {
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            match (b.get(i + 1), b.get(i + 2)) {
                (Some(x), Some(y)) if x.is_ascii_hexdigit() && y.is_ascii_hexdigit() => i += 3,
                _ => return false,
            }
        } else if is_unreserved(c) || is_sub_delim(c) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_cluster_names_give_the_service_host() {
        let host = "jaeger-collector.istio-system.svc.cluster.local";
        assert_eq!(from_cluster(&format!("outbound|9411||{host}")), host);
        assert_eq!(from_cluster(&format!("outbound|4318|v1|{host}")), host);
        assert_eq!(from_cluster(&format!("inbound|9411||{host}")), host);
        assert_eq!(from_cluster("zipkin"), "zipkin", "a plain name stays");
        assert_eq!(
            from_cluster("outbound|9411||"),
            "outbound|9411||",
            "no host"
        );
        assert_eq!(
            from_cluster("outbound|x||h"),
            "outbound|x||h",
            "not Istio's shape"
        );
        assert_eq!(from_cluster("a|b|c|d|e"), "a|b|c|d|e");
        assert_eq!(from_cluster("outbound_.9411_._.h"), "outbound_.9411_._.h");
    }

    #[test]
    fn host_header_rules() {
        for ok in [
            "zipkin",
            "jaeger-collector.istio-system.svc.cluster.local",
            "jaeger-collector.istio-system.svc.cluster.local:9411",
            "127.0.0.1:4318",
            "[::1]",
            "[::1]:9411",
            "[v1.fe80::a+en1]",
            "[::ffff:192.0.2.1]",
            "x%41y",
            "under_score~tilde",
            "a!$&'()*+,;=b",
        ] {
            assert!(is_valid_host_header(ok), "{ok:?} should be accepted");
        }
        for bad in [
            "",
            "outbound|9411||jaeger-collector.istio-system.svc.cluster.local",
            "a b",
            "host:",
            "host:0",
            "host:65536",
            "host:123456",
            "host:8o",
            ":9411",
            "[::1",
            "[::1]x",
            "[zz]",
            "[::1]:",
            "user@host",
            "host/path",
            "x%4",
            "x%zz",
            "x%4z",
            "ab%41/x",
            "[::g]",
            "[192.0.2.1]",
            "ünïcode",
            "a:b:c",
            "tab\there",
        ] {
            assert!(!is_valid_host_header(bad), "{bad:?} should be refused");
        }
        assert!(!is_valid_host_header(&"a".repeat(MAX_CONFIG_AUTHORITY + 1)));
        assert!(is_valid_host_header(&"a".repeat(253)));
        let longest = format!("{}:65535", "a".repeat(253));
        assert_eq!(longest.len(), MAX_CONFIG_AUTHORITY);
        assert!(is_valid_host_header(&longest));
    }

    /// Every byte accepted here is one Go's `httpguts.validHostByte` accepts (Go 1.19's table,
    /// `src/vendor/golang.org/x/net/http/httpguts/httplex.go`).
    #[test]
    fn accepted_bytes_are_a_subset_of_gos() {
        let go: &[u8] =
            b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!$%&()*+,-.:;=['_]~";
        for b in 0u8..=255 {
            let s = [b'a', b, b'a'];
            if let Ok(s) = std::str::from_utf8(&s) {
                if is_valid_host_header(s) || is_valid_host_header(&format!("[v1.{}]", &s[1..2])) {
                    assert!(go.contains(&b), "byte {b:#x} accepted but Go refuses it");
                }
            }
        }
    }

    #[test]
    fn split_for_server_address() {
        assert_eq!(split_host_port("h:80"), Some(("h", Some("80"))));
        assert_eq!(split_host_port("h"), Some(("h", None)));
        assert_eq!(split_host_port("[::1]:80"), Some(("[::1]", Some("80"))));
        assert_eq!(split_host_port("[::1]"), Some(("[::1]", None)));
        assert_eq!(split_host_port("[::1"), None);
    }
}

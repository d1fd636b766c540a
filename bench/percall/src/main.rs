//! Runs the pure per-request path of trace-inject N times, for `make bench` to count its
//! instructions under `valgrind --tool=callgrind` (bench/run.sh subtracts the `empty` case, the
//! same loop doing nothing, and divides by N).
//!
//!   trace-inject-percall CASE N
//!
//! CASE: empty | inject | propagate | repair | ids | inject-splitmix
//!
//! One iteration is what `filter.rs` does per request minus the host calls: collect the trace
//! headers from the request's header pairs, decide (parse, generate, plan and format the edits),
//! format the response's trace id, drop it all. The headers are the ones Envoy hands the filter
//! for `wrk -H ...` (the pseudo-headers, x-forwarded-proto and x-request-id it adds), and the ids
//! come from the filter's own generator, `StdRng` (ChaCha12), unless the case says otherwise.

use std::hint::black_box;

use rand::rngs::StdRng;
use rand::SeedableRng;
use trace_inject::decision::{decide, Circumstances};
use trace_inject::headers::TraceHeaders;
use trace_inject::hop::Hop;
use trace_inject::ids::IdSource;
use trace_inject::settings::Settings;

/// What Envoy passes a filter for a plain `GET /` from wrk.
const BASE: [(&str, &[u8]); 6] = [
    (":authority", b"127.0.0.1:18000"),
    (":path", b"/"),
    (":method", b"GET"),
    (":scheme", b"http"),
    ("x-forwarded-proto", b"http"),
    ("x-request-id", b"0c8f2a3e-5b7d-4c1e-9a6f-2d4b8e1f3a5c"),
];

/// (d) a valid, sampled B3 multi context: the filter only adds `traceparent`.
pub const PROPAGATE: [(&str, &[u8]); 3] = [
    ("x-b3-traceid", b"463ac35c9f6413ad48485a3953bb6124"),
    ("x-b3-spanid", b"a2fb4a1d1a96d312"),
    ("x-b3-sampled", b"1"),
];

/// (e) a malformed one (a 31-digit trace id): the filter starts a new trace and rewrites it all.
pub const REPAIR: [(&str, &[u8]); 3] = [
    ("x-b3-traceid", b"463ac35c9f6413ad48485a3953bb612"),
    ("x-b3-spanid", b"a2fb4a1d1a96d312"),
    ("x-b3-sampled", b"1"),
];

/// A cheap non-cryptographic generator (splitmix64), to show what `StdRng` costs per request.
struct SplitMix(u64);

impl IdSource for SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn per_request(headers: &[(&'static str, &'static [u8])], cfg: &Settings, ids: &mut impl IdSource) {
    let h = TraceHeaders::collect(black_box(headers).iter().copied());
    let at = Circumstances {
        hop: Hop::Plain,
        exporting: false,
        trusted: true,
    };
    let d = decide(&h, cfg, at, ids);
    let response = d.told_trace_id.map(|t| t.to_hex32());
    black_box((&d, &response));
}

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_default();
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    if n == 0 {
        eprintln!(
            "usage: trace-inject-percall empty|inject|propagate|repair|ids|inject-splitmix N"
        );
        std::process::exit(2);
    }
    let cfg = Settings::default();
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let mut fast = SplitMix(0x5eed);
    let with = |extra: &[(&'static str, &'static [u8])]| -> Vec<(&'static str, &'static [u8])> {
        BASE.iter().chain(extra).copied().collect()
    };
    let plain = with(&[]);
    let propagate = with(&PROPAGATE);
    let repair = with(&REPAIR);
    match case.as_str() {
        "empty" => (0..n).for_each(|_| {
            black_box(black_box(&plain).len());
        }),
        "inject" => (0..n).for_each(|_| per_request(&plain, &cfg, &mut rng)),
        "propagate" => (0..n).for_each(|_| per_request(&propagate, &cfg, &mut rng)),
        "repair" => (0..n).for_each(|_| per_request(&repair, &cfg, &mut rng)),
        "inject-splitmix" => (0..n).for_each(|_| per_request(&plain, &cfg, &mut fast)),
        "ids" => (0..n).for_each(|_| {
            black_box((rng.trace_id(), rng.span_id()));
        }),
        other => {
            eprintln!("unknown case {other:?}");
            std::process::exit(2);
        }
    }
}

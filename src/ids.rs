//! Trace and span identifiers: strict lower-hex parsing, formatting, generation.
//!
//! Both B3 and W3C require lower-case hex and forbid all-zero ids, so one parser serves both.

/// A trace id. `wide` records whether it arrived as 128 bits: a 64-bit B3 trace id is propagated
/// in its own width, and left-padded with zeros where a format needs 128 bits (W3C, `x-trace-id`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceId {
    pub value: u128,
    pub wide: bool,
}

/// A 64-bit span id (never zero once parsed or generated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanId(pub u64);

impl TraceId {
    pub fn new_128(value: u128) -> Self {
        TraceId { value, wide: true }
    }

    /// Parses 16 or 32 lower-hex characters, refusing all zeros.
    pub fn parse(s: &[u8]) -> Option<Self> {
        let wide = match s.len() {
            32 => true,
            16 => false,
            _ => return None,
        };
        let value = parse_lower_hex(s)?;
        (value != 0).then_some(TraceId { value, wide })
    }

    /// Parses exactly 32 lower-hex characters (W3C), refusing all zeros.
    pub fn parse_128(s: &[u8]) -> Option<Self> {
        if s.len() != 32 {
            return None;
        }
        TraceId::parse(s)
    }

    /// B3 as Envoy's Zipkin tracer and OpenTelemetry's B3 propagator read it
    /// (`docs/b3-leniency.md`): 16 or 32 hex digits of either case, never all zero. Returns the
    /// id and whether it was already canonical (lower case), so the caller knows to rewrite it.
    /// Lengths stay strict: OpenTelemetry refuses any other, and so does the B3 spec.
    pub fn parse_b3_lenient(s: &[u8]) -> Option<(Self, bool)> {
        let wide = match s.len() {
            32 => true,
            16 => false,
            _ => return None,
        };
        let (value, canonical) = parse_any_case_hex(s)?;
        (value != 0).then_some((TraceId { value, wide }, canonical))
    }

    /// Same trace, whatever width it was written in.
    pub fn same_trace(&self, other: &TraceId) -> bool {
        self.value == other.value
    }

    /// The id in its own width (16 or 32 hex), as B3 carries it.
    pub fn to_b3(self) -> String {
        if self.wide {
            self.to_hex32()
        } else {
            hex_u64(self.value as u64)
        }
    }

    /// Always 32 hex, zero-padded: W3C `trace-id` and the `x-trace-id` response header.
    pub fn to_hex32(self) -> String {
        let mut out = String::with_capacity(32);
        push_hex(&mut out, self.value, 32);
        out
    }

    /// Appends the id as B3 carries it (16 or 32 hex).
    pub fn push_b3(self, out: &mut String) {
        push_hex(out, self.value, if self.wide { 32 } else { 16 });
    }

    /// Appends the id as 32 hex.
    pub fn push_hex32(self, out: &mut String) {
        push_hex(out, self.value, 32);
    }
}

impl SpanId {
    /// Parses exactly 16 lower-hex characters, refusing all zeros.
    pub fn parse(s: &[u8]) -> Option<Self> {
        if s.len() != 16 {
            return None;
        }
        let value = parse_lower_hex(s)?;
        (value != 0).then_some(SpanId(value as u64))
    }

    /// `x-b3-spanid` read leniently, like [`TraceId::parse_b3_lenient`]: exactly 16 hex digits
    /// of either case, non-zero; and whether it was already lower case.
    pub fn parse_b3_lenient(s: &[u8]) -> Option<(Self, bool)> {
        if s.len() != 16 {
            return None;
        }
        let (value, canonical) = parse_any_case_hex(s)?;
        (value != 0).then_some((SpanId(value as u64), canonical))
    }

    pub fn to_hex(self) -> String {
        hex_u64(self.0)
    }

    pub fn push_hex(self, out: &mut String) {
        push_hex(out, u128::from(self.0), 16);
    }
}

fn hex_u64(v: u64) -> String {
    let mut out = String::with_capacity(16);
    push_hex(&mut out, u128::from(v), 16);
    out
}

/// The low `digits` (16 or 32) hex digits of `v`, zero-padded, lower case. Every id the filter
/// writes goes through here (several per request): each half's 16 digits are computed at once in
/// two u64s, without a table or a loop (a per-digit loop was a fifth of the pure request path).
fn push_hex(out: &mut String, v: u128, digits: usize) {
    if digits > 16 {
        push_hex16(out, (v >> 64) as u64);
    }
    push_hex16(out, v as u64);
}

fn push_hex16(out: &mut String, v: u64) {
    let mut buf = [0u8; 16];
    let (hi, lo) = buf.split_at_mut(8);
    hi.copy_from_slice(&hex8(v >> 32).to_be_bytes());
    lo.copy_from_slice(&hex8(v & 0xffff_ffff).to_be_bytes());
    if let Ok(hex) = std::str::from_utf8(&buf) {
        out.push_str(hex);
    }
}

/// The 8 hex digits of the low 32 bits of `x` as ASCII, one per byte, the most significant digit
/// in the top byte.
fn hex8(x: u64) -> u64 {
    // Spread the nibbles apart: 0x1234_5678 -> 0x0102_0304_0506_0708.
    let x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    let x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    let x = (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    // 0x01 in each byte whose nibble is 10 or more (n + 6 carries into bit 4, never further).
    let letters = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    // '0' + n, plus 'a' - '0' - 10 = 39 for the letters; at most 102 per byte: no carries.
    x + 0x3030_3030_3030_3030 + letters * 39
}

/// Lower-case hex digits only (the specs' HEXDIGLC); at most 32 of them.
pub(crate) fn parse_lower_hex(s: &[u8]) -> Option<u128> {
    if s.is_empty() || s.len() > 32 {
        return None;
    }
    let mut v: u128 = 0;
    for &c in s {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | u128::from(d);
    }
    Some(v)
}

/// Hex digits of either case, at most 32; and whether all were lower case (canonical).
fn parse_any_case_hex(s: &[u8]) -> Option<(u128, bool)> {
    if s.is_empty() || s.len() > 32 {
        return None;
    }
    let mut v: u128 = 0;
    let mut canonical = true;
    for &c in s {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => {
                canonical = false;
                c - b'A' + 10
            }
            _ => return None,
        };
        v = (v << 4) | u128::from(d);
    }
    Some((v, canonical))
}

/// Source of fresh ids. Implemented by the filter over `rand` (seeded by WASI `random_get`), and
/// by tests with fixed sequences.
pub trait IdSource {
    fn next_u64(&mut self) -> u64;

    /// A 128-bit trace id, never all-zero.
    fn trace_id(&mut self) -> TraceId {
        loop {
            let v = (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64());
            if v != 0 {
                return TraceId::new_128(v);
            }
        }
    }

    /// A 64-bit span id, never zero.
    fn span_id(&mut self) -> SpanId {
        loop {
            let v = self.next_u64();
            if v != 0 {
                return SpanId(v);
            }
        }
    }
}

impl<R: rand::RngCore> IdSource for R {
    fn next_u64(&mut self) -> u64 {
        rand::RngCore::next_u64(self)
    }
}

/// The filter's ids: `rand`'s StdRng, seeded once per VM from the OS (WASI `random_get` in Envoy),
/// shared by every request of the VM.
pub struct Ids {
    rng: std::cell::RefCell<rand::rngs::StdRng>,
    /// A splitmix state for the (unreachable: one thread, no re-entry) case the rng is borrowed.
    fallback: std::cell::Cell<u64>,
}

impl Ids {
    /// Seeded from the OS; where that fails, from `fallback_seed` (the clock), with `Err` saying why.
    pub fn seeded(fallback_seed: u64) -> (Ids, Option<String>) {
        use rand::SeedableRng;
        let (rng, err) = match rand::rngs::StdRng::try_from_os_rng() {
            Ok(rng) => (rng, None),
            Err(e) => (
                rand::rngs::StdRng::seed_from_u64(fallback_seed),
                Some(e.to_string()),
            ),
        };
        let ids = Ids {
            rng: std::cell::RefCell::new(rng),
            fallback: std::cell::Cell::new(fallback_seed),
        };
        (ids, err)
    }
}

impl IdSource for &Ids {
    fn next_u64(&mut self) -> u64 {
        match self.rng.try_borrow_mut() {
            Ok(mut rng) => rand::RngCore::next_u64(&mut *rng),
            // Distinct values are all this unreachable path needs (the golden-ratio step
            // visits every u64 once per period); a zero is skipped by the callers.
            Err(_) => {
                let x = self.fallback.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
                self.fallback.set(x);
                x
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_what_format_writes_for_every_digit_in_every_place() {
        let mut values = vec![0u128, 1, u128::MAX, u128::from(u64::MAX), 1 << 64];
        // Each digit value in each position, and a spread of others.
        for place in 0..32 {
            for digit in 0..16u128 {
                values.push(digit << (4 * place));
            }
        }
        let mut x = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834u128;
        for _ in 0..10_000 {
            x = x
                .wrapping_mul(0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645)
                .wrapping_add(1);
            values.push(x);
        }
        for v in values {
            let mut s = String::new();
            push_hex(&mut s, v, 32);
            assert_eq!(s, format!("{v:032x}"));
            let mut s = String::new();
            push_hex(&mut s, v, 16);
            assert_eq!(s, format!("{:016x}", v as u64));
        }
    }

    #[test]
    fn parses_both_widths_and_refuses_the_rest() {
        let t = TraceId::parse(b"463ac35c9f6413ad48485a3953bb6124").unwrap();
        assert!(t.wide);
        assert_eq!(t.to_b3(), "463ac35c9f6413ad48485a3953bb6124");
        let t = TraceId::parse(b"48485a3953bb6124").unwrap();
        assert!(!t.wide);
        assert_eq!(t.to_b3(), "48485a3953bb6124");
        assert_eq!(t.to_hex32(), "000000000000000048485a3953bb6124");
        for bad in [
            &b""[..],
            b"48485a3953bb612",
            b"48485a3953bb61245",
            b"463AC35C9F6413AD48485A3953BB6124",
            b"0000000000000000",
            b"00000000000000000000000000000000",
            b"48485a3953bb612g",
            b"48485a3953bb612-",
            b"48485a3953bb 124",
            b"\xff\xfe",
        ] {
            assert_eq!(TraceId::parse(bad), None, "{bad:?}");
        }
        assert_eq!(TraceId::parse_128(b"48485a3953bb6124"), None);
    }

    #[test]
    fn span_ids_are_16_lower_hex_non_zero() {
        assert_eq!(
            SpanId::parse(b"00f067aa0ba902b7"),
            Some(SpanId(0x00f067aa0ba902b7))
        );
        assert_eq!(SpanId(0xf067aa0ba902b7).to_hex(), "00f067aa0ba902b7");
        assert_eq!(SpanId::parse(b"0000000000000000"), None);
        assert_eq!(SpanId::parse(b"00F067AA0BA902B7"), None);
        assert_eq!(SpanId::parse(b"00f067aa0ba902b"), None);
        assert_eq!(SpanId::parse(b"463ac35c9f6413ad48485a3953bb6124"), None);
    }

    struct Zeros(u32);
    impl IdSource for Zeros {
        fn next_u64(&mut self) -> u64 {
            // zeros first, then ones: generation must skip the all-zero ids.
            self.0 += 1;
            if self.0 <= 2 {
                0
            } else {
                1
            }
        }
    }

    #[test]
    fn generated_ids_are_never_zero() {
        let mut src = Zeros(0);
        assert_ne!(src.trace_id().value, 0);
        let mut src = Zeros(0);
        assert_ne!(src.span_id().0, 0);
    }

    #[test]
    fn real_randomness_differs() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::from_os_rng();
        let a = rng.trace_id();
        let b = rng.trace_id();
        assert_ne!(a, b);
        assert!(a.wide);
    }

    /// The VM's ids differ draw to draw, also from the fallback used while the rng is borrowed.
    #[test]
    fn the_vms_ids_differ_draw_to_draw() {
        let (ids, err) = Ids::seeded(7);
        assert_eq!(err, None);
        let mut src = &ids;
        let a: Vec<u64> = (0..4).map(|_| src.next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] != w[1]), "{a:?}");
        let busy = ids.rng.borrow_mut();
        let b: Vec<u64> = (0..4).map(|_| src.next_u64()).collect();
        drop(busy);
        assert!(
            b.windows(2).all(|w| w[0] != w[1]) && !b.contains(&0),
            "{b:?}"
        );
        assert_ne!(src.trace_id(), src.trace_id());
    }

    /// At most 32 digits, at least one; lower case only, or (lenient) either case and whether
    /// it was canonical. (The callers check lengths too; these are the helpers' own bounds.)
    #[test]
    fn hex_helpers_bound_their_input() {
        let max = [b'f'; 32];
        assert_eq!(parse_lower_hex(&max), Some(u128::MAX));
        assert_eq!(parse_lower_hex(&[b'1'; 33]), None);
        assert_eq!(parse_lower_hex(b""), None);
        assert_eq!(parse_lower_hex(b"F"), None);
        assert_eq!(parse_any_case_hex(&[b'F'; 32]), Some((u128::MAX, false)));
        assert_eq!(parse_any_case_hex(&[b'1'; 33]), None);
        assert_eq!(parse_any_case_hex(b""), None);
        assert_eq!(parse_any_case_hex(b"0a"), Some((10, true)));
    }
    #[test]
    fn b3_ids_read_leniently_as_envoy_and_opentelemetry_do() {
        let (t, canonical) =
            TraceId::parse_b3_lenient(b"463AC35C9F6413AD48485A3953BB6124").unwrap();
        assert!(!canonical);
        assert!(t.wide);
        assert_eq!(
            t.to_b3(),
            "463ac35c9f6413ad48485a3953bb6124",
            "written lower case"
        );
        assert_eq!(
            TraceId::parse_b3_lenient(b"463ac35c9f6413ad48485a3953bb6124"),
            Some((
                TraceId::parse(b"463ac35c9f6413ad48485a3953bb6124").unwrap(),
                true
            ))
        );
        let (t, canonical) = TraceId::parse_b3_lenient(b"48485a3953BB6124").unwrap();
        assert!(!canonical && !t.wide);
        assert_eq!(t.to_b3(), "48485a3953bb6124");
        assert_eq!(t.to_hex32(), "000000000000000048485a3953bb6124");
        for bad in [
            &b""[..],
            b"48485A3953BB612",
            b"48485A3953BB61245",
            b"0x48485a3953bb6124",
            b"0x48485a3953bb61",
            b"0000000000000000",
            b"00000000000000000000000000000000",
            b"48485a3953bb612G",
            b"+8485a3953bb6124",
            b" 48485a3953bb6124",
            b"\xff\xfe",
        ] {
            assert_eq!(TraceId::parse_b3_lenient(bad), None, "{bad:?}");
        }

        assert_eq!(
            SpanId::parse_b3_lenient(b"A2FB4A1D1A96D312"),
            Some((SpanId(0xa2fb4a1d1a96d312), false))
        );
        assert_eq!(
            SpanId::parse_b3_lenient(b"a2fb4a1d1a96d312"),
            Some((SpanId(0xa2fb4a1d1a96d312), true))
        );
        for bad in [
            &b""[..],
            b"A2FB4A1D1A96D31",
            b"463ac35c9f6413ad48485a3953bb6124",
            b"0000000000000000",
            b"a2fb4a1d1a96d31z",
        ] {
            assert_eq!(SpanId::parse_b3_lenient(bad), None, "{bad:?}");
        }
    }
}

//! The registry of trace formats (Envoy's `propagator_factory`): the one place that maps a
//! `Format` to its propagator, and what the composite propagator does with all of them — extract
//! every format, take the first valid context in an order. Nothing else matches on `Format` to
//! find a format's code.

use crate::context::{Format, TraceContext};
use crate::headers::TraceHeaders;
use crate::propagator::{Extracted, Propagator};

/// The propagator of a format.
pub fn of(f: Format) -> &'static dyn Propagator {
    match f {
        Format::B3Multi => &crate::b3::B3Multi,
        Format::B3Single => &crate::b3::B3Single,
        Format::W3c => &crate::w3c::W3c,
    }
}

/// Every format's view of one request, in `Format::ALL` order.
pub fn extract_all(h: &TraceHeaders) -> [Extracted; 3] {
    Format::ALL.map(|f| {
        let p = of(f);
        if p.present(h) {
            p.extract(h)
        } else {
            Extracted::ABSENT
        }
    })
}

/// The first valid context in `order` (the composite propagator's rule).
pub fn first_context(states: &[Extracted; 3], order: &[Format]) -> Option<(Format, TraceContext)> {
    order.iter().find_map(|f| {
        states
            .get(f.index())
            .and_then(Extracted::context)
            .map(|c| (*f, *c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One propagator per format, each naming the header a malformed value is reported under.
    #[test]
    fn one_propagator_per_format() {
        for f in Format::ALL {
            assert_eq!(of(f).format(), f);
        }
        assert_eq!(of(Format::W3c).label(), "traceparent");
        assert_eq!(of(Format::B3Single).label(), "b3");
        assert_eq!(of(Format::B3Multi).label(), "x-b3-*");
    }
}

//! Envoy's Datadog tracer (`envoy.tracers.datadog`, Istio's `datadog` provider), as measured on
//! Envoy 1.37.0 and 1.40.0 (docs/tracers.md):
//!
//! - It reads Datadog's headers (`x-datadog-trace-id`, ...) first, then W3C `traceparent`; B3 is
//!   ignored and goes upstream as it came.
//! - It always makes a span and writes its context as `x-datadog-*` and as `traceparent` (with a
//!   `dd=` member in `tracestate`), the same 128-bit trace id in both.
//! - An incoming Datadog context is joined by an id this filter does not read (its high half is
//!   in `x-datadog-tags`): treated as a trace nobody knows yet. A `traceparent` is joined where
//!   both W3C's rule and Envoy's OpenTelemetry rule accept it; anything else is treated as
//!   unknown too, never guessed.
//! - `%TRACE_ID%` returns this hop's span id there, not the trace id: no route header helps.

use super::{opentelemetry, Outcome, Prediction};
use crate::context::{Format, FormatSet};
use crate::headers::TraceHeaders;

pub fn predict(h: &TraceHeaders) -> Prediction {
    let strict = h
        .traceparent
        .is_some_and(crate::w3c::is_canonical_traceparent);
    let outcome = match opentelemetry::predict(h).outcome {
        Outcome::Join(t) if strict && !h.datadog => Outcome::Join(t),
        _ => Outcome::NewRoot,
    };
    Prediction {
        outcome,
        writes: FormatSet::of(&[Format::W3c]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{TRACEPARENT, W3C_TRACE};

    fn predict_for(pairs: &[(&str, &str)]) -> Outcome {
        predict(&crate::fixtures::headers(pairs)).outcome
    }

    #[test]
    fn joins_a_canonical_traceparent_unless_datadogs_own_context_came() {
        let t = u128::from_str_radix(W3C_TRACE, 16).unwrap_or(0);
        assert_eq!(
            predict_for(&[("traceparent", TRACEPARENT)]),
            Outcome::Join(t)
        );
        assert_eq!(predict_for(&[]), Outcome::NewRoot);
        assert_eq!(
            predict_for(&[("traceparent", TRACEPARENT), ("x-datadog-trace-id", "123")]),
            Outcome::NewRoot,
            "Datadog's own headers win"
        );
        let upper = TRACEPARENT.to_uppercase();
        assert_eq!(predict_for(&[("traceparent", &upper)]), Outcome::NewRoot);
        assert_eq!(
            predict_for(&[("traceparent", "junk")]),
            Outcome::NewRoot,
            "never no span"
        );
    }
}

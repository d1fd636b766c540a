//! The interface every trace format implements, in the shape of Envoy's own propagators
//! (`propagators/generic_propagator.h`: extract, inject, fields, name): each format reads itself
//! from the request's trace headers, writes itself, removes itself and names itself. The formats
//! themselves are `b3` and `w3c`; `formats` maps a `Format` to its propagator.

use crate::context::{Format, Parsed, TraceContext};
use crate::headers::{Edit, TraceHeaders};

/// What one format's headers said, and whether they can be forwarded as they are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extracted {
    pub parsed: Parsed,
    /// The headers are exactly what `inject` would write for the parsed value: not repeated, not
    /// a future version, not a lenient spelling. Only then may they be left untouched.
    pub exact: bool,
    /// A valid context read leniently (upper-case B3 ids, `true`/`false`, ignored flags), as
    /// Envoy and OpenTelemetry read it: continued, and written back in canonical form.
    pub lenient: bool,
}

impl Extracted {
    pub const ABSENT: Extracted = Extracted {
        parsed: Parsed::Absent,
        exact: true,
        lenient: false,
    };

    pub fn context(&self) -> Option<&TraceContext> {
        match &self.parsed {
            Parsed::Context(c) => Some(c),
            _ => None,
        }
    }
}

pub trait Propagator: Sync {
    fn format(&self) -> Format;

    /// The header names it uses; the first names the format in logs.
    fn fields(&self) -> &'static [&'static str];

    /// Whether the request came with any of its headers.
    fn present(&self, h: &TraceHeaders) -> bool;

    fn extract(&self, h: &TraceHeaders) -> Extracted;

    /// Whether it carries every field of a context (B3: parent span, deferred and debug
    /// sampling), or only trace id, span id and the sampled bit (W3C).
    fn carries_all(&self) -> bool;

    /// Whether it can say what `ctx` says (W3C has no deferred sampling decision).
    fn can_carry(&self, _ctx: &TraceContext) -> bool {
        true
    }

    /// Writes `ctx` over whatever the request carried in this format.
    fn inject(&self, ctx: &TraceContext, h: &TraceHeaders, edits: &mut Vec<Edit>);

    /// Removes every header of this format the request came with.
    fn remove(&self, h: &TraceHeaders, edits: &mut Vec<Edit>);

    /// For logs: the header (or header family) a malformed value came in.
    fn label(&self) -> &'static str {
        self.fields().first().copied().unwrap_or("")
    }

    /// Whether `found` (as this format carries it) says exactly what `ctx` says.
    fn agrees(&self, ctx: &TraceContext, found: &TraceContext) -> bool {
        ctx.agrees_with(found, self.carries_all())
    }
}

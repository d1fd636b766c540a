"""Reads request headers the way OpenTelemetry's own propagators do: an independent oracle for
what trace-inject sends upstream.

stdin: a JSON list of [name, value] header pairs (one request), or with --batch a JSON list of
such lists. stdout: for each request, a JSON object

  {"b3_multi": CTX, "b3_single": CTX, "w3c": CTX,
   "present": {"b3_multi": bool, "b3_single": bool, "w3c": bool}}

where CTX is null when the propagator extracted no span context, else
  {"trace_id": hex32, "span_id": hex16, "sampled": bool, "is_valid": bool,
   "trace_flags": int, "tracestate": str or null}

Each format is extracted from its own headers only: OpenTelemetry's B3MultiFormat reads `b3`
first when present, so feeding it everything would hide what `x-b3-*` say.
Run with the interpreter of .tools/oracle-venv (scripts/install-oracle.sh).
"""

import json
import sys

from opentelemetry import trace
from opentelemetry.propagators.b3 import B3MultiFormat, B3SingleFormat
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

B3_MULTI = ("x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags")
B3_SINGLE = ("b3",)
W3C = ("traceparent", "tracestate")

FORMATS = (
    ("b3_multi", B3MultiFormat(), B3_MULTI),
    ("b3_single", B3SingleFormat(), B3_SINGLE),
    ("w3c", TraceContextTextMapPropagator(), W3C),
)


def carrier(headers, names):
    """Header name (lower case) -> every value, in order: the propagators' getter takes lists."""
    out = {}
    for name, value in headers:
        name = name.lower()
        if name in names:
            out.setdefault(name, []).append(value)
    return out


def extract_one(headers):
    result = {"present": {}}
    for key, propagator, names in FORMATS:
        c = carrier(headers, names)
        result["present"][key] = bool(c)
        ctx = trace.get_current_span(propagator.extract(c)).get_span_context()
        if ctx == trace.INVALID_SPAN_CONTEXT:
            result[key] = None
            continue
        state = ctx.trace_state.to_header() if ctx.trace_state else ""
        result[key] = {
            "trace_id": trace.format_trace_id(ctx.trace_id),
            "span_id": trace.format_span_id(ctx.span_id),
            "sampled": ctx.trace_flags.sampled,
            "is_valid": ctx.is_valid,
            "trace_flags": int(ctx.trace_flags),
            "tracestate": state or None,
        }
    return result


def main():
    doc = json.load(sys.stdin)
    if "--batch" in sys.argv[1:]:
        json.dump([extract_one(h) for h in doc], sys.stdout)
    else:
        json.dump(extract_one(doc), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# Installs the independent oracles the e2e tests check the filter's output with: OpenTelemetry's
# own Python propagators (B3 multi, B3 single, W3C TraceContext) from PyPI, into
# .tools/oracle-venv. Idempotent: a venv that already imports them is left alone.
source "$(dirname "$0")/lib.sh"
VENV="$TOOLS/oracle-venv"
PY="$VENV/bin/python"
check() {
  "$PY" -c 'import opentelemetry.propagators.b3, opentelemetry.trace.propagation.tracecontext' \
    >/dev/null 2>&1
}
if [ -x "$PY" ] && check; then exit 0; fi
log "installing OpenTelemetry propagators into $VENV (pip)"
mkdir -p "$TOOLS"
python3 -m venv "$VENV"
# One minor (1.45.x, what was checked here) so an upstream change cannot silently move the oracle.
"$VENV/bin/pip" install -q --disable-pip-version-check \
  "opentelemetry-api~=1.45.0" "opentelemetry-sdk~=1.45.0" "opentelemetry-propagator-b3~=1.45.0"
check
"$PY" -m pip list --disable-pip-version-check 2>/dev/null | grep -i opentelemetry >&2

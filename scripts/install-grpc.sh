#!/usr/bin/env bash
# Installs a real gRPC implementation for the gRPC e2e tests (tests/grpc.rs): grpcio, gRPC's own
# Python package (its C core speaks HTTP/2 as every gRPC client and server does), from PyPI into
# .tools/grpc-venv. tests/grpc/server.py and client.py run with its interpreter. Idempotent: a
# venv that already imports grpc is left alone.
source "$(dirname "$0")/lib.sh"
VENV="$TOOLS/grpc-venv"
PY="$VENV/bin/python"
check() {
  "$PY" -c 'import grpc' >/dev/null 2>&1
}
if [ -x "$PY" ] && check; then exit 0; fi
log "installing gRPC (grpcio) into $VENV (pip)"
# A minimal Debian 12 has python3 but not its venv module.
apt_install python3 python3-venv
mkdir -p "$TOOLS"
python3 -m venv "$VENV"
# One minor (1.85.x, what was checked here): generic handlers on raw bytes, no codegen, so
# grpcio alone is enough (no protobuf, no grpcio-tools).
"$VENV/bin/pip" install -q --disable-pip-version-check "grpcio~=1.85.0"
check
"$PY" -c 'import grpc; print("grpcio", grpc.__version__)' >&2

#!/usr/bin/env bash
# Builds tests/gohost (a Go net/http reverse proxy, stdlib only) into .tools/bin/gohost: a real Go
# HTTP server in front of the test collector, so export requests meet the Host-header check that
# Jaeger and the OpenTelemetry Collector (both Go servers) apply. Idempotent.
source "$(dirname "$0")/lib.sh"
apt_install golang-go
OUT="$TOOLS/bin/gohost"
SRC="$ROOT/tests/gohost/main.go"
if [ -x "$OUT" ] && [ "$OUT" -nt "$SRC" ]; then exit 0; fi
mkdir -p "$TOOLS/bin" "$TOOLS/go/cache" "$TOOLS/go/path"
log "building $OUT ($(go version))"
# Stdlib only: no module download, so no network and no go.mod needed.
cd "$ROOT/tests/gohost"
GOCACHE="$TOOLS/go/cache" GOPATH="$TOOLS/go/path" GO111MODULE=off GOFLAGS= \
  go build -o "$OUT" main.go

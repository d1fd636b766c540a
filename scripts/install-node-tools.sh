#!/usr/bin/env bash
# Installs the WasmPlugin validator's npm dependencies (tests/wasmplugin/package.json, versions
# pinned by its package-lock.json) into .tools/node, with `npm ci`. Idempotent: does nothing when
# the installed set matches the lock file. Installs Node.js and npm from Debian if missing.
source "$(dirname "$0")/lib.sh"
SRC="$ROOT/tests/wasmplugin"
NODE_DIR="$TOOLS/node"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm
fi
major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$major" -ge 18 ] || { log "Node.js $(node --version) is too old (18 or later needed)"; exit 1; }

stamp="$(cat "$SRC/package.json" "$SRC/package-lock.json" "$SRC/deps.mjs" | sha256sum | cut -d' ' -f1)"
if [ -f "$NODE_DIR/.stamp" ] && [ "$(cat "$NODE_DIR/.stamp")" = "$stamp" ] && [ -d "$NODE_DIR/node_modules" ]; then
  exit 0
fi
log "installing the WasmPlugin validator's npm packages into $NODE_DIR (npm ci)"
mkdir -p "$NODE_DIR"
rm -f "$NODE_DIR/.stamp"
cp "$SRC/package.json" "$SRC/package-lock.json" "$SRC/deps.mjs" "$NODE_DIR/"
# @kubernetes-models 3.x declares node >= 22 but runs on the Node.js 20 these machines have
# (tests/wasmplugin/test.sh proves it on every run): the engine mismatch is only a warning.
(cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
echo "$stamp" > "$NODE_DIR/.stamp"

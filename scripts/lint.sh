#!/usr/bin/env bash
# fmt and clippy (-D warnings) on the workspace, natively and, for the filter and the bench
# filters, as wasm32-wasip1 (filter.rs, host.rs and bench/noop, bench/floor exist only there).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
command -v rustup >/dev/null 2>&1 || {
  log "make lint needs rustup (its rustfmt and clippy components): install it from https://rustup.rs, then run make lint again"
  exit 1
}
for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || timeout 120 rustup component add "$c"
done
cargo fmt --all -- --check
cargo clippy -q --locked --workspace --all-targets -- -D warnings
if rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
  cargo clippy -q --locked -p trace-inject --lib --target wasm32-wasip1 -- -D warnings
  cargo clippy -q --locked -p trace-inject-bench-noop -p trace-inject-bench-floor --lib \
    --target wasm32-wasip1 -- -D warnings
else
  # Route B (Debian's toolchain) has no clippy; the native run still covers the pure modules.
  echo "NOTE: no rustup wasm32-wasip1 target: clippy of filter.rs/host.rs not run" >&2
fi

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
# The wasm-only code (filter.rs, the bench filters) is linted on every route: clippy is the only
# enforcement of no-unwrap there. Route A: rustup's target (added if missing, as build-wasm.sh
# does). Route B: Debian's rustc-web with its clippy (rust-web-clippy) and build-std, the
# toolchain build-wasm.sh falls back to. Neither: fail, saying so.
WASM_PKGS=(-p trace-inject -p trace-inject-bench-noop -p trace-inject-bench-floor)
lint_route_a() {
  command -v rustup >/dev/null 2>&1 || return 1
  rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1 \
    || timeout 120 rustup target add wasm32-wasip1 >&2 || return 1
  log "clippy wasm32-wasip1: route A (rustup)"
  cargo clippy -q --locked "${WASM_PKGS[@]}" --lib --target wasm32-wasip1 -- -D warnings
}
lint_route_b() {
  apt_install rustc-web cargo-web rust-web-src rust-web-clippy wasi-libc || return 1
  [ -x /usr/bin/cargo-clippy ] || return 1
  log "clippy wasm32-wasip1: route B (Debian rustc-web + rust-web-clippy, build-std)"
  RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 PATH=/usr/bin:$PATH \
  RUSTFLAGS="-C link-self-contained=no -L /usr/lib/wasm32-wasi" \
    /usr/bin/cargo clippy -q --locked "${WASM_PKGS[@]}" --lib -Z build-std=std,panic_abort \
      --target wasm32-wasip1 -- -D warnings
}
if [ "${WASM_ROUTE:-}" = "B" ]; then
  routes=(lint_route_b)
else
  routes=(lint_route_a lint_route_b)
fi
linted=
for r in "${routes[@]}"; do
  # A lint failure (exit 101 from clippy's -D warnings) is a failure, not a reason to try the
  # next route: only a route that cannot run at all falls through.
  if "$r"; then linted=1; break; else rc=$?; [ "$rc" = 101 ] && exit 101; fi
done
if [ -z "$linted" ]; then
  echo "ERROR: cannot lint the wasm32-wasip1 code (filter.rs, bench filters): neither rustup's" \
       "wasm32-wasip1 target nor Debian's rust-web-clippy could be had" >&2
  exit 1
fi

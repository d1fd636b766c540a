#!/usr/bin/env bash
# Builds a proxy-wasm filter crate for wasm32-wasip1 (release), then optimises it with wasm-opt
# (-Oz; the filter: -O3 with bounded single-caller inlining, see below) and wasm-strip. Route A:
# rustup's wasm32-wasip1 target; route B (no rustup download): Debian's rustc with build-std.
# Prints which route it used, and on a first build (nothing compiled yet for the target) that it
# compiles every dependency and roughly how long that takes, with cargo's own progress; later
# builds are quiet.
#   build-wasm.sh PACKAGE OUT.wasm
source "$(dirname "$0")/lib.sh"
PKG="${1:?package}"; OUT="${2:?output path}"
CRATE_FILE="${PKG//-/_}.wasm"
TARGET=wasm32-wasip1
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
cd "$ROOT"
RAW="$TARGET_DIR/$TARGET/release/$CRATE_FILE"
QUIET=(-q)
if [ ! -e "$RAW" ]; then
  QUIET=()
  log "first build of $PKG for $TARGET: compiles every dependency (about a minute on 2 cores,"
  log "a few with Debian's toolchain, which also builds std); later builds take seconds"
fi

# cc links what cargo compiles natively on the way (build scripts, proc macros): a minimal
# Debian 12 has no C toolchain.
apt_install binaryen wabt gcc libc6-dev

route_a() {
  command -v rustup >/dev/null 2>&1 || return 1
  if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
    timeout 120 rustup target add "$TARGET" >&2 || return 1
  fi
  log "build route A: rustup toolchain + $TARGET target"
  cargo build "${QUIET[@]}" --locked -p "$PKG" --lib --target "$TARGET" --release
}

route_b() {
  apt_install rustc-web cargo-web rust-web-src rust-web-llvm lld-22 wasi-libc
  log "build route B: Debian rustc + build-std (no rustup download)"
  RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
  RUSTFLAGS="-C link-self-contained=no -L /usr/lib/wasm32-wasi" \
    /usr/bin/cargo build "${QUIET[@]}" --locked -p "$PKG" --lib -Z build-std=std,panic_abort \
      --target "$TARGET" --release
}

if [ "${WASM_ROUTE:-}" = "B" ]; then route_b; else route_a || route_b; fi

mkdir -p "$(dirname "$OUT")"
# The filter: wasm-opt -O3 without inlining single-caller functions above 200 (binaryen size
# units: a few hundred bytes). With -Oz's unlimited single-caller inlining, wasm-opt folded the
# whole configuration parser into one 30 KB function (and float formatting into a 14 KB one),
# and Envoy's V8, which compiles every function with TurboFan when it loads a module, kept
# ~12 MiB more resident per Envoy for it; -Oz's merge-similar-functions cost ~4 MiB more on top
# (docs/memory.md). The request path is inlined by rustc instead: its functions carry #[inline].
# scripts/check-wasm.sh keeps the largest function body in check.
# The bench baselines (no-op, job floor) keep plain -Oz, as they were measured.
OPT=(-Oz)
[ "$PKG" != trace-inject ] || OPT=(-O3 --one-caller-inline-max-function-size 200)
wasm-opt "${OPT[@]}" --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
  --enable-mutable-globals "$RAW" -o "$OUT.tmp"
wasm-strip "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
log "$OUT: $(stat -c %s "$OUT") bytes (raw $(stat -c %s "$RAW"))"

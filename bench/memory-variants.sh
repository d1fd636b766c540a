#!/usr/bin/env bash
# Builds trace-inject in several shapes (rustc profile × wasm-opt flags) into dist/variants/, for
# bench/memory.sh: the table in docs/memory.md is made of these. Not part of any make target.
#
#   bench/memory-variants.sh [CARGO_VARIANT...]     (default: all below)
#   then e.g.: bench/memory.sh floor $(for f in dist/variants/*.wasm; do echo "$(basename "$f" .wasm)=$f"; done)
#
# A cargo variant is built once (CARGO_TARGET_DIR=target/variants: the shipped target/ is not
# touched), then post-processed with every wasm-opt variant in OPT_VARIANTS; each output is
# stripped as the shipped build is. Names: CARGO_VARIANT.OPT_VARIANT.wasm.
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"
apt_install binaryen wabt

declare -A CARGO=(
  [base]=""                                                   # Cargo.toml as it is: s, deps z, fat LTO, 1 CGU
  [z]="--config profile.release.opt-level=\"z\""
  [o2]="--config profile.release.opt-level=2 --config profile.release.package.\"*\".opt-level=2"
  [o3]="--config profile.release.opt-level=3 --config profile.release.package.\"*\".opt-level=3"
  [thin]="--config profile.release.lto=\"thin\""
  [nolto]="--config profile.release.lto=false"
  [cgu16]="--config profile.release.codegen-units=16"
)
CARGO_ORDER=(base z o2 o3 thin nolto cgu16)
FEATURES="--enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int --enable-mutable-globals"
# wasm-opt variants: name and flags ("" = no wasm-opt, the raw cargo output).
OPT_VARIANTS=(
  "raw|"
  "Oz|-Oz"
  "Os|-Os"
  "O2|-O2"
  "O3|-O3"
  "Oz-noinline|-Oz -ocimfs 0 -aimfs 0"
  "Oz-ocimfs0|-Oz -ocimfs 0"
  "Oz-ocimfs400|-Oz -ocimfs 400"
  "Oz-ocimfs800|-Oz -ocimfs 800"
  "Oz-ocimfs1600|-Oz -ocimfs 1600"
  "O3-ocimfs0|-O3 -ocimfs 0"
  "O3-ocimfs200|-O3 -ocimfs 200"                              # the shipped flags (scripts/build-wasm.sh)
)
# OPTS="raw|;Oz|-Oz;..." replaces the list.
[ -z "${OPTS:-}" ] || IFS=";" read -ra OPT_VARIANTS <<<"$OPTS"

read -ra WANT <<<"${*:-${CARGO_ORDER[*]}}"
OUTDIR="${OUTDIR:-dist/variants}"
TDIR="${CARGO_TARGET_DIR:-$ROOT/target}/variants"
mkdir -p "$OUTDIR"
for cv in "${WANT[@]}"; do
  [ -n "${CARGO[$cv]+x}" ] || { echo "unknown cargo variant $cv (${CARGO_ORDER[*]})" >&2; exit 2; }
  log "cargo variant $cv: ${CARGO[$cv]:-(Cargo.toml)}"
  # shellcheck disable=SC2086
  CARGO_TARGET_DIR="$TDIR" cargo build -q --locked -p trace-inject --lib --target wasm32-wasip1 --release ${CARGO[$cv]}
  raw="$TDIR/wasm32-wasip1/release/trace_inject.wasm"
  for ov in "${OPT_VARIANTS[@]}"; do
    name="${ov%%|*}" flags="${ov#*|}" out="$OUTDIR/$cv.${ov%%|*}.wasm"
    # shellcheck disable=SC2086
    if [ -z "$flags" ]; then cp "$raw" "$out"; else wasm-opt $FEATURES $flags "$raw" -o "$out"; fi
    wasm-strip "$out"
    printf '%-28s %7d bytes\n' "$cv.$name" "$(stat -c %s "$out")" >&2
  done
done

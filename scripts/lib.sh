# Shared helpers for the scripts: sourced, not run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${TOOLS:-$ROOT/.tools}"
log() { printf '==> %s\n' "$*" >&2; }

# apt_install PKG...: installs the Debian packages that are missing (idempotent; `apt-get update`
# only when something is missing).
apt_install() {
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# install_registry: Debian's docker-registry, for a test registry the caller starts itself on
# loopback (tests/oci_e2e.sh). On a machine that runs systemd, the package enables and starts a
# `docker-registry` service serving /etc/docker/registry/config.yml, which listens on :5000 on
# every interface. Masked before the package is first installed, that service never starts, now
# or at boot (the package's postinst unmasks only masks it made itself). A service an earlier
# install left running is not touched: it may be yours. It is reported, with how to stop it.
SYSTEMD_RUN_DIR="${SYSTEMD_RUN_DIR:-/run/systemd/system}"
install_registry() {
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if [ -d "$SYSTEMD_RUN_DIR" ] && ! dpkg-query -W -f='${Status}' docker-registry 2>/dev/null | grep -q "ok installed"; then
    log "masking docker-registry.service before installing docker-registry: the tests run their own"
    log "registry on 127.0.0.1, not the service on :5000 (undo: systemctl unmask docker-registry)"
    $sudo systemctl mask --quiet docker-registry.service
  fi
  apt_install docker-registry
  if [ -d "$SYSTEMD_RUN_DIR" ] && systemctl is-active --quiet docker-registry.service 2>/dev/null; then
    log "note: docker-registry.service is running: a registry on :5000, all interfaces, that these"
    log "tests do not use. Stop it if you did not mean to run one: sudo systemctl disable --now docker-registry"
  fi
}

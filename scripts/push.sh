#!/usr/bin/env bash
# Pushes both images that scripts/image.sh laid out (compat VERSION, Wasm artifact VERSION-wasm)
# to REGISTRY/IMAGE_NAME with skopeo, digests preserved (the pushed manifests are byte-identical
# to the built ones, so the digests printed by `make image` are the ones to pin), then checks
# that the registry serves each tag at that digest. Prints the WasmPlugin `url`/`sha256` lines.
#
#   push.sh REGISTRY      REGISTRY = host[:port][/path], e.g. ghcr.io/acme or 127.0.0.1:5000
#   env: OCI_DIR (default dist/oci), TLS_VERIFY (default: false for 127.0.0.1/localhost,
#        true otherwise; false for any registry served over plain HTTP or with a certificate
#        this machine does not trust). Credentials: `skopeo login HOST` (or a docker
#        config.json) beforehand; skopeo is installed here (apt) if missing, before anything
#        else. A refused push says which of these it needs.
source "$(dirname "$0")/lib.sh"
REGISTRY="${1:?usage: push.sh REGISTRY (host[:port][/path])}"
REGISTRY="${REGISTRY%/}"
OCI_DIR="${OCI_DIR:-$ROOT/dist/oci}"
[ -f "$OCI_DIR.env" ] && [ -f "$OCI_DIR/index.json" ] || { log "no images in $OCI_DIR: run 'make image'"; exit 1; }
apt_install skopeo

# shellcheck disable=SC1090
source "$OCI_DIR.env"
if [ -z "${TLS_VERIFY:-}" ]; then
  case "$REGISTRY" in 127.0.0.1[:/]*|127.0.0.1|localhost[:/]*|localhost|\[::1\]*) TLS_VERIFY=false ;; *) TLS_VERIFY=true ;; esac
fi

# why_failed ERROR_TEXT: what to do about a refused push.
why_failed() {
  case "$1" in
    *"server gave HTTP response to HTTPS client"*)
      log "the registry speaks plain HTTP: TLS_VERIFY=false make push REGISTRY=$REGISTRY" ;;
    *"x509:"*|*"certificate"*)
      log "the registry's certificate is not trusted here: TLS_VERIFY=false make push REGISTRY=$REGISTRY" ;;
    *"unauthorized"*|*"authentication required"*|*"denied"*)
      log "the registry wants credentials: skopeo login ${REGISTRY%%/*} (make push installed skopeo), then make push again" ;;
    *)
      log "if the registry needs credentials: skopeo login ${REGISTRY%%/*}, then make push again" ;;
  esac
}

push_one() { # TAG EXPECTED_DIGEST
  local ref="$REGISTRY/$IMAGE_NAME:$1" got err
  if ! err="$(skopeo copy --quiet --preserve-digests --dest-tls-verify="$TLS_VERIFY" \
      "oci:$OCI_DIR:$1" "docker://$ref" 2>&1)"; then
    printf '%s\n' "$err" >&2
    log "push of $ref failed"
    why_failed "$err"
    return 1
  fi
  got="sha256:$(skopeo inspect --raw --tls-verify="$TLS_VERIFY" "docker://$ref" | sha256sum | cut -d' ' -f1)"
  if [ "$got" != "$2" ]; then
    log "$ref: the registry serves $got, expected $2"
    return 1
  fi
  log "pushed $ref ($2)"
}
push_one "$COMPAT_TAG" "$COMPAT_DIGEST"
push_one "$WASM_TAG" "$WASM_DIGEST"

cat <<EOF
# WasmPlugin (wasm-plugin.yaml), compat image (any registry):
  url: oci://$REGISTRY/$IMAGE_NAME:$COMPAT_TAG
  sha256: ${COMPAT_DIGEST#sha256:}
# or the Wasm OCI artifact:
  url: oci://$REGISTRY/$IMAGE_NAME:$WASM_TAG
  sha256: ${WASM_DIGEST#sha256:}
EOF

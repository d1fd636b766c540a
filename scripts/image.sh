#!/usr/bin/env bash
# Packs dist/trace_inject.wasm as OCI images Istio's agent can pull (istio/istio
# pkg/wasm/imagefetcher.go), without a container daemon, into one OCI layout directory:
#
#   TAG=VERSION       compat variant: an OCI image (buildah, vfs storage, chroot isolation) whose
#                     single application/vnd.oci.image.layer.v1.tar+gzip layer holds plugin.wasm.
#                     Works with every registry and tool (docker, crane, skopeo inspect).
#   TAG=VERSION-wasm  Wasm OCI artifact variant: exactly two layers (the fetcher refuses any
#                     other count): runtime-config.json (application/vnd.module.wasm.config.v1+json)
#                     and the raw module (application/vnd.module.wasm.content.layer.v1+wasm).
#
# VERSION is the crate version from Cargo.toml. Both carry the OCI annotations
# org.opencontainers.image.{revision,source,version,created,licenses,title} (the compat image
# also as config labels); `created` is the commit time, so a rebuild of one commit with the same
# .wasm gives the same digests. Writes OCI_DIR.env (tags, digests, the module's sha256) for
# scripts/push.sh and tests/oci_e2e.sh.
#
#   image.sh [WASM]    env: OCI_DIR (default dist/oci), IMAGE_NAME (trace-inject),
#                           IMAGE_SOURCE (default: git remote origin), REVISION (default: HEAD)
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
WASM="$(realpath "${1:-dist/trace_inject.wasm}")"
OCI_DIR="${OCI_DIR:-$ROOT/dist/oci}"
IMAGE_NAME="${IMAGE_NAME:-trace-inject}"
[ -f "$WASM" ] || { log "no $WASM: run 'make build' first"; exit 1; }

apt_install buildah skopeo wabt python3 git

# Crate metadata, read from the [package] table of Cargo.toml.
pkg_field() { awk -v k="$1" '/^\[/{p=($0=="[package]")} p && $1==k {sub(/^[^=]*=[ \t]*"/,""); sub(/".*$/,""); print; exit}' Cargo.toml; }
VERSION="$(pkg_field version)"
LICENSE="$(pkg_field license)"
[ -n "$VERSION" ] || { log "no version in Cargo.toml [package]"; exit 1; }

if [ -z "${REVISION:-}" ]; then
  REVISION="$(git rev-parse HEAD)"
  # A build from a tree with uncommitted changes must not claim to be that commit.
  git diff --quiet HEAD -- 2>/dev/null || REVISION="$REVISION-dirty"
fi
SOURCE="${IMAGE_SOURCE:-$(git remote get-url origin 2>/dev/null || echo unknown)}"
EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
CREATED="$(date -u -d "@$EPOCH" +%Y-%m-%dT%H:%M:%SZ)"
ABI="$(wasm-objdump -x -j Export "$WASM" | grep -o 'proxy_abi_version_[0-9_]*' | head -1)"
[ -n "$ABI" ] || { log "$WASM exports no proxy_abi_version_*: not a proxy-wasm module"; exit 1; }
COMPAT_TAG="$VERSION"
WASM_TAG="$VERSION-wasm"

annotations=(
  "org.opencontainers.image.title=$IMAGE_NAME"
  "org.opencontainers.image.version=$VERSION"
  "org.opencontainers.image.revision=$REVISION"
  "org.opencontainers.image.source=$SOURCE"
  "org.opencontainers.image.created=$CREATED"
  "org.opencontainers.image.licenses=$LICENSE"
)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
rm -rf "$OCI_DIR" "$OCI_DIR.env"
mkdir -p "$(dirname "$OCI_DIR")"

# --- compat variant: buildah with its own throw-away vfs storage (no daemon, no overlay) ---
mkdir -p "$work/ctx"
cp "$WASM" "$work/ctx/plugin.wasm"
printf 'FROM scratch\nCOPY plugin.wasm ./plugin.wasm\n' > "$work/ctx/Containerfile"
B=(buildah --storage-driver vfs --root "$work/storage" --runroot "$work/run")
args=()
for a in "${annotations[@]}"; do args+=(--label "$a" --annotation "$a"); done
"${B[@]}" bud --quiet --isolation chroot --format oci --timestamp "$EPOCH" \
  --identity-label=false --omit-history --unsetenv PATH \
  --annotation module.wasm.image/variant=compat "${args[@]}" \
  -t "localhost/$IMAGE_NAME:$COMPAT_TAG" -f "$work/ctx/Containerfile" "$work/ctx" >/dev/null
"${B[@]}" push --quiet --format oci "localhost/$IMAGE_NAME:$COMPAT_TAG" "oci:$OCI_DIR:$COMPAT_TAG"

# --- Wasm OCI artifact variant: laid out by hand in the same layout ---
# runtime-config.json names the root id examples/envoy.yaml uses (the filter answers to any).
ANNOTATIONS="$(printf '%s\n' "${annotations[@]}")" \
python3 - "$OCI_DIR" "$WASM" "$WASM_TAG" "$ABI" trace-inject <<'EOF'
import hashlib, json, os, sys
layout, wasm_path, tag, abi, root_id = sys.argv[1:]
ann = dict(l.split("=", 1) for l in os.environ["ANNOTATIONS"].splitlines())
compact = lambda o: json.dumps(o, separators=(",", ":"), sort_keys=True).encode()

def blob(data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}

# solo-io/wasm spec/spec.md: runtime type, ABI versions, root ids.
runtime = {"type": "envoy_proxy", "abiVersions": [abi], "config": {"root_ids": [root_id]}}
config = dict(mediaType="application/vnd.module.wasm.config.v1+json", **blob(compact(runtime)))
# The same JSON as a file (pretty, newline-terminated) is the first layer: a blob distinct from
# the config blob, so no client can confuse the config descriptor with a layer descriptor.
runtime_file = (json.dumps(runtime, indent=2, sort_keys=True) + "\n").encode()
layers = [
    dict(mediaType="application/vnd.module.wasm.config.v1+json", **blob(runtime_file),
         annotations={"org.opencontainers.image.title": "runtime-config.json"}),
    dict(mediaType="application/vnd.module.wasm.content.layer.v1+wasm",
         **blob(open(wasm_path, "rb").read()),
         annotations={"org.opencontainers.image.title": "plugin.wasm"}),
]
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config, "layers": layers, "annotations": ann}
desc = dict(mediaType=manifest["mediaType"], **blob(compact(manifest)),
            annotations={"org.opencontainers.image.ref.name": tag})
index_path = os.path.join(layout, "index.json")
index = json.load(open(index_path))
index["manifests"] = [m for m in index["manifests"]
                      if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag]
index["manifests"].append(desc)
with open(index_path, "w") as f:
    json.dump(index, f)
EOF

# Digests as a registry will report them (sha256 of the manifest bytes): what WasmPlugin's
# `sha256` field is compared with for oci:// URLs.
digest_of() { echo "sha256:$(skopeo inspect --raw "oci:$OCI_DIR:$1" | sha256sum | cut -d' ' -f1)"; }
COMPAT_DIGEST="$(digest_of "$COMPAT_TAG")"
WASM_DIGEST="$(digest_of "$WASM_TAG")"
layers_of() { skopeo inspect --raw "oci:$OCI_DIR:$1" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["layers"]))'; }
[ "$(layers_of "$COMPAT_TAG")" = 1 ] || { log "compat image does not have exactly one layer"; exit 1; }
[ "$(layers_of "$WASM_TAG")" = 2 ] || { log "wasm artifact does not have exactly two layers"; exit 1; }

cat > "$OCI_DIR.env" <<EOF
IMAGE_NAME=$IMAGE_NAME
VERSION=$VERSION
REVISION=$REVISION
SOURCE=$SOURCE
COMPAT_TAG=$COMPAT_TAG
COMPAT_DIGEST=$COMPAT_DIGEST
WASM_TAG=$WASM_TAG
WASM_DIGEST=$WASM_DIGEST
MODULE_SHA256=$(sha256sum "$WASM" | cut -d' ' -f1)
MODULE_SIZE=$(stat -c %s "$WASM")
EOF
log "OCI layout $OCI_DIR (revision $REVISION):"
log "$(printf '  %-28s %-42s %s' "$IMAGE_NAME:$COMPAT_TAG" "compat: 1 tar+gzip layer with plugin.wasm" "$COMPAT_DIGEST")"
log "$(printf '  %-28s %-42s %s' "$IMAGE_NAME:$WASM_TAG" "Wasm OCI artifact: 2 layers" "$WASM_DIGEST")"
log "  module $(basename "$WASM"): $(stat -c %s "$WASM") bytes, sha256 $(sha256sum "$WASM" | cut -d' ' -f1)"

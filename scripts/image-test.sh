#!/usr/bin/env bash
# Builds the Dockerfile with buildah (a real OCI builder, Debian's package) and runs the image:
# it starts, its HEALTHCHECK passes, and a token is issued, verified and revoked through the
# port it listens on.
#
#   scripts/image-test.sh
#
# Needs buildah, podman (for `podman import`) and mmdebstrap: apt-get install buildah podman
# mmdebstrap; .ci/run installs what is missing. Runs as root (buildah's storage).
#
# No container registry is reachable here, so the Dockerfile's base images cannot be pulled.
# This script builds stand-ins from Debian's packages and passes them as the Dockerfile's
# build arguments (the Dockerfile's defaults stay the Docker Hub images):
#   RUNTIME_IMAGE  debian:bookworm-slim  ->  mmdebstrap --variant=minbase bookworm
#   RUST_IMAGE     rust:1-bookworm       ->  the same plus gcc, libc6-dev, make, perl; the
#                  Rust toolchain is this machine's (rustup cannot download one here), mounted
#                  read-only into the build's RUN steps; the host's CA bundle replaces the
#                  image's so cargo can reach crates.io through this network's TLS proxy.
# Every Dockerfile step runs as written: the build stage compiles from exactly the paths the
# Dockerfile copies (a path it forgets fails the build), the runtime stage runs apt-get,
# useradd and the rest. The cargo registry and the build's target/ are cached under
# target/image/, so a second run rebuilds only what changed.
#
# `podman run` cannot start containers in this sandbox (crun cannot set RLIMIT_NPROC), so the
# image is run with `buildah run --isolation chroot`, which shares the host's network: the
# server listens on 127.0.0.1 on a free port instead of the image's 0.0.0.0:8080 (checked
# in the image's configuration instead).
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in buildah podman mmdebstrap jq curl python3; do
  command -v "$tool" > /dev/null || { echo "image-test: $tool is missing" >&2; exit 1; }
done
cache=target/image
mkdir -p "$cache/registry" "$cache/target"
fail() { echo "image-test: $*" >&2; exit 1; }
t0=$SECONDS
took() { echo "image-test: $1 took $((SECONDS - t0)) s"; t0=$SECONDS; }

# Stand-in base images; bump the tag when their recipe changes.
base=localhost/tokend-ci
runtime_base=$base/debian:bookworm-slim-1
rust_base=$base/rust:1-bookworm-1
if ! podman image exists "$runtime_base"; then
  [ -s "$cache/debian-minbase.tar" ] \
    || mmdebstrap --quiet --variant=minbase bookworm "$cache/debian-minbase.tar"
  podman import --quiet "$cache/debian-minbase.tar" "$runtime_base" > /dev/null
fi
# $1 is the rootfs: mmdebstrap expands it when it runs the hook.
# shellcheck disable=SC2016
ca_hook='cat /etc/ssl/certs/ca-certificates.crt > "$1/etc/ssl/certs/ca-certificates.crt"'
if ! podman image exists "$rust_base"; then
  [ -s "$cache/rust-build.tar" ] \
    || mmdebstrap --quiet --variant=minbase --include=gcc,libc6-dev,make,perl,ca-certificates \
      --customize-hook="$ca_hook" \
      bookworm "$cache/rust-build.tar"
  podman import --quiet \
    --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV CARGO_HOME=/usr/local/cargo' \
    "$cache/rust-build.tar" "$rust_base" > /dev/null
fi
took "base images"

# The Dockerfile as written; docker format so HEALTHCHECK is kept (OCI has no such field).
image=localhost/tokend:ci-test
buildah bud --quiet --isolation chroot --format docker --pull-never --layers=false \
  --build-arg RUST_IMAGE="$rust_base" --build-arg RUNTIME_IMAGE="$runtime_base" \
  -v "$(rustc --print sysroot):/usr/local/rust:ro" \
  -v "$PWD/$cache/registry:/usr/local/cargo/registry" \
  -v "$PWD/$cache/target:/src/target" \
  -t "$image" . > /dev/null
took "buildah bud"

# The image's configuration is what the deploy files rely on.
config=$(buildah inspect --type image "$image" | jq .Docker.config)
check() {
  jq -e "$1" <<< "$config" > /dev/null || fail "image config: $2 (got $(jq -c "${3:-.}" <<< "$config"))"
}
check '.User == "10001:10001"' "runs as uid 10001 (deploy/kubernetes runAsUser)" .User
check '.Entrypoint == ["tokend"] and .Cmd == ["serve"]' "starts tokend serve" '[.Entrypoint, .Cmd]'
check '.Env | index("TOKEND_LISTEN=0.0.0.0:8080")' "listens on all interfaces in the container" .Env
check '.Env | index("TOKEND_DATA_DIR=/var/lib/tokend/data")' "keeps its data in the volume" .Env
check '.ExposedPorts | has("8080/tcp")' "exposes 8080" .ExposedPorts
check '.Volumes | has("/var/lib/tokend/data")' "declares the SQLite volume" .Volumes
check '.Healthcheck.Test == ["CMD", "tokend", "health"]' "HEALTHCHECK runs the binary" .Healthcheck
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
check ".Labels[\"org.opencontainers.image.title\"] == \"tokend\"
  and .Labels[\"org.opencontainers.image.version\"] == \"$version\"" \
  "OCI labels, the version as in Cargo.toml ($version; the Dockerfile's ARG VERSION)" .Labels
size=$(podman image inspect --format '{{.Size}}' "$image")
echo "image-test: $image is $((size / 1024 / 1024)) MiB"

ctr=$(buildah from --pull-never "$image")
server=""
# shellcheck disable=SC2329 # called by the EXIT trap
cleanup() {
  if [ -n "$server" ]; then
    kill -- "-$server" 2> /dev/null || true
    wait "$server" 2> /dev/null || true
  fi
  buildah rm "$ctr" > /dev/null 2>&1 || true
  buildah rmi "$image" > /dev/null 2>&1 || true
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
listen=127.0.0.1:$port
url=http://$listen
in_image() { buildah run --isolation chroot --env "TOKEND_LISTEN=$listen" "$ctr" -- "$@"; }

[ "$(in_image id -u)" = 10001 ] || fail "commands in the image do not run as uid 10001"
# The image's own entrypoint and command, in a process group of its own.
read -r -a start < <(jq -r '(.Entrypoint + .Cmd) | join(" ")' <<< "$config")
setsid buildah run --isolation chroot --env "TOKEND_LISTEN=$listen" --env RUST_LOG=warn \
  "$ctr" -- "${start[@]}" > "$cache/server.log" 2>&1 &
server=$!
for _ in $(seq 1 150); do curl -sf "$url/ready" > /dev/null && break; sleep 0.2; done
curl -sf "$url/ready" > /dev/null || { cat "$cache/server.log" >&2; fail "/ready never answered"; }
in_image tokend health > /dev/null || fail "the HEALTHCHECK command fails on a ready server"
took "start to ready"

admin=$(in_image tokend admin-token)
auth="Authorization: Bearer $admin"
created=$(curl -sf -X POST "$url/service-accounts" -H "$auth" -H 'Content-Type: application/json' \
  -d '{"name": "sensor:image", "scope": "sensor", "metadata": {"trigger_types": ["core.timer"]}}')
token=$(jq -r .token <<< "$created")
id=$(jq -r .identity_id <<< "$created")
[ "$(curl -sf "$url/auth/whoami" -H "Authorization: Bearer $token" | jq -r .name)" = sensor:image ] \
  || fail "the issued token does not verify"
curl -sf -X DELETE "$url/service-accounts/$id" -H "$auth" > /dev/null
code=$(curl -s "$url/auth/whoami" -H "Authorization: Bearer $token" | jq -r .error.code)
[ "$code" = token_revoked ] || fail "a revoked token is not refused (got $code)"
# The database is in the volume, owned by the unprivileged user.
in_image test -O /var/lib/tokend/data/tokend.db || fail "tokend.db is not in the volume or not owned by uid 10001"
echo "image-test: ok (built, started, healthy, issued, verified, revoked)"

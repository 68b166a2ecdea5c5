#!/usr/bin/env bash
# Builds the container image: a statically linked release binary (glibc with +crt-static: no
# loader or libraries needed, so FROM scratch works), CA certificates, and a passwd/group naming
# the non-root user 65532; then `buildah bud` on Containerfile. No base image is pulled.
#   scripts/image.sh [TAG]      (default etcd-audit:<version>; prints the tag on its last line)
# Needs: cargo, buildah (Debian), the host's CA bundle (/etc/ssl/certs/ca-certificates.crt).
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
tag=${1:-etcd-audit:$version}
target=x86_64-unknown-linux-gnu
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --quiet --release --target "$target" --bin etcd-audit
bin=target/$target/release/etcd-audit
# A static executable has no program interpreter.
if file "$bin" | grep -q 'dynamically linked'; then
  echo "image.sh: $bin is not statically linked" >&2
  exit 1
fi
stage=$(mktemp -d /tmp/etcd-audit-image.XXXXXX)
trap 'rm -rf "$stage"' EXIT
root=$stage/rootfs
install -D -s -m 0755 "$bin" "$root/usr/local/bin/etcd-audit"  # -s: no symbols
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
mkdir -p "$root/tmp" && chmod 1777 "$root/tmp"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"
cp Containerfile "$stage/"
buildah --storage-driver vfs bud --quiet --isolation chroot --layers=false -f "$stage/Containerfile" -t "$tag" "$stage" >/dev/null
echo "$tag"

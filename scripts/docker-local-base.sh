#!/usr/bin/env bash
# Assembles a runtime base image from this machine's own files, for building Dockerfile.mcp and
# Dockerfile.trainer where no registry can be reached (CI): the shared libraries `ldd` lists for
# BINARY (with the dynamic loader), CA certificates, and passwd/group entries for the `nonroot`
# user (65532) the images run as - what distroless cc gives a user who can pull it. No shell.
#
# usage: scripts/docker-local-base.sh BINARY IMAGE[:TAG]
set -euo pipefail
binary=$1 image=$2
[ -x "$binary" ] || { echo "error: $binary is not an executable; build it first (cargo build -p sqlrft)" >&2; exit 2; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
# Every absolute path ldd prints: the libraries and the loader itself.
for lib in $(ldd "$binary" | grep -o '/[^ )]*' | sort -u); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
mkdir -p "$root/etc/ssl/certs" "$root/tmp" "$root/home/nonroot" "$root/usr/local/bin"
cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
chmod 1777 "$root/tmp"
chown 65532:65532 "$root/home/nonroot"
tar -C "$root" --numeric-owner -c . | docker import \
  --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
  --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
  - "$image" >/dev/null
echo "$image"

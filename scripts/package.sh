#!/usr/bin/env bash
# Builds the Debian package freeradius-rust (dpkg-buildpackage -b, from debian/) into
# target/debian/. It depends on the exact upstream freeradius version it was built
# against (the module magic); install it with `apt install ./target/debian/freeradius-rust_*.deb`.
#
#   scripts/package.sh                        -> target/debian/freeradius-rust_<version>_<arch>.deb
#   RLM_PACKAGE_VERSION=0.1.0+1 scripts/package.sh   (another version, e.g. to test an upgrade)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
out=target/debian
mkdir -p "$out"
# Everything it writes goes to target/debian (debian/rules puts the .deb there).
dpkg-buildpackage -b --no-sign --no-pre-clean --buildinfo-option=-u"$out" --changes-option=-u"$out" \
  --buildinfo-file="$out/freeradius-rust.buildinfo" --changes-file="$out/freeradius-rust.changes" >"$out/build.log" 2>&1 ||
  { tail -40 "$out/build.log" >&2; exit 1; }
arch=$(dpkg --print-architecture)
version=${RLM_PACKAGE_VERSION:-$(dpkg-parsechangelog -S Version)}
deb=freeradius-rust_${version}_${arch}.deb
rm -rf debian/freeradius-rust debian/.debhelper debian/files debian/*.substvars debian/*.debhelper.log debian/debhelper-build-stamp debian/rlm-rust.1
echo "$out/$deb"

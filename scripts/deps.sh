#!/usr/bin/env bash
# Installs what building and testing rlm_rust needs on Debian 12, idempotently:
# the stock freeradius server and tools, the headers (libfreeradius-dev plus the ones it
# lacks, from the matching Debian source package), bindgen's libclang, and the Python
# packages the tests use as independent protocol peers; PostgreSQL and Chromium with
# its WebDriver for the shared-store and console tests; debhelper and help2man for the
# Debian package (scripts/package.sh).
set -euo pipefail

SRC_ROOT=/usr/local/src/rlm_rust
PKGS=(freeradius freeradius-utils libfreeradius-dev libclang-dev libtalloc-dev libpcre3-dev
      libssl-dev dpkg-dev pkg-config faketime sqlite3 freeradius-python3
      postgresql freeradius-postgresql chromium chromium-driver
      debhelper help2man)
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The packages start the stock servers (freeradius on 1812/1813, PostgreSQL's main
# cluster); the tests run their own instances, never those.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet freeradius 2>/dev/null; then
  $SUDO systemctl stop freeradius || true
fi

version=$(dpkg-query -W -f='${Version}' freeradius)
dest="$SRC_ROOT/freeradius-$version"
if [ ! -f "$dest/src/include/log.h" ]; then
  echo "deps: fetching the freeradius $version source for the headers libfreeradius-dev lacks"
  # deb-src entries are off by default on Debian 12.
  if ! grep -rqs '^Types:.*deb-src\|^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] && $SUDO sed -i 's/^Types: deb$/Types: deb deb-src/' "$f"
    done
    if [ -f /etc/apt/sources.list ]; then
      $SUDO sed -n 's/^deb \(.*\)/deb-src \1/p' /etc/apt/sources.list | $SUDO tee /etc/apt/sources.list.d/rlm-rust-src.list >/dev/null
    fi
    $SUDO apt-get update -qq
  fi
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get source -qq --download-only "freeradius=$version" >/dev/null 2>&1 \
     && dpkg-source -x --skip-debianization ./*.dsc src >/dev/null)
  $SUDO mkdir -p "$SRC_ROOT"
  $SUDO rm -rf "$dest"
  $SUDO mv "$tmp/src" "$dest"
  rm -rf "$tmp"
fi

if ! python3 -c 'import pyrad, librouteros' 2>/dev/null; then
  echo "deps: installing python test peers (pyrad, librouteros)"
  python3 -m pip install -q --disable-pip-version-check pyrad librouteros
fi

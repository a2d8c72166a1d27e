#!/usr/bin/env bash
# The rlm-rust(1) man page from the CLI's own --help: the overview by help2man,
# then every command's and subcommand's help, so the page cannot drift from the code.
#   scripts/manpage.sh target/release/rlm-rust rlm-rust.1
set -euo pipefail
bin=$1 out=$2
inc=$(mktemp)
trap 'rm -f "$inc"' EXIT
commands() { "$bin" "$@" --help | awk '/^Commands:/ { on = 1; next } on && /^  [a-z]/ { if ($1 != "help") print $1; next } on && !/^ / { on = 0 }'; }
{
  echo '[COMMANDS]'
  for c in $(commands); do
    echo ".SS rlm-rust $c"
    echo '.nf'
    "$bin" "$c" --help | sed 's/\\/\\\\/g; s/^\./\\\&./'
    for s in $(commands "$c"); do
      echo
      echo "rlm-rust $c $s"
      "$bin" "$c" "$s" --help | sed 's/\\/\\\\/g; s/^\./\\\&./; s/^/    /'
    done
    echo '.fi'
  done
  echo '[FILES]'
  echo '/etc/freeradius/3.0/mods-available/rust, /var/lib/freeradius/rlm_rust.sqlite, /usr/share/freeradius/dictionary.rust'
} >"$inc"
help2man --no-info --section 1 --name "usage control for FreeRADIUS: sessions, usage, NASes, capping, policies, the console" \
  --include "$inc" --output "$out" "$bin"

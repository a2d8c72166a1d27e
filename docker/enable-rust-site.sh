#!/bin/sh
# Serves the installed freeradius-rust example site (sites-available/rust, which
# calls the module in authorize, preacct, accounting, session and post-auth) on
# AUTH_PORT and AUTH_PORT+1 of ADDRESS, instead of Debian's default sites. The
# container image runs it at build time; tests/package.sh runs it on the system's
# own configuration (high loopback ports), so what the image does is tested.
#   enable-rust-site.sh ADDRESS AUTH_PORT
set -eu
addr=$1 auth=$2 acct=$(($2 + 1))
etc=/etc/freeradius/3.0
# Debian's default sites listen on 1812/1813 themselves, and EAP needs them.
rm -f $etc/sites-enabled/default $etc/sites-enabled/inner-tunnel $etc/mods-enabled/eap
ln -sf ../mods-available/rust $etc/mods-enabled/rust
ln -sf ../sites-available/rust $etc/sites-enabled/rust
cat >$etc/sites-enabled/rust-listen <<CONF
listen {
	type = auth
	ipaddr = $addr
	port = $auth
	virtual_server = rust
}
listen {
	type = acct
	ipaddr = $addr
	port = $acct
	virtual_server = rust
}
CONF

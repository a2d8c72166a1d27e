/*
 * The C compiler's own view of the structures (and socket constants) the Rust side
 * reads, compiled with the same headers and flags as the bindings. A unit test compares
 * these with the offsets bindgen produced (and src/ffi's constants), so a wrong define
 * (e.g. a missing -DNDEBUG) fails a test.
 * No function here calls into the server, so test binaries can link it.
 */
#include <stddef.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <freeradius-devel/build.h>
#include <freeradius-devel/radiusd.h>
#include <freeradius-devel/modules.h>

#define L(_t, _f) offsetof(_t, _f)
size_t const rlm_rust_c_layout[] = {
	sizeof(REQUEST), L(REQUEST, packet), L(REQUEST, reply), L(REQUEST, config), L(REQUEST, number),
	L(REQUEST, client), L(REQUEST, module), L(REQUEST, timestamp), L(REQUEST, log),
	sizeof(RADIUS_PACKET), L(RADIUS_PACKET, code), L(RADIUS_PACKET, vps), L(RADIUS_PACKET, src_ipaddr),
	L(RADIUS_PACKET, timestamp), L(RADIUS_PACKET, id),
	sizeof(VALUE_PAIR), L(VALUE_PAIR, da), L(VALUE_PAIR, next), L(VALUE_PAIR, vp_length), L(VALUE_PAIR, data),
	sizeof(DICT_ATTR), L(DICT_ATTR, attr), L(DICT_ATTR, vendor), L(DICT_ATTR, type), L(DICT_ATTR, name),
	sizeof(module_t), L(module_t, inst_size), L(module_t, config), L(module_t, methods),
	sizeof(CONF_PARSER), L(CONF_PARSER, offset), L(CONF_PARSER, dflt),
	sizeof(fr_ipaddr_t), L(fr_ipaddr_t, ipaddr), L(fr_ipaddr_t, prefix),
	L(RADCLIENT, secret), L(REQUEST, simul_count),
	AF_INET, AF_INET6, IPPROTO_UDP,
	0
};

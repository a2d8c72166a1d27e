//! The Rust view of the C structures must equal the C compiler's (see include/layout.c).
use super::sys::*;
use std::mem::{offset_of, size_of};

extern "C" {
    static rlm_rust_c_layout: [usize; 41];
}

#[test]
fn rust_and_c_agree_on_layouts() {
    let rust: [usize; 41] = [
        size_of::<REQUEST>(),
        offset_of!(REQUEST, packet),
        offset_of!(REQUEST, reply),
        offset_of!(REQUEST, config),
        offset_of!(REQUEST, number),
        offset_of!(REQUEST, client),
        offset_of!(REQUEST, module),
        offset_of!(REQUEST, timestamp),
        offset_of!(REQUEST, log),
        size_of::<RADIUS_PACKET>(),
        offset_of!(RADIUS_PACKET, code),
        offset_of!(RADIUS_PACKET, vps),
        offset_of!(RADIUS_PACKET, src_ipaddr),
        offset_of!(RADIUS_PACKET, timestamp),
        offset_of!(RADIUS_PACKET, id),
        size_of::<VALUE_PAIR>(),
        offset_of!(VALUE_PAIR, da),
        offset_of!(VALUE_PAIR, next),
        offset_of!(VALUE_PAIR, length),
        offset_of!(VALUE_PAIR, data),
        size_of::<DICT_ATTR>(),
        offset_of!(DICT_ATTR, attr),
        offset_of!(DICT_ATTR, vendor),
        offset_of!(DICT_ATTR, type_),
        offset_of!(DICT_ATTR, name),
        size_of::<module_t>(),
        offset_of!(module_t, inst_size),
        offset_of!(module_t, config),
        offset_of!(module_t, methods),
        size_of::<CONF_PARSER>(),
        offset_of!(CONF_PARSER, offset),
        offset_of!(CONF_PARSER, dflt),
        size_of::<fr_ipaddr_t>(),
        offset_of!(fr_ipaddr_t, ipaddr),
        offset_of!(fr_ipaddr_t, prefix),
        offset_of!(RADCLIENT, secret),
        offset_of!(REQUEST, simul_count),
        super::net::AF_INET as usize,
        super::net::AF_INET6 as usize,
        super::net::IPPROTO_UDP as usize,
        0,
    ];
    // SAFETY: a constant array defined in include/layout.c.
    let c = unsafe { &rlm_rust_c_layout };
    assert_eq!(c[40], 0, "layout.c and this test list different fields");
    assert_eq!(
        c, &rust,
        "bindgen and the C compiler disagree on a struct layout"
    );
}

#[test]
fn built_without_assertions_like_debian() {
    // With NDEBUG unset, REQUEST gains a leading `magic` field and `number` moves.
    assert_eq!(
        offset_of!(REQUEST, number),
        0,
        "REQUEST layout suggests -DNDEBUG is missing"
    );
}

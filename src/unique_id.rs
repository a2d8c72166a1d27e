//! Acct-Unique-Session-Id, exactly as the stock `acct_unique` policy computes it
//! (`policy.d/accounting` of freeRADIUS 3.2), so the module can set it in preacct.
//!
//! Why not leave it to the policy: its `%{md5:...}` expansion allocates an OpenSSL
//! digest context on every call and never frees it in freeRADIUS 3.2.1 with
//! OpenSSL 3 (Debian 12: `fr_md5_init` without `fr_md5_destroy` in `md5_xlat`),
//! about 0.2 KiB per accounting request, for good. The value is the same, so
//! sessions keep their keys whichever of the two set it.
//!
//! The policy, in short: if the first Class starts with `ai:` (the stock
//! `policy.class_value_prefix`) followed by 32 hex digits, the id is
//! `md5("<those 32 digits>,<Acct-Session-Id>")`; otherwise
//! `md5("<User-Name>,<Acct-Session-Id>,<NAS-IPv6-Address or NAS-IP-Address>,<NAS-Identifier>,<NAS-Port-Id>,<NAS-Port>")`.
//! Missing attributes expand to nothing; strings are taken as they are, each up to
//! its first NUL (checked against the real policy by `tests/e2e_unique_id.rs`).

use std::net::{Ipv4Addr, Ipv6Addr};

/// `policy.class_value_prefix` of the stock configuration.
pub const CLASS_PREFIX: &[u8] = b"ai:";

/// The request attributes the id is made of (first instance of each).
#[derive(Debug, Clone, Copy, Default)]
pub struct UniqueIdInput<'a> {
    pub user_name: Option<&'a [u8]>,
    pub acct_session_id: Option<&'a [u8]>,
    pub nas_ip: Option<Ipv4Addr>,
    pub nas_ipv6: Option<Ipv6Addr>,
    pub nas_identifier: Option<&'a [u8]>,
    pub nas_port_id: Option<&'a [u8]>,
    pub nas_port: Option<u64>,
    pub class: Option<&'a [u8]>,
}

/// The Acct-Unique-Session-Id the stock policy would set: 32 lowercase hex digits.
pub fn acct_unique_session_id(a: &UniqueIdInput<'_>) -> String {
    let mut s = Vec::with_capacity(128);
    let session_id = |s: &mut Vec<u8>| xlat_string(a.acct_session_id.unwrap_or_default(), s);
    if let Some(digits) = a.class.and_then(class_digits) {
        s.extend_from_slice(digits);
        s.push(b',');
        session_id(&mut s);
    } else {
        xlat_string(a.user_name.unwrap_or_default(), &mut s);
        s.push(b',');
        session_id(&mut s);
        s.push(b',');
        match (a.nas_ipv6, a.nas_ip) {
            (Some(v6), _) => s.extend_from_slice(inet_ntop6(v6).as_bytes()),
            (None, Some(v4)) => s.extend_from_slice(v4.to_string().as_bytes()),
            (None, None) => {}
        }
        s.push(b',');
        xlat_string(a.nas_identifier.unwrap_or_default(), &mut s);
        s.push(b',');
        xlat_string(a.nas_port_id.unwrap_or_default(), &mut s);
        s.push(b',');
        if let Some(port) = a.nas_port {
            s.extend_from_slice(port.to_string().as_bytes());
        }
    }
    crate::digest::md5_hex(&s)
}

/// The 32 hex digits after the prefix of a Class written by `insert_acct_class`
/// (`/^ai:([0-9a-f]{32})/i` after an exact prefix match), as they are.
fn class_digits(class: &[u8]) -> Option<&[u8]> {
    let rest = class.strip_prefix(CLASS_PREFIX)?;
    let digits = rest.get(..32)?;
    digits.iter().all(u8::is_ascii_hexdigit).then_some(digits)
}

/// A string value as the policy's expansion writes it: the bytes as they are, up to
/// the first NUL (each expanded value is handled as a C string).
fn xlat_string(value: &[u8], out: &mut Vec<u8>) {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    out.extend_from_slice(&value[..end]);
}

/// An IPv6 address as glibc's inet_ntop writes it (RFC 5952, and `::a.b.c.d` /
/// `::ffff:a.b.c.d` for IPv4-compatible and -mapped addresses).
fn inet_ntop6(a: Ipv6Addr) -> String {
    let w = a.segments();
    let v4 = || {
        Ipv4Addr::new(
            a.octets()[12],
            a.octets()[13],
            a.octets()[14],
            a.octets()[15],
        )
    };
    if w[..5] == [0; 5] && w[5] == 0xffff {
        return format!("::ffff:{}", v4());
    }
    if w[..6] == [0; 6] && w[6] != 0 {
        return format!("::{}", v4());
    }
    a.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::md5_hex;

    #[test]
    fn strings_are_written_raw_up_to_a_nul() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"joe", b"joe"),
            (b"a\"b\\c\td", b"a\"b\\c\td"),
            (b"bad\xc3(\xff", b"bad\xc3(\xff"),
            (b"nul\x00in", b"nul"),
            (b"\x00", b""),
            (b"", b""),
        ];
        for (input, want) in cases {
            let mut out = Vec::new();
            xlat_string(input, &mut out);
            assert_eq!(out, *want, "{input:?}");
        }
    }

    #[test]
    fn ipv6_text_matches_inet_ntop() {
        let cases = [
            ("2001:db8::1", "2001:db8::1"),
            ("2001:db8:0:1:0:0:0:1", "2001:db8:0:1::1"),
            ("::1", "::1"),
            ("::", "::"),
            ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
            ("::192.0.2.1", "::192.0.2.1"),
            ("fe80::0:1", "fe80::1"),
        ];
        for (input, want) in cases {
            assert_eq!(inet_ntop6(input.parse().unwrap()), want, "{input}");
        }
    }

    /// The md5 of the exact string the stock policy builds (values checked with
    /// `printf ... | md5sum`).
    #[test]
    fn ids_hash_the_policy_strings() {
        let plain = UniqueIdInput {
            user_name: Some(b"joe"),
            acct_session_id: Some(b"81200001"),
            nas_ip: Some(Ipv4Addr::new(192, 0, 2, 1)),
            nas_port: Some(7),
            ..UniqueIdInput::default()
        };
        // md5("joe,81200001,192.0.2.1,,,7")
        let want = md5_hex(b"joe,81200001,192.0.2.1,,,7");
        assert_eq!(acct_unique_session_id(&plain), want);
        let class = UniqueIdInput {
            class: Some(b"ai:0123456789ABCDEF0123456789abcdef-tail"),
            ..plain
        };
        let want = md5_hex(b"0123456789ABCDEF0123456789abcdef,81200001");
        assert_eq!(acct_unique_session_id(&class), want);
        // Not the policy's Class: the plain formula.
        for other in [
            &b"ai:0123"[..],
            b"AI:0123456789abcdef0123456789abcdef",
            b"xx",
        ] {
            let c = UniqueIdInput {
                class: Some(other),
                ..plain
            };
            assert_eq!(acct_unique_session_id(&c), acct_unique_session_id(&plain));
        }
        let v6 = UniqueIdInput {
            nas_ipv6: Some("2001:db8::1".parse().unwrap()),
            ..plain
        };
        let want = md5_hex(b"joe,81200001,2001:db8::1,,,7");
        assert_eq!(acct_unique_session_id(&v6), want);
        assert_eq!(
            acct_unique_session_id(&UniqueIdInput::default()),
            md5_hex(b",,,,,")
        );
    }
}

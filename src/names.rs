//! User-Names and Acct-Session-Ids are bytes, not text: a NAS may send Latin-1
//! ("m\xfcller") or garbage. They are carried as `String`s made by [`decode`], which
//! is injective (two different byte strings never give the same `String`), and the
//! store writes back exactly the bytes ([`encode`]). Replacing invalid UTF-8 with
//! U+FFFD instead merged "m\xfcller" and "m\xe4ller" into one user.
//!
//! A byte that is not part of valid UTF-8 becomes U+10FF00 + byte (the last 256 code
//! points of plane 16, private use). So that the mapping stays injective, valid
//! UTF-8 that itself encodes one of those code points is carried byte by byte too.
use std::borrow::Cow;

const BASE: u32 = 0x10_FF00;

fn escaped(c: char) -> Option<u8> {
    let v = u32::from(c);
    (BASE..=BASE + 0xFF).contains(&v).then(|| (v - BASE) as u8)
}

fn byte_char(b: u8) -> char {
    char::from_u32(BASE + u32::from(b)).expect("plane 16 is valid")
}

/// The name for `bytes`, exact and injective; valid UTF-8 is returned as is.
pub fn decode(bytes: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(bytes) {
        if !s.chars().any(|c| escaped(c).is_some()) {
            return s.to_string();
        }
    }
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if escaped(c).is_some() {
                let mut buf = [0u8; 4];
                out.extend(c.encode_utf8(&mut buf).bytes().map(byte_char));
            } else {
                out.push(c);
            }
        }
        out.extend(chunk.invalid().iter().map(|&b| byte_char(b)));
    }
    out
}

/// The bytes `name` was decoded from.
pub fn encode(name: &str) -> Cow<'_, [u8]> {
    if !name.chars().any(|c| escaped(c).is_some()) {
        return Cow::Borrowed(name.as_bytes());
    }
    let mut out = Vec::with_capacity(name.len());
    for c in name.chars() {
        match escaped(c) {
            Some(b) => out.push(b),
            None => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    Cow::Owned(out)
}

/// For an operator's screen: raw bytes as `\xNN`, control characters escaped,
/// everything else as it is. None when nothing needs escaping.
pub fn escape(name: &str) -> Option<String> {
    if !name.chars().any(|c| c.is_control() || escaped(c).is_some()) {
        return None;
    }
    let mut out = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        match escaped(c) {
            Some(b) => out.push_str(&format!("\\x{b:02x}")),
            None if c.is_control() || c == '\\' => out.extend(c.escape_debug()),
            None => out.push(c),
        }
    }
    Some(out)
}

/// A name given on the command line: the argument's bytes (pass raw bytes with the
/// shell, e.g. bash's `$'m\xfcller'`).
#[cfg(unix)]
pub fn from_os(arg: &std::ffi::OsStr) -> String {
    use std::os::unix::ffi::OsStrExt;
    decode(arg.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_bytes_stay_distinct_and_round_trip() {
        let samples: &[&[u8]] = &[
            b"alice",
            "müller".as_bytes(),
            b"m\xfcller",
            b"m\xe4ller",
            b"\xff\xfe",
            b"",
            b"a\x00b",
            "\u{10FFFC}".as_bytes(),
            b"\xf4\x8f\xbf\xbd",
            b"\xf4\x8f",
            "x\u{10FF41}y".as_bytes(),
        ];
        let decoded: Vec<String> = samples.iter().map(|b| decode(b)).collect();
        for (b, d) in samples.iter().zip(&decoded) {
            assert_eq!(&*encode(d), *b, "{d:?}");
        }
        let mut unique = decoded.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), decoded.len(), "{decoded:?}");
        assert_eq!(decode(b"alice"), "alice");
        assert_eq!(decode("müller".as_bytes()), "müller");
    }

    #[test]
    fn every_byte_string_round_trips() {
        // All strings of up to 2 bytes, and a pseudo-random sample of longer ones.
        let mut seen = std::collections::HashSet::new();
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let bytes = [a, b];
                let d = decode(&bytes);
                assert_eq!(&*encode(&d), &bytes);
                assert!(seen.insert(d));
            }
        }
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let len = (x % 9) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Bias towards the bytes of plane 16 and of multi-byte sequences.
                    [0xf4, 0x8f, 0xbc, 0xbf, 0xc3, 0xa4, b'a', x as u8][(x >> 40) as usize % 8]
                })
                .collect();
            assert_eq!(&*encode(&decode(&bytes)), &bytes[..], "{bytes:x?}");
        }
    }

    #[test]
    fn escaped_for_the_screen() {
        let cases: [(&[u8], Option<&str>); 5] = [
            (b"alice", None),
            ("müller".as_bytes(), None),
            (b"m\xfcller", Some("m\\xfcller")),
            (b"a\nb", Some("a\\nb")),
            (b"d\\u\xff", Some("d\\\\u\\xff")),
        ];
        for (bytes, want) in cases {
            assert_eq!(escape(&decode(bytes)).as_deref(), want, "{bytes:x?}");
        }
    }
}

//! MD5 as lowercase hex, the form both RADIUS-side ids and RouterOS logins use.

use std::fmt::Write as _;

use md5::{Digest, Md5};

/// `md5(data)` as 32 lowercase hex digits.
pub fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data)
        .iter()
        .fold(String::with_capacity(32), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_vectors() {
        // RFC 1321 test suite.
        assert_eq!(super::md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(super::md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    }
}

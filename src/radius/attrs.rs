//! Attribute numbers, the raw attribute type, Vendor-Specific sub-attributes and
//! typed value helpers (RFC 2865 section 5: text/string, integer, address, time).

use std::net::Ipv4Addr;

use super::RadiusError;

// RFC 2865 / 2866 / 2869 / 3576 / 5176 attribute numbers.
pub const USER_NAME: u8 = 1;
pub const USER_PASSWORD: u8 = 2;
pub const CHAP_PASSWORD: u8 = 3;
pub const NAS_IP_ADDRESS: u8 = 4;
pub const NAS_PORT: u8 = 5;
pub const SERVICE_TYPE: u8 = 6;
pub const FRAMED_PROTOCOL: u8 = 7;
pub const FRAMED_IP_ADDRESS: u8 = 8;
pub const FRAMED_IP_NETMASK: u8 = 9;
pub const FILTER_ID: u8 = 11;
pub const REPLY_MESSAGE: u8 = 18;
pub const STATE: u8 = 24;
pub const CLASS: u8 = 25;
pub const VENDOR_SPECIFIC: u8 = 26;
pub const SESSION_TIMEOUT: u8 = 27;
pub const IDLE_TIMEOUT: u8 = 28;
pub const CALLED_STATION_ID: u8 = 30;
pub const CALLING_STATION_ID: u8 = 31;
pub const NAS_IDENTIFIER: u8 = 32;
pub const PROXY_STATE: u8 = 33;
pub const ACCT_STATUS_TYPE: u8 = 40;
pub const ACCT_DELAY_TIME: u8 = 41;
pub const ACCT_INPUT_OCTETS: u8 = 42;
pub const ACCT_OUTPUT_OCTETS: u8 = 43;
pub const ACCT_SESSION_ID: u8 = 44;
pub const ACCT_AUTHENTIC: u8 = 45;
pub const ACCT_SESSION_TIME: u8 = 46;
pub const ACCT_INPUT_PACKETS: u8 = 47;
pub const ACCT_OUTPUT_PACKETS: u8 = 48;
pub const ACCT_TERMINATE_CAUSE: u8 = 49;
pub const ACCT_MULTI_SESSION_ID: u8 = 50;
pub const ACCT_INPUT_GIGAWORDS: u8 = 52;
pub const ACCT_OUTPUT_GIGAWORDS: u8 = 53;
pub const EVENT_TIMESTAMP: u8 = 55;
pub const CHAP_CHALLENGE: u8 = 60;
pub const NAS_PORT_TYPE: u8 = 61;
pub const ACCT_INTERIM_INTERVAL: u8 = 85;
pub const NAS_PORT_ID: u8 = 87;
pub const MESSAGE_AUTHENTICATOR: u8 = 80;
pub const ERROR_CAUSE: u8 = 101;

// Acct-Status-Type values (RFC 2866 5.1).
pub const ACCT_STATUS_START: u32 = 1;
pub const ACCT_STATUS_STOP: u32 = 2;
pub const ACCT_STATUS_INTERIM: u32 = 3;
pub const ACCT_STATUS_ON: u32 = 7;
pub const ACCT_STATUS_OFF: u32 = 8;

/// MikroTik's IANA enterprise number and its sub-attributes (dictionary.mikrotik).
pub const VENDOR_MIKROTIK: u32 = 14988;
pub const MIKROTIK_RECV_LIMIT: u8 = 1;
pub const MIKROTIK_XMIT_LIMIT: u8 = 2;
pub const MIKROTIK_GROUP: u8 = 3;
pub const MIKROTIK_RATE_LIMIT: u8 = 8;
pub const MIKROTIK_REALM: u8 = 9;
pub const MIKROTIK_HOST_IP: u8 = 10;
pub const MIKROTIK_RECV_LIMIT_GIGAWORDS: u8 = 14;
pub const MIKROTIK_XMIT_LIMIT_GIGAWORDS: u8 = 15;
pub const MIKROTIK_TOTAL_LIMIT: u8 = 17;
pub const MIKROTIK_TOTAL_LIMIT_GIGAWORDS: u8 = 18;
pub const MIKROTIK_ADDRESS_LIST: u8 = 19;

/// Longest attribute value: the length octet covers type+length+value.
pub const MAX_VALUE_LEN: usize = 253;

/// One attribute as it is on the wire: type and raw value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub typ: u8,
    pub value: Vec<u8>,
}

impl Attribute {
    pub fn new(typ: u8, value: impl Into<Vec<u8>>) -> Self {
        Attribute {
            typ,
            value: value.into(),
        }
    }

    pub fn string(typ: u8, s: &str) -> Self {
        Self::new(typ, s.as_bytes())
    }

    pub fn integer(typ: u8, v: u32) -> Self {
        Self::new(typ, v.to_be_bytes())
    }

    pub fn ipv4(typ: u8, ip: Ipv4Addr) -> Self {
        Self::new(typ, ip.octets())
    }

    /// RFC 2865 "time": seconds since 1970-01-01 UTC, 32 bits.
    pub fn date(typ: u8, unix_seconds: u32) -> Self {
        Self::integer(typ, unix_seconds)
    }

    /// A Vendor-Specific attribute holding one sub-attribute in the RFC 2865
    /// recommended format (1-octet vendor type, 1-octet vendor length).
    pub fn vsa(vendor: u32, vendor_type: u8, value: &[u8]) -> Result<Self, RadiusError> {
        if value.len() + 6 > MAX_VALUE_LEN {
            return Err(RadiusError::AttributeTooLong {
                typ: VENDOR_SPECIFIC,
                len: value.len() + 6,
            });
        }
        let mut v = Vec::with_capacity(6 + value.len());
        v.extend_from_slice(&vendor.to_be_bytes());
        v.push(vendor_type);
        v.push((value.len() + 2) as u8);
        v.extend_from_slice(value);
        Ok(Self::new(VENDOR_SPECIFIC, v))
    }

    /// Value as text; invalid UTF-8 is replaced rather than refused, since NASes
    /// send whatever bytes they like.
    pub fn as_text(&self) -> String {
        String::from_utf8_lossy(&self.value).into_owned()
    }

    pub fn as_integer(&self) -> Option<u32> {
        decode_integer(&self.value)
    }

    pub fn as_ipv4(&self) -> Option<Ipv4Addr> {
        let o: [u8; 4] = self.value.as_slice().try_into().ok()?;
        Some(Ipv4Addr::from(o))
    }

    /// Vendor id and sub-attributes when this is a well-formed Vendor-Specific.
    pub fn as_vsa(&self) -> Option<(u32, Vec<VendorAttr<'_>>)> {
        if self.typ != VENDOR_SPECIFIC {
            return None;
        }
        parse_vsa(&self.value).ok()
    }
}

/// One sub-attribute inside a Vendor-Specific attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VendorAttr<'a> {
    pub vendor_type: u8,
    pub value: &'a [u8],
}

/// Splits a Vendor-Specific value into vendor id and sub-attributes (1/1 format).
pub fn parse_vsa(value: &[u8]) -> Result<(u32, Vec<VendorAttr<'_>>), RadiusError> {
    if value.len() < 4 {
        return Err(RadiusError::BadVsa("shorter than a vendor id"));
    }
    let vendor = u32::from_be_bytes([value[0], value[1], value[2], value[3]]);
    let mut rest = &value[4..];
    let mut subs = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 2 {
            return Err(RadiusError::BadVsa("truncated sub-attribute header"));
        }
        let len = rest[1] as usize;
        if len < 2 || len > rest.len() {
            return Err(RadiusError::BadVsa("sub-attribute length out of range"));
        }
        subs.push(VendorAttr {
            vendor_type: rest[0],
            value: &rest[2..len],
        });
        rest = &rest[len..];
    }
    Ok((vendor, subs))
}

pub fn decode_integer(v: &[u8]) -> Option<u32> {
    let b: [u8; 4] = v.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// RFC 5176 section 3.5 Error-Cause values, named as in FreeRADIUS' dictionary.
pub fn error_cause_name(code: u32) -> Option<&'static str> {
    Some(match code {
        201 => "Residual-Context-Removed",
        202 => "Invalid-EAP-Packet",
        401 => "Unsupported-Attribute",
        402 => "Missing-Attribute",
        403 => "NAS-Identification-Mismatch",
        404 => "Invalid-Request",
        405 => "Unsupported-Service",
        406 => "Unsupported-Extension",
        407 => "Invalid-Attribute-Value",
        501 => "Administratively-Prohibited",
        502 => "Proxy-Request-Not-Routable",
        503 => "Session-Context-Not-Found",
        504 => "Session-Context-Not-Removable",
        505 => "Proxy-Processing-Error",
        506 => "Resources-Unavailable",
        507 => "Request-Initiated",
        508 => "Multiple-Session-Selection-Unsupported",
        _ => return None,
    })
}

/// "503 Session-Context-Not-Found", or just the number when unknown.
pub fn describe_error_cause(code: u32) -> String {
    match error_cause_name(code) {
        Some(n) => format!("{code} {n}"),
        None => format!("{code} (unknown Error-Cause)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vsa_round_trip_mikrotik_rate_limit() {
        let a = Attribute::vsa(VENDOR_MIKROTIK, MIKROTIK_RATE_LIMIT, b"10M/10M").unwrap();
        assert_eq!(a.typ, VENDOR_SPECIFIC);
        assert_eq!(&a.value[..6], &[0, 0, 0x3a, 0x8c, 8, 9]);
        let (vendor, subs) = a.as_vsa().unwrap();
        assert_eq!(vendor, 14988);
        assert_eq!(subs.len(), 1);
        assert_eq!(subs[0].vendor_type, MIKROTIK_RATE_LIMIT);
        assert_eq!(subs[0].value, b"10M/10M");
    }

    #[test]
    fn vsa_too_long_is_refused() {
        assert!(Attribute::vsa(1, 1, &[0u8; 247]).is_ok());
        assert!(Attribute::vsa(1, 1, &[0u8; 248]).is_err());
    }

    #[test]
    fn parse_vsa_table() {
        let cases: &[(&[u8], Option<usize>)] = &[
            (&[0, 0, 0, 9], Some(0)),
            (&[0, 0, 0, 9, 1, 3, b'x', 2, 2], Some(2)),
            (&[0, 0, 0], None),
            (&[0, 0, 0, 9, 1], None),
            (&[0, 0, 0, 9, 1, 1], None),
            (&[0, 0, 0, 9, 1, 4, b'x'], None),
        ];
        for (input, want) in cases {
            let got = parse_vsa(input).ok().map(|(_, s)| s.len());
            assert_eq!(got, *want, "input {input:?}");
        }
    }

    #[test]
    fn typed_helpers() {
        assert_eq!(Attribute::integer(5, 0x01020304).value, [1, 2, 3, 4]);
        assert_eq!(Attribute::integer(5, 7).as_integer(), Some(7));
        assert_eq!(Attribute::new(5, vec![1, 2, 3]).as_integer(), None);
        let ip = Ipv4Addr::new(10, 1, 2, 3);
        assert_eq!(Attribute::ipv4(8, ip).as_ipv4(), Some(ip));
        assert_eq!(Attribute::new(8, vec![1]).as_ipv4(), None);
        assert_eq!(Attribute::new(1, vec![b'a', 0xff]).as_text(), "a\u{fffd}");
        assert_eq!(
            Attribute::date(55, 1_700_000_000).as_integer(),
            Some(1_700_000_000)
        );
    }

    #[test]
    fn error_cause_names() {
        assert_eq!(describe_error_cause(503), "503 Session-Context-Not-Found");
        assert_eq!(describe_error_cause(401), "401 Unsupported-Attribute");
        assert_eq!(describe_error_cause(404), "404 Invalid-Request");
        assert_eq!(describe_error_cause(506), "506 Resources-Unavailable");
        assert_eq!(describe_error_cause(999), "999 (unknown Error-Cause)");
    }
}

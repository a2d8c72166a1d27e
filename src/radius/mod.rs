//! A small RADIUS codec (RFC 2865 / 2866 / 2869 / 5176) and a pipelined UDP client.
//!
//! - [`attrs`]: attribute numbers, [`Attribute`], Vendor-Specific and typed helpers.
//! - [`packet`]: [`Packet`] encode/decode, authenticators, Message-Authenticator,
//!   User-Password hiding.
//! - [`client`]: many requests in flight over one UDP socket, with retries.
//!
//! Decoding never panics on hostile input; every failure is a [`RadiusError`].

pub mod attrs;
pub mod client;
#[cfg(any(test, feature = "doubles"))]
pub mod double;
pub mod packet;

pub use attrs::{Attribute, VendorAttr};
pub use packet::Packet;

/// Packet codes we know (RFC 2865, 2866, 5176, 5997).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    AccessRequest,
    AccessAccept,
    AccessReject,
    AccountingRequest,
    AccountingResponse,
    AccessChallenge,
    StatusServer,
    StatusClient,
    DisconnectRequest,
    DisconnectAck,
    DisconnectNak,
    CoaRequest,
    CoaAck,
    CoaNak,
}

impl Code {
    pub fn from_u8(v: u8) -> Option<Code> {
        use Code::*;
        Some(match v {
            1 => AccessRequest,
            2 => AccessAccept,
            3 => AccessReject,
            4 => AccountingRequest,
            5 => AccountingResponse,
            11 => AccessChallenge,
            12 => StatusServer,
            13 => StatusClient,
            40 => DisconnectRequest,
            41 => DisconnectAck,
            42 => DisconnectNak,
            43 => CoaRequest,
            44 => CoaAck,
            45 => CoaNak,
            _ => return None,
        })
    }

    pub fn as_u8(self) -> u8 {
        use Code::*;
        match self {
            AccessRequest => 1,
            AccessAccept => 2,
            AccessReject => 3,
            AccountingRequest => 4,
            AccountingResponse => 5,
            AccessChallenge => 11,
            StatusServer => 12,
            StatusClient => 13,
            DisconnectRequest => 40,
            DisconnectAck => 41,
            DisconnectNak => 42,
            CoaRequest => 43,
            CoaAck => 44,
            CoaNak => 45,
        }
    }

    /// Name as in FreeRADIUS' Packet-Type dictionary.
    pub fn name(self) -> &'static str {
        use Code::*;
        match self {
            AccessRequest => "Access-Request",
            AccessAccept => "Access-Accept",
            AccessReject => "Access-Reject",
            AccountingRequest => "Accounting-Request",
            AccountingResponse => "Accounting-Response",
            AccessChallenge => "Access-Challenge",
            StatusServer => "Status-Server",
            StatusClient => "Status-Client",
            DisconnectRequest => "Disconnect-Request",
            DisconnectAck => "Disconnect-ACK",
            DisconnectNak => "Disconnect-NAK",
            CoaRequest => "CoA-Request",
            CoaAck => "CoA-ACK",
            CoaNak => "CoA-NAK",
        }
    }

    /// Requests whose Request Authenticator is random (the others are an MD5 over
    /// the packet with a zero authenticator).
    pub fn has_random_authenticator(self) -> bool {
        matches!(self, Code::AccessRequest | Code::StatusServer)
    }

    pub fn is_request(self) -> bool {
        use Code::*;
        matches!(
            self,
            AccessRequest
                | AccountingRequest
                | StatusServer
                | StatusClient
                | DisconnectRequest
                | CoaRequest
        )
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RadiusError {
    #[error("packet shorter than the 20-octet header ({0} octets)")]
    TooShort(usize),
    #[error("length field {field} out of range (datagram has {actual} octets)")]
    BadLength { field: usize, actual: usize },
    #[error("unknown packet code {0}")]
    UnknownCode(u8),
    #[error("malformed attribute at offset {offset}")]
    BadAttribute { offset: usize },
    #[error("attribute {typ} value too long ({len} octets)")]
    AttributeTooLong { typ: u8, len: usize },
    #[error("packet too long ({0} octets, max 4096)")]
    PacketTooLong(usize),
    #[error("malformed Vendor-Specific: {0}")]
    BadVsa(&'static str),
    #[error("Request Authenticator does not verify")]
    BadRequestAuthenticator,
    #[error("Response Authenticator does not verify")]
    BadResponseAuthenticator,
    #[error("Message-Authenticator does not verify")]
    BadMessageAuthenticator,
    #[error("Message-Authenticator has length {0}, expected 16")]
    MalformedMessageAuthenticator(usize),
    #[error("password longer than 128 octets")]
    PasswordTooLong,
    #[error("hidden password length {0} is not a positive multiple of 16")]
    BadHiddenPassword(usize),
    #[error("no random source: {0}")]
    Random(String),
}

/// Fills a buffer from the OS random source.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), RadiusError> {
    getrandom::fill(buf).map_err(|e| RadiusError::Random(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_round_trip() {
        for v in 0..=255u8 {
            if let Some(c) = Code::from_u8(v) {
                assert_eq!(c.as_u8(), v);
            }
        }
        assert_eq!(Code::from_u8(40), Some(Code::DisconnectRequest));
        assert_eq!(Code::from_u8(45), Some(Code::CoaNak));
        assert_eq!(Code::from_u8(6), None);
        assert_eq!(Code::DisconnectNak.to_string(), "Disconnect-NAK");
    }
}

//! Accounting sessions: the plain-Rust view of an accounting packet and the pure
//! rules that turn successive packets of one session into usage deltas.
//!
//! The FFI layer builds an [`AcctUpdate`] from the request's attributes; the store
//! applies it (see `store`). Nothing here knows about C or SQL.

/// Acct-Status-Type values we act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AcctStatus {
    Start,
    Interim,
    Stop,
    AccountingOn,
    AccountingOff,
}

impl AcctStatus {
    /// From the RFC 2866 Acct-Status-Type value (7/8 are Accounting-On/Off).
    pub fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(Self::Start),
            2 => Some(Self::Stop),
            3 => Some(Self::Interim),
            7 => Some(Self::AccountingOn),
            8 => Some(Self::AccountingOff),
            _ => None,
        }
    }
}

/// One accounting packet, extracted from the request by the FFI layer.
#[derive(Debug, Clone, PartialEq)]
pub struct AcctUpdate {
    pub status: AcctStatus,
    /// NAS-IP-Address, else the packet's source address, as text.
    pub nas_ip: String,
    /// Acct-Session-Id ("" for Accounting-On/Off).
    pub session_id: String,
    /// Acct-Unique-Session-Id when the policy computed one; preferred as key.
    pub unique_id: Option<String>,
    pub username: String,
    /// Full 64-bit counters: Acct-*-Octets + 2^32 * Acct-*-Gigawords.
    pub input_octets: u64,
    pub output_octets: u64,
    pub session_time: Option<u32>,
    pub framed_ip: Option<String>,
    pub calling_station_id: Option<String>,
    pub nas_port: Option<u32>,
    pub terminate_cause: Option<String>,
    /// Unix seconds at which the NAS took these counters: arrival minus Acct-Delay-Time.
    pub event_time: i64,
}

impl AcctUpdate {
    /// The key that identifies the session on its NAS.
    pub fn session_key(&self) -> &str {
        self.unique_id.as_deref().unwrap_or(&self.session_id)
    }
}

/// 64-bit counter from the 32-bit value and its gigawords (RFC 2869 5.1/5.2).
pub fn octets(low: u32, gigawords: u32) -> u64 {
    (u64::from(gigawords) << 32) | u64::from(low)
}

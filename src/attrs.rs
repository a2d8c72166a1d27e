//! Read access to a RADIUS attribute list, independent of FreeRADIUS.
//!
//! The FFI layer implements [`Attrs`] over a live request; tests use [`AttrMap`].
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// RFC attribute numbers we read (vendor 0).
pub mod std_attr {
    pub const USER_NAME: u32 = 1;
    pub const NAS_IP_ADDRESS: u32 = 4;
    pub const NAS_PORT: u32 = 5;
    pub const FRAMED_IP_ADDRESS: u32 = 8;
    pub const CLASS: u32 = 25;
    pub const SESSION_TIMEOUT: u32 = 27;
    pub const CALLING_STATION_ID: u32 = 31;
    pub const NAS_IDENTIFIER: u32 = 32;
    pub const ACCT_STATUS_TYPE: u32 = 40;
    pub const ACCT_DELAY_TIME: u32 = 41;
    pub const ACCT_INPUT_OCTETS: u32 = 42;
    pub const ACCT_OUTPUT_OCTETS: u32 = 43;
    pub const ACCT_SESSION_ID: u32 = 44;
    pub const ACCT_SESSION_TIME: u32 = 46;
    pub const ACCT_TERMINATE_CAUSE: u32 = 49;
    pub const ACCT_INPUT_GIGAWORDS: u32 = 52;
    pub const ACCT_OUTPUT_GIGAWORDS: u32 = 53;
    pub const NAS_PORT_ID: u32 = 87;
    pub const NAS_IPV6_ADDRESS: u32 = 95;
    pub const ACCT_UNIQUE_SESSION_ID: u32 = 1051;
}

/// A list of attributes: first value of an attribute by number or by name.
pub trait Attrs {
    fn integer(&self, attr: u32, vendor: u32) -> Option<u64>;
    /// Any value rendered as text (enumerated integers stay numeric).
    fn text(&self, attr: u32, vendor: u32) -> Option<String>;
    fn ipv4(&self, attr: u32, vendor: u32) -> Option<Ipv4Addr>;
    /// By dictionary name, case-insensitively (for operator-defined attributes).
    fn text_by_name(&self, name: &str) -> Option<String>;
}

/// An in-memory attribute list for tests and for callers outside the server.
#[derive(Default, Debug, Clone)]
pub struct AttrMap {
    values: HashMap<(u32, u32), Value>,
    names: HashMap<String, String>,
}

#[derive(Debug, Clone)]
enum Value {
    Int(u64),
    Text(String),
    Ip(Ipv4Addr),
}

impl AttrMap {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn int(mut self, attr: u32, v: u64) -> Self {
        self.values.insert((attr, 0), Value::Int(v));
        self
    }
    pub fn text_attr(mut self, attr: u32, v: &str) -> Self {
        self.values.insert((attr, 0), Value::Text(v.to_string()));
        self
    }
    pub fn ip(mut self, attr: u32, v: Ipv4Addr) -> Self {
        self.values.insert((attr, 0), Value::Ip(v));
        self
    }
    pub fn named(mut self, name: &str, v: &str) -> Self {
        self.names.insert(name.to_ascii_lowercase(), v.to_string());
        self
    }
}

impl Attrs for AttrMap {
    fn integer(&self, attr: u32, vendor: u32) -> Option<u64> {
        match self.values.get(&(attr, vendor))? {
            Value::Int(v) => Some(*v),
            _ => None,
        }
    }
    fn text(&self, attr: u32, vendor: u32) -> Option<String> {
        Some(match self.values.get(&(attr, vendor))? {
            Value::Int(v) => v.to_string(),
            Value::Text(s) => s.clone(),
            Value::Ip(ip) => ip.to_string(),
        })
    }
    fn ipv4(&self, attr: u32, vendor: u32) -> Option<Ipv4Addr> {
        match self.values.get(&(attr, vendor))? {
            Value::Ip(v) => Some(*v),
            _ => None,
        }
    }
    fn text_by_name(&self, name: &str) -> Option<String> {
        self.names.get(&name.to_ascii_lowercase()).cloned()
    }
}

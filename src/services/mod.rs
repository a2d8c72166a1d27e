//! Service sessions on top of a user's base session (Juniper Service Manager style):
//! "turbo", "iptv", "night", each with an optional Service-Timeout (seconds) and
//! Service-Volume (MB of output traffic).
//!
//! How a service is applied depends on the NAS ([`NasFamily`]):
//! - Juniper (ERX / MX BNG) enforces it itself: tagged `ERX-Service-Activate`,
//!   `-Timeout`, `-Volume` in the Access-Accept, `ERX-Service-Deactivate` by CoA.
//! - Cisco ISG logs services on and off by CoA (`Cisco-Command-Code` 0x0B / 0x0C
//!   followed by the service name) and auto-activates them from an Access-Accept's
//!   `Cisco-Account-Info = "A<service>"`; the module enforces the thresholds.
//! - MikroTik and the rest cannot: the module applies the service's own attributes
//!   (its `Mikrotik-Rate-Limit`) by CoA, tracks its time and output volume from
//!   accounting and reverts to the base rate by CoA when a threshold is reached.
//!
//! Pure rules only: the store keeps services and service sessions, the background
//! job ([`crate::states::worker`]) sends what these functions build.

use crate::radius::attrs::{self, Attribute};

/// Vendor ids (IANA private enterprise numbers).
pub const VENDOR_CISCO: u32 = 9;
pub const VENDOR_JUNIPER_ERX: u32 = 4874;
/// ERX vendor types (dictionary.erx).
pub const ERX_SERVICE_ACTIVATE: u8 = 65;
pub const ERX_SERVICE_DEACTIVATE: u8 = 66;
pub const ERX_SERVICE_VOLUME: u8 = 67;
pub const ERX_SERVICE_TIMEOUT: u8 = 68;
/// Cisco vendor types (dictionary.cisco).
pub const CISCO_ACCOUNT_INFO: u8 = 250;
pub const CISCO_COMMAND_CODE: u8 = 252;
/// ISG command codes (the first octet of Cisco-Command-Code).
pub const ISG_SERVICE_LOGON: u8 = 0x0B;
pub const ISG_SERVICE_LOGOFF: u8 = 0x0C;

/// Largest Service-Timeout / Service-Volume: tagged integers carry the tag in the
/// first octet, leaving 24 bits for the value.
pub const MAX_THRESHOLD: u32 = 0xFF_FFFF;
/// Most services in one Access-Accept: RFC 2868 tags are 1..=31.
pub const MAX_TAGS: usize = 31;

/// A threshold as the seed says ERX recycles it: modulo 2^24 (16777216 -> 0,
/// 16777217 -> 1, 16777218 -> 2); 0 means no limit.
pub fn wrap24(v: u64) -> u32 {
    (v % (1 << 24)) as u32
}

/// Parses a threshold given by an operator (decimal, any size) and wraps it.
pub fn parse_threshold(option: &str, s: &str) -> Result<u32, String> {
    let t = s.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{option} {s:?}: expected a whole number (0 = no limit)"
        ));
    }
    // Digits beyond u64 still wrap exactly: reduce digit by digit.
    let v = t
        .bytes()
        .fold(0u64, |acc, d| (acc * 10 + u64::from(d - b'0')) % (1 << 24));
    Ok(wrap24(v))
}

/// A service as an operator defines it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Service {
    pub name: String,
    /// Seconds of activity; 0 = no limit.
    pub timeout: u32,
    /// MB (2^20 bytes) of output traffic; 0 = no limit.
    pub volume_mb: u32,
    /// Mikrotik-Rate-Limit while active (module-enforced NASes).
    pub rate_limit: Option<String>,
    /// The name (with parameters) the NAS knows; None: `name`.
    pub nas_service: Option<String>,
    pub description: Option<String>,
}

impl Service {
    pub fn nas_name(&self) -> &str {
        self.nas_service
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or(&self.name)
    }

    /// The volume threshold in bytes (None: no limit).
    pub fn volume_bytes(&self) -> Option<u64> {
        (self.volume_mb > 0).then(|| u64::from(self.volume_mb) << 20)
    }
}

/// Checks a service name: it goes into RADIUS attributes and CLI arguments.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("service name {name:?}: 1 to 64 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(format!(
            "service name {name:?}: letters, digits, '-', '_' and '.' only"
        ));
    }
    Ok(())
}

/// How a NAS handles service sessions, from the NAS row's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NasFamily {
    Mikrotik,
    Juniper,
    Cisco,
    Other,
}

impl NasFamily {
    /// A NAS without a row is taken as MikroTik (the module's default type).
    pub fn of(nas_type: Option<&str>) -> NasFamily {
        let Some(t) = nas_type else {
            return NasFamily::Mikrotik;
        };
        match t.to_ascii_lowercase().as_str() {
            "mikrotik" => NasFamily::Mikrotik,
            "juniper" | "erx" | "junos" => NasFamily::Juniper,
            "cisco" | "isg" => NasFamily::Cisco,
            _ => NasFamily::Other,
        }
    }

    /// Whether the NAS ends a service at its thresholds itself.
    pub fn enforces_thresholds(self) -> bool {
        self == NasFamily::Juniper
    }
}

/// Reply attributes (name, value, operator) of an Access-Accept for the services
/// running in the new session, in order. `+=`: tagged and repeated attributes must
/// not replace each other.
pub fn accept_attributes(
    family: NasFamily,
    services: &[&Service],
) -> Vec<(String, String, &'static str)> {
    let mut out = Vec::new();
    match family {
        NasFamily::Juniper => {
            for (i, s) in services.iter().take(MAX_TAGS).enumerate() {
                let tag = i + 1;
                out.push((
                    format!("ERX-Service-Activate:{tag}"),
                    s.nas_name().to_string(),
                    "+=",
                ));
                if s.timeout > 0 {
                    out.push((
                        format!("ERX-Service-Timeout:{tag}"),
                        s.timeout.to_string(),
                        "+=",
                    ));
                }
                if s.volume_mb > 0 {
                    out.push((
                        format!("ERX-Service-Volume:{tag}"),
                        s.volume_mb.to_string(),
                        "+=",
                    ));
                }
            }
        }
        NasFamily::Cisco => {
            for s in services {
                out.push((
                    "Cisco-Account-Info".into(),
                    format!("A{}", s.nas_name()),
                    "+=",
                ));
            }
        }
        NasFamily::Mikrotik => {
            if let Some(rate) = service_rate(services.iter().copied()) {
                out.push(("Mikrotik-Rate-Limit".into(), rate.to_string(), ":="));
            }
        }
        NasFamily::Other => {}
    }
    out
}

/// The rate while these services run: the first one's with a rate (services are
/// given in activation order).
pub fn service_rate<'a>(services: impl IntoIterator<Item = &'a Service>) -> Option<&'a str> {
    services
        .into_iter()
        .find_map(|s| s.rate_limit.as_deref().filter(|r| !r.is_empty()))
}

/// A tagged integer as RFC 2868 puts it on the wire: the tag, then 24 bits.
fn tagged_integer(tag: u8, v: u32) -> [u8; 4] {
    let b = (v & MAX_THRESHOLD).to_be_bytes();
    [tag, b[1], b[2], b[3]]
}

fn vsa(vendor: u32, typ: u8, value: &[u8]) -> Result<Attribute, String> {
    Attribute::vsa(vendor, typ, value).map_err(|e| e.to_string())
}

/// The change a CoA-Request carries for a service (besides the session's
/// identification). `base_rate`: the rate to go back to on a MikroTik.
pub fn coa_change(
    family: NasFamily,
    service: &Service,
    on: bool,
    base_rate: Option<&str>,
) -> Result<Vec<Attribute>, String> {
    let name = service.nas_name().as_bytes();
    Ok(match (family, on) {
        (NasFamily::Juniper, true) => {
            let tag = 1u8;
            let mut v = vec![tag];
            v.extend_from_slice(name);
            let mut out = vec![vsa(VENDOR_JUNIPER_ERX, ERX_SERVICE_ACTIVATE, &v)?];
            if service.timeout > 0 {
                out.push(vsa(
                    VENDOR_JUNIPER_ERX,
                    ERX_SERVICE_TIMEOUT,
                    &tagged_integer(tag, service.timeout),
                )?);
            }
            if service.volume_mb > 0 {
                out.push(vsa(
                    VENDOR_JUNIPER_ERX,
                    ERX_SERVICE_VOLUME,
                    &tagged_integer(tag, service.volume_mb),
                )?);
            }
            out
        }
        (NasFamily::Juniper, false) => vec![vsa(VENDOR_JUNIPER_ERX, ERX_SERVICE_DEACTIVATE, name)?],
        (NasFamily::Cisco, on) => {
            let mut v = vec![if on {
                ISG_SERVICE_LOGON
            } else {
                ISG_SERVICE_LOGOFF
            }];
            v.extend_from_slice(name);
            vec![vsa(VENDOR_CISCO, CISCO_COMMAND_CODE, &v)?]
        }
        (NasFamily::Mikrotik | NasFamily::Other, on) => {
            let rate = if on {
                service.rate_limit.as_deref()
            } else {
                base_rate
            };
            match rate.filter(|r| !r.is_empty()) {
                Some(r) => rate_change(r)?,
                None => Vec::new(),
            }
        }
    })
}

/// A rate change: Mikrotik-Rate-Limit.
pub fn rate_change(rate: &str) -> Result<Vec<Attribute>, String> {
    Ok(vec![vsa(
        attrs::VENDOR_MIKROTIK,
        attrs::MIKROTIK_RATE_LIMIT,
        rate.as_bytes(),
    )?])
}

/// Why a service session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Timeout,
    Volume,
    Operator,
    Logout,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Timeout => "timeout",
            EndReason::Volume => "volume",
            EndReason::Operator => "operator",
            EndReason::Logout => "logout",
        }
    }
}

/// Whether a running service has reached a threshold: `active_secs` since its
/// activation, `output` octets since then.
pub fn threshold_reached(s: &Service, active_secs: i64, output: u64) -> Option<EndReason> {
    if s.timeout > 0 && active_secs >= i64::from(s.timeout) {
        return Some(EndReason::Timeout);
    }
    match s.volume_bytes() {
        Some(v) if output >= v => Some(EndReason::Volume),
        _ => None,
    }
}

#[cfg(test)]
mod tests;

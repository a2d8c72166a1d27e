//! Turns an Accounting-Request's attributes into an [`AcctUpdate`] for the store.
use crate::attrs::{std_attr as a, Attrs};
use crate::sessions::{octets, AcctStatus, AcctUpdate};
use std::net::IpAddr;

/// Longest Acct-Delay-Time we trust: a NAS that claims more is misconfigured.
const MAX_DELAY_SECS: u64 = 7 * 86400;

/// Why a packet is not recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// No Acct-Status-Type, or one we don't track (e.g. 15 Failed): acknowledge only.
    Untracked(Option<u64>),
    /// The packet lacks what identifies a session: reject as invalid.
    Invalid(String),
}

/// Builds the update. `src_ip` is the packet's source (used when NAS-IP-Address is
/// absent); `received_at` is when the server got it (unix seconds).
pub fn extract(
    attrs: &impl Attrs,
    src_ip: Option<IpAddr>,
    received_at: i64,
) -> Result<AcctUpdate, Skip> {
    let code = attrs.integer(a::ACCT_STATUS_TYPE, 0);
    let status = code
        .and_then(|c| u32::try_from(c).ok())
        .and_then(AcctStatus::from_code)
        .ok_or(Skip::Untracked(code))?;
    let nas_ip = attrs
        .ipv4(a::NAS_IP_ADDRESS, 0)
        .map(IpAddr::V4)
        .or(src_ip)
        .ok_or_else(|| Skip::Invalid("no NAS-IP-Address and no packet source address".into()))?
        .to_string();
    let session_id = attrs.text(a::ACCT_SESSION_ID, 0).unwrap_or_default();
    let per_session = !matches!(status, AcctStatus::AccountingOn | AcctStatus::AccountingOff);
    if per_session && session_id.is_empty() {
        return Err(Skip::Invalid("no Acct-Session-Id".into()));
    }
    let counter = |low: u32, giga: u32| {
        let l = attrs.integer(low, 0).unwrap_or(0) as u32;
        let g = attrs.integer(giga, 0).unwrap_or(0) as u32;
        octets(l, g)
    };
    // Beyond the bound the value is a NAS bug or garbage, not a delay: ignored (as
    // freeRADIUS's preprocess does), never clamped, or a session opened today is
    // dated a week back and, early in a month, disconnected as last month's.
    let delay = match attrs.integer(a::ACCT_DELAY_TIME, 0).unwrap_or(0) {
        d if d <= MAX_DELAY_SECS => d as i64,
        d => {
            log::warn!("Acct-Delay-Time {d} is beyond {MAX_DELAY_SECS} s: ignored");
            0
        }
    };
    Ok(AcctUpdate {
        status,
        nas_ip,
        session_id,
        unique_id: attrs
            .text(a::ACCT_UNIQUE_SESSION_ID, 0)
            .filter(|s| !s.is_empty()),
        username: attrs.text(a::USER_NAME, 0).unwrap_or_default(),
        input_octets: counter(a::ACCT_INPUT_OCTETS, a::ACCT_INPUT_GIGAWORDS),
        output_octets: counter(a::ACCT_OUTPUT_OCTETS, a::ACCT_OUTPUT_GIGAWORDS),
        gigawords: attrs.integer(a::ACCT_INPUT_GIGAWORDS, 0).is_some()
            || attrs.integer(a::ACCT_OUTPUT_GIGAWORDS, 0).is_some(),
        session_time: attrs.integer(a::ACCT_SESSION_TIME, 0).map(|v| v as u32),
        framed_ip: attrs.ipv4(a::FRAMED_IP_ADDRESS, 0).map(|ip| ip.to_string()),
        calling_station_id: attrs.text(a::CALLING_STATION_ID, 0),
        nas_port: attrs.integer(a::NAS_PORT, 0).map(|v| v as u32),
        terminate_cause: attrs.text(a::ACCT_TERMINATE_CAUSE, 0),
        event_time: received_at - delay,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs::AttrMap;
    use std::net::Ipv4Addr;

    fn interim() -> AttrMap {
        AttrMap::new()
            .int(a::ACCT_STATUS_TYPE, 3)
            .text_attr(a::ACCT_SESSION_ID, "81000001")
            .text_attr(a::USER_NAME, "alice")
            .ip(a::NAS_IP_ADDRESS, Ipv4Addr::new(127, 0, 0, 2))
            .int(a::ACCT_INPUT_OCTETS, 1_073_741_824)
            .int(a::ACCT_INPUT_GIGAWORDS, 1)
            .int(a::ACCT_OUTPUT_OCTETS, 10)
            .int(a::ACCT_SESSION_TIME, 600)
    }

    #[test]
    fn interim_with_gigawords() {
        let u = extract(&interim(), None, 1_000_000).unwrap();
        assert_eq!(u.status, AcctStatus::Interim);
        assert_eq!(u.input_octets, 5 * 1024 * 1024 * 1024);
        assert_eq!(u.output_octets, 10);
        assert_eq!(u.nas_ip, "127.0.0.2");
        assert_eq!(u.session_key(), "81000001");
        assert_eq!(u.session_time, Some(600));
        assert_eq!(u.event_time, 1_000_000);
    }

    #[test]
    fn delay_moves_event_time_back_and_an_implausible_one_is_ignored() {
        let at = |delay: u64| {
            extract(&interim().int(a::ACCT_DELAY_TIME, delay), None, 1_000_000)
                .unwrap()
                .event_time
        };
        assert_eq!(at(30), 999_970);
        assert_eq!(at(MAX_DELAY_SECS), 1_000_000 - MAX_DELAY_SECS as i64);
        assert_eq!(at(MAX_DELAY_SECS + 1), 1_000_000);
        assert_eq!(at(4_000_000_000), 1_000_000);
        assert_eq!(at(u32::MAX as u64), 1_000_000);
    }

    #[test]
    fn unique_id_is_the_key_and_source_ip_the_fallback_nas() {
        let attrs = AttrMap::new()
            .int(a::ACCT_STATUS_TYPE, 1)
            .text_attr(a::ACCT_SESSION_ID, "s1")
            .text_attr(a::ACCT_UNIQUE_SESSION_ID, "u-1");
        let u = extract(&attrs, Some("127.0.0.9".parse().unwrap()), 5).unwrap();
        assert_eq!(u.session_key(), "u-1");
        assert_eq!(u.nas_ip, "127.0.0.9");
    }

    #[test]
    fn skips() {
        let cases: [(AttrMap, Skip); 4] = [
            (AttrMap::new(), Skip::Untracked(None)),
            (
                AttrMap::new().int(a::ACCT_STATUS_TYPE, 15),
                Skip::Untracked(Some(15)),
            ),
            (
                AttrMap::new()
                    .int(a::ACCT_STATUS_TYPE, 1)
                    .ip(a::NAS_IP_ADDRESS, Ipv4Addr::LOCALHOST),
                Skip::Invalid("no Acct-Session-Id".into()),
            ),
            (
                AttrMap::new().int(a::ACCT_STATUS_TYPE, 7),
                Skip::Invalid("no NAS-IP-Address and no packet source address".into()),
            ),
        ];
        for (attrs, want) in cases {
            assert_eq!(extract(&attrs, None, 0).unwrap_err(), want);
        }
    }

    #[test]
    fn accounting_on_needs_no_session() {
        let attrs = AttrMap::new()
            .int(a::ACCT_STATUS_TYPE, 7)
            .ip(a::NAS_IP_ADDRESS, Ipv4Addr::new(127, 0, 0, 3));
        let u = extract(&attrs, None, 0).unwrap();
        assert_eq!(u.status, AcctStatus::AccountingOn);
        assert_eq!(u.nas_ip, "127.0.0.3");
    }
}

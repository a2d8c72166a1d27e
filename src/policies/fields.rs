//! A policy's fields: their names on the CLI and in the store, the control
//! attribute that sets each one per user or group (dictionary.rust), and how the
//! value is written. The typed [`super::Policy`] is parsed from these raw values,
//! so the CLI, the store and the control list share one validation.

use std::collections::BTreeMap;

/// How a field's value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ValueKind {
    /// Whole number ≥ 0, in `unit`.
    Count,
    /// bit/s: a number with k, M or G (powers of 1000), as RouterOS writes them.
    Rate,
    /// The weekly schedule text (see [`super::schedule`]).
    Schedule,
    /// Free text (an address list name).
    Text,
}

/// One policy field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Field {
    ConcurrentConnections,
    MaxDevices,
    SessionTimeout,
    IdleTimeout,
    InterimInterval,
    DailyTime,
    MonthlyTime,
    DailyTraffic,
    MonthlyTraffic,
    Schedule,
    RateDown,
    RateUp,
    BurstDownLimit,
    BurstUpLimit,
    BurstDownThreshold,
    BurstUpThreshold,
    BurstDownTime,
    BurstUpTime,
    AddressList,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FieldDef {
    pub field: Field,
    /// On the CLI (`--concurrent-connections`) and in the store.
    pub name: &'static str,
    /// The control attribute (dictionary.rust) that sets it per user or group.
    pub attribute: &'static str,
    pub kind: ValueKind,
    /// For documentation and messages ("" when none).
    pub unit: &'static str,
    pub help: &'static str,
}

const fn def(
    field: Field,
    name: &'static str,
    attribute: &'static str,
    kind: ValueKind,
    unit: &'static str,
    help: &'static str,
) -> FieldDef {
    FieldDef {
        field,
        name,
        attribute,
        kind,
        unit,
        help,
    }
}

use Field::*;
use ValueKind::*;

/// Every field, in the order they are shown and errors are reported.
pub const FIELDS: &[FieldDef] = &[
    def(
        ConcurrentConnections,
        "concurrent-connections",
        "Rust-Policy-Concurrent-Connections",
        Count,
        "",
        "open sessions a user may have at once (0 = unlimited)",
    ),
    def(
        MaxDevices,
        "max-devices",
        "Rust-Policy-Max-Devices",
        Count,
        "",
        "distinct Calling-Station-Ids since the policy was assigned (0 = unlimited)",
    ),
    def(
        SessionTimeout,
        "session-timeout",
        "Rust-Policy-Session-Timeout",
        Count,
        "min",
        "Session-Timeout (0 = none)",
    ),
    def(
        IdleTimeout,
        "idle-timeout",
        "Rust-Policy-Idle-Timeout",
        Count,
        "min",
        "Idle-Timeout (0 = none)",
    ),
    def(
        InterimInterval,
        "interim-interval",
        "Rust-Policy-Interim-Interval",
        Count,
        "s",
        "Acct-Interim-Interval, at least 300 s (0 = none)",
    ),
    def(
        DailyTime,
        "daily-time",
        "Rust-Policy-Daily-Time",
        Count,
        "min",
        "connection time per day (0 = unlimited)",
    ),
    def(
        MonthlyTime,
        "monthly-time",
        "Rust-Policy-Monthly-Time",
        Count,
        "min",
        "connection time per month (0 = unlimited)",
    ),
    def(
        DailyTraffic,
        "daily-traffic",
        "Rust-Policy-Daily-Traffic",
        Count,
        "MB",
        "download + upload per day (0 = unlimited)",
    ),
    def(
        MonthlyTraffic,
        "monthly-traffic",
        "Rust-Policy-Monthly-Traffic",
        Count,
        "MB",
        "download + upload per month (0 = unlimited)",
    ),
    def(
        Field::Schedule,
        "schedule",
        "Rust-Policy-Schedule",
        ValueKind::Schedule,
        "",
        "weekly login times in the NAS's time zone, e.g. \"mon-fri 08:00-18:00; sat 10:00-14:00\"",
    ),
    def(
        RateDown,
        "rate-down",
        "Rust-Policy-Rate-Down",
        Rate,
        "bit/s",
        "download rate",
    ),
    def(
        RateUp,
        "rate-up",
        "Rust-Policy-Rate-Up",
        Rate,
        "bit/s",
        "upload rate",
    ),
    def(
        BurstDownLimit,
        "burst-down-limit",
        "Rust-Policy-Burst-Down-Limit",
        Rate,
        "bit/s",
        "MikroTik burst: highest download rate",
    ),
    def(
        BurstUpLimit,
        "burst-up-limit",
        "Rust-Policy-Burst-Up-Limit",
        Rate,
        "bit/s",
        "MikroTik burst: highest upload rate",
    ),
    def(
        BurstDownThreshold,
        "burst-down-threshold",
        "Rust-Policy-Burst-Down-Threshold",
        Rate,
        "bit/s",
        "MikroTik burst: average download below which burst is allowed",
    ),
    def(
        BurstUpThreshold,
        "burst-up-threshold",
        "Rust-Policy-Burst-Up-Threshold",
        Rate,
        "bit/s",
        "MikroTik burst: average upload below which burst is allowed",
    ),
    def(
        BurstDownTime,
        "burst-down-time",
        "Rust-Policy-Burst-Down-Time",
        Count,
        "s",
        "MikroTik burst: period of the download average",
    ),
    def(
        BurstUpTime,
        "burst-up-time",
        "Rust-Policy-Burst-Up-Time",
        Count,
        "s",
        "MikroTik burst: period of the upload average",
    ),
    def(
        AddressList,
        "address-list",
        "Rust-Policy-Address-List",
        Text,
        "",
        "Mikrotik-Address-List for the user's address",
    ),
];

/// The definition of a field by its name or its attribute (any case).
pub fn lookup(name_or_attribute: &str) -> Option<&'static FieldDef> {
    FIELDS.iter().find(|d| {
        d.name.eq_ignore_ascii_case(name_or_attribute)
            || d.attribute.eq_ignore_ascii_case(name_or_attribute)
    })
}

pub fn def_of(field: Field) -> &'static FieldDef {
    FIELDS
        .iter()
        .find(|d| d.field == field)
        .expect("every field is in FIELDS")
}

/// Field values as written (control list or store), before parsing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawPolicy {
    values: BTreeMap<Field, String>,
}

impl RawPolicy {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a value by field name or attribute; false when it is neither. The first
    /// value of a field wins (as freeRADIUS's lookup returns the first instance).
    pub fn insert(&mut self, name_or_attribute: &str, value: &str) -> bool {
        let Some(d) = lookup(name_or_attribute) else {
            return false;
        };
        self.values
            .entry(d.field)
            .or_insert_with(|| value.to_string());
        true
    }

    pub fn get(&self, field: Field) -> Option<&str> {
        self.values.get(&field).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Fields not set here taken from `lower` (precedence: self first, per field).
    pub fn fill_from(&mut self, lower: &RawPolicy) {
        for (f, v) in &lower.values {
            self.values.entry(*f).or_insert_with(|| v.clone());
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static FieldDef, &str)> {
        self.values.iter().map(|(f, v)| (def_of(*f), v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_attributes_are_unique_and_found() {
        for (i, d) in FIELDS.iter().enumerate() {
            assert_eq!(lookup(d.name).map(|x| x.field), Some(d.field));
            assert_eq!(
                lookup(&d.attribute.to_uppercase()).map(|x| x.field),
                Some(d.field)
            );
            assert!(d.attribute.starts_with("Rust-Policy-"), "{}", d.attribute);
            for o in &FIELDS[i + 1..] {
                assert!(d.field != o.field && d.name != o.name && d.attribute != o.attribute);
            }
        }
        assert!(lookup("Rust-Capping-Traffic-Limit").is_none());
    }

    #[test]
    fn first_value_wins_and_lower_layers_fill_the_rest() {
        let mut user = RawPolicy::new();
        assert!(user.insert("Rust-Policy-Rate-Down", "10M"));
        assert!(user.insert("rate-down", "1M"));
        assert!(!user.insert("Filter-Id", "x"));
        let mut stored = RawPolicy::new();
        stored.insert("rate-down", "2M");
        stored.insert("rate-up", "512k");
        user.fill_from(&stored);
        assert_eq!(user.get(Field::RateDown), Some("10M"));
        assert_eq!(user.get(Field::RateUp), Some("512k"));
    }
}

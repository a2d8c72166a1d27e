//! Capping attributes, their SMRadius aliases, and strict parsing into [`Limits`].

use std::collections::BTreeMap;

use crate::topups::Kind;

/// The limit field an attribute sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Field {
    /// MB (traffic) or minutes (uptime) per period.
    Limit(Kind),
    /// Factor applied to the limit (not to topups).
    Multiplier(Kind),
    AutoTopupEnabled(Kind),
    /// MB / minutes per auto-topup.
    AutoTopupAmount(Kind),
    /// Most MB / minutes of auto-topups added per period.
    AutoTopupLimit(Kind),
    /// Remaining MB / minutes at or below which auto-topups are added.
    AutoTopupThreshold(Kind),
    /// Notification targets, separated by `,` or `;`.
    AutoTopupNotify(Kind),
}

/// How an attribute's value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ValueType {
    /// Non-negative integer (digits only).
    Integer,
    /// Non-negative decimal: digits, optionally `.` and digits.
    Decimal,
    /// `yes`/`no`, `true`/`false`, `on`/`off`, `1`/`0` (any case).
    Boolean,
    /// Free text list.
    Targets,
}

/// One accepted attribute: our name, the SMRadius alias, what it sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct AttributeDef {
    pub name: &'static str,
    pub alias: &'static str,
    pub field: Field,
    pub value_type: ValueType,
    /// Unit of the value, for documentation ("" when none).
    pub unit: &'static str,
}

const fn def(
    name: &'static str,
    alias: &'static str,
    field: Field,
    value_type: ValueType,
    unit: &'static str,
) -> AttributeDef {
    AttributeDef {
        name,
        alias,
        field,
        value_type,
        unit,
    }
}

use Field::*;
use Kind::{Traffic, Uptime};
use ValueType::*;

/// Every capping attribute, in the order errors are reported.
pub const ATTRIBUTES: &[AttributeDef] = &[
    def(
        "Rust-Capping-Traffic-Limit",
        "SMRadius-Capping-Traffic-Limit",
        Limit(Traffic),
        Integer,
        "MB",
    ),
    def(
        "Rust-Capping-Uptime-Limit",
        "SMRadius-Capping-Uptime-Limit",
        Limit(Uptime),
        Integer,
        "min",
    ),
    def(
        "Rust-Capping-Traffic-Multiplier",
        "SMRadius-Config-Capping-Traffic-Multiplier",
        Multiplier(Traffic),
        Decimal,
        "",
    ),
    def(
        "Rust-Capping-Uptime-Multiplier",
        "SMRadius-Config-Capping-Uptime-Multiplier",
        Multiplier(Uptime),
        Decimal,
        "",
    ),
    def(
        "Rust-AutoTopup-Traffic-Enabled",
        "SMRadius-AutoTopup-Traffic-Enabled",
        AutoTopupEnabled(Traffic),
        Boolean,
        "",
    ),
    def(
        "Rust-AutoTopup-Traffic-Amount",
        "SMRadius-AutoTopup-Traffic-Amount",
        AutoTopupAmount(Traffic),
        Integer,
        "MB",
    ),
    def(
        "Rust-AutoTopup-Traffic-Limit",
        "SMRadius-AutoTopup-Traffic-Limit",
        AutoTopupLimit(Traffic),
        Integer,
        "MB",
    ),
    def(
        "Rust-AutoTopup-Traffic-Threshold",
        "SMRadius-AutoTopup-Traffic-Threshold",
        AutoTopupThreshold(Traffic),
        Integer,
        "MB",
    ),
    def(
        "Rust-AutoTopup-Traffic-Notify",
        "SMRadius-AutoTopup-Traffic-Notify",
        AutoTopupNotify(Traffic),
        Targets,
        "",
    ),
    def(
        "Rust-AutoTopup-Uptime-Enabled",
        "SMRadius-AutoTopup-Uptime-Enabled",
        AutoTopupEnabled(Uptime),
        Boolean,
        "",
    ),
    def(
        "Rust-AutoTopup-Uptime-Amount",
        "SMRadius-AutoTopup-Uptime-Amount",
        AutoTopupAmount(Uptime),
        Integer,
        "min",
    ),
    def(
        "Rust-AutoTopup-Uptime-Limit",
        "SMRadius-AutoTopup-Uptime-Limit",
        AutoTopupLimit(Uptime),
        Integer,
        "min",
    ),
    def(
        "Rust-AutoTopup-Uptime-Threshold",
        "SMRadius-AutoTopup-Uptime-Threshold",
        AutoTopupThreshold(Uptime),
        Integer,
        "min",
    ),
    def(
        "Rust-AutoTopup-Uptime-Notify",
        "SMRadius-AutoTopup-Uptime-Notify",
        AutoTopupNotify(Uptime),
        Targets,
        "",
    ),
];

/// The definition for an attribute name (ours or the SMRadius alias; case-insensitive,
/// as FreeRADIUS attribute names are), and whether the name was the alias.
pub fn lookup_attribute(name: &str) -> Option<(&'static AttributeDef, bool)> {
    ATTRIBUTES.iter().find_map(|d| {
        if d.name.eq_ignore_ascii_case(name) {
            Some((d, false))
        } else if d.alias.eq_ignore_ascii_case(name) {
            Some((d, true))
        } else {
            None
        }
    })
}

/// The field an attribute name sets, if it is a capping attribute.
pub fn attribute_field(name: &str) -> Option<Field> {
    lookup_attribute(name).map(|(d, _)| d.field)
}

/// A value as found, with the attribute it came from (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawValue {
    pub attribute: String,
    pub value: String,
    pub from_alias: bool,
}

/// Capping values as found in the control list or the store, still text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawLimits {
    values: BTreeMap<Field, RawValue>,
}

impl RawLimits {
    pub fn new() -> Self {
        Self::default()
    }

    /// From (attribute, value) pairs; non-capping attributes are ignored.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut raw = Self::new();
        for (a, v) in pairs {
            raw.insert(a, v);
        }
        raw
    }

    /// Records a value; returns false when `attribute` is not a capping attribute.
    /// Precedence: our name beats the SMRadius alias whatever the order; between two
    /// values under the same kind of name, the first one wins (as FreeRADIUS's
    /// attribute lookup returns the first instance).
    pub fn insert(&mut self, attribute: &str, value: &str) -> bool {
        let Some((def, from_alias)) = lookup_attribute(attribute) else {
            return false;
        };
        let new = RawValue {
            attribute: attribute.to_string(),
            value: value.to_string(),
            from_alias,
        };
        match self.values.get(&def.field) {
            Some(old) if !old.from_alias || from_alias => {}
            _ => {
                self.values.insert(def.field, new);
            }
        }
        true
    }

    pub fn get(&self, field: Field) -> Option<&RawValue> {
        self.values.get(&field)
    }

    /// (attribute, value) pairs, as written.
    pub fn pairs(&self) -> Vec<(String, String)> {
        self.values
            .values()
            .map(|v| (v.attribute.clone(), v.value.clone()))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Takes from `fallback` every value this set lacks (per field): how the store's
    /// limits serve as defaults under the control list's.
    pub fn fill_from(&mut self, fallback: &RawLimits) {
        for (field, v) in &fallback.values {
            self.values.entry(*field).or_insert_with(|| v.clone());
        }
    }
}

/// Auto-topup settings of one kind (present only when enabled).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AutoTopup {
    /// MB / minutes per auto-topup (> 0).
    pub amount: u64,
    /// Most MB / minutes added per period; `None` = no limit (unset or 0).
    pub limit: Option<u64>,
    /// Remaining MB / minutes at or below which topups are added (default amount / 2).
    pub threshold: u64,
    pub notify: Vec<String>,
}

/// A user's parsed capping settings. `None` limit = unlimited.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Limits {
    pub traffic_mb: Option<u64>,
    pub uptime_min: Option<u64>,
    pub traffic_multiplier: f64,
    pub uptime_multiplier: f64,
    pub autotopup_traffic: Option<AutoTopup>,
    pub autotopup_uptime: Option<AutoTopup>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            traffic_mb: None,
            uptime_min: None,
            traffic_multiplier: 1.0,
            uptime_multiplier: 1.0,
            autotopup_traffic: None,
            autotopup_uptime: None,
        }
    }
}

impl Limits {
    /// Configured limit (MB / minutes).
    pub fn limit(&self, kind: Kind) -> Option<u64> {
        match kind {
            Kind::Traffic => self.traffic_mb,
            Kind::Uptime => self.uptime_min,
        }
    }

    pub fn multiplier(&self, kind: Kind) -> f64 {
        match kind {
            Kind::Traffic => self.traffic_multiplier,
            Kind::Uptime => self.uptime_multiplier,
        }
    }

    pub fn autotopup(&self, kind: Kind) -> Option<&AutoTopup> {
        match kind {
            Kind::Traffic => self.autotopup_traffic.as_ref(),
            Kind::Uptime => self.autotopup_uptime.as_ref(),
        }
    }

    /// No traffic and no uptime limit: nothing to decide (auto-topups need a limit).
    pub fn is_unlimited(&self) -> bool {
        self.traffic_mb.is_none() && self.uptime_min.is_none()
    }

    /// Effective limit in bytes / seconds: limit × unit × multiplier, rounded down.
    /// `None` = unlimited.
    pub fn effective_limit(&self, kind: Kind) -> Option<u64> {
        let base = kind.to_base(self.limit(kind)?);
        let m = self.multiplier(kind);
        if m == 1.0 {
            return Some(base);
        }
        // `as` saturates; multipliers are validated finite and non-negative.
        Some((base as f64 * m).floor() as u64)
    }
}

/// A capping value that is not acceptable. The user is rejected, never left uncapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("capping configuration error for user '{user}': {attribute} = '{value}': {reason}")]
pub struct LimitError {
    pub user: String,
    pub attribute: String,
    pub value: String,
    pub reason: String,
}

fn parse_integer(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not a non-negative integer".into());
    }
    t.parse().map_err(|_| "number too large".into())
}

fn parse_decimal(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (int, frac) = t.split_once('.').unwrap_or((t, "0"));
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !digits(frac) {
        return Err("not a non-negative decimal number".into());
    }
    t.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| "number too large".into())
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Ok(true),
        "0" | "no" | "false" | "off" => Ok(false),
        _ => Err("not a boolean (yes/no, true/false, on/off, 1/0)".into()),
    }
}

fn parse_targets(s: &str) -> Vec<String> {
    s.split([',', ';'])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}

/// `caveat_captrafzero`: swaps the meaning of unset and 0.
fn apply_caveat(v: Option<u64>, swap: bool) -> Option<u64> {
    match (swap, v) {
        (false, v) => v,
        (true, None) => Some(0),
        (true, Some(0)) => None,
        (true, v) => v,
    }
}

/// Parses and validates every capping value. The first bad value (in [`ATTRIBUTES`]
/// order) is the error, naming the user and the attribute as it was found.
pub fn parse_limits(user: &str, raw: &RawLimits, caveat_swap: bool) -> Result<Limits, LimitError> {
    let fail = |rv: &RawValue, reason: String| LimitError {
        user: user.to_string(),
        attribute: rv.attribute.clone(),
        value: rv.value.clone(),
        reason,
    };
    let int = |f: Field| -> Result<Option<u64>, LimitError> {
        raw.get(f)
            .map(|rv| parse_integer(&rv.value).map_err(|r| fail(rv, r)))
            .transpose()
    };
    let mult = |k: Kind| -> Result<f64, LimitError> {
        raw.get(Multiplier(k)).map_or(Ok(1.0), |rv| {
            parse_decimal(&rv.value).map_err(|r| fail(rv, r))
        })
    };
    let traffic_mb = apply_caveat(int(Limit(Traffic))?, caveat_swap);
    let uptime_min = apply_caveat(int(Limit(Uptime))?, caveat_swap);
    let traffic_multiplier = mult(Traffic)?;
    let uptime_multiplier = mult(Uptime)?;
    let auto = |k: Kind| -> Result<Option<AutoTopup>, LimitError> {
        let enabled = match raw.get(AutoTopupEnabled(k)) {
            Some(rv) => parse_bool(&rv.value).map_err(|r| fail(rv, r))?,
            None => false,
        };
        let amount = int(AutoTopupAmount(k))?;
        let limit = int(AutoTopupLimit(k))?;
        let threshold = int(AutoTopupThreshold(k))?;
        let notify = raw
            .get(AutoTopupNotify(k))
            .map(|rv| parse_targets(&rv.value))
            .unwrap_or_default();
        if !enabled {
            return Ok(None);
        }
        let amount = match amount {
            Some(a) if a > 0 => a,
            _ => {
                let name = ATTRIBUTES
                    .iter()
                    .find(|d| d.field == AutoTopupAmount(k))
                    .map_or("", |d| d.name);
                let missing = RawValue {
                    attribute: name.into(),
                    value: String::new(),
                    from_alias: false,
                };
                let rv = raw.get(AutoTopupAmount(k)).unwrap_or(&missing);
                return Err(fail(
                    rv,
                    "auto-topup is enabled but the amount is missing or 0".into(),
                ));
            }
        };
        Ok(Some(AutoTopup {
            amount,
            limit: limit.filter(|&l| l > 0),
            threshold: threshold.unwrap_or(amount / 2),
            notify,
        }))
    };
    let autotopup_traffic = auto(Traffic)?;
    let autotopup_uptime = auto(Uptime)?;
    Ok(Limits {
        traffic_mb,
        uptime_min,
        traffic_multiplier,
        uptime_multiplier,
        autotopup_traffic,
        autotopup_uptime,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topups::MIB;

    type Pairs<'a> = &'a [(&'a str, &'a str)];

    fn parse(pairs: &[(&str, &str)], swap: bool) -> Result<Limits, LimitError> {
        parse_limits("joe", &RawLimits::from_pairs(pairs.iter().copied()), swap)
    }

    #[test]
    fn every_attribute_resolves_by_name_and_alias() {
        for d in ATTRIBUTES {
            assert_eq!(lookup_attribute(d.name), Some((d, false)), "{}", d.name);
            assert_eq!(lookup_attribute(d.alias), Some((d, true)), "{}", d.alias);
            assert_eq!(
                attribute_field(&d.alias.to_ascii_lowercase()),
                Some(d.field)
            );
        }
        assert_eq!(ATTRIBUTES.len(), 14);
        let mut fields: Vec<_> = ATTRIBUTES.iter().map(|d| d.field).collect();
        fields.sort();
        fields.dedup();
        assert_eq!(fields.len(), ATTRIBUTES.len(), "one attribute per field");
        assert_eq!(attribute_field("Session-Timeout"), None);
    }

    #[test]
    fn limits_unset_zero_and_caveat_swap() {
        let cases: [(Pairs, bool, Option<u64>, Option<u64>); 6] = [
            (&[], false, None, None),
            (&[], true, Some(0), Some(0)),
            (
                &[
                    ("Rust-Capping-Traffic-Limit", "0"),
                    ("Rust-Capping-Uptime-Limit", "0"),
                ],
                false,
                Some(0),
                Some(0),
            ),
            (
                &[
                    ("Rust-Capping-Traffic-Limit", "0"),
                    ("Rust-Capping-Uptime-Limit", "0"),
                ],
                true,
                None,
                None,
            ),
            (
                &[("SMRadius-Capping-Traffic-Limit", "500")],
                false,
                Some(500),
                None,
            ),
            (
                &[("SMRadius-Capping-Traffic-Limit", "500")],
                true,
                Some(500),
                Some(0),
            ),
        ];
        for (pairs, swap, traffic, uptime) in cases {
            let l = parse(pairs, swap).unwrap();
            assert_eq!(
                (l.traffic_mb, l.uptime_min),
                (traffic, uptime),
                "{pairs:?} swap={swap}"
            );
        }
    }

    #[test]
    fn our_name_beats_alias_first_wins_otherwise() {
        let cases: [(&[(&str, &str)], u64); 4] = [
            (
                &[
                    ("SMRadius-Capping-Traffic-Limit", "1"),
                    ("Rust-Capping-Traffic-Limit", "2"),
                ],
                2,
            ),
            (
                &[
                    ("Rust-Capping-Traffic-Limit", "2"),
                    ("SMRadius-Capping-Traffic-Limit", "1"),
                ],
                2,
            ),
            (
                &[
                    ("Rust-Capping-Traffic-Limit", "2"),
                    ("Rust-Capping-Traffic-Limit", "3"),
                ],
                2,
            ),
            (
                &[
                    ("SMRadius-Capping-Traffic-Limit", "1"),
                    ("SMRadius-Capping-Traffic-Limit", "3"),
                ],
                1,
            ),
        ];
        for (pairs, want) in cases {
            assert_eq!(
                parse(pairs, false).unwrap().traffic_mb,
                Some(want),
                "{pairs:?}"
            );
        }
        assert!(!RawLimits::new().insert("Reply-Message", "x"));
    }

    #[test]
    fn invalid_values_name_user_and_attribute() {
        let cases: [(&str, &str); 14] = [
            ("SMRadius-Capping-Traffic-Limit", "-1"),
            ("SMRadius-Capping-Traffic-Limit", "5.5"),
            ("Rust-Capping-Uptime-Limit", "abc"),
            ("Rust-Capping-Uptime-Limit", ""),
            ("Rust-Capping-Uptime-Limit", "+5"),
            ("Rust-Capping-Uptime-Limit", "99999999999999999999999"),
            ("SMRadius-Config-Capping-Traffic-Multiplier", "-0.5"),
            ("Rust-Capping-Uptime-Multiplier", "NaN"),
            ("Rust-Capping-Uptime-Multiplier", "inf"),
            ("Rust-Capping-Uptime-Multiplier", "1e3"),
            ("Rust-Capping-Uptime-Multiplier", "1."),
            ("SMRadius-AutoTopup-Traffic-Enabled", "maybe"),
            ("Rust-AutoTopup-Uptime-Threshold", "x"),
            ("Rust-AutoTopup-Uptime-Limit", "1 000"),
        ];
        for (attr, value) in cases {
            let e = parse(&[(attr, value)], false).expect_err(attr);
            assert_eq!(
                (e.user.as_str(), e.attribute.as_str(), e.value.as_str()),
                ("joe", attr, value)
            );
            let msg = e.to_string();
            assert!(msg.contains("'joe'") && msg.contains(attr), "{msg}");
        }
    }

    #[test]
    fn valid_number_forms() {
        let l = parse(
            &[
                ("Rust-Capping-Traffic-Limit", " 42 "),
                ("Rust-Capping-Traffic-Multiplier", "0.5"),
                ("Rust-Capping-Uptime-Multiplier", "2"),
            ],
            false,
        )
        .unwrap();
        assert_eq!(l.traffic_mb, Some(42));
        assert_eq!((l.traffic_multiplier, l.uptime_multiplier), (0.5, 2.0));
    }

    #[test]
    fn effective_limit_applies_multiplier() {
        let cases = [
            (Some(1000), 1.0, Kind::Traffic, Some(1000 * MIB)),
            (Some(1000), 0.5, Kind::Traffic, Some(500 * MIB)),
            (Some(1000), 2.0, Kind::Traffic, Some(2000 * MIB)),
            (
                Some(1),
                0.3333,
                Kind::Traffic,
                Some((MIB as f64 * 0.3333).floor() as u64),
            ),
            (Some(0), 2.0, Kind::Traffic, Some(0)),
            (Some(10), 0.0, Kind::Traffic, Some(0)),
            (None, 2.0, Kind::Traffic, None),
            (Some(90), 0.5, Kind::Uptime, Some(45 * 60)),
            (Some(90), 2.0, Kind::Uptime, Some(180 * 60)),
            (Some(u64::MAX), 2.0, Kind::Traffic, Some(u64::MAX)),
        ];
        for (limit, m, kind, want) in cases {
            let l = match kind {
                Kind::Traffic => Limits {
                    traffic_mb: limit,
                    traffic_multiplier: m,
                    ..Limits::default()
                },
                Kind::Uptime => Limits {
                    uptime_min: limit,
                    uptime_multiplier: m,
                    ..Limits::default()
                },
            };
            assert_eq!(l.effective_limit(kind), want, "{limit:?} x {m} {kind:?}");
        }
    }

    #[test]
    fn autotopup_settings() {
        let l = parse(
            &[
                ("SMRadius-AutoTopup-Traffic-Enabled", "yes"),
                ("SMRadius-AutoTopup-Traffic-Amount", "500"),
                ("SMRadius-AutoTopup-Traffic-Limit", "2000"),
                (
                    "SMRadius-AutoTopup-Traffic-Notify",
                    "joe@example.com; ops@example.com,,",
                ),
                ("Rust-AutoTopup-Uptime-Enabled", "TRUE"),
                ("Rust-AutoTopup-Uptime-Amount", "61"),
                ("Rust-AutoTopup-Uptime-Limit", "0"),
                ("Rust-AutoTopup-Uptime-Threshold", "0"),
            ],
            false,
        )
        .unwrap();
        let t = l.autotopup_traffic.unwrap();
        assert_eq!(
            (t.amount, t.limit, t.threshold),
            (500, Some(2000), 250),
            "threshold defaults to amount/2"
        );
        assert_eq!(t.notify, vec!["joe@example.com", "ops@example.com"]);
        let u = l.autotopup_uptime.unwrap();
        assert_eq!((u.amount, u.limit, u.threshold), (61, None, 0));
        assert!(u.notify.is_empty());
    }

    #[test]
    fn autotopup_disabled_or_without_amount() {
        let off = parse(
            &[
                ("Rust-AutoTopup-Traffic-Enabled", "no"),
                ("Rust-AutoTopup-Traffic-Amount", "5"),
            ],
            false,
        );
        assert_eq!(off.unwrap().autotopup_traffic, None);
        let cases: [(&[(&str, &str)], &str); 2] = [
            (
                &[("Rust-AutoTopup-Traffic-Enabled", "1")],
                "Rust-AutoTopup-Traffic-Amount",
            ),
            (
                &[
                    ("SMRadius-AutoTopup-Uptime-Enabled", "1"),
                    ("SMRadius-AutoTopup-Uptime-Amount", "0"),
                ],
                "SMRadius-AutoTopup-Uptime-Amount",
            ),
        ];
        for (pairs, attr) in cases {
            let e = parse(pairs, false).expect_err(attr);
            assert_eq!(e.attribute, attr);
        }
    }
}

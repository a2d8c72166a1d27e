//! Checks on a stored policy definition before it is saved (CLI and store).

use super::fields::{lookup, RawPolicy, ValueKind};
use super::login::CHECK_OPS;
use super::policy::{CustomAttr, Policy};
use crate::store::{CustomAttrRow, PolicyDef};

/// Operators of check items (as in the users file and radcheck), longest first so
/// a prefix match never reads `:=` as `=`.
pub const CHECK_OPERATORS: &[&str] = &[
    ":=", "==", "+=", "!=", ">=", "<=", "=~", "!~", "=*", "!*", ">", "<", "=",
];
/// Operators of reply items.
pub const REPLY_OPERATORS: &[&str] = &[":=", "+=", "="];

fn attribute_name_ok(a: &str) -> bool {
    !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `Attr op value` (spaces around the operator optional; a value in double quotes
/// is taken without them) as a custom attribute row.
pub fn parse_custom_attr(s: &str) -> Result<CustomAttrRow, String> {
    let t = s.trim();
    let end = t
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(t.len());
    let (attribute, rest) = t.split_at(end);
    let rest = rest.trim_start();
    let Some(op) = CHECK_OPERATORS.iter().find(|op| rest.starts_with(**op)) else {
        return Err(format!(
            "custom attribute {s:?}: expected `Attribute op value` with op one of {}",
            CHECK_OPERATORS.join(" ")
        ));
    };
    let value = rest[op.len()..].trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    Ok(CustomAttrRow {
        attribute: attribute.to_string(),
        op: op.to_string(),
        value: value.to_string(),
    })
}

fn check_attr(list: &str, a: &CustomAttrRow, ops: &[&str]) -> Result<(), String> {
    let shown = format!("{} {} {:?}", a.attribute, a.op, a.value);
    if !attribute_name_ok(&a.attribute) {
        return Err(format!(
            "{list} attribute `{shown}`: {:?} is not an attribute name",
            a.attribute
        ));
    }
    if !ops.contains(&a.op.as_str()) {
        return Err(format!(
            "{list} attribute `{shown}`: operator {:?} is not one of {}",
            a.op,
            ops.join(" ")
        ));
    }
    if a.value.chars().any(|c| c.is_control()) {
        return Err(format!(
            "{list} attribute `{shown}`: the value holds control characters"
        ));
    }
    Ok(())
}

/// A stored definition as the module uses it: the raw fields and the custom
/// attributes.
pub fn parts(def: &PolicyDef) -> (RawPolicy, Vec<CustomAttr>, Vec<CustomAttr>) {
    let mut raw = RawPolicy::new();
    for (name, value) in &def.fields {
        raw.insert(name, value);
    }
    let attrs = |rows: &[CustomAttrRow]| {
        rows.iter()
            .map(|r| CustomAttr {
                attribute: r.attribute.clone(),
                op: r.op.clone(),
                value: r.value.clone(),
            })
            .collect()
    };
    (raw, attrs(&def.check), attrs(&def.reply))
}

/// Whether `def` may be saved; the message names the field (or attribute) and the
/// value: known field names, each once, every value of its field's kind, the rules
/// across fields ([`Policy::parse`]), well-formed custom attributes with operators
/// the module applies.
pub fn validate_def(def: &PolicyDef) -> Result<(), String> {
    let mut seen = Vec::new();
    for (name, value) in &def.fields {
        let Some(d) = lookup(name) else {
            return Err(format!(
                "unknown policy field {name:?} (value {value:?}); known fields: {}",
                super::FIELDS
                    .iter()
                    .map(|d| d.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        if seen.contains(&d.field) {
            return Err(format!("{}: given twice (value {value:?})", d.name));
        }
        seen.push(d.field);
        if d.kind == ValueKind::Count && value.trim().parse::<u64>().is_err() {
            return Err(format!(
                "{}: {value:?} is not a whole number{}",
                d.name,
                if d.unit.is_empty() {
                    String::new()
                } else {
                    format!(" of {}", d.unit)
                }
            ));
        }
    }
    for a in &def.check {
        check_attr("check", a, CHECK_OPS)?;
    }
    for a in &def.reply {
        check_attr("reply", a, REPLY_OPERATORS)?;
    }
    let (raw, check, reply) = parts(def);
    Policy::parse(&raw, check, reply)
        .map(drop)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(fields: &[(&str, &str)]) -> PolicyDef {
        PolicyDef {
            name: "p".into(),
            fields: fields
                .iter()
                .map(|(f, v)| (f.to_string(), v.to_string()))
                .collect(),
            ..PolicyDef::default()
        }
    }

    #[test]
    fn fields_are_known_counts_whole() {
        assert!(validate_def(&def(&[
            ("concurrent-connections", "1"),
            ("rate-down", "10M")
        ]))
        .is_ok());
        let e = validate_def(&def(&[("session-timeout", "1.5")])).unwrap_err();
        assert!(
            e.contains("session-timeout") && e.contains("\"1.5\""),
            "{e}"
        );
        let e = validate_def(&def(&[("frobs", "3")])).unwrap_err();
        assert!(e.contains("\"frobs\"") && e.contains("\"3\""), "{e}");
        let e = validate_def(&def(&[
            ("max-devices", "1"),
            ("Rust-Policy-Max-Devices", "2"),
        ]))
        .unwrap_err();
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn the_typed_rules_and_the_module_operators_apply_before_saving() {
        for (fields, named) in [
            (&[("rate-down", "fast")][..], "rate-down"),
            (&[("schedule", "mon 25:00-26:00")][..], "schedule"),
            (
                &[("concurrent-connections", "3"), ("max-devices", "2")][..],
                "concurrent-connections",
            ),
            (&[("burst-down-limit", "2M")][..], "burst-down-limit"),
        ] {
            let e = validate_def(&def(fields)).unwrap_err();
            assert!(e.contains(named), "{fields:?}: {e}");
        }
        let mut d = def(&[]);
        d.check
            .push(parse_custom_attr("Called-Station-Id =~ ^hotspot").unwrap());
        let e = validate_def(&d).unwrap_err();
        assert!(e.contains("=~"), "{e}");
    }

    #[test]
    fn custom_attributes_parse_and_check() {
        let a = parse_custom_attr("Reply-Message := \"hello world\"").unwrap();
        assert_eq!(
            (a.attribute.as_str(), a.op.as_str(), a.value.as_str()),
            ("Reply-Message", ":=", "hello world")
        );
        let a = parse_custom_attr("Filter-Id+=gold").unwrap();
        assert_eq!((a.op.as_str(), a.value.as_str()), ("+=", "gold"));
        let a = parse_custom_attr("NAS-Port-Type == Ethernet").unwrap();
        assert_eq!(a.op, "==");
        assert!(parse_custom_attr("Filter-Id gold").is_err());
        assert!(parse_custom_attr("").is_err());

        let mut d = def(&[]);
        d.reply.push(parse_custom_attr("Filter-Id == x").unwrap());
        let e = validate_def(&d).unwrap_err();
        assert!(e.contains("Filter-Id") && e.contains("=="), "{e}");
        d.reply.clear();
        d.check
            .push(parse_custom_attr("NAS-Port-Type == Ethernet").unwrap());
        assert!(validate_def(&d).is_ok());
        d.check.push(parse_custom_attr("= x").unwrap());
        assert!(validate_def(&d).is_err());
    }
}

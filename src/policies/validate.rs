//! Checks on a stored policy definition before it is saved (CLI and store).

use super::dictionary::{parse_item, CustomAttr as DictItem, Dictionary, List, Op};
use super::fields::{lookup, RawPolicy, ValueKind};
use super::login::{CHECK_OPS, REPLY_OPS};
use super::policy::{CustomAttr, Policy};
use crate::store::{CustomAttrRow, PolicyDef};

fn attribute_name_ok(a: &str) -> bool {
    !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `Attr op value` (spaces around the operator optional; a quoted value unquoted)
/// as a custom attribute row.
pub fn parse_custom_attr(s: &str) -> Result<CustomAttrRow, String> {
    let item = parse_item(s).map_err(|e| format!("custom attribute {s:?}: {e}"))?;
    Ok(CustomAttrRow {
        attribute: item.name,
        op: item.op.as_str().to_string(),
        value: item.value,
    })
}

/// Every custom attribute known to the freeRADIUS dictionaries, with a value of
/// its type and an operator its list allows (the CLI checks this before saving).
pub fn check_dictionary(def: &PolicyDef, dict: &Dictionary) -> Result<(), String> {
    for (list, rows, which) in [
        (List::Check, &def.check, "check"),
        (List::Reply, &def.reply, "reply"),
    ] {
        for r in rows {
            let item = DictItem {
                name: r.attribute.clone(),
                op: Op::parse(&r.op).ok_or_else(|| {
                    format!("{which} attribute {}: operator {:?}", r.attribute, r.op)
                })?,
                value: r.value.clone(),
                quoted: false,
            };
            dict.check(&item, list).map_err(|e| {
                format!(
                    "{which} attribute `{} {} {:?}`: {e}",
                    r.attribute, r.op, r.value
                )
            })?;
        }
    }
    Ok(())
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
        check_attr("reply", a, REPLY_OPS)?;
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
    fn custom_attributes_are_checked_against_the_dictionary() {
        let mut dict = Dictionary::default();
        dict.parse_str(
            "ATTRIBUTE Filter-Id 11 string\nATTRIBUTE NAS-Port 5 integer\n\
             ATTRIBUTE Framed-IP-Address 8 ipaddr\n",
            "test",
            std::path::Path::new("."),
        )
        .unwrap();
        let with = |check: &[&str], reply: &[&str]| {
            let mut d = def(&[]);
            d.check = check
                .iter()
                .map(|c| parse_custom_attr(c).unwrap())
                .collect();
            d.reply = reply
                .iter()
                .map(|c| parse_custom_attr(c).unwrap())
                .collect();
            check_dictionary(&d, &dict)
        };
        assert!(with(
            &["NAS-Port < 100", "Filter-Id =* ANY"],
            &["Filter-Id := gold"]
        )
        .is_ok());
        let e = with(&[], &["Filter-Idd := gold"]).unwrap_err();
        assert!(e.contains("Filter-Idd"), "{e}");
        let e = with(&["NAS-Port == seven"], &[]).unwrap_err();
        assert!(e.contains("NAS-Port") && e.contains("seven"), "{e}");
        let e = with(&[], &["Framed-IP-Address := 192.0.2.300"]).unwrap_err();
        assert!(e.contains("192.0.2.300"), "{e}");
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
        assert!(parse_custom_attr("= x").is_err(), "no attribute name");
    }
}

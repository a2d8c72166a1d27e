//! A freeRADIUS v3 dictionary subset, to validate a policy's custom check/reply
//! attributes (`Filter-Id = "gold"`, `Service-Type == Framed-User`) before they reach
//! the server.
//!
//! Understood: `ATTRIBUTE name number type [flags|vendor]`, `VALUE attr name number`,
//! `VENDOR name number [format=..]`, `BEGIN-VENDOR`/`END-VENDOR`, `BEGIN-TLV`/`END-TLV`,
//! `$INCLUDE path` (relative to the including file) and `$INCLUDE- path` (optional),
//! `#` comments. Names are looked up case-insensitively, as freeRADIUS does.
//!
//! On Debian, radiusd reads `/usr/share/freeradius/dictionary` and then the local
//! `/etc/freeradius/3.0/dictionary` (which does not include the first); [`Dictionary::system`]
//! does the same.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

pub const MAIN_DICTIONARY: &str = "/usr/share/freeradius/dictionary";
pub const LOCAL_DICTIONARY: &str = "/etc/freeradius/3.0/dictionary";

/// freeRADIUS's own include depth limit is small; this only guards against cycles.
const MAX_INCLUDE_DEPTH: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DictError {
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("{file}:{line}: {message}")]
    Syntax {
        file: String,
        line: usize,
        message: String,
    },
    #[error("bad attribute item {0:?} (expected `Attribute op value`)")]
    BadItem(String),
    #[error("bad operator {op:?} after {attr} (=, :=, +=, ==, !=, >, >=, <, <=, =~, !~)")]
    BadOperator { attr: String, op: String },
    #[error("{attr}: unterminated quoted value {value:?}")]
    Unterminated { attr: String, value: String },
    #[error("unknown attribute {0}")]
    UnknownAttribute(String),
    #[error("{attr}: value {value:?} is not a valid {kind}")]
    BadValue {
        attr: String,
        kind: String,
        value: String,
    },
    #[error("{attr}: type {kind} cannot be given a value directly")]
    NotAssignable { attr: String, kind: String },
    #[error("{attr}: operator {op} is not allowed in a reply list (only =, :=, +=)")]
    OperatorNotInReply { attr: String, op: String },
}

/// An attribute's data type (freeRADIUS v3 names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrType {
    String,
    Octets,
    Ipaddr,
    Ipv6addr,
    Ipv4prefix,
    Ipv6prefix,
    ComboIp,
    Integer,
    Integer64,
    Byte,
    Short,
    Signed,
    Date,
    Ether,
    Ifid,
    Abinary,
    /// tlv, vsa, extended, long-extended, evs: containers, no value of their own.
    Structural(String),
}

impl AttrType {
    fn parse(s: &str) -> Option<AttrType> {
        // `octets[16]`: a fixed length we do not enforce.
        let base = s.split('[').next().unwrap_or(s).to_ascii_lowercase();
        Some(match base.as_str() {
            "string" => AttrType::String,
            "octets" => AttrType::Octets,
            "ipaddr" => AttrType::Ipaddr,
            "ipv6addr" => AttrType::Ipv6addr,
            "ipv4prefix" => AttrType::Ipv4prefix,
            "ipv6prefix" => AttrType::Ipv6prefix,
            "combo-ip" => AttrType::ComboIp,
            "integer" | "uint32" => AttrType::Integer,
            "integer64" => AttrType::Integer64,
            "byte" => AttrType::Byte,
            "short" | "uint16" => AttrType::Short,
            "signed" => AttrType::Signed,
            "date" => AttrType::Date,
            "ether" => AttrType::Ether,
            "ifid" => AttrType::Ifid,
            "abinary" => AttrType::Abinary,
            "tlv" | "vsa" | "extended" | "long-extended" | "evs" => AttrType::Structural(base),
            _ => return None,
        })
    }

    pub fn name(&self) -> &str {
        match self {
            AttrType::String => "string",
            AttrType::Octets => "octets",
            AttrType::Ipaddr => "ipaddr",
            AttrType::Ipv6addr => "ipv6addr",
            AttrType::Ipv4prefix => "ipv4prefix",
            AttrType::Ipv6prefix => "ipv6prefix",
            AttrType::ComboIp => "combo-ip",
            AttrType::Integer => "integer",
            AttrType::Integer64 => "integer64",
            AttrType::Byte => "byte",
            AttrType::Short => "short",
            AttrType::Signed => "signed",
            AttrType::Date => "date",
            AttrType::Ether => "ether",
            AttrType::Ifid => "ifid",
            AttrType::Abinary => "abinary",
            AttrType::Structural(s) => s,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrDef {
    /// As spelled in the dictionary.
    pub name: String,
    /// As written (`27`, `59.1`, `0x8004`).
    pub number: String,
    pub kind: AttrType,
    pub vendor: Option<String>,
    pub flags: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Dictionary {
    /// Lowercased name → definition.
    attrs: HashMap<String, AttrDef>,
    /// Lowercased attribute → lowercased VALUE name → number.
    values: HashMap<String, HashMap<String, u64>>,
    /// Lowercased vendor name → number.
    vendors: HashMap<String, u32>,
}

/// Comparison/assignment operator of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Set,      // =
    Assign,   // :=
    Add,      // +=
    Eq,       // ==
    Ne,       // !=
    Gt,       // >
    Ge,       // >=
    Lt,       // <
    Le,       // <=
    Match,    // =~
    NotMatch, // !~
    Present,  // =*
    Absent,   // !*
}

impl Op {
    /// Longest first, so `:=` is not read as `:` + `=`.
    const TABLE: [(&'static str, Op); 13] = [
        (":=", Op::Assign),
        ("+=", Op::Add),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        (">=", Op::Ge),
        ("<=", Op::Le),
        ("=~", Op::Match),
        ("!~", Op::NotMatch),
        ("=*", Op::Present),
        ("!*", Op::Absent),
        ("=", Op::Set),
        (">", Op::Gt),
        ("<", Op::Lt),
    ];

    pub fn parse(s: &str) -> Option<Op> {
        Op::TABLE.iter().find(|(t, _)| *t == s).map(|(_, o)| *o)
    }

    pub fn as_str(self) -> &'static str {
        Op::TABLE
            .iter()
            .find(|(_, o)| *o == self)
            .map(|(s, _)| *s)
            .unwrap_or("?")
    }

    /// Reply lists only assign.
    pub fn allowed_in_reply(self) -> bool {
        matches!(self, Op::Set | Op::Assign | Op::Add)
    }
}

/// Which list a custom attribute goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Check,
    Reply,
}

/// One operator-given `Attribute op value`, value unquoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomAttr {
    pub name: String,
    pub op: Op,
    pub value: String,
    /// The value was written in quotes (freeRADIUS then reads it as a string to convert).
    pub quoted: bool,
}

/// Parses `Name op value`; the value bare (no spaces) or in `"…"` / `'…'` with `\` escapes.
pub fn parse_item(text: &str) -> Result<CustomAttr, DictError> {
    let t = text.trim();
    let bad = || DictError::BadItem(text.to_string());
    let name_len = t
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
        .unwrap_or(t.len());
    // `:` may end a name only as part of `:=`.
    let name_len = if t[..name_len].ends_with(':') && t[name_len..].starts_with('=') {
        name_len - 1
    } else {
        name_len
    };
    let name = &t[..name_len];
    if name.is_empty() {
        return Err(bad());
    }
    let rest = t[name_len..].trim_start();
    let (op_str, op) = Op::TABLE
        .iter()
        .find(|(s, _)| rest.starts_with(s))
        .copied()
        .ok_or_else(|| DictError::BadOperator {
            attr: name.to_string(),
            op: rest.split_whitespace().next().unwrap_or("").to_string(),
        })?;
    let after = &rest[op_str.len()..];
    // `=>`, `==~` and the like: an operator followed by operator characters.
    if after.starts_with(['=', '~', '>', '<', '!', ':', '+']) {
        return Err(DictError::BadOperator {
            attr: name.to_string(),
            op: rest.split_whitespace().next().unwrap_or("").to_string(),
        });
    }
    let raw = after.trim();
    let (value, quoted) = match raw.chars().next() {
        None => return Err(bad()),
        Some(q @ ('"' | '\'')) => (unquote(name, raw, q, text)?, true),
        Some(_) if raw.contains(char::is_whitespace) => return Err(bad()),
        Some(_) => (raw.to_string(), false),
    };
    Ok(CustomAttr {
        name: name.to_string(),
        op,
        value,
        quoted,
    })
}

fn unquote(attr: &str, raw: &str, q: char, item: &str) -> Result<String, DictError> {
    let unterminated = || DictError::Unterminated {
        attr: attr.to_string(),
        value: raw.to_string(),
    };
    let mut out = String::new();
    let mut chars = raw.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, e)) => out.push(e),
                None => return Err(unterminated()),
            },
            c if c == q => {
                // Nothing may follow the closing quote.
                return if raw[i + c.len_utf8()..].trim().is_empty() {
                    Ok(out)
                } else {
                    Err(DictError::BadItem(item.to_string()))
                };
            }
            c => out.push(c),
        }
    }
    Err(unterminated())
}

impl Dictionary {
    /// Reads a dictionary file and everything it `$INCLUDE`s.
    pub fn load(path: impl AsRef<Path>) -> Result<Dictionary, DictError> {
        let mut d = Dictionary::default();
        d.load_into(path.as_ref())?;
        Ok(d)
    }

    /// The server's view: the main dictionary, then the local one if present.
    pub fn system() -> Result<Dictionary, DictError> {
        let mut d = Dictionary::load(MAIN_DICTIONARY)?;
        if Path::new(LOCAL_DICTIONARY).exists() {
            d.load_into(Path::new(LOCAL_DICTIONARY))?;
        }
        Ok(d)
    }

    /// Adds a file's definitions (later definitions of a name replace earlier ones).
    pub fn load_into(&mut self, path: &Path) -> Result<(), DictError> {
        self.load_file(path, 0)
    }

    /// Parses dictionary text; `$INCLUDE`s are relative to `base_dir`.
    pub fn parse_str(
        &mut self,
        text: &str,
        origin: &str,
        base_dir: &Path,
    ) -> Result<(), DictError> {
        self.parse_text(text, origin, base_dir, 0)
    }

    fn load_file(&mut self, path: &Path, depth: usize) -> Result<(), DictError> {
        let text = std::fs::read_to_string(path).map_err(|e| DictError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        self.parse_text(&text, &path.display().to_string(), &dir, depth)
    }

    fn parse_text(
        &mut self,
        text: &str,
        origin: &str,
        base_dir: &Path,
        depth: usize,
    ) -> Result<(), DictError> {
        let mut vendor: Option<String> = None;
        for (n, line) in text.lines().enumerate() {
            let syntax = |message: String| DictError::Syntax {
                file: origin.to_string(),
                line: n + 1,
                message,
            };
            let line = line.split('#').next().unwrap_or("");
            let tok: Vec<&str> = line.split_whitespace().collect();
            let Some(&keyword) = tok.first() else {
                continue;
            };
            match keyword {
                "$INCLUDE" | "$INCLUDE-" => {
                    let [_, file] = tok[..] else {
                        return Err(syntax(format!("{keyword} needs one path")));
                    };
                    if depth >= MAX_INCLUDE_DEPTH {
                        return Err(syntax(format!(
                            "$INCLUDE {file}: nested too deep (a cycle?)"
                        )));
                    }
                    let p = Path::new(file);
                    let full: PathBuf = if p.is_absolute() {
                        p.to_path_buf()
                    } else {
                        base_dir.join(p)
                    };
                    if keyword == "$INCLUDE-" && !full.exists() {
                        continue;
                    }
                    self.load_file(&full, depth + 1)?;
                }
                "ATTRIBUTE" => {
                    if !(4..=5).contains(&tok.len()) {
                        return Err(syntax("ATTRIBUTE name number type [flags]".into()));
                    }
                    let kind = AttrType::parse(tok[3])
                        .ok_or_else(|| syntax(format!("{}: unknown type {}", tok[1], tok[3])))?;
                    let (mut attr_vendor, mut flags) = (vendor.clone(), Vec::new());
                    if let Some(extra) = tok.get(4) {
                        // Old style: a vendor name in place of the flags.
                        if self.vendors.contains_key(&extra.to_ascii_lowercase()) {
                            attr_vendor = Some(extra.to_string());
                        } else {
                            flags = extra.split(',').map(str::to_string).collect();
                        }
                    }
                    self.attrs.insert(
                        tok[1].to_ascii_lowercase(),
                        AttrDef {
                            name: tok[1].to_string(),
                            number: tok[2].to_string(),
                            kind,
                            vendor: attr_vendor,
                            flags,
                        },
                    );
                }
                "VALUE" => {
                    let [_, attr, name, number] = tok[..] else {
                        return Err(syntax("VALUE attribute name number".into()));
                    };
                    let v = parse_uint(number).ok_or_else(|| {
                        syntax(format!("VALUE {attr} {name}: bad number {number}"))
                    })?;
                    self.values
                        .entry(attr.to_ascii_lowercase())
                        .or_default()
                        .insert(name.to_ascii_lowercase(), v);
                }
                "VENDOR" => {
                    if !(3..=4).contains(&tok.len()) {
                        return Err(syntax("VENDOR name number [format=..]".into()));
                    }
                    let v = parse_uint(tok[2])
                        .and_then(|v| u32::try_from(v).ok())
                        .ok_or_else(|| {
                            syntax(format!("VENDOR {}: bad number {}", tok[1], tok[2]))
                        })?;
                    self.vendors.insert(tok[1].to_ascii_lowercase(), v);
                }
                "BEGIN-VENDOR" => {
                    let name = tok
                        .get(1)
                        .ok_or_else(|| syntax("BEGIN-VENDOR needs a name".into()))?;
                    if !self.vendors.contains_key(&name.to_ascii_lowercase()) {
                        return Err(syntax(format!("BEGIN-VENDOR {name}: unknown vendor")));
                    }
                    vendor = Some(name.to_string());
                }
                "END-VENDOR" => {
                    let name = tok.get(1).copied().unwrap_or("");
                    if !vendor
                        .as_deref()
                        .is_some_and(|v| v.eq_ignore_ascii_case(name))
                    {
                        return Err(syntax(format!(
                            "END-VENDOR {name} without BEGIN-VENDOR {name}"
                        )));
                    }
                    vendor = None;
                }
                // TLV children are ordinary ATTRIBUTE lines with dotted numbers.
                "BEGIN-TLV" | "END-TLV" => {}
                other => return Err(syntax(format!("unknown keyword {other}"))),
            }
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&AttrDef> {
        self.attrs.get(&name.to_ascii_lowercase())
    }

    /// Number of a `VALUE` name of `attr` (case-insensitive).
    pub fn value(&self, attr: &str, name: &str) -> Option<u64> {
        self.values
            .get(&attr.to_ascii_lowercase())?
            .get(&name.to_ascii_lowercase())
            .copied()
    }

    pub fn len(&self) -> usize {
        self.attrs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty()
    }

    /// Known attribute, value of its type, operator allowed in `list`.
    pub fn check(&self, item: &CustomAttr, list: List) -> Result<(), DictError> {
        let def = self
            .get(&item.name)
            .ok_or_else(|| DictError::UnknownAttribute(item.name.clone()))?;
        if list == List::Reply && !item.op.allowed_in_reply() {
            return Err(DictError::OperatorNotInReply {
                attr: def.name.clone(),
                op: item.op.as_str().to_string(),
            });
        }
        // A regular expression is not a value of the attribute's type; presence
        // tests have none.
        if matches!(item.op, Op::Match | Op::NotMatch | Op::Present | Op::Absent) {
            return Ok(());
        }
        if let AttrType::Structural(kind) = &def.kind {
            return Err(DictError::NotAssignable {
                attr: def.name.clone(),
                kind: kind.clone(),
            });
        }
        let v = item.value.as_str();
        let named = || self.value(&def.name, v).is_some();
        let ok = match def.kind {
            AttrType::String | AttrType::Abinary => true,
            AttrType::Octets => match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
                Some(hex) => hex.len() % 2 == 0 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
                None => true,
            },
            AttrType::Byte => named() || parse_uint(v).is_some_and(|n| n <= u64::from(u8::MAX)),
            AttrType::Short => named() || parse_uint(v).is_some_and(|n| n <= u64::from(u16::MAX)),
            AttrType::Integer => named() || parse_uint(v).is_some_and(|n| n <= u64::from(u32::MAX)),
            AttrType::Integer64 => named() || parse_uint(v).is_some(),
            AttrType::Signed => named() || v.parse::<i32>().is_ok(),
            AttrType::Ipaddr => v.parse::<Ipv4Addr>().is_ok(),
            AttrType::Ipv6addr => v.parse::<Ipv6Addr>().is_ok(),
            AttrType::ComboIp => v.parse::<Ipv4Addr>().is_ok() || v.parse::<Ipv6Addr>().is_ok(),
            AttrType::Ipv4prefix => prefix::<Ipv4Addr>(v, 32),
            AttrType::Ipv6prefix => prefix::<Ipv6Addr>(v, 128),
            AttrType::Date => is_date(v),
            AttrType::Ether => hex_groups(v, &[':', '-'], 6, 2),
            AttrType::Ifid => hex_groups(v, &[':'], 4, 4),
            AttrType::Structural(_) => false,
        };
        if ok {
            Ok(())
        } else {
            Err(DictError::BadValue {
                attr: def.name.clone(),
                kind: def.kind.name().to_string(),
                value: item.value.clone(),
            })
        }
    }
}

/// Decimal or `0x` hex, as in dictionaries and freeRADIUS integer values.
fn parse_uint(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            u64::from_str_radix(hex, 16).ok()
        }
        Some(_) => None,
        None if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        None => None,
    }
}

fn prefix<A: std::str::FromStr>(v: &str, max_len: u8) -> bool {
    match v.split_once('/') {
        Some((addr, len)) => {
            addr.parse::<A>().is_ok()
                && !len.is_empty()
                && len.bytes().all(|b| b.is_ascii_digit())
                && len.parse::<u8>().is_ok_and(|l| l <= max_len)
        }
        None => v.parse::<A>().is_ok(),
    }
}

/// `groups` groups of 1..=`width` hex digits separated by one of `seps` (consistently).
fn hex_groups(v: &str, seps: &[char], groups: usize, width: usize) -> bool {
    seps.iter().any(|&sep| {
        let parts: Vec<&str> = v.split(sep).collect();
        parts.len() == groups
            && parts
                .iter()
                .all(|p| (1..=width).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_hexdigit()))
    })
}

/// Unix seconds, ISO 8601 (`2030-01-31`, `2030-01-31T12:00:00Z`), or freeRADIUS's
/// `Jan 31 2030 12:00:00 [UTC]` style.
fn is_date(v: &str) -> bool {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse::<u32>().is_ok();
    }
    if NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok()
        || NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S").is_ok()
        || DateTime::parse_from_rfc3339(v).is_ok()
    {
        return true;
    }
    // Drop a trailing zone name (`UTC`, `CEST`): freeRADIUS accepts and mostly ignores it.
    let words: Vec<&str> = v.split_whitespace().collect();
    let words = match words.last() {
        Some(w) if words.len() > 3 && w.bytes().all(|b| b.is_ascii_alphabetic()) => {
            &words[..words.len() - 1]
        }
        _ => &words[..],
    };
    let s = words.join(" ");
    NaiveDate::parse_from_str(&s, "%b %d %Y").is_ok()
        || NaiveDateTime::parse_from_str(&s, "%b %d %Y %H:%M:%S").is_ok()
        || NaiveDateTime::parse_from_str(&s, "%b %d %Y %H:%M").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DICT: &str = "\
# test dictionary
ATTRIBUTE\tService-Type\t\t6\tinteger
VALUE\tService-Type\tLogin-User\t1
VALUE\tService-Type\tFramed-User\t2
ATTRIBUTE\tFilter-Id\t11\tstring
ATTRIBUTE\tFramed-IP-Netmask\t9\tipaddr  # trailing comment
ATTRIBUTE\tSession-Timeout\t27\tinteger
ATTRIBUTE\tUser-Password\t2\tstring\tencrypt=1
ATTRIBUTE\tClass\t25\toctets
ATTRIBUTE\tEvent-Timestamp\t55\tdate
ATTRIBUTE\tFramed-IPv6-Address\t168\tipv6addr
ATTRIBUTE\tFramed-IPv6-Prefix\t97\tipv6prefix
ATTRIBUTE\tFramed-Interface-Id\t96\tifid
ATTRIBUTE\tAcct-Input-Gigawords\t52\tinteger64
ATTRIBUTE\tSmall\t200\tbyte
ATTRIBUTE\tMedium\t201\tshort
ATTRIBUTE\tOffset\t202\tsigned
ATTRIBUTE\tStation-Mac\t203\tether
ATTRIBUTE\tSome-Tlv\t204\ttlv
ATTRIBUTE\tSome-Prefix\t205\tipv4prefix
VENDOR\t\tMikrotik\t14988
BEGIN-VENDOR\tMikrotik
ATTRIBUTE\tMikrotik-Rate-Limit\t8\tstring
END-VENDOR\tMikrotik
VENDOR\t\tWISPr\t14122
ATTRIBUTE\tWISPr-Bandwidth-Max-Down\t8\tinteger\tWISPr
";

    fn dict() -> Dictionary {
        let mut d = Dictionary::default();
        d.parse_str(DICT, "test", Path::new("/nonexistent"))
            .unwrap();
        d
    }

    #[test]
    fn parses_definitions() {
        let d = dict();
        assert_eq!(d.len(), 19);
        let rl = d.get("mikrotik-rate-limit").unwrap();
        assert_eq!(
            (rl.name.as_str(), rl.kind.clone(), rl.vendor.as_deref()),
            ("Mikrotik-Rate-Limit", AttrType::String, Some("Mikrotik"))
        );
        let w = d.get("WISPR-BANDWIDTH-MAX-DOWN").unwrap();
        assert_eq!(
            (w.vendor.as_deref(), w.flags.is_empty()),
            (Some("WISPr"), true)
        );
        assert_eq!(d.get("User-Password").unwrap().flags, vec!["encrypt=1"]);
        assert_eq!(d.get("Filter-Id").unwrap().vendor, None);
        assert_eq!(d.value("service-type", "FRAMED-USER"), Some(2));
        assert_eq!(d.value("Service-Type", "Nope"), None);
    }

    #[test]
    fn parse_item_table() {
        let ok: &[(&str, &str, Op, &str, bool)] = &[
            ("Filter-Id = \"gold\"", "Filter-Id", Op::Set, "gold", true),
            (
                "Mikrotik-Rate-Limit := \"1M/2M\"",
                "Mikrotik-Rate-Limit",
                Op::Assign,
                "1M/2M",
                true,
            ),
            (
                "Framed-IP-Netmask = 255.255.255.0",
                "Framed-IP-Netmask",
                Op::Set,
                "255.255.255.0",
                false,
            ),
            (
                "Service-Type == Framed-User",
                "Service-Type",
                Op::Eq,
                "Framed-User",
                false,
            ),
            (
                "Session-Timeout:=3600",
                "Session-Timeout",
                Op::Assign,
                "3600",
                false,
            ),
            ("Filter-Id += 'a b'", "Filter-Id", Op::Add, "a b", true),
            (
                "Filter-Id != \"say \\\"hi\\\"\"",
                "Filter-Id",
                Op::Ne,
                "say \"hi\"",
                true,
            ),
            (
                "Session-Timeout >= 10",
                "Session-Timeout",
                Op::Ge,
                "10",
                false,
            ),
            (
                "Session-Timeout > 10",
                "Session-Timeout",
                Op::Gt,
                "10",
                false,
            ),
            (
                "Session-Timeout <= 10",
                "Session-Timeout",
                Op::Le,
                "10",
                false,
            ),
            (
                "Session-Timeout < 10",
                "Session-Timeout",
                Op::Lt,
                "10",
                false,
            ),
            ("Filter-Id =~ ^gold", "Filter-Id", Op::Match, "^gold", false),
            (
                "Filter-Id !~ \"^x y\"",
                "Filter-Id",
                Op::NotMatch,
                "^x y",
                true,
            ),
            ("Filter-Id = \"\"", "Filter-Id", Op::Set, "", true),
        ];
        for (text, name, op, value, quoted) in ok {
            let got = parse_item(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                got,
                CustomAttr {
                    name: name.to_string(),
                    op: *op,
                    value: value.to_string(),
                    quoted: *quoted
                },
                "{text}"
            );
        }
        let bad: &[(&str, DictError)] = &[
            ("", DictError::BadItem("".into())),
            ("= 3", DictError::BadItem("= 3".into())),
            (
                "Filter-Id",
                DictError::BadOperator {
                    attr: "Filter-Id".into(),
                    op: "".into(),
                },
            ),
            (
                "Filter-Id gold",
                DictError::BadOperator {
                    attr: "Filter-Id".into(),
                    op: "gold".into(),
                },
            ),
            (
                "Filter-Id => gold",
                DictError::BadOperator {
                    attr: "Filter-Id".into(),
                    op: "=>".into(),
                },
            ),
            (
                "Filter-Id ==~ gold",
                DictError::BadOperator {
                    attr: "Filter-Id".into(),
                    op: "==~".into(),
                },
            ),
            ("Filter-Id =", DictError::BadItem("Filter-Id =".into())),
            (
                "Filter-Id = a b",
                DictError::BadItem("Filter-Id = a b".into()),
            ),
            (
                "Filter-Id = \"open",
                DictError::Unterminated {
                    attr: "Filter-Id".into(),
                    value: "\"open".into(),
                },
            ),
            (
                "Filter-Id = \"a\" b",
                DictError::BadItem("Filter-Id = \"a\" b".into()),
            ),
            (
                "Filter-Id = \"ends\\",
                DictError::Unterminated {
                    attr: "Filter-Id".into(),
                    value: "\"ends\\".into(),
                },
            ),
        ];
        for (text, want) in bad {
            assert_eq!(parse_item(text).as_ref(), Err(want), "{text:?}");
        }
    }

    #[test]
    fn check_table() {
        let d = dict();
        let bad_value = |attr: &str, kind: &str, value: &str| {
            Err(DictError::BadValue {
                attr: attr.into(),
                kind: kind.into(),
                value: value.into(),
            })
        };
        let cases: &[(&str, List, Result<(), DictError>)] = &[
            ("Filter-Id = \"gold\"", List::Reply, Ok(())),
            ("filter-id = anything", List::Reply, Ok(())),
            ("Mikrotik-Rate-Limit := \"1M/2M\"", List::Reply, Ok(())),
            ("Framed-IP-Netmask = 255.255.255.0", List::Reply, Ok(())),
            (
                "Framed-IP-Netmask = 255.255.255.256",
                List::Reply,
                bad_value("Framed-IP-Netmask", "ipaddr", "255.255.255.256"),
            ),
            (
                "Framed-IP-Netmask = ::1",
                List::Reply,
                bad_value("Framed-IP-Netmask", "ipaddr", "::1"),
            ),
            ("Service-Type == Framed-User", List::Check, Ok(())),
            ("Service-Type == framed-user", List::Check, Ok(())),
            ("Service-Type := 2", List::Reply, Ok(())),
            (
                "Service-Type := Framed",
                List::Reply,
                bad_value("Service-Type", "integer", "Framed"),
            ),
            (
                "Service-Type == Framed-User",
                List::Reply,
                Err(DictError::OperatorNotInReply {
                    attr: "Service-Type".into(),
                    op: "==".into(),
                }),
            ),
            ("Session-Timeout += 3600", List::Reply, Ok(())),
            ("Session-Timeout = \"3600\"", List::Reply, Ok(())),
            ("Session-Timeout = 0x10", List::Reply, Ok(())),
            ("Session-Timeout = 4294967295", List::Reply, Ok(())),
            (
                "Session-Timeout = 4294967296",
                List::Reply,
                bad_value("Session-Timeout", "integer", "4294967296"),
            ),
            (
                "Session-Timeout = -1",
                List::Reply,
                bad_value("Session-Timeout", "integer", "-1"),
            ),
            (
                "Session-Timeout = 1h",
                List::Reply,
                bad_value("Session-Timeout", "integer", "1h"),
            ),
            (
                "Session-Timeout < 10",
                List::Reply,
                Err(DictError::OperatorNotInReply {
                    attr: "Session-Timeout".into(),
                    op: "<".into(),
                }),
            ),
            ("Session-Timeout < 10", List::Check, Ok(())),
            ("Filter-Id =~ \"[unchecked\"", List::Check, Ok(())),
            (
                "Filter-Id !~ x",
                List::Reply,
                Err(DictError::OperatorNotInReply {
                    attr: "Filter-Id".into(),
                    op: "!~".into(),
                }),
            ),
            (
                "Acct-Input-Gigawords = 18446744073709551615",
                List::Reply,
                Ok(()),
            ),
            (
                "Acct-Input-Gigawords = 18446744073709551616",
                List::Reply,
                bad_value("Acct-Input-Gigawords", "integer64", "18446744073709551616"),
            ),
            ("Small = 255", List::Reply, Ok(())),
            (
                "Small = 256",
                List::Reply,
                bad_value("Small", "byte", "256"),
            ),
            ("Medium = 65535", List::Reply, Ok(())),
            (
                "Medium = 65536",
                List::Reply,
                bad_value("Medium", "short", "65536"),
            ),
            ("Offset = -5", List::Reply, Ok(())),
            (
                "Offset = 2147483648",
                List::Reply,
                bad_value("Offset", "signed", "2147483648"),
            ),
            ("Class = 0x0aFF", List::Reply, Ok(())),
            (
                "Class = 0x0aF",
                List::Reply,
                bad_value("Class", "octets", "0x0aF"),
            ),
            (
                "Class = 0xzz",
                List::Reply,
                bad_value("Class", "octets", "0xzz"),
            ),
            ("Class = plain-text", List::Reply, Ok(())),
            ("Event-Timestamp = 1767225600", List::Reply, Ok(())),
            (
                "Event-Timestamp = \"Jan 1 2026 00:00:00 UTC\"",
                List::Reply,
                Ok(()),
            ),
            ("Event-Timestamp = 2026-01-31", List::Reply, Ok(())),
            (
                "Event-Timestamp = 2026-01-31T10:00:00Z",
                List::Reply,
                Ok(()),
            ),
            (
                "Event-Timestamp = tomorrow",
                List::Reply,
                bad_value("Event-Timestamp", "date", "tomorrow"),
            ),
            (
                "Event-Timestamp = 2026-02-30",
                List::Reply,
                bad_value("Event-Timestamp", "date", "2026-02-30"),
            ),
            ("Framed-IPv6-Address = 2001:db8::1", List::Reply, Ok(())),
            (
                "Framed-IPv6-Address = 192.0.2.1",
                List::Reply,
                bad_value("Framed-IPv6-Address", "ipv6addr", "192.0.2.1"),
            ),
            ("Framed-IPv6-Prefix = 2001:db8::/64", List::Reply, Ok(())),
            (
                "Framed-IPv6-Prefix = 2001:db8::/129",
                List::Reply,
                bad_value("Framed-IPv6-Prefix", "ipv6prefix", "2001:db8::/129"),
            ),
            ("Some-Prefix = 192.0.2.0/24", List::Reply, Ok(())),
            (
                "Some-Prefix = 192.0.2.0/",
                List::Reply,
                bad_value("Some-Prefix", "ipv4prefix", "192.0.2.0/"),
            ),
            (
                "Framed-Interface-Id = 0011:2233:4455:6677",
                List::Reply,
                Ok(()),
            ),
            (
                "Framed-Interface-Id = 0011:2233:4455",
                List::Reply,
                bad_value("Framed-Interface-Id", "ifid", "0011:2233:4455"),
            ),
            ("Station-Mac = 00:11:22:aa:BB:cc", List::Reply, Ok(())),
            ("Station-Mac = 00-11-22-aa-BB-cc", List::Reply, Ok(())),
            (
                "Station-Mac = 00:11:22:aa:BB",
                List::Reply,
                bad_value("Station-Mac", "ether", "00:11:22:aa:BB"),
            ),
            (
                "Station-Mac = 00:11-22:aa:BB:cc",
                List::Reply,
                bad_value("Station-Mac", "ether", "00:11-22:aa:BB:cc"),
            ),
            (
                "Some-Tlv = 1",
                List::Reply,
                Err(DictError::NotAssignable {
                    attr: "Some-Tlv".into(),
                    kind: "tlv".into(),
                }),
            ),
            (
                "Gold-Level = 1",
                List::Reply,
                Err(DictError::UnknownAttribute("Gold-Level".into())),
            ),
        ];
        for (text, list, want) in cases {
            let item = parse_item(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(d.check(&item, *list), *want, "{text} in {list:?}");
        }
        let msg = d
            .check(&parse_item("Session-Timeout = 1h").unwrap(), List::Reply)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("Session-Timeout") && msg.contains("1h"),
            "{msg}"
        );
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("ATTRIBUTE X 1", 1, "ATTRIBUTE name number type"),
            ("\nATTRIBUTE X 1 float", 2, "unknown type float"),
            ("VALUE A B", 1, "VALUE attribute name number"),
            ("VALUE A B x1", 1, "bad number x1"),
            ("BEGIN-VENDOR Nobody", 1, "unknown vendor"),
            ("END-VENDOR Nobody", 1, "without BEGIN-VENDOR"),
            ("VENDOR V 99999999999", 1, "bad number"),
            ("FROBNICATE x", 1, "unknown keyword FROBNICATE"),
            ("$INCLUDE", 1, "needs one path"),
        ];
        for (text, line, part) in cases {
            let err = Dictionary::default()
                .parse_str(text, "t", Path::new("/"))
                .unwrap_err();
            match &err {
                DictError::Syntax {
                    file,
                    line: l,
                    message,
                } => {
                    assert_eq!((file.as_str(), *l), ("t", *line), "{text}");
                    assert!(message.contains(part), "{text}: {message}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn includes_relative_absolute_optional_and_cycles() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(
            sub.join("dictionary.a"),
            "ATTRIBUTE A-Attr 1 string\n$INCLUDE dictionary.b\n",
        )
        .unwrap();
        std::fs::write(sub.join("dictionary.b"), "ATTRIBUTE B-Attr 2 integer\n").unwrap();
        let abs = dir.path().join("dictionary.abs");
        std::fs::write(&abs, "ATTRIBUTE Abs-Attr 3 ipaddr\n").unwrap();
        let main = dir.path().join("dictionary");
        std::fs::write(
            &main,
            format!(
                "$INCLUDE sub/dictionary.a\n$INCLUDE {}\n$INCLUDE- missing.dict\n",
                abs.display()
            ),
        )
        .unwrap();
        let d = Dictionary::load(&main).unwrap();
        for name in ["A-Attr", "B-Attr", "Abs-Attr"] {
            assert!(d.get(name).is_some(), "{name}");
        }
        // A required include that is missing is an error naming the path.
        std::fs::write(&main, "$INCLUDE missing.dict\n").unwrap();
        match Dictionary::load(&main).unwrap_err() {
            DictError::Io { path, .. } => assert!(path.ends_with("missing.dict"), "{path}"),
            other => panic!("{other:?}"),
        }
        // A cycle stops at the depth limit instead of overflowing the stack.
        std::fs::write(&main, "$INCLUDE dictionary\n").unwrap();
        assert!(matches!(
            Dictionary::load(&main),
            Err(DictError::Syntax { .. })
        ));
    }

    #[test]
    fn real_debian_dictionary() {
        if !Path::new(MAIN_DICTIONARY).exists() {
            eprintln!("skipped: no {MAIN_DICTIONARY}");
            return;
        }
        let d = Dictionary::system().unwrap();
        assert!(d.len() > 5000, "only {} attributes", d.len());
        let cases: &[(&str, AttrType, Option<&str>)] = &[
            ("Mikrotik-Rate-Limit", AttrType::String, Some("Mikrotik")),
            ("WISPr-Bandwidth-Max-Down", AttrType::Integer, Some("WISPr")),
            ("Session-Timeout", AttrType::Integer, None),
            ("Framed-IP-Netmask", AttrType::Ipaddr, None),
        ];
        for (name, kind, vendor) in cases {
            let def = d.get(name).unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(
                (&def.kind, def.vendor.as_deref()),
                (kind, *vendor),
                "{name}"
            );
        }
        assert_eq!(d.value("Service-Type", "Framed-User"), Some(2));
        let item = parse_item("Service-Type == Framed-User").unwrap();
        assert_eq!(d.check(&item, List::Check), Ok(()));
    }

    #[test]
    fn odd_input_does_not_panic() {
        let d = dict();
        for w in super::super::WEIRD_INPUT {
            if let Ok(item) = parse_item(w) {
                let _ = d.check(&item, List::Reply);
            }
            let _ = Dictionary::default().parse_str(w, "t", Path::new("/nonexistent"));
        }
        // Unicode names are not attribute names.
        assert!(parse_item("Ä := ö").is_err());
    }
}

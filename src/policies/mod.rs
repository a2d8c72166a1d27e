//! Product policies (HSNM-style): named sets of per-user rules (concurrency,
//! devices, timeouts, quotas, schedule, rates, burst, address list, custom
//! attributes) kept in the module's store and assigned to users; every field can
//! also come from the request's control list (users, radcheck, LDAP, unlang), which
//! wins per field. Pure: nothing here knows about C or SQL.
pub mod curves;
pub mod dictionary;
pub mod fields;
pub mod login;
pub mod modulation;
pub mod policy;
pub mod quota;
pub mod rates;
pub mod schedule;
pub mod validate;

pub use fields::{Field, FieldDef, RawPolicy, ValueKind, FIELDS};
pub use policy::{CustomAttr, Policy, PolicyError};
pub use quota::{Quota, Quotas, Reached};
pub use validate::{parts, validate_def};

/// Odd operator input every parser here must refuse or take without panicking.
#[cfg(test)]
pub(crate) const WEIRD_INPUT: &[&str] = &[
    "",
    " ",
    "\0",
    "é",
    "ééé-ééé",
    "mon é",
    "-",
    "--",
    ":",
    ":=",
    "=",
    "\"",
    "'",
    "\\",
    "mon 0:00-",
    "mon -00:00",
    "mon 00:00--01:00",
    "* 99999999999999999999:00-01:00",
    "Attr = \"é\\",
    "Ä := ö",
    "1.",
    ".",
    "k",
    "0x",
    "🙂 = 🙂",
    "a:=:=b",
    "mon-",
];

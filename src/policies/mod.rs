//! Product policies (HSNM-style): pure rule modules. The lead's `mod.rs` replaces
//! this file at merge and keeps these declarations.

pub mod curves;
pub mod dictionary;
pub mod rates;
pub mod schedule;

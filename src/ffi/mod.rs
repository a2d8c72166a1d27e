//! FFI glue: everything that touches FreeRADIUS C types lives below this module.
//!
//! - [`sys`]: raw bindgen output for the installed server's headers.
//! - `log`, `request`: the thin safe wrapper (logging bridge, request and pairs).
//! - `module`: the exported `module_t rlm_rust` and its callbacks.
//! - `clients`: secrets from the server's client list, for the background worker.
//! - `dictionary`: loads dictionary.rust when the server loads the module.
//!
//! The modules that call server functions (`radlog`, `fr_pair_make`, ...) are left out
//! of the crate's own unit-test binary, which has no server to link against; they are
//! tested through the real `freeradius` (tests/e2e_*.rs).
#[cfg(not(test))]
pub mod clients;
#[cfg(not(test))]
mod dictionary;
#[cfg(not(test))]
pub mod log;
#[cfg(not(test))]
pub mod module;
#[cfg(not(test))]
pub mod request;
pub mod sys;

#[cfg(test)]
mod layout;

/// Socket constants of the C library the server uses (include/layout.c checks them
/// against its headers).
pub mod net {
    pub const AF_INET: i32 = 2;
    pub const AF_INET6: i32 = 10;
    pub const IPPROTO_UDP: i32 = 17;
}

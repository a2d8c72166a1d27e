//! rlm_rust: a FreeRADIUS 3.2 usage-control module.
//!
//! Layering (as in ngx-rust / redis-module-rs / pgrx):
//! - [`ffi`]: the only place with `unsafe` and C types: raw bindgen layer, a thin
//!   safe wrapper (request, attribute lists, config, logging) and the exported `module_t`.
//! - everything else is plain Rust that knows nothing of C and is unit-tested directly.

pub mod accounting;
pub mod attrs;
pub mod background;
pub mod bulk;
pub mod capping;
pub mod cli;
pub mod coa;
pub mod command;
pub mod config;
pub mod console;
pub mod digest;
pub mod disconnect;
pub mod enforcement;
pub mod ffi;
pub mod instance;
pub mod login_memory;
pub mod metrics;
pub mod names;
pub mod notify;
pub mod outbox;
pub mod parallel;
pub mod periods;
pub mod pipeline;
pub mod policies;
pub mod policy_enforcement;
pub mod radius;
pub mod rate_coa;
pub mod routeros;
pub mod services;
pub mod sessions;
pub mod states;
pub mod store;
pub mod topups;
pub mod unique_id;

//! The exported `module_t rlm_rust`, its CONF_PARSER table and the callbacks.
//!
//! Every callback catches panics (a panic must never unwind into C) and maps the
//! plain-Rust [`Rcode`] to `rlm_rcode_t`.
use super::log::{self as frlog, RequestScope};
use super::request::{List, Op, Request};
use super::sys;
use crate::attrs::{std_attr, Attrs};
use crate::config::{self, RawConfig};
use crate::instance::{Instance, Rcode};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::mem::{offset_of, size_of};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

/// The instance memory the server allocates (zeroed) and fills from CONF_PARSER.
/// Strings are server-owned (talloc); only `state` is ours.
#[repr(C)]
pub struct InstanceData {
    db: *const c_char,
    timezone: *const c_char,
    stale_after: *const c_char,
    synchronous: *const c_char,
    background_interval: *const c_char,
    disconnect_prior_month: *const c_char,
    dm_timeout: *const c_char,
    dm_retries: *const c_char,
    disconnect_batch: *const c_char,
    bulk_disconnect: *const c_char,
    bulk_disconnect_delay: *const c_char,
    state: *mut Instance,
}

/// Plain-data wrapper so tables of raw pointers can be `static`.
#[repr(transparent)]
pub struct Static<T>(T);
// SAFETY: the wrapped tables are immutable and only read by the server.
unsafe impl<T> Sync for Static<T> {}

const fn string_option(
    name: &'static CStr,
    offset: usize,
    dflt: Option<&'static CStr>,
) -> sys::CONF_PARSER {
    sys::CONF_PARSER {
        name: name.as_ptr(),
        type_: sys::PW_TYPE::PW_TYPE_STRING as c_int,
        offset,
        data: ptr::null_mut(),
        dflt: match dflt {
            Some(d) => d.as_ptr().cast(),
            None => ptr::null(),
        },
    }
}

const END: sys::CONF_PARSER = sys::CONF_PARSER {
    name: ptr::null(),
    type_: -1,
    offset: 0,
    data: ptr::null_mut(),
    dflt: ptr::null(),
};

/// Options without a default here are defaulted (and validated) in `config::parse`.
static CONFIG: Static<[sys::CONF_PARSER; 12]> = Static([
    string_option(c"db", offset_of!(InstanceData, db), None),
    string_option(c"timezone", offset_of!(InstanceData, timezone), None),
    string_option(c"stale_after", offset_of!(InstanceData, stale_after), None),
    string_option(c"synchronous", offset_of!(InstanceData, synchronous), None),
    string_option(
        c"background_interval",
        offset_of!(InstanceData, background_interval),
        None,
    ),
    string_option(
        c"disconnect_prior_month",
        offset_of!(InstanceData, disconnect_prior_month),
        None,
    ),
    string_option(c"dm_timeout", offset_of!(InstanceData, dm_timeout), None),
    string_option(c"dm_retries", offset_of!(InstanceData, dm_retries), None),
    string_option(
        c"disconnect_batch",
        offset_of!(InstanceData, disconnect_batch),
        None,
    ),
    string_option(
        c"bulk_disconnect",
        offset_of!(InstanceData, bulk_disconnect),
        None,
    ),
    string_option(
        c"bulk_disconnect_delay",
        offset_of!(InstanceData, bulk_disconnect_delay),
        None,
    ),
    END,
]);

const fn methods() -> [sys::packetmethod; 10] {
    use sys::rlm_components::*;
    let mut m: [sys::packetmethod; 10] = [None; 10];
    m[MOD_AUTHORIZE as usize] = Some(mod_authorize);
    m[MOD_PREACCT as usize] = Some(mod_preacct);
    m[MOD_ACCOUNTING as usize] = Some(mod_accounting);
    m[MOD_POST_AUTH as usize] = Some(mod_post_auth);
    m
}

#[no_mangle]
pub static rlm_rust: Static<sys::module_t> = Static(sys::module_t {
    magic: sys::RLM_MODULE_INIT,
    name: c"rust".as_ptr(),
    type_: (sys::RLM_TYPE_THREAD_SAFE | sys::RLM_TYPE_HUP_SAFE) as c_int,
    inst_size: size_of::<InstanceData>(),
    config: &CONFIG.0 as *const _ as *const sys::CONF_PARSER,
    bootstrap: None,
    instantiate: Some(mod_instantiate),
    detach: Some(mod_detach),
    methods: methods(),
});

fn opt(p: *const c_char) -> Option<String> {
    // SAFETY: either null or a NUL-terminated string the server parsed into the instance.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

fn section_name(cs: *mut sys::CONF_SECTION) -> String {
    // SAFETY: cs is the module's live section; names are NUL-terminated or null.
    unsafe {
        let n2 = sys::cf_section_name2(cs);
        let n = if n2.is_null() {
            sys::cf_section_name1(cs)
        } else {
            n2
        };
        opt(n).unwrap_or_else(|| "rust".into())
    }
}

/// Reports a configuration error against the module's section (file and line).
fn config_error(cs: *mut sys::CONF_SECTION, msg: &str) {
    let line =
        std::ffi::CString::new(format!("rlm_rust: {msg}").replace('\0', " ")).unwrap_or_default();
    // SAFETY: constant "%s" format, one NUL-terminated argument.
    unsafe { sys::cf_log_err_cs(cs, c"%s".as_ptr(), line.as_ptr()) };
}

unsafe extern "C" fn mod_instantiate(cs: *mut sys::CONF_SECTION, inst: *mut c_void) -> c_int {
    let result = catch_unwind(AssertUnwindSafe(|| {
        frlog::init();
        let data = &mut *(inst as *mut InstanceData);
        let raw = RawConfig {
            db: opt(data.db),
            timezone: opt(data.timezone),
            stale_after: opt(data.stale_after),
            synchronous: opt(data.synchronous),
            background_interval: opt(data.background_interval),
            disconnect_prior_month: opt(data.disconnect_prior_month),
            dm_timeout: opt(data.dm_timeout),
            dm_retries: opt(data.dm_retries),
            disconnect_batch: opt(data.disconnect_batch),
            bulk_disconnect: opt(data.bulk_disconnect),
            bulk_disconnect_delay: opt(data.bulk_disconnect_delay),
        };
        let config = match config::parse(&raw) {
            Ok(c) => c,
            Err(e) => {
                config_error(cs, &e.to_string());
                return -1;
            }
        };
        let name = section_name(cs);
        if sys::check_config {
            // `freeradius -C`: validate only; open no files and start no threads.
            return match config::check_db_path(&config.db) {
                Ok(()) => 0,
                Err(e) => {
                    config_error(cs, &e.to_string());
                    -1
                }
            };
        }
        match Instance::start(name, config) {
            Ok(i) => {
                data.state = Box::into_raw(Box::new(i));
                0
            }
            Err(e) => {
                config_error(cs, &e);
                -1
            }
        }
    }));
    result.unwrap_or_else(|_| {
        frlog::global(log::Level::Error, "panic while instantiating");
        -1
    })
}

unsafe extern "C" fn mod_detach(inst: *mut c_void) -> c_int {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let data = &mut *(inst as *mut InstanceData);
        if !data.state.is_null() {
            // The box is ours (created in instantiate); the instance memory is the server's.
            let mut state = Box::from_raw(data.state);
            data.state = ptr::null_mut();
            state.stop();
        }
        0
    }));
    result.unwrap_or(-1)
}

/// Runs `f` with the instance state and request, catching panics and logging in the request.
unsafe fn call(
    inst: *mut c_void,
    raw: *mut sys::REQUEST,
    section: &'static str,
    f: impl FnOnce(&Instance, &mut Request<'_>) -> Rcode,
) -> sys::rlm_rcode_t {
    let _scope = RequestScope::enter(raw);
    let result = catch_unwind(AssertUnwindSafe(|| {
        let data = &*(inst as *const InstanceData);
        let Some(state) = data.state.as_ref() else {
            log::error!("{section}: module not instantiated");
            return Rcode::Fail;
        };
        let Some(mut request) = Request::from_raw(raw) else {
            log::error!("{section}: request without a packet");
            return Rcode::Invalid;
        };
        f(state, &mut request)
    }));
    let rcode = result.unwrap_or_else(|_| {
        log::error!("{section}: internal error (panic caught); returning fail");
        Rcode::Fail
    });
    to_c(rcode)
}

fn to_c(r: Rcode) -> sys::rlm_rcode_t {
    use sys::rlm_rcodes::*;
    match r {
        Rcode::Reject => RLM_MODULE_REJECT,
        Rcode::Fail => RLM_MODULE_FAIL,
        Rcode::Ok => RLM_MODULE_OK,
        Rcode::Handled => RLM_MODULE_HANDLED,
        Rcode::Invalid => RLM_MODULE_INVALID,
        Rcode::Userlock => RLM_MODULE_USERLOCK,
        Rcode::Notfound => RLM_MODULE_NOTFOUND,
        Rcode::Noop => RLM_MODULE_NOOP,
        Rcode::Updated => RLM_MODULE_UPDATED,
    }
}

unsafe extern "C" fn mod_authorize(
    inst: *mut c_void,
    request: *mut sys::REQUEST,
) -> sys::rlm_rcode_t {
    call(inst, request, "authorize", |state, req| {
        let user = req.list(List::Request).text(std_attr::USER_NAME, 0);
        let (rcode, control) = state.authorize(user.as_deref(), req.received_at());
        for (name, value) in control {
            if let Err(e) = req.add(List::Control, name, &value, Op::Set) {
                log::warn!("{e} (is dictionary.rust included?)");
            }
        }
        rcode
    })
}

unsafe extern "C" fn mod_post_auth(
    inst: *mut c_void,
    request: *mut sys::REQUEST,
) -> sys::rlm_rcode_t {
    call(inst, request, "post-auth", |_, _| Rcode::Noop)
}

unsafe extern "C" fn mod_preacct(
    inst: *mut c_void,
    request: *mut sys::REQUEST,
) -> sys::rlm_rcode_t {
    call(inst, request, "preacct", |_, _| Rcode::Noop)
}

unsafe extern "C" fn mod_accounting(
    inst: *mut c_void,
    request: *mut sys::REQUEST,
) -> sys::rlm_rcode_t {
    call(inst, request, "accounting", |state, req| {
        let rcode = state.accounting(&req.list(List::Request), req.src_ip(), req.received_at());
        state.learn_client_secret(&req.list(List::Request), req.src_ip(), req.client_secret());
        rcode
    })
}

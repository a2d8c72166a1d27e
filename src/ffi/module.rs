//! The exported `module_t rlm_rust`, its CONF_PARSER table and the callbacks.
//!
//! Every callback catches panics (a panic must never unwind into C) and maps the
//! plain-Rust [`Rcode`] to `rlm_rcode_t`.
use super::log::{self as frlog, RequestScope};
use super::request::{List, Op, Request};
use super::sys;
use crate::attrs::{std_attr, Attrs};
use crate::capping::{lookup_attribute, RawLimits};
use crate::config::{self, RawCapping, RawConfig};
use crate::enforcement::Answer;
use crate::instance::{Instance, Rcode};
use crate::policies::RawPolicy;
use crate::policy_enforcement::Login;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::mem::{offset_of, size_of};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::Arc;

/// The instance memory the server allocates (zeroed) and fills from CONF_PARSER.
/// Strings are server-owned (talloc); only `state` is ours.
#[repr(C)]
pub struct InstanceData {
    db: *const c_char,
    timezone: *const c_char,
    stale_after: *const c_char,
    synchronous: *const c_char,
    background_interval: *const c_char,
    capping: CappingData,
    disconnect_prior_month: *const c_char,
    dm_timeout: *const c_char,
    dm_retries: *const c_char,
    disconnect_batch: *const c_char,
    bulk_disconnect: *const c_char,
    bulk_disconnect_delay: *const c_char,
    max_session_rate: *const c_char,
    events_keep: *const c_char,
    queue_lease: *const c_char,
    metrics_listen: *const c_char,
    metrics_token: *const c_char,
    hooks: HooksData,
    state: *mut Instance,
}

/// The `hooks { ... }` subsection's strings (events in `config::HOOK_OPTIONS` order).
#[repr(C)]
pub struct HooksData {
    all: *const c_char,
    timeout: *const c_char,
    retries: *const c_char,
    events: [*const c_char; 11],
}

/// The `capping { ... }` subsection's strings.
#[repr(C)]
pub struct CappingData {
    period: *const c_char,
    caveat_captrafzero: *const c_char,
    mikrotik: *const c_char,
    over_limit: *const c_char,
    traffic_message: *const c_char,
    uptime_message: *const c_char,
    notify_command: *const c_char,
    notify_template: *const c_char,
}

/// Plain-data wrapper so tables of raw pointers can be `static`.
#[repr(transparent)]
pub struct Static<T>(T);
// SAFETY: the wrapped tables are immutable and only read by the server.
unsafe impl<T> Sync for Static<T> {}

/// A string option freeRADIUS's -X output shows only at -xxx (`db` may be a
/// PostgreSQL connection string with its password).
const fn secret_string_option(name: &'static CStr, offset: usize) -> sys::CONF_PARSER {
    let mut p = string_option(name, offset, None);
    p.type_ |= sys::PW_TYPE_SECRET as c_int;
    p
}

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

macro_rules! capping_option {
    ($name:literal, $field:ident) => {
        string_option(
            $name,
            offset_of!(InstanceData, capping) + offset_of!(CappingData, $field),
            None,
        )
    };
}

/// Offsets are from the instance base (the subsection entry's offset is 0).
static CAPPING_CONFIG: Static<[sys::CONF_PARSER; 9]> = Static([
    capping_option!(c"period", period),
    capping_option!(c"caveat_captrafzero", caveat_captrafzero),
    capping_option!(c"mikrotik", mikrotik),
    capping_option!(c"over_limit", over_limit),
    capping_option!(c"traffic_message", traffic_message),
    capping_option!(c"uptime_message", uptime_message),
    capping_option!(c"notify_command", notify_command),
    capping_option!(c"notify_template", notify_template),
    END,
]);

macro_rules! hook_option {
    ($name:literal, $field:ident) => {
        string_option(
            $name,
            offset_of!(InstanceData, hooks) + offset_of!(HooksData, $field),
            None,
        )
    };
    ($name:literal, events, $i:literal) => {
        string_option(
            $name,
            offset_of!(InstanceData, hooks)
                + offset_of!(HooksData, events)
                + $i * size_of::<*const c_char>(),
            None,
        )
    };
}

/// Names as in `config::HOOK_OPTIONS` (a test checks they agree).
static HOOKS_CONFIG: Static<[sys::CONF_PARSER; 15]> = Static([
    hook_option!(c"all", all),
    hook_option!(c"timeout", timeout),
    hook_option!(c"retries", retries),
    hook_option!(c"user_add", events, 0),
    hook_option!(c"user_del", events, 1),
    hook_option!(c"user_auth", events, 2),
    hook_option!(c"user_disconnect", events, 3),
    hook_option!(c"user_redirect", events, 4),
    hook_option!(c"user_redirect_cancel", events, 5),
    hook_option!(c"own_disabled", events, 6),
    hook_option!(c"own_disabled_cancel", events, 7),
    hook_option!(c"user_rate_set", events, 8),
    hook_option!(c"service_activated", events, 9),
    hook_option!(c"service_deactivated", events, 10),
    END,
]);

/// Options without a default here are defaulted (and validated) in `config::parse`.
static CONFIG: Static<[sys::CONF_PARSER; 19]> = Static([
    secret_string_option(c"db", offset_of!(InstanceData, db)),
    string_option(c"timezone", offset_of!(InstanceData, timezone), None),
    string_option(c"stale_after", offset_of!(InstanceData, stale_after), None),
    string_option(c"synchronous", offset_of!(InstanceData, synchronous), None),
    string_option(
        c"background_interval",
        offset_of!(InstanceData, background_interval),
        None,
    ),
    sys::CONF_PARSER {
        name: c"capping".as_ptr(),
        type_: sys::PW_TYPE_SUBSECTION as c_int,
        offset: 0,
        data: ptr::null_mut(),
        dflt: &CAPPING_CONFIG.0 as *const _ as *const c_void,
    },
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
    string_option(
        c"max_session_rate",
        offset_of!(InstanceData, max_session_rate),
        None,
    ),
    string_option(c"events_keep", offset_of!(InstanceData, events_keep), None),
    string_option(c"queue_lease", offset_of!(InstanceData, queue_lease), None),
    string_option(
        c"metrics_listen",
        offset_of!(InstanceData, metrics_listen),
        None,
    ),
    secret_string_option(c"metrics_token", offset_of!(InstanceData, metrics_token)),
    sys::CONF_PARSER {
        name: c"hooks".as_ptr(),
        type_: sys::PW_TYPE_SUBSECTION as c_int,
        offset: 0,
        data: ptr::null_mut(),
        dflt: &HOOKS_CONFIG.0 as *const _ as *const c_void,
    },
    END,
]);

const fn methods() -> [sys::packetmethod; 10] {
    use sys::rlm_components::*;
    let mut m: [sys::packetmethod; 10] = [None; 10];
    m[MOD_AUTHORIZE as usize] = Some(mod_authorize);
    m[MOD_PREACCT as usize] = Some(mod_preacct);
    m[MOD_ACCOUNTING as usize] = Some(mod_accounting);
    m[MOD_POST_AUTH as usize] = Some(mod_post_auth);
    m[MOD_SESSION as usize] = Some(mod_session);
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
        match super::dictionary::outcome() {
            Ok(Some(file)) => log::debug!("rlm_rust: loaded {file}"),
            Ok(None) => {}
            Err(why) => {
                config_error(cs, &why);
                return -1;
            }
        }
        let data = &mut *(inst as *mut InstanceData);
        let raw = RawConfig {
            db: opt(data.db),
            timezone: opt(data.timezone),
            stale_after: opt(data.stale_after),
            synchronous: opt(data.synchronous),
            background_interval: opt(data.background_interval),
            capping: RawCapping {
                period: opt(data.capping.period),
                caveat_captrafzero: opt(data.capping.caveat_captrafzero),
                mikrotik: opt(data.capping.mikrotik),
                over_limit: opt(data.capping.over_limit),
                traffic_message: opt(data.capping.traffic_message),
                uptime_message: opt(data.capping.uptime_message),
                notify_command: opt(data.capping.notify_command),
                notify_template: opt(data.capping.notify_template),
            },
            disconnect_prior_month: opt(data.disconnect_prior_month),
            dm_timeout: opt(data.dm_timeout),
            dm_retries: opt(data.dm_retries),
            disconnect_batch: opt(data.disconnect_batch),
            bulk_disconnect: opt(data.bulk_disconnect),
            bulk_disconnect_delay: opt(data.bulk_disconnect_delay),
            max_session_rate: opt(data.max_session_rate),
            events_keep: opt(data.events_keep),
            queue_lease: opt(data.queue_lease),
            metrics_listen: opt(data.metrics_listen),
            metrics_token: opt(data.metrics_token),
            hooks: config::RawHooks {
                all: opt(data.hooks.all),
                timeout: opt(data.hooks.timeout),
                retries: opt(data.hooks.retries),
                events: data.hooks.events.map(opt),
            },
        };
        let config = match config::parse(&raw) {
            Ok(c) => c,
            Err(e) => {
                config_error(cs, &e.to_string());
                return -1;
            }
        };
        let name = section_name(cs);
        // `%{<instance name>:key}`, also under -C (the sites using it are checked).
        // After a HUP the new instance takes the name over; the server unregisters
        // by instance when it frees one.
        let cname = std::ffi::CString::new(name.clone()).unwrap_or_default();
        if sys::xlat_register(cname.as_ptr(), Some(mod_xlat), None, inst) != 0 {
            config_error(cs, "cannot register the xlat");
            return -1;
        }
        if sys::check_config {
            // `freeradius -C`: validate only; open no files and start no threads.
            return match crate::store::check_location(&config.db) {
                Ok(()) => 0,
                Err(why) => {
                    let e = config::ConfigError {
                        option: "db",
                        value: config.db_shown.clone(),
                        reason: why,
                    };
                    config_error(cs, &e.to_string());
                    -1
                }
            };
        }
        match Instance::start(name.clone(), config, Arc::new(super::clients::secret_of)) {
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

/// Capping attributes of the control list (our names and the SMRadius aliases).
fn control_limits(req: &Request<'_>) -> RawLimits {
    let mut raw = RawLimits::new();
    for p in req.pairs(List::Control) {
        let name = p.name();
        if lookup_attribute(name).is_some() {
            if let Some(v) = p.as_text() {
                raw.insert(name, &v);
            }
        }
    }
    raw
}

fn apply(req: &mut Request<'_>, answer: Answer) -> Rcode {
    for (name, value) in answer.control {
        if let Err(e) = req.add(List::Control, name, &value, Op::Set) {
            log::warn!("{e} (is dictionary.rust included?)");
        }
    }
    for (name, value) in answer.reply {
        if let Err(e) = req.add(List::Reply, &name, &value, Op::Set) {
            log::warn!("{e}");
        }
    }
    for (name, value, op) in answer.extra {
        let op = match op.as_str() {
            "=" => Op::Eq,
            "+=" => Op::Add,
            _ => Op::Set,
        };
        if let Err(e) = req.add(List::Reply, &name, &value, op) {
            log::warn!("{e}");
        }
    }
    answer.rcode
}

unsafe extern "C" fn mod_authorize(
    inst: *mut c_void,
    request: *mut sys::REQUEST,
) -> sys::rlm_rcode_t {
    call(inst, request, "authorize", |state, req| {
        let user = req.list(List::Request).text(std_attr::USER_NAME, 0);
        let answer = state.authorize(
            req.number(),
            user.as_deref(),
            &control_limits(req),
            req.received_at(),
        );
        apply(req, answer)
    })
}

unsafe extern "C" fn mod_post_auth(
    inst: *mut c_void,
    request: *mut sys::REQUEST,
) -> sys::rlm_rcode_t {
    call(inst, request, "post-auth", |state, req| {
        let attrs = req.list(List::Request);
        let user = attrs.text(std_attr::USER_NAME, 0).unwrap_or_default();
        let timeout = req
            .list(List::Reply)
            .min_integer(std_attr::SESSION_TIMEOUT, 0)
            .map(|t| u32::try_from(t).unwrap_or(u32::MAX));
        let csid = attrs.text(std_attr::CALLING_STATION_ID, 0);
        let nas_ip = attrs
            .ipv4(std_attr::NAS_IP_ADDRESS, 0)
            .map(|ip| ip.to_string())
            .or_else(|| req.src_ip().map(|ip| ip.to_string()));
        let request_value = |name: &str| attrs.server_text_by_name(name);
        let policy = control_policy(req);
        let login = Login {
            user: &user,
            control: &policy,
            calling_station_id: csid.as_deref(),
            nas_ip,
            now: req.received_at(),
            request_value: &request_value,
        };
        let rate = req
            .list(List::Reply)
            .text(MIKROTIK_RATE_LIMIT.0, MIKROTIK_RATE_LIMIT.1);
        let answer = state.post_auth(
            req.number(),
            &login,
            &control_limits(req),
            timeout,
            rate.as_deref(),
        );
        apply(req, answer)
    })
}

/// (attribute, vendor) of Mikrotik-Rate-Limit.
const MIKROTIK_RATE_LIMIT: (u32, u32) = (8, 14988);

/// Policy fields of the control list (`Rust-Policy-*`).
fn control_policy(req: &Request<'_>) -> RawPolicy {
    let mut raw = RawPolicy::new();
    for p in req.pairs(List::Control) {
        let name = p.name();
        if name.starts_with("Rust-Policy-") {
            if let Some(v) = p.as_text() {
                raw.insert(name, &v);
            }
        }
    }
    raw
}

unsafe extern "C" fn mod_session(
    inst: *mut c_void,
    request: *mut sys::REQUEST,
) -> sys::rlm_rcode_t {
    call(inst, request, "session", |state, req| {
        let user = req.list(List::Request).text(std_attr::USER_NAME, 0);
        let (rcode, count) = state.open_sessions(user.as_deref(), req.received_at());
        if let Some(n) = count {
            req.set_simul_count(n);
        }
        rcode
    })
}

unsafe extern "C" fn mod_preacct(
    inst: *mut c_void,
    request: *mut sys::REQUEST,
) -> sys::rlm_rcode_t {
    call(inst, request, "preacct", |_, req| {
        set_acct_unique_session_id(req)
    })
}

/// preacct: Acct-Unique-Session-Id as the stock `acct_unique` policy sets it, unless
/// something before us already did (see [`crate::unique_id`] for why).
fn set_acct_unique_session_id(req: &mut Request<'_>) -> Rcode {
    use crate::attrs::std_attr as a;
    let mut input = crate::unique_id::UniqueIdInput::default();
    for p in req.pairs(List::Request).filter(|p| p.vendor() == 0) {
        // The first instance of each, as `%{Attr}` expands.
        match p.attr() {
            a::ACCT_UNIQUE_SESSION_ID => return Rcode::Noop,
            a::USER_NAME => input.user_name = input.user_name.or(p.as_bytes()),
            a::ACCT_SESSION_ID => input.acct_session_id = input.acct_session_id.or(p.as_bytes()),
            a::NAS_IP_ADDRESS => input.nas_ip = input.nas_ip.or(p.as_ipv4()),
            a::NAS_IPV6_ADDRESS => input.nas_ipv6 = input.nas_ipv6.or(p.as_ipv6()),
            a::NAS_IDENTIFIER => input.nas_identifier = input.nas_identifier.or(p.as_bytes()),
            a::NAS_PORT_ID => input.nas_port_id = input.nas_port_id.or(p.as_bytes()),
            a::NAS_PORT => input.nas_port = input.nas_port.or(p.as_u64()),
            a::CLASS => input.class = input.class.or(p.as_bytes()),
            _ => {}
        }
    }
    let id = crate::unique_id::acct_unique_session_id(&input);
    match req.add(List::Request, "Acct-Unique-Session-Id", &id, Op::Set) {
        Ok(()) => Rcode::Updated,
        Err(e) => {
            log::error!("cannot set Acct-Unique-Session-Id: {e}");
            Rcode::Fail
        }
    }
}

unsafe extern "C" fn mod_accounting(
    inst: *mut c_void,
    request: *mut sys::REQUEST,
) -> sys::rlm_rcode_t {
    call(inst, request, "accounting", |state, req| {
        let rcode = state.accounting(
            &req.list(List::Request),
            &control_limits(req),
            &control_policy(req),
            req.src_ip(),
            req.received_at(),
        );
        state.learn_client_secret(&req.list(List::Request), req.src_ip(), req.client_secret());
        rcode
    })
}

/// `%{rust:KEY}`: writes the value into `out` (NUL-terminated, truncated to fit);
/// -1 (the expansion fails) for an unknown key or a store error.
unsafe extern "C" fn mod_xlat(
    inst: *mut c_void,
    raw: *mut sys::REQUEST,
    fmt: *const c_char,
    out: *mut c_char,
    outlen: usize,
) -> isize {
    let _scope = RequestScope::enter(raw);
    let result = catch_unwind(AssertUnwindSafe(|| {
        let data = &*(inst as *const InstanceData);
        let state = data.state.as_ref().ok_or("module not instantiated")?;
        let req = Request::from_raw(raw).ok_or("request without a packet")?;
        let key = opt(fmt).unwrap_or_default();
        let user = req.list(List::Request).text(std_attr::USER_NAME, 0);
        state
            .xlat(
                &key,
                user.as_deref(),
                &control_limits(&req),
                req.received_at(),
            )
            .map_err(|e| format!("%{{{}:{key}}}: {e}", state.name))
    }));
    let value = match result {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            log::error!("{e}");
            return -1;
        }
        Err(_) => {
            log::error!("xlat: internal error (panic caught)");
            return -1;
        }
    };
    if out.is_null() || outlen == 0 {
        return -1;
    }
    let n = value.len().min(outlen - 1);
    // SAFETY: the server passes a buffer of `outlen` bytes.
    ptr::copy_nonoverlapping(value.as_ptr(), out as *mut u8, n);
    *out.add(n) = 0;
    n as isize
}

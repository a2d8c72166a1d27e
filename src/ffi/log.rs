//! Bridges the `log` crate to FreeRADIUS logging.
//!
//! While a module callback runs, the current REQUEST is remembered in a thread-local,
//! so `log::debug!` from plain-Rust code becomes a request-scoped `(N) rust: ...` line
//! under `freeradius -X`. Outside a request (background threads, instantiate) lines go
//! to the server's main log. Messages are always passed as a `%s` argument: user data
//! never reaches a C format string.
use super::sys;
use std::cell::Cell;
use std::ffi::CString;
use std::ptr;

thread_local! {
    static CURRENT: Cell<*mut sys::REQUEST> = const { Cell::new(ptr::null_mut()) };
}

/// Makes `request` the target of request-scoped log lines until dropped.
pub struct RequestScope {
    previous: *mut sys::REQUEST,
}

impl RequestScope {
    pub fn enter(request: *mut sys::REQUEST) -> Self {
        RequestScope {
            previous: CURRENT.with(|c| c.replace(request)),
        }
    }
}

impl Drop for RequestScope {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
    }
}

struct ServerLogger;

static LOGGER: ServerLogger = ServerLogger;

/// Installs the bridge (once per process) and sets the level from the server's -X level.
pub fn init() {
    let _ = log::set_logger(&LOGGER);
    // SAFETY: a plain global integer the server sets while parsing its command line.
    let debug = unsafe { sys::rad_debug_lvl };
    log::set_max_level(match debug {
        i32::MIN..=0 => log::LevelFilter::Info,
        1..=2 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    });
}

fn to_cstring(s: String) -> CString {
    CString::new(s).unwrap_or_else(|e| {
        let mut bytes = e.into_vec();
        bytes.retain(|b| *b != 0);
        CString::new(bytes).unwrap_or_default()
    })
}

/// Logs to the main server log, outside any request.
pub fn global(level: log::Level, msg: &str) {
    let kind = match level {
        log::Level::Error => sys::log_type::L_ERR,
        log::Level::Warn => sys::log_type::L_WARN,
        log::Level::Info => sys::log_type::L_INFO,
        _ => sys::log_type::L_DBG,
    };
    let line = to_cstring(format!("rlm_rust: {msg}"));
    // SAFETY: constant "%s" format with one NUL-terminated string argument.
    unsafe {
        sys::radlog(kind, c"%s".as_ptr(), line.as_ptr());
    }
}

impl log::Log for ServerLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let request = CURRENT.with(|c| c.get());
        if request.is_null() {
            global(record.level(), &record.args().to_string());
            return;
        }
        let line = to_cstring(record.args().to_string());
        let (kind, lvl) = match record.level() {
            log::Level::Error => (sys::log_type::L_DBG_ERR, sys::log_lvl::L_DBG_LVL_OFF),
            log::Level::Warn => (sys::log_type::L_DBG_WARN, sys::log_lvl::L_DBG_LVL_OFF),
            log::Level::Info => (sys::log_type::L_INFO, sys::log_lvl::L_DBG_LVL_OFF),
            log::Level::Debug => (sys::log_type::L_DBG, sys::log_lvl::L_DBG_LVL_1),
            log::Level::Trace => (sys::log_type::L_DBG, sys::log_lvl::L_DBG_LVL_3),
        };
        // SAFETY: `request` is the live REQUEST of the callback running on this thread
        // (RequestScope is dropped before the callback returns); constant "%s" format.
        unsafe {
            if record.level() == log::Level::Error {
                sys::radlog_request_error(kind, lvl, request, c"%s".as_ptr(), line.as_ptr());
            } else {
                sys::radlog_request(kind, lvl, request, c"%s".as_ptr(), line.as_ptr());
            }
        }
    }

    fn flush(&self) {}
}

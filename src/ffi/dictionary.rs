//! Loads `dictionary.rust` from the server's dictionary directory when the server
//! dlopen()s the module, unless its attributes are already defined (an operator's
//! `$INCLUDE`). The package installs the file there, beside the server's own
//! protocol dictionaries, so nobody edits a dictionary by hand.
//!
//! Why at load time: the server loads every module before it instantiates any, and
//! `files` reads `users` (which may name our attributes) in its instantiate, which
//! may come before ours. A `bootstrap` callback would run early enough too, but
//! freeRADIUS 3.2 then refuses to reload the module on HUP.
//!
//! The server's symbols are looked up at run time (dlsym), so a binary without a
//! server (the test binaries) links this and finds nothing to do.
use super::sys;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;

extern "C" {
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

/// The probe: the first attribute of the file.
const PROBE: &CStr = c"Rust-Open-Sessions";

static OUTCOME: OnceLock<Result<Option<String>, String>> = OnceLock::new();

#[used]
#[link_section = ".init_array"]
static AT_LOAD: extern "C" fn() = at_load;

extern "C" fn at_load() {
    let outcome = std::panic::catch_unwind(|| unsafe { load() })
        .unwrap_or_else(|_| Err("panic while loading dictionary.rust".into()));
    let _ = OUTCOME.set(outcome);
}

/// What happened at load: Ok(Some(file)) loaded, Ok(None) nothing to do (already
/// defined, or no server), Err(why) for the operator.
pub(crate) fn outcome() -> Result<Option<String>, String> {
    OUTCOME.get().cloned().unwrap_or(Ok(None))
}

unsafe fn symbol(name: &CStr) -> *mut c_void {
    // RTLD_DEFAULT: the process's global symbols, where the server's are.
    dlsym(std::ptr::null_mut(), name.as_ptr())
}

unsafe fn load() -> Result<Option<String>, String> {
    type ByName = unsafe extern "C" fn(*const c_char) -> *const sys::DICT_ATTR;
    type Read = unsafe extern "C" fn(*const c_char, *const c_char) -> c_int;
    type StrError = unsafe extern "C" fn() -> *const c_char;
    let (by_name, read, config, strerror) = (
        symbol(c"dict_attrbyname"),
        symbol(c"dict_read"),
        symbol(c"main_config"),
        symbol(c"fr_strerror"),
    );
    if by_name.is_null() || read.is_null() || config.is_null() || strerror.is_null() {
        return Ok(None);
    }
    let by_name: ByName = std::mem::transmute(by_name);
    if !by_name(PROBE.as_ptr()).is_null() {
        return Ok(None);
    }
    let dir = (*(config as *const sys::main_config_t)).dictionary_dir;
    if dir.is_null() {
        return Err("the server has no dictionary directory".into());
    }
    let file = format!("{}/dictionary.rust", CStr::from_ptr(dir).to_string_lossy());
    let read: Read = std::mem::transmute(read);
    match read(dir, c"dictionary.rust".as_ptr()) {
        0 => Ok(Some(file)),
        -1 => {
            let strerror: StrError = std::mem::transmute(strerror);
            let why = strerror();
            let why = if why.is_null() {
                String::new()
            } else {
                CStr::from_ptr(why).to_string_lossy().into_owned()
            };
            Err(format!("cannot read {file}: {why}"))
        }
        _ => Err(format!(
            "the attributes of dictionary.rust ({}, ...) are not defined and {file} does not exist: \
             install it there (the freeradius-rust package does), or $INCLUDE it from raddb/dictionary",
            PROBE.to_string_lossy()
        )),
    }
}

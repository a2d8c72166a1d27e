//! Control-list values seen at a user's last login, for that user's accounting.
//!
//! Accounting runs no authorize, so values that came from the control list at login
//! (users file, sql, ldap, unlang) are not there when the user's Interim-Updates
//! arrive. They are remembered here per user and reused for accounting requests
//! whose own control list has none; the store's values are the durable default.
//! Used for capping limits and for policy quotas.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// A set of control-list values (capping limits, policy fields).
pub trait ControlValues: Clone + PartialEq + Default {
    fn is_empty(&self) -> bool;
}

impl ControlValues for crate::capping::RawLimits {
    fn is_empty(&self) -> bool {
        crate::capping::RawLimits::is_empty(self)
    }
}

impl ControlValues for crate::policies::RawPolicy {
    fn is_empty(&self) -> bool {
        crate::policies::RawPolicy::is_empty(self)
    }
}

/// Per user, the control-list values of the last login (none kept for a login
/// without any: nothing to remember costs no memory).
pub struct LoginMemory<T> {
    seen: Mutex<HashMap<String, T>>,
    /// Users remembered, kept under the lock: while 0, requests without control
    /// values take no lock (most installations keep limits and policies in the store).
    users: AtomicUsize,
}

impl<T: ControlValues> Default for LoginMemory<T> {
    fn default() -> Self {
        LoginMemory {
            seen: Mutex::new(HashMap::new()),
            users: AtomicUsize::new(0),
        }
    }
}

impl<T: ControlValues> LoginMemory<T> {
    /// The values to use: the request's, or, when it has none and this is not a
    /// login, those remembered from the user's last login. `login`: remember the
    /// request's set (also an empty one: forgets the old).
    pub fn control_part(&self, user: &str, control: &T, login: bool) -> T {
        if !control.is_empty() && !login {
            return control.clone();
        }
        // Nothing to remember or forget, nothing to recall.
        if control.is_empty() && self.users.load(Ordering::Acquire) == 0 {
            return T::default();
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let out = if login {
            if control.is_empty() {
                seen.remove(user);
            } else if seen.get(user) != Some(control) {
                seen.insert(user.to_string(), control.clone());
            }
            control.clone()
        } else {
            seen.get(user).cloned().unwrap_or_default()
        };
        self.users.store(seen.len(), Ordering::Release);
        out
    }

    /// Users remembered (for tests and stats).
    pub fn len(&self) -> usize {
        self.users.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policies::RawPolicy;

    fn raw(pairs: &[(&str, &str)]) -> RawPolicy {
        let mut r = RawPolicy::new();
        for (k, v) in pairs {
            r.insert(k, v);
        }
        r
    }

    #[test]
    fn login_values_are_reused_by_accounting_until_the_next_login() {
        let m = LoginMemory::<RawPolicy>::default();
        let login = raw(&[("daily-traffic", "10")]);
        assert_eq!(m.control_part("u", &login, true), login);
        // Accounting without control values: the login's.
        assert_eq!(m.control_part("u", &RawPolicy::new(), false), login);
        assert_eq!(
            m.control_part("other", &RawPolicy::new(), false),
            RawPolicy::new()
        );
        // Accounting with its own: those, and the memory is left alone.
        let own = raw(&[("daily-traffic", "20")]);
        assert_eq!(m.control_part("u", &own, false), own);
        assert_eq!(m.control_part("u", &RawPolicy::new(), false), login);
        // A login without any forgets.
        assert_eq!(
            m.control_part("u", &RawPolicy::new(), true),
            RawPolicy::new()
        );
        assert_eq!(
            m.control_part("u", &RawPolicy::new(), false),
            RawPolicy::new()
        );
        assert!(m.is_empty());
    }
}

//! Control-list values seen at a user's last login, for that user's accounting.
//!
//! Accounting runs no authorize, so values that came from the control list at login
//! (users file, sql, ldap, unlang) are not there when the user's Interim-Updates
//! arrive. They are kept per user, in memory and in the store, and reused for
//! accounting requests whose own control list has none; the store's values
//! (limits, policies) are the durable default. In the store they reach accounting
//! on another server of the same database and after a restart. With one server
//! (SQLite) memory answers and the store is read only for users it does not know;
//! with several (PostgreSQL) another server may have seen a later login, so the
//! store answers every time. Used for capping limits and for policy quotas.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::{Backend, ControlKind, Store};

/// A set of control-list values (capping limits, policy fields).
pub trait ControlValues: Clone + PartialEq + Default {
    fn is_empty(&self) -> bool;
    /// (attribute or field, value) pairs, as kept in the store.
    fn to_pairs(&self) -> Vec<(String, String)>;
    fn from_pairs(pairs: &[(String, String)]) -> Self;
}

impl ControlValues for crate::capping::RawLimits {
    fn is_empty(&self) -> bool {
        crate::capping::RawLimits::is_empty(self)
    }
    fn to_pairs(&self) -> Vec<(String, String)> {
        self.pairs()
    }
    fn from_pairs(pairs: &[(String, String)]) -> Self {
        crate::capping::RawLimits::from_pairs(pairs.iter().map(|(a, v)| (a.as_str(), v.as_str())))
    }
}

impl ControlValues for crate::policies::RawPolicy {
    fn is_empty(&self) -> bool {
        crate::policies::RawPolicy::is_empty(self)
    }
    fn to_pairs(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(d, v)| (d.name.to_string(), v.to_string()))
            .collect()
    }
    fn from_pairs(pairs: &[(String, String)]) -> Self {
        let mut r = crate::policies::RawPolicy::new();
        for (k, v) in pairs {
            r.insert(k, v);
        }
        r
    }
}

/// Users whose values are kept in memory at most (about 300 B each): past it an
/// arbitrary one is dropped, and read back from the store when it is asked for.
pub const MAX_REMEMBERED: usize = 100_000;

/// Inserts into a map bounded to `cap` entries; returns the key dropped for it.
fn insert_bounded<V>(
    map: &mut HashMap<String, V>,
    key: &str,
    value: V,
    cap: usize,
) -> Option<String> {
    let mut dropped = None;
    if map.len() >= cap && !map.contains_key(key) {
        dropped = map.keys().next().cloned();
        if let Some(victim) = &dropped {
            map.remove(victim);
        }
    }
    map.insert(key.to_string(), value);
    dropped
}

/// How often whether the store keeps any values at all is asked again.
const ANY_RECHECK: Duration = Duration::from_secs(30);

struct Backing {
    store: Store,
    kind: ControlKind,
    /// Several servers on the store: memory is not the authority.
    shared: bool,
    any: AtomicBool,
    any_checked: Mutex<Option<Instant>>,
}

impl Backing {
    /// Whether the store may keep values of this kind for anyone: asked at most every
    /// [`ANY_RECHECK`], and true for good once it said so or this process kept some
    /// (an answer read before that write committed must not turn it off again). A
    /// shared store is always read: another server's first kept values would
    /// otherwise go unseen until the next check (found under CI load: both servers
    /// of a two-server test skipped the limits for 30 s).
    fn any(&self) -> bool {
        if self.shared || self.any.load(Ordering::Relaxed) {
            return true;
        }
        let mut checked = self.any_checked.lock().unwrap_or_else(|p| p.into_inner());
        if checked.is_none_or(|t| t.elapsed() >= ANY_RECHECK) {
            match self.store.login_controls_any(self.kind) {
                Ok(true) => self.any.store(true, Ordering::Relaxed),
                Ok(false) => {}
                Err(e) => log::warn!("cannot read the kept login values: {e}"),
            }
            *checked = Some(Instant::now());
        }
        self.any.load(Ordering::Relaxed)
    }

    /// The kept values and when they were kept.
    fn read<T: ControlValues>(&self, user: &str) -> Option<(T, i64)> {
        match self.store.login_control(user, self.kind) {
            Ok(Some((text, at))) => match serde_json::from_str::<Vec<(String, String)>>(&text) {
                Ok(pairs) => Some((T::from_pairs(&pairs), at)),
                Err(e) => {
                    log::warn!("the kept login values of a user are unreadable ({e}); ignored");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                log::warn!("cannot read the kept login values: {e}");
                None
            }
        }
    }

    fn write<T: ControlValues>(&self, user: &str, values: Option<&T>, at: i64) {
        let text = values.map(|v| serde_json::to_string(&v.to_pairs()).unwrap_or_default());
        if text.is_some() {
            self.any.store(true, Ordering::Relaxed);
        }
        if let Err(e) = self
            .store
            .login_control_put_nowait(user, self.kind, text, at)
        {
            log::warn!("cannot keep the login values: {e}");
        }
    }
}

/// Per user, the control-list values of the last login (none kept for a login
/// without any: nothing to remember costs no memory).
pub struct LoginMemory<T> {
    seen: Mutex<HashMap<String, T>>,
    /// Users remembered, kept under the lock: while 0, requests without control
    /// values take no lock (most installations keep limits and policies in the store).
    users: AtomicUsize,
    backing: Option<Backing>,
    /// Shared stores: when this server last saw each user log in. Its own login is
    /// newer than what the store holds until that write commits (it does not wait).
    logins: Mutex<HashMap<String, i64>>,
    /// At most this many users in `seen` and in `logins` ([`MAX_REMEMBERED`]).
    cap: usize,
}

impl<T: ControlValues> Default for LoginMemory<T> {
    fn default() -> Self {
        LoginMemory {
            seen: Mutex::new(HashMap::new()),
            users: AtomicUsize::new(0),
            backing: None,
            logins: Mutex::new(HashMap::new()),
            cap: MAX_REMEMBERED,
        }
    }
}

impl<T: ControlValues> LoginMemory<T> {
    /// Kept in `store` as well, under `kind`.
    pub fn with_store(store: Store, kind: ControlKind) -> Self {
        let shared = store.backend() == Backend::Postgres;
        LoginMemory {
            backing: Some(Backing {
                store,
                kind,
                shared,
                any: AtomicBool::new(false),
                any_checked: Mutex::new(None),
            }),
            ..Default::default()
        }
    }

    /// The values to use: the request's, or, when it has none and this is not a
    /// login, those kept from the user's last login. `login`: keep the request's set
    /// (also an empty one: forgets the old).
    pub fn control_part(&self, user: &str, control: &T, login: bool) -> T {
        if !control.is_empty() && !login {
            return control.clone();
        }
        if login {
            return self.login(user, control);
        }
        let shared = self.backing.as_ref().is_some_and(|b| b.shared);
        if !shared && self.users.load(Ordering::Acquire) > 0 {
            let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(v) = seen.get(user) {
                return v.clone();
            }
        }
        let Some(b) = self.backing.as_ref().filter(|b| b.any()) else {
            return T::default();
        };
        let v: Option<(T, i64)> = b.read(user);
        if shared {
            // This server's own later login wins over an older (or not yet
            // committed) kept set.
            let mine = self
                .logins
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(user)
                .copied();
            if mine.is_some_and(|t| v.as_ref().is_none_or(|(_, at)| *at <= t)) {
                let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                return seen.get(user).cloned().unwrap_or_default();
            }
            return v.map(|(v, _)| v).unwrap_or_default();
        }
        if let Some((v, _)) = &v {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            // Not on a shared store (which returned above): no login times to match.
            insert_bounded(&mut seen, user, v.clone(), self.cap);
            self.set_users(seen.len());
        }
        v.map(|(v, _)| v).unwrap_or_default()
    }

    fn login(&self, user: &str, control: &T) -> T {
        // Nothing to remember or forget.
        if control.is_empty()
            && self.users.load(Ordering::Acquire) == 0
            && !self.backing.as_ref().is_some_and(|b| b.shared && b.any())
        {
            return T::default();
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let mut dropped = Vec::new();
        let changed = if control.is_empty() {
            seen.remove(user).is_some()
        } else if seen.get(user) != Some(control) {
            dropped.extend(insert_bounded(&mut seen, user, control.clone(), self.cap));
            true
        } else {
            false
        };
        self.set_users(seen.len());
        drop(seen);
        let now = crate::periods::now();
        if self.backing.as_ref().is_some_and(|b| b.shared) {
            // A user dropped from one map is dropped from both: a login time without
            // values would read as "this login had none".
            let mut logins = self.logins.lock().unwrap_or_else(|p| p.into_inner());
            for d in &dropped {
                logins.remove(d);
            }
            let gone = insert_bounded(&mut logins, user, now, self.cap);
            drop(logins);
            if let Some(g) = gone {
                let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                seen.remove(&g);
                self.set_users(seen.len());
            }
        }
        if let Some(b) = &self.backing {
            // Another server may have kept another set since: there, always write.
            if changed || b.shared {
                b.write(user, (!control.is_empty()).then_some(control), now);
            }
        }
        control.clone()
    }

    fn set_users(&self, n: usize) {
        self.users.store(n, Ordering::Release);
        if let Some(b) = &self.backing {
            crate::metrics::global()
                .login_memory
                .set(&[b.kind.as_str()], n as u64);
        }
    }

    /// Users remembered in memory (for tests and stats).
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

#[cfg(test)]
mod store_tests {
    use super::*;
    use crate::capping::RawLimits;
    use crate::store::{testdb, StoreOptions};

    fn limits(v: &str) -> RawLimits {
        RawLimits::from_pairs([("SMRadius-Capping-Traffic-Limit", v)])
    }

    /// A login's values reach accounting through the store: on another server
    /// (PostgreSQL), or after a restart (SQLite: a new process knows nobody).
    #[test]
    fn login_values_reach_accounting_on_another_server_and_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = testdb::at(dir.path().join("rlm.sqlite"));
        let a = Store::open(&path, StoreOptions::default()).unwrap();
        let b = Store::open(&path, StoreOptions::default()).unwrap();
        let on_a = LoginMemory::<RawLimits>::with_store(a.clone(), ControlKind::Limits);
        let none = RawLimits::new();
        assert_eq!(on_a.control_part("u", &limits("100"), true), limits("100"));
        // The write does not wait; a Start follows the Accept by milliseconds.
        let kept = || a.login_control("u", ControlKind::Limits).unwrap();
        for _ in 0..100 {
            if kept().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(kept().is_some());
        let on_b = LoginMemory::<RawLimits>::with_store(b.clone(), ControlKind::Limits);
        assert_eq!(on_b.control_part("u", &none, false), limits("100"));
        assert_eq!(on_b.control_part("nobody", &none, false), none);
        // A later login elsewhere with other values wins everywhere it is asked
        // afresh; a login without any forgets them.
        assert_eq!(on_b.control_part("u", &limits("200"), true), limits("200"));
        a.shutdown();
        b.shutdown();
        let c = Store::open(&path, StoreOptions::default()).unwrap();
        let on_c = LoginMemory::<RawLimits>::with_store(c.clone(), ControlKind::Limits);
        assert_eq!(on_c.control_part("u", &none, false), limits("200"));
        assert_eq!(on_c.control_part("u", &none, true), none);
        c.shutdown();
        let d = Store::open(&path, StoreOptions::default()).unwrap();
        let on_d = LoginMemory::<RawLimits>::with_store(d, ControlKind::Limits);
        assert_eq!(on_d.control_part("u", &none, false), none);
    }

    /// A server that asked before any login values existed still sees another
    /// server's first ones at once (it cached "nobody has any" for 30 s before).
    #[test]
    fn another_servers_first_values_are_seen_at_once_on_a_shared_store() {
        if testdb::backend() != Backend::Postgres {
            return; // one server per SQLite file: its own memory answers
        }
        let dir = tempfile::tempdir().unwrap();
        let path = testdb::at(dir.path().join("rlm.sqlite"));
        let a = Store::open(&path, StoreOptions::default()).unwrap();
        let b = Store::open(&path, StoreOptions::default()).unwrap();
        let on_a = LoginMemory::<RawLimits>::with_store(a.clone(), ControlKind::Limits);
        let on_b = LoginMemory::<RawLimits>::with_store(b.clone(), ControlKind::Limits);
        let none = RawLimits::new();
        assert_eq!(on_b.control_part("u", &none, false), none);
        on_a.control_part("u", &limits("100"), true);
        for _ in 0..100 {
            if a.login_control("u", ControlKind::Limits).unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(on_b.control_part("u", &none, false), limits("100"));
        a.shutdown();
        b.shutdown();
    }

    /// Memory holds at most its cap of users; one dropped is read back from the
    /// store, so accounting still applies its login's values.
    #[test]
    fn memory_is_bounded_and_a_dropped_user_comes_back_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = testdb::at(dir.path().join("rlm.sqlite"));
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        let mut m = LoginMemory::<RawLimits>::with_store(store.clone(), ControlKind::Limits);
        m.cap = 3;
        for i in 0..10 {
            m.control_part(&format!("u{i}"), &limits(&format!("{}", 100 + i)), true);
        }
        assert_eq!(m.len(), 3, "bounded");
        assert!(m.logins.lock().unwrap().len() <= 3);
        for i in 0..10 {
            let user = format!("u{i}");
            for _ in 0..100 {
                if store
                    .login_control(&user, ControlKind::Limits)
                    .unwrap()
                    .is_some()
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        for i in 0..10 {
            assert_eq!(
                m.control_part(&format!("u{i}"), &RawLimits::new(), false),
                limits(&format!("{}", 100 + i)),
                "u{i}"
            );
        }
        assert!(m.len() <= 3);
        store.shutdown();
    }
}

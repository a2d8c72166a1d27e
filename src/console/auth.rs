//! Operators' passwords, console sessions, CSRF tokens and the login rate limit.

use std::collections::HashMap;
use std::sync::Mutex;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use sha2::{Digest, Sha256};

use super::{Fail, Shared};
use crate::store::Role;

/// The session cookie's name.
pub const COOKIE: &str = "rlm_console";

/// Shortest password `operator add` accepts.
pub const MIN_PASSWORD: usize = 10;

/// An operator name: what a login form and a log line can carry unescaped.
pub fn valid_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "operator name {name:?}: 1 to 64 letters, digits, '.', '_', '@' or '-'"
        ))
    }
}

/// An argon2id PHC string for the password.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no randomness: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether the password matches the stored hash (false for a malformed hash).
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Checked against when the name is unknown, so that a wrong name takes as long as
/// a wrong password.
pub fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| hash_password("not a password of anyone").unwrap_or_default())
}

/// 32 random bytes as hex.
pub fn random_token() -> Result<String, Fail> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| {
        Fail::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("no randomness: {e}"),
        )
    })?;
    Ok(hex(&b))
}

/// What the store keeps of a session token.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The `Set-Cookie` value for a new session, or (`token` None) one that ends it.
pub fn cookie(token: Option<&str>, max_age: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match token {
        Some(t) => {
            format!("{COOKIE}={t}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
        }
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

/// The session token in a request's cookies.
pub fn token_of(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The logged-in operator of a request. Pages without one redirect to the login
/// page; the API answers 401.
#[derive(Debug, Clone)]
pub struct Operator {
    pub name: String,
    pub role: Role,
    pub csrf: String,
    pub token_hash: String,
}

impl Operator {
    /// A change: an admin, with this session's CSRF token.
    pub fn may_change(&self, csrf: Option<&str>) -> Result<(), Fail> {
        self.check_csrf(csrf)?;
        if self.role != Role::Admin {
            return Err(Fail::new(
                StatusCode::FORBIDDEN,
                format!(
                    "operator {} is a viewer: changes need the admin role",
                    self.name
                ),
            ));
        }
        Ok(())
    }

    /// This session's CSRF token (logging out needs only this, viewers too).
    pub fn check_csrf(&self, csrf: Option<&str>) -> Result<(), Fail> {
        if csrf.is_some_and(|c| crate::metrics::token_matches(c, &self.csrf)) {
            Ok(())
        } else {
            Err(Fail::new(
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token (reload the page)",
            ))
        }
    }
}

/// Not logged in: where to go.
pub struct Unauthenticated {
    api: bool,
}

impl axum::response::IntoResponse for Unauthenticated {
    fn into_response(self) -> axum::response::Response {
        if self.api {
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({ "error": "log in first (POST /login)" })),
            )
                .into_response()
        } else {
            axum::response::Redirect::to("/login").into_response()
        }
    }
}

impl FromRequestParts<Shared> for Operator {
    type Rejection = Unauthenticated;

    async fn from_request_parts(parts: &mut Parts, app: &Shared) -> Result<Self, Self::Rejection> {
        let api = parts.uri.path().starts_with("/api/");
        let Some(token) = token_of(parts) else {
            return Err(Unauthenticated { api });
        };
        let hash = token_hash(&token);
        let app = std::sync::Arc::clone(app);
        let lookup = hash.clone();
        let found = super::blocking(move || {
            Ok(app.reader.console_session(&lookup, crate::periods::now())?)
        })
        .await;
        match found {
            Ok(Some(s)) => Ok(Operator {
                name: s.operator,
                role: s.role,
                csrf: s.csrf,
                token_hash: hash,
            }),
            _ => Err(Unauthenticated { api }),
        }
    }
}

/// Failed logins per operator name: after [`Limiter::MAX_FAILURES`] within
/// [`Limiter::WINDOW`] seconds, that name is refused until the window passes.
#[derive(Default)]
pub struct Limiter {
    failures: Mutex<HashMap<String, (u32, i64)>>,
}

impl Limiter {
    pub const MAX_FAILURES: u32 = 5;
    pub const WINDOW: i64 = 300;
    /// Names tracked at most (a flood of made-up names cannot grow it further).
    const MAX_NAMES: usize = 10_000;

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, i64)>> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Seconds to wait before the next try, if the name is locked out.
    pub fn locked(&self, name: &str, now: i64) -> Option<i64> {
        let map = self.map();
        let (n, first) = *map.get(name)?;
        let until = first + Self::WINDOW;
        (n >= Self::MAX_FAILURES && now < until).then_some(until - now)
    }

    pub fn failed(&self, name: &str, now: i64) {
        let mut map = self.map();
        if map.len() >= Self::MAX_NAMES {
            map.retain(|_, (_, first)| now < *first + Self::WINDOW);
            if map.len() >= Self::MAX_NAMES {
                return;
            }
        }
        let e = map.entry(name.to_string()).or_insert((0, now));
        if now >= e.1 + Self::WINDOW {
            *e = (0, now);
        }
        e.0 += 1;
    }

    pub fn succeeded(&self, name: &str) {
        self.map().remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_salted_and_verify() {
        let a = hash_password("correct horse").unwrap();
        let b = hash_password("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(verify_password("correct horse", &a));
        assert!(!verify_password("correct horsf", &a));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn names() {
        for ok in ["alice", "noc-1", "a.b_c@isp"] {
            assert!(valid_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "<script>",
            "x\"y",
            &"a".repeat(65),
            "m\u{fc}ller",
        ] {
            assert!(valid_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limiter_locks_a_name_after_five_failures_for_the_window() {
        let l = Limiter::default();
        for i in 0..5 {
            assert_eq!(l.locked("a", 100 + i), None);
            l.failed("a", 100 + i);
        }
        assert_eq!(l.locked("a", 110), Some(290));
        assert_eq!(l.locked("b", 110), None, "per name");
        assert_eq!(l.locked("a", 400), None, "the window passed");
        l.failed("a", 400);
        assert_eq!(l.locked("a", 401), None, "counting starts over");
        l.succeeded("a");
        assert!(l.map().is_empty());
    }

    #[test]
    fn cookies() {
        let c = cookie(Some("ab"), 60, true);
        assert_eq!(
            c,
            "rlm_console=ab; Path=/; HttpOnly; SameSite=Strict; Max-Age=60; Secure"
        );
        assert!(cookie(None, 60, false).contains("Max-Age=0"));
    }
}

//! Capping at the module's hooks: gathers a user's limits (control list, then the
//! store), evaluates them against the store's usage and topups, and turns the
//! decision into what each hook answers. The rules themselves are in [`crate::capping`].
//!
//! - authorize: tells unlang (control attributes, the xlat); never rejects, so a
//!   wrong password still gets a plain reject and nothing about limits leaks before
//!   authentication.
//! - post-auth: enforces: reject with Reply-Message, or reply with the remaining
//!   allowance (Session-Timeout, Mikrotik-Total-Limit).
//! - accounting: re-decides with the session's usage (auto-topups, topup consumption)
//!   and says whether the session must go.
//!
//! Accounting runs no authorize, so limits that came from the control list at login
//! (users file, sql, ldap) are remembered per user in memory and reused for that
//! user's accounting; the store's limits are the durable default.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono_tz::Tz;

use crate::capping::{
    evaluate, reply_attributes, summarize, AcctAction, Decision, EvalInput, EvalOptions, Kind,
    KindSummary, LimitError, Limits, Period, RawLimits, State, Usage,
};
use crate::config::Capping;
use crate::instance::Rcode;
use crate::login_memory::LoginMemory;
use crate::periods;
use crate::sessions::AcctStatus;
use crate::store::{
    merge_limits, AcctCapping, CapOutcome, DecideRequest, LimitRow, Store, StoreError, UserSnapshot,
};

/// Reply-Message for a user whose limit attributes are invalid. Details go to the log.
pub const INVALID_LIMITS_MESSAGE: &str = "Account limits are misconfigured; contact support";

/// Control attributes set at authorize (see dictionary.rust).
pub const OPEN_SESSIONS_ATTR: &str = "Rust-Open-Sessions";
pub const MONTH_TRAFFIC_ATTR: &str = "Rust-Month-Traffic";
pub const MONTH_UPTIME_ATTR: &str = "Rust-Month-Uptime";
pub const STATE_ATTR: &str = "Rust-Capping-State";
pub const REMAINING_TRAFFIC_ATTR: &str = "Rust-Capping-Remaining-Traffic";
pub const REMAINING_UPTIME_ATTR: &str = "Rust-Capping-Remaining-Uptime";

/// What a hook answers: its return code and the attributes to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub rcode: Rcode,
    /// Set (`:=`): every instance already in the reply is replaced.
    pub reply: Vec<(String, String)>,
    pub control: Vec<(&'static str, String)>,
    /// (attribute, value, operator `=`, `:=` or `+=`): a policy's custom reply items.
    pub extra: Vec<(String, String, String)>,
    /// post-auth: rejected because the capping allowance is used up (a policy may
    /// throttle or redirect instead).
    pub exhausted: bool,
}

impl Answer {
    /// Just a return code, nothing to add.
    pub fn rcode(rcode: Rcode) -> Answer {
        Answer {
            rcode,
            reply: Vec::new(),
            control: Vec::new(),
            extra: Vec::new(),
            exhausted: false,
        }
    }
}

/// A user's evaluated allowance.
#[derive(Debug, Clone)]
pub struct Checked {
    pub limits: Limits,
    pub period: Period,
    pub decision: Decision,
    pub traffic: KindSummary,
    pub uptime: KindSummary,
}

impl Checked {
    fn summary(&self, kind: Kind) -> &KindSummary {
        match kind {
            Kind::Traffic => &self.traffic,
            Kind::Uptime => &self.uptime,
        }
    }

    /// Remaining bytes / seconds, 0 when used up; None = unlimited.
    pub fn remaining(&self, kind: Kind) -> Option<u64> {
        if let State::Allowed {
            remaining_traffic_bytes,
            remaining_uptime_secs,
        } = &self.decision.state
        {
            // The decision includes auto-topups added by it.
            return match kind {
                Kind::Traffic => *remaining_traffic_bytes,
                Kind::Uptime => *remaining_uptime_secs,
            };
        }
        self.summary(kind).remaining.map(|r| r.max(0) as u64)
    }

    pub fn state_name(&self) -> &'static str {
        if self.decision.is_exhausted() {
            "exhausted"
        } else {
            "allowed"
        }
    }

    /// One value for `%{rust:KEY}`; None for an unknown key.
    pub fn value(&self, key: &str) -> Option<String> {
        let opt = |v: Option<u64>| v.map_or_else(String::new, |v| v.to_string());
        Some(match key {
            "state" => self.state_name().to_string(),
            "exhausted" => match &self.decision.state {
                State::Exhausted { which, .. } => match which {
                    crate::capping::Which::Traffic => "traffic",
                    crate::capping::Which::Uptime => "uptime",
                    crate::capping::Which::Both => "both",
                }
                .to_string(),
                State::Allowed { .. } => String::new(),
            },
            "remaining_traffic" => opt(self.remaining(Kind::Traffic)),
            "remaining_uptime" => opt(self.remaining(Kind::Uptime)),
            "traffic_limit" => opt(self.traffic.effective_limit),
            "uptime_limit" => opt(self.uptime.effective_limit),
            "traffic_used" => self.traffic.usage.to_string(),
            "uptime_used" => self.uptime.usage.to_string(),
            "traffic_topups" => self.traffic.topups.to_string(),
            "uptime_topups" => self.uptime.topups.to_string(),
            "period_start" => self.period.start.to_string(),
            "period_end" => self.period.end.to_string(),
            _ => return None,
        })
    }
}

/// Keys `%{rust:KEY}` knows, for the error message.
pub const XLAT_KEYS: &str = "state, exhausted, remaining_traffic, remaining_uptime, \
traffic_limit, uptime_limit, traffic_used, uptime_used, traffic_topups, uptime_topups, \
period_start, period_end";

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Limits(#[from] LimitError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("time {0} is out of range")]
    Time(i64),
}

pub struct Enforcer {
    cfg: Capping,
    tz: Tz,
    store: Store,
    /// `cfg.eval` without building explanations (debug logging off).
    quiet: EvalOptions,
    /// Control-list limits seen at the user's last login, for accounting.
    seen: LoginMemory<RawLimits>,
    /// authorize's decision per request in flight, for its post-auth: one set of
    /// reads per login instead of two.
    pending: Mutex<PendingMap>,
}

struct Pending {
    at: Instant,
    user: String,
    control: RawLimits,
    checked: Option<Checked>,
}

/// A pending decision older than this is not reused (and is dropped when the map
/// is tidied): the request died between authorize and post-auth, or was an
/// Access-Challenge round (EAP) that never reaches post-auth.
const PENDING_TTL: Duration = Duration::from_secs(10);
const PENDING_TIDY_AT: usize = 4096;
/// Beyond this many (after tidying) nothing more is kept: post-auth then reads again.
const PENDING_MAX: usize = 65_536;

/// authorize → post-auth hand-over, bounded in size and in tidying work: expired
/// entries are swept at most once a second, however many requests arrive.
struct PendingMap {
    entries: HashMap<u32, Pending>,
    last_tidy: Instant,
}

impl PendingMap {
    fn new(now: Instant) -> Self {
        PendingMap {
            entries: HashMap::new(),
            last_tidy: now,
        }
    }

    fn insert(&mut self, request: u32, p: Pending, now: Instant) {
        if self.entries.len() >= PENDING_TIDY_AT
            && now.saturating_duration_since(self.last_tidy) >= Duration::from_secs(1)
        {
            self.entries
                .retain(|_, e| now.saturating_duration_since(e.at) < PENDING_TTL);
            self.last_tidy = now;
        }
        if self.entries.len() < PENDING_MAX {
            self.entries.insert(request, p);
        }
    }

    fn take(&mut self, request: u32, now: Instant) -> Option<Pending> {
        self.entries
            .remove(&request)
            .filter(|p| now.saturating_duration_since(p.at) < PENDING_TTL)
    }
}

impl Enforcer {
    pub fn new(cfg: Capping, tz: Tz, store: Store) -> Enforcer {
        let seen = LoginMemory::with_store(store.clone(), crate::store::ControlKind::Limits);
        let quiet = EvalOptions {
            explain: false,
            ..cfg.eval.clone()
        };
        Enforcer {
            cfg,
            tz,
            store,
            quiet,
            seen,
            pending: Mutex::new(PendingMap::new(Instant::now())),
        }
    }

    pub fn config(&self) -> &Capping {
        &self.cfg
    }

    /// Evaluation options: explanations only when they will be logged.
    fn opts(&self) -> &EvalOptions {
        if log::log_enabled!(log::Level::Debug) {
            &self.cfg.eval
        } else {
            &self.quiet
        }
    }

    /// The control-list part of the user's limits: the request's values, or, when it
    /// has none and this is not a login, those remembered from the last login.
    /// `remember`: this is a login; remember its set for accounting.
    fn control_part(&self, user: &str, control: &RawLimits, remember: bool) -> RawLimits {
        self.seen.control_part(user, control, remember)
    }

    fn merge(&self, user: &str, raw: RawLimits, stored: &[LimitRow]) -> Result<Limits, LimitError> {
        merge_limits(user, raw, stored, self.cfg.caveat_captrafzero)
    }

    fn period(&self, now: i64) -> Result<Period, CheckError> {
        Period::containing(self.cfg.period, now, &self.tz).ok_or(CheckError::Time(now))
    }

    /// One snapshot of the user, and the capping decision on it. The evaluation
    /// writes nothing, unless the decision adds auto-topups or queues notifications:
    /// then it is decided again on the writer (serialized per user) and stored, so
    /// the topup counts at once. `Checked` is None for a user without limits.
    pub fn login(
        &self,
        user: &str,
        control: &RawLimits,
        remember: bool,
        now: i64,
    ) -> Result<(UserSnapshot, Option<Checked>), CheckError> {
        let raw = self.control_part(user, control, remember);
        let period = self.period(now)?;
        let month = periods::local_month(now, self.tz);
        let snap = self
            .store
            .user_snapshot(user, period, month, self.tz, !raw.is_empty())?;
        let limits = self.merge(user, raw, &snap.limit_rows)?;
        if limits.is_unlimited() {
            return Ok((snap, None));
        }
        let input = EvalInput {
            username: user,
            limits: &limits,
            usage: snap.period_usage,
            delta: Usage::default(),
            marks: &snap.marks,
            topups: &snap.topups,
            period,
            now,
            opts: self.opts(),
        };
        let decision = evaluate(&input);
        // Usage marks alone need no write: a boundary without one reads the same.
        if decision.new_auto_topups.is_empty() && decision.notifications.is_empty() {
            let c = Self::checked(&input, decision);
            return Ok((snap, Some(c)));
        }
        let d = self.decide_stored(user, limits.clone(), period, now)?;
        let (usage, topups, marks) = self.store.capping_inputs(user, period, self.tz)?;
        let c = Self::checked(
            &EvalInput {
                usage,
                topups: &topups,
                marks: &marks,
                ..input
            },
            d,
        );
        Ok((snap, Some(c)))
    }

    /// Decides on the writer with the stored usage and writes the result (topup
    /// consumption, depletion, auto-topups, notifications).
    fn decide_stored(
        &self,
        user: &str,
        limits: Limits,
        period: Period,
        now: i64,
    ) -> Result<Decision, StoreError> {
        let (d, ids) = self.store.decide(DecideRequest {
            username: user.to_string(),
            limits,
            period,
            now,
            opts: self.opts().clone(),
            usage: None,
            delta: Usage::default(),
        })?;
        if !ids.is_empty() {
            log::info!("{user:?}: {} auto-topup(s) added", ids.len());
        }
        Ok(d)
    }

    /// The decision with the summary of the same inputs (the stored state after it).
    fn checked(input: &EvalInput<'_>, decision: Decision) -> Checked {
        Checked {
            traffic: summarize(input, Kind::Traffic),
            uptime: summarize(input, Kind::Uptime),
            limits: input.limits.clone(),
            period: input.period,
            decision,
        }
    }

    /// authorize: what unlang may want to know, as control attributes: open
    /// sessions and this month's usage, and for a capped user the allowance.
    /// `updated`; invalid limits: state `invalid` (post-auth rejects); store
    /// trouble: `fail`.
    pub fn authorize(&self, request: u32, user: &str, control: &RawLimits, now: i64) -> Answer {
        let (snap, checked) = match self.login(user, control, true, now) {
            Ok(x) => x,
            Err(CheckError::Limits(e)) => {
                log::error!("{e}");
                let mut a = Answer::rcode(Rcode::Updated);
                a.control.push((STATE_ATTR, "invalid".to_string()));
                return a;
            }
            Err(e) => {
                log::error!("cannot read the store for {user:?}: {e}");
                return Answer::rcode(Rcode::Fail);
            }
        };
        if log::log_enabled!(log::Level::Debug) {
            log::debug!(
                "{user:?}: {} open session(s); this month: {} bytes, {} s",
                snap.open_sessions,
                snap.month.total_octets(),
                snap.month.session_time
            );
        }
        let mut a = Answer::rcode(Rcode::Updated);
        a.control.extend([
            (OPEN_SESSIONS_ATTR, snap.open_sessions.to_string()),
            (MONTH_TRAFFIC_ATTR, snap.month.total_octets().to_string()),
            (MONTH_UPTIME_ATTR, snap.month.session_time.to_string()),
        ]);
        if let Some(c) = &checked {
            log::debug!("{}", c.decision.explanation);
            a.control.push((STATE_ATTR, c.state_name().to_string()));
            if let Some(r) = c.remaining(Kind::Traffic) {
                a.control.push((REMAINING_TRAFFIC_ATTR, r.to_string()));
            }
            if let Some(r) = c.remaining(Kind::Uptime) {
                a.control.push((REMAINING_UPTIME_ATTR, r.to_string()));
            }
        }
        self.keep_for_post_auth(request, user, control, checked);
        a
    }

    fn keep_for_post_auth(
        &self,
        request: u32,
        user: &str,
        control: &RawLimits,
        checked: Option<Checked>,
    ) {
        let now = Instant::now();
        let p = Pending {
            at: now,
            user: user.to_string(),
            control: control.clone(),
            checked,
        };
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(request, p, now);
    }

    /// authorize's decision for this request, if it was made for the same user and
    /// control-list limits (unlang may change them in between) and is fresh.
    fn take_pending(
        &self,
        request: u32,
        user: &str,
        control: &RawLimits,
    ) -> Option<Option<Checked>> {
        let p = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(request, Instant::now())?;
        (p.user == user && p.control == *control).then_some(p.checked)
    }

    /// post-auth: rejects an exhausted user (or one with invalid limits) with a
    /// Reply-Message; otherwise replies with the remaining allowance.
    pub fn post_auth(
        &self,
        request: u32,
        user: &str,
        control: &RawLimits,
        existing_session_timeout: Option<u32>,
        now: i64,
    ) -> Answer {
        let decided = match self.take_pending(request, user, control) {
            Some(checked) => Ok((UserSnapshot::default(), checked)),
            None => self.login(user, control, true, now),
        };
        match decided {
            Ok((_, None)) => Answer::rcode(Rcode::Noop),
            Ok((_, Some(c))) => {
                let reply =
                    reply_attributes(&c.decision, existing_session_timeout, self.cfg.mikrotik);
                let rcode = match &c.decision.state {
                    State::Exhausted { reply_message, .. } => {
                        log::info!("{user:?} rejected: {reply_message}");
                        Rcode::Reject
                    }
                    State::Allowed { .. } => Rcode::Updated,
                };
                log::debug!("{}", c.decision.explanation);
                Answer {
                    rcode,
                    reply,
                    control: Vec::new(),
                    extra: Vec::new(),
                    exhausted: c.decision.is_exhausted(),
                }
            }
            Err(CheckError::Limits(e)) => {
                log::error!("{e}; rejecting");
                Answer {
                    rcode: Rcode::Reject,
                    reply: vec![("Reply-Message".into(), INVALID_LIMITS_MESSAGE.into())],
                    control: Vec::new(),
                    extra: Vec::new(),
                    exhausted: false,
                }
            }
            Err(e) => {
                log::error!("capping check for {user:?} failed: {e}");
                Answer::rcode(Rcode::Fail)
            }
        }
    }

    /// accounting: what the writer needs to decide capping in the update's own
    /// commit; None for packets that never act (Accounting-On/Off, no User-Name).
    pub fn acct_capping(
        &self,
        user: &str,
        status: AcctStatus,
        control: &RawLimits,
        now: i64,
    ) -> Option<AcctCapping> {
        if user.is_empty() || matches!(status, AcctStatus::AccountingOn | AcctStatus::AccountingOff)
        {
            return None;
        }
        Some(AcctCapping {
            control: self.control_part(user, control, false),
            caveat_captrafzero: self.cfg.caveat_captrafzero,
            period: self.cfg.period,
            opts: self.opts().clone(),
            over_limit: self.cfg.over_limit,
            now,
            // Set by the caller (the policy's part).
            quota_control: Default::default(),
        })
    }

    /// accounting, once the record and its decision are committed: what the session
    /// called for (a disconnect is already queued by then). Errors are logged; the
    /// record stands either way.
    pub fn acct_action(&self, user: &str, outcome: CapOutcome) -> AcctAction {
        match outcome {
            CapOutcome::Unlimited | CapOutcome::Within => AcctAction::None,
            CapOutcome::Decided(d, ids, action) => {
                if !ids.is_empty() {
                    log::info!("{user:?}: {} auto-topup(s) added", ids.len());
                }
                log::debug!("{}", d.explanation);
                action
            }
            CapOutcome::Invalid(e) => {
                log::error!("{e}");
                AcctAction::None
            }
            CapOutcome::Failed(e) => {
                log::error!("capping decision for {user:?} failed (usage is recorded): {e}");
                AcctAction::None
            }
        }
    }

    /// `%{rust:KEY}` for `user`.
    pub fn xlat(
        &self,
        key: &str,
        user: &str,
        control: &RawLimits,
        now: i64,
    ) -> Result<String, String> {
        let key = key.trim();
        let (snap, checked) = self
            .login(user, control, false, now)
            .map_err(|e| e.to_string())?;
        let c = match checked {
            Some(c) => c,
            // Unlimited: limits and remaining are empty, the rest still meaningful.
            None => Self::checked(
                &EvalInput {
                    username: user,
                    limits: &Limits::default(),
                    usage: snap.period_usage,
                    delta: Usage::default(),
                    marks: &snap.marks,
                    topups: &snap.topups,
                    period: self.period(now).map_err(|e| e.to_string())?,
                    now,
                    opts: self.opts(),
                },
                Decision::unlimited(),
            ),
        };
        c.value(key)
            .ok_or_else(|| format!("unknown key {key:?}; known: {XLAT_KEYS}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capping::ATTRIBUTES;

    #[test]
    fn dictionary_defines_every_attribute_the_module_reads_or_sets() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/freeradius-config/dictionary.rust"
        );
        let dict = std::fs::read_to_string(path).unwrap();
        let defined: Vec<(&str, &str)> = dict
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.first() == Some(&"ATTRIBUTE")).then(|| (f[1], f[3]))
            })
            .collect();
        let has = |name: &str, ty: &str| defined.iter().any(|(n, t)| *n == name && *t == ty);
        for a in ATTRIBUTES {
            // Strings, so an invalid value reaches the module and is reported.
            assert!(has(a.name, "string"), "{} missing or not a string", a.name);
            assert!(
                has(a.alias, "string"),
                "{} missing or not a string",
                a.alias
            );
        }
        assert!(has(STATE_ATTR, "string"));
        assert!(has(REMAINING_TRAFFIC_ATTR, "integer64"));
        assert!(has(REMAINING_UPTIME_ATTR, "integer64"));
        let mut numbers: Vec<&str> = dict
            .lines()
            .filter(|l| l.starts_with("ATTRIBUTE"))
            .map(|l| l.split_whitespace().nth(2).unwrap())
            .collect();
        let n = numbers.len();
        numbers.sort();
        numbers.dedup();
        assert_eq!(numbers.len(), n, "attribute numbers must be unique");
    }

    #[test]
    fn pending_decisions_are_bounded_and_expire() {
        let t0 = Instant::now();
        let entry = |at| Pending {
            at,
            user: "u".into(),
            control: RawLimits::new(),
            checked: None,
        };
        let mut m = PendingMap::new(t0);
        m.insert(1, entry(t0), t0);
        assert!(m.take(1, t0 + Duration::from_secs(1)).is_some());
        assert!(m.take(1, t0).is_none(), "taken once");
        m.insert(2, entry(t0), t0);
        assert!(m.take(2, t0 + PENDING_TTL).is_none(), "expired");

        // Challenge rounds that never reach post-auth: swept once the map is big
        // and a second has passed, not on every insert.
        for i in 0..PENDING_TIDY_AT as u32 {
            m.insert(100 + i, entry(t0), t0);
        }
        let later = t0 + PENDING_TTL + Duration::from_secs(1);
        m.insert(7, entry(later), later);
        assert_eq!(m.entries.len(), 1, "old entries swept");
        assert!(m.take(7, later).is_some());

        // Never more than PENDING_MAX live entries.
        let mut m = PendingMap::new(t0);
        for i in 0..(PENDING_MAX as u32 + 10) {
            m.insert(i, entry(t0), t0);
        }
        assert_eq!(m.entries.len(), PENDING_MAX);
    }

    #[test]
    fn xlat_values() {
        let period = Period {
            kind: crate::capping::PeriodKind::Month,
            start: 100,
            end: 200,
        };
        let limits = Limits {
            traffic_mb: Some(1),
            ..Default::default()
        };
        let usage = crate::capping::Usage {
            traffic_bytes: 1000,
            uptime_secs: 7,
        };
        let decision = |state| Decision {
            state,
            ..Decision::unlimited()
        };
        let opts = EvalOptions::default();
        let input = EvalInput {
            username: "joe",
            limits: &limits,
            usage,
            delta: Usage::default(),
            marks: &[],
            topups: &[],
            period,
            now: 150,
            opts: &opts,
        };
        let checked = |state| Enforcer::checked(&input, decision(state));
        let ok = checked(State::Allowed {
            remaining_traffic_bytes: Some(1_047_576),
            remaining_uptime_secs: None,
        });
        let cases = [
            ("state", "allowed"),
            ("exhausted", ""),
            ("remaining_traffic", "1047576"),
            ("remaining_uptime", ""),
            ("traffic_limit", "1048576"),
            ("uptime_limit", ""),
            ("traffic_used", "1000"),
            ("uptime_used", "7"),
            ("traffic_topups", "0"),
            ("period_start", "100"),
            ("period_end", "200"),
        ];
        for (key, want) in cases {
            assert_eq!(ok.value(key).as_deref(), Some(want), "{key}");
        }
        assert_eq!(ok.value("remaining"), None);
        let over = checked(State::Exhausted {
            which: crate::capping::Which::Traffic,
            reply_message: "x".into(),
        });
        assert_eq!(over.value("state").as_deref(), Some("exhausted"));
        assert_eq!(over.value("exhausted").as_deref(), Some("traffic"));
        // From the summary: limit − usage, still positive here.
        assert_eq!(over.value("remaining_traffic").as_deref(), Some("1047576"));
    }
}

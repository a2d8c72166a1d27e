//! Accounting sessions: the plain-Rust view of an accounting packet and the pure
//! rules that turn successive packets of one session into usage deltas.
//!
//! The FFI layer builds an [`AcctUpdate`] from the request's attributes; the store
//! applies it (see `store`). Nothing here knows about C or SQL.

/// Acct-Status-Type values we act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AcctStatus {
    Start,
    Interim,
    Stop,
    AccountingOn,
    AccountingOff,
}

impl AcctStatus {
    /// From the RFC 2866 Acct-Status-Type value (7/8 are Accounting-On/Off).
    pub fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(Self::Start),
            2 => Some(Self::Stop),
            3 => Some(Self::Interim),
            7 => Some(Self::AccountingOn),
            8 => Some(Self::AccountingOff),
            _ => None,
        }
    }
}

/// One accounting packet, extracted from the request by the FFI layer.
#[derive(Debug, Clone, PartialEq)]
pub struct AcctUpdate {
    pub status: AcctStatus,
    /// NAS-IP-Address, else the packet's source address, as text.
    pub nas_ip: String,
    /// Acct-Session-Id ("" for Accounting-On/Off).
    pub session_id: String,
    /// Acct-Unique-Session-Id when the policy computed one; preferred as key.
    pub unique_id: Option<String>,
    pub username: String,
    /// Full 64-bit counters: Acct-*-Octets + 2^32 * Acct-*-Gigawords.
    pub input_octets: u64,
    pub output_octets: u64,
    /// The packet carried Acct-Input- or Acct-Output-Gigawords (even as 0): the NAS
    /// has 64-bit counters, so a counter that goes backwards never wrapped.
    pub gigawords: bool,
    pub session_time: Option<u32>,
    pub framed_ip: Option<String>,
    pub calling_station_id: Option<String>,
    pub nas_port: Option<u32>,
    pub terminate_cause: Option<String>,
    /// Unix seconds at which the NAS took these counters: arrival minus Acct-Delay-Time.
    pub event_time: i64,
}

impl AcctUpdate {
    /// The key that identifies the session on its NAS.
    pub fn session_key(&self) -> &str {
        self.unique_id.as_deref().unwrap_or(&self.session_id)
    }
}

/// 64-bit counter from the 32-bit value and its gigawords (RFC 2869 5.1/5.2).
pub fn octets(low: u32, gigawords: u32) -> u64 {
    (u64::from(gigawords) << 32) | u64::from(low)
}

/// Why a session was closed (stored in `closed_reason`).
pub mod closed_reason {
    /// The NAS sent a Stop.
    pub const STOP: &str = "stop";
    /// The NAS sent Accounting-On (it rebooted: its sessions are gone).
    pub const NAS_REBOOT: &str = "nas-reboot";
    /// The NAS sent Accounting-Off.
    pub const NAS_OFF: &str = "nas-off";
    /// No update for longer than the configured stale time.
    pub const STALE: &str = "stale";
}

/// Longest Acct-Session-Time taken as real: ten years. Beyond it the value is
/// garbage (2^32 - 1 s dates a session in 1890), and it is ignored.
pub const MAX_SESSION_TIME_SECS: u64 = 10 * 366 * 86_400;
/// Added to the elapsed time when bounding a delta: packets are timed to the second,
/// and an Interim without Acct-Session-Time has no elapsed time of its own.
const BOUND_SLACK_SECS: u64 = 60;
const WRAP: u64 = 1 << 32;

/// What one session can plausibly report; a delta beyond it is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Bytes per second one session can carry in one direction (`max_session_rate`).
    pub max_bytes_per_sec: u64,
}

impl Default for Bounds {
    fn default() -> Self {
        // 100 Gbit/s.
        Bounds {
            max_bytes_per_sec: 100_000_000_000 / 8,
        }
    }
}

impl Bounds {
    /// Most bytes a session can move in `elapsed` seconds.
    pub fn max_bytes(&self, elapsed: u64) -> u64 {
        self.max_bytes_per_sec
            .saturating_mul(elapsed.saturating_add(BOUND_SLACK_SECS))
    }
}

/// What an update's counters needed beyond the plain rules, for the log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Anomalies {
    /// The 32-bit counter wrapped (no Gigawords): counted as new + 2^32 - old.
    pub input_wrapped: bool,
    pub output_wrapped: bool,
    /// Counters refused as implausible for the elapsed time (baseline kept).
    pub refused_counters: bool,
    /// Acct-Session-Time beyond [`MAX_SESSION_TIME_SECS`], ignored.
    pub refused_session_time: bool,
}

impl Anomalies {
    /// Something an operator should see at warning level.
    pub fn refused(&self) -> bool {
        self.refused_counters || self.refused_session_time
    }
}

/// Usage counted for a period or attributed by one update.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    pub input_octets: u64,
    pub output_octets: u64,
    /// Seconds of session time.
    pub session_time: u64,
}

impl Usage {
    pub fn is_zero(&self) -> bool {
        *self == Usage::default()
    }

    pub fn total_octets(&self) -> u64 {
        self.input_octets.saturating_add(self.output_octets)
    }
}

/// The stored state of one session (everything but its key and row id).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Session {
    pub username: String,
    pub acct_session_id: String,
    pub nas_port: Option<u32>,
    pub framed_ip: Option<String>,
    pub calling_station_id: Option<String>,
    pub start_time: i64,
    pub last_update: i64,
    /// Set once closed, by a Stop or by us (see `closed_reason`).
    pub stop_time: Option<i64>,
    /// Highest Acct-Session-Time seen.
    pub session_time: u64,
    /// Highest counters seen: the baseline the next delta is taken from. For a NAS
    /// with 32-bit counters, the wraps counted are included (see [`Bounds`]).
    pub input_octets: u64,
    pub output_octets: u64,
    pub terminate_cause: Option<String>,
    pub closed_reason: Option<String>,
    /// Gigawords were seen in one of the session's packets.
    pub gigawords: bool,
}

impl Session {
    pub fn is_open(&self) -> bool {
        self.stop_time.is_none()
    }

    /// Closed by a Stop from the NAS (as opposed to closed by us).
    fn stopped_by_nas(&self) -> bool {
        !self.is_open() && self.closed_reason.as_deref() == Some(closed_reason::STOP)
    }

    /// Accounting-On/Off or the stale sweeper closing this session at `at`.
    pub fn close_by_us(&mut self, at: i64, reason: &str) {
        if self.is_open() {
            self.stop_time = Some(at);
            self.closed_reason = Some(reason.to_string());
        }
    }
}

/// What an update turned out to be, once compared with the stored session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutcomeKind {
    /// Start for an unknown session: opened.
    Opened,
    /// Start for a session we already know (retransmit, or arrived after an Interim).
    DuplicateStart,
    /// Interim for an open session.
    Updated,
    /// Interim for an unknown session (its Start was lost): opened with full counters.
    OpenedByInterim,
    /// Stop for a known session not yet stopped: closed.
    Stopped,
    /// Stop for an unknown session: recorded closed with full counters.
    StoppedWithoutStart,
    /// Stop for a session already stopped (retransmit).
    DuplicateStop,
    /// Interim or Start after the session's Stop: nothing counted.
    IgnoredAfterStop,
    /// Interim for a session we closed as stale: it is alive, reopened.
    Reopened,
    /// Interim for a session closed by Accounting-On/Off (sent before the NAS
    /// rebooted, delivered late): its usage counts, the session stays closed.
    LateAfterNasClose,
    /// Accounting-On/Off: the NAS's open sessions were closed.
    NasClosed { closed: usize },
}

/// Which counters went backwards (NAS reboot or reordered packets).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Regressed {
    pub input: bool,
    pub output: bool,
    pub time: bool,
}

impl Regressed {
    pub fn any(&self) -> bool {
        self.input || self.output || self.time
    }
}

/// Result of [`apply`]: the state to store (None: leave the row alone) and the usage to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub kind: OutcomeKind,
    pub state: Option<Session>,
    pub delta: Usage,
    pub regressed: Regressed,
    pub anomalies: Anomalies,
}

/// Rejects packets the store cannot key. Returns the reason.
pub fn validate(u: &AcctUpdate) -> Result<(), &'static str> {
    if u.nas_ip.is_empty() {
        return Err("no NAS address");
    }
    let is_session_packet = !matches!(
        u.status,
        AcctStatus::AccountingOn | AcctStatus::AccountingOff
    );
    if is_session_packet && u.session_key().is_empty() {
        return Err("no Acct-Session-Id");
    }
    Ok(())
}

/// The `closed_reason` for an Accounting-On/Off packet, None for session packets.
pub fn nas_close_reason(status: AcctStatus) -> Option<&'static str> {
    match status {
        AcctStatus::AccountingOn => Some(closed_reason::NAS_REBOOT),
        AcctStatus::AccountingOff => Some(closed_reason::NAS_OFF),
        _ => None,
    }
}

/// Moves a counter baseline forward: the delta, the new baseline, and whether
/// the reported value went backwards (then nothing counts and the baseline stays).
fn advance(stored: u64, reported: u64) -> (u64, u64, bool) {
    if reported >= stored {
        (reported - stored, reported, false)
    } else {
        (0, stored, true)
    }
}

fn fresh_session(u: &AcctUpdate) -> Session {
    let session_time = u.session_time.unwrap_or(0);
    Session {
        username: u.username.clone(),
        acct_session_id: u.session_id.clone(),
        nas_port: u.nas_port,
        framed_ip: u.framed_ip.clone(),
        calling_station_id: u.calling_station_id.clone(),
        start_time: u.event_time.saturating_sub(i64::from(session_time)),
        last_update: u.event_time,
        stop_time: None,
        session_time: u64::from(session_time),
        input_octets: u.input_octets,
        output_octets: u.output_octets,
        terminate_cause: None,
        closed_reason: None,
        gigawords: u.gigawords,
    }
}

/// One counter of an update against its stored baseline: (delta, new baseline,
/// went backwards, wrapped). Without Gigawords ever seen the NAS's counter is 32 bits
/// wide, so a value below the baseline's low 32 bits, while the session time went
/// forward and `new + 2^32 - old` fits the bound, is a wrap (`wrap_ok` asks the
/// NAS's `counter_wrap`, only then). The baseline then carries the wraps counted.
fn advance_counter(
    stored: u64,
    reported: u64,
    narrow: bool,
    time_forward: bool,
    bound: u64,
    wrap_ok: &mut dyn FnMut() -> bool,
) -> (u64, u64, bool, bool) {
    if reported >= stored {
        return (reported - stored, reported, false, false);
    }
    if narrow && time_forward && reported < WRAP {
        let low = stored % WRAP;
        let high = stored - low;
        if reported >= low && high > 0 {
            // Counting on from a wrap counted earlier.
            return (reported - low, high.saturating_add(reported), false, false);
        }
        let delta = reported + WRAP - low;
        if reported < low && delta <= bound && wrap_ok() {
            return (delta, stored.saturating_add(delta), false, true);
        }
    }
    (0, stored, true, false)
}

/// Folds counters and attributes of `u` into a copy of `prev`.
fn advanced(
    prev: &Session,
    u: &AcctUpdate,
    bounds: &Bounds,
    wrap_ok: &mut dyn FnMut() -> bool,
) -> (Session, Usage, Regressed, Anomalies) {
    let mut s = prev.clone();
    let mut anomalies = Anomalies::default();
    // A packet without Acct-Session-Time says nothing about time: no delta, no regression.
    let (dtime, time, rtime) = match u.session_time {
        Some(t) => advance(prev.session_time, u64::from(t)),
        None => (0, prev.session_time, false),
    };
    let since_last = u64::try_from(u.event_time.saturating_sub(prev.last_update)).unwrap_or(0);
    let bound = bounds.max_bytes(dtime.max(since_last));
    s.gigawords |= u.gigawords;
    let narrow = !s.gigawords;
    // Once asked, the NAS's answer holds for both counters.
    let mut asked: Option<bool> = None;
    let mut ask = || *asked.get_or_insert_with(&mut *wrap_ok);
    let (mut din, mut input, rin, win) = advance_counter(
        prev.input_octets,
        u.input_octets,
        narrow,
        dtime > 0,
        bound,
        &mut ask,
    );
    let (mut dout, mut output, rout, wout) = advance_counter(
        prev.output_octets,
        u.output_octets,
        narrow,
        dtime > 0,
        bound,
        &mut ask,
    );
    if din > bound || dout > bound {
        // Garbage or a NAS bug: count nothing and keep the baseline, so the next
        // sane update counts from where the session really was.
        (din, dout, input, output) = (0, 0, prev.input_octets, prev.output_octets);
        anomalies.refused_counters = true;
    }
    anomalies.input_wrapped = win && din > 0;
    anomalies.output_wrapped = wout && dout > 0;
    s.input_octets = input;
    s.output_octets = output;
    s.session_time = time;
    // The user is the one the session was opened with, even if that was none: its
    // usage so far is that user's, and a session's usage never changes hands.
    s.last_update = prev.last_update.max(u.event_time);
    // Attributes a NAS learns late (e.g. Framed-IP after IPCP) fill in or refresh.
    if u.framed_ip.is_some() {
        s.framed_ip = u.framed_ip.clone();
    }
    if u.calling_station_id.is_some() {
        s.calling_station_id = u.calling_station_id.clone();
    }
    if u.nas_port.is_some() {
        s.nas_port = u.nas_port;
    }
    let delta = Usage {
        input_octets: din,
        output_octets: dout,
        session_time: dtime,
    };
    let regressed = Regressed {
        input: rin,
        output: rout,
        time: rtime,
    };
    (s, delta, regressed, anomalies)
}

/// The pure session rule: given the stored session (if any) and a session packet,
/// the new state and the usage it adds. None for Accounting-On/Off, which act on
/// all sessions of a NAS (see [`nas_close_reason`] and [`Session::close_by_us`]).
/// `wrap_ok`: whether the NAS's 32-bit counters may be taken to wrap (its
/// `counter_wrap`); called only when an update looks like a wrap.
pub fn apply(
    prev: Option<&Session>,
    u: &AcctUpdate,
    bounds: &Bounds,
    wrap_ok: &mut dyn FnMut() -> bool,
) -> Option<Applied> {
    let mut anomalies = Anomalies::default();
    let sane;
    let u = if u
        .session_time
        .is_some_and(|t| u64::from(t) > MAX_SESSION_TIME_SECS)
    {
        anomalies.refused_session_time = true;
        sane = AcctUpdate {
            session_time: None,
            ..u.clone()
        };
        &sane
    } else {
        u
    };
    let none = |kind| Applied {
        kind,
        state: None,
        delta: Usage::default(),
        regressed: Regressed::default(),
        anomalies,
    };
    let created = |kind, mut s: Session| {
        let mut anomalies = anomalies;
        let bound = bounds.max_bytes(s.session_time);
        if s.input_octets > bound || s.output_octets > bound {
            (s.input_octets, s.output_octets) = (0, 0);
            anomalies.refused_counters = true;
        }
        Applied {
            kind,
            delta: Usage {
                input_octets: s.input_octets,
                output_octets: s.output_octets,
                session_time: s.session_time,
            },
            state: Some(s),
            regressed: Regressed::default(),
            anomalies,
        }
    };
    let progressed = |kind, s: Session, delta, regressed, more: Anomalies| Applied {
        kind,
        state: Some(s),
        delta,
        regressed,
        anomalies: Anomalies {
            refused_session_time: anomalies.refused_session_time,
            ..more
        },
    };
    let applied = match (u.status, prev) {
        (AcctStatus::AccountingOn | AcctStatus::AccountingOff, _) => return None,
        // A Start normally carries no counters; if it does they are usage since it began.
        (AcctStatus::Start, None) => created(OutcomeKind::Opened, fresh_session(u)),
        (AcctStatus::Start, Some(p)) if p.stopped_by_nas() => none(OutcomeKind::IgnoredAfterStop),
        (AcctStatus::Start, Some(_)) => none(OutcomeKind::DuplicateStart),
        (AcctStatus::Interim, None) => created(OutcomeKind::OpenedByInterim, fresh_session(u)),
        (AcctStatus::Interim, Some(p)) if p.stopped_by_nas() => none(OutcomeKind::IgnoredAfterStop),
        (AcctStatus::Interim, Some(p)) => {
            let (mut s, delta, regressed, more) = advanced(p, u, bounds, wrap_ok);
            let kind = if p.is_open() {
                OutcomeKind::Updated
            } else if p.closed_reason.as_deref() == Some(closed_reason::STALE) {
                s.stop_time = None;
                s.closed_reason = None;
                OutcomeKind::Reopened
            } else {
                OutcomeKind::LateAfterNasClose
            };
            progressed(kind, s, delta, regressed, more)
        }
        (AcctStatus::Stop, None) => {
            let mut s = fresh_session(u);
            s.stop_time = Some(u.event_time);
            s.terminate_cause = u.terminate_cause.clone();
            s.closed_reason = Some(closed_reason::STOP.to_string());
            created(OutcomeKind::StoppedWithoutStart, s)
        }
        (AcctStatus::Stop, Some(p)) if p.stopped_by_nas() => none(OutcomeKind::DuplicateStop),
        // Open, or closed by us: the NAS's Stop is the authoritative end either way.
        (AcctStatus::Stop, Some(p)) => {
            let (mut s, delta, regressed, more) = advanced(p, u, bounds, wrap_ok);
            s.stop_time = Some(u.event_time.max(p.start_time));
            s.terminate_cause = u.terminate_cause.clone();
            s.closed_reason = Some(closed_reason::STOP.to_string());
            progressed(OutcomeKind::Stopped, s, delta, regressed, more)
        }
    };
    Some(applied)
}

/// Where an update's usage went: its local day and month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribution {
    pub day: chrono::NaiveDate,
    pub month: chrono::NaiveDate,
}

/// What the store found and decided for one accounting packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub kind: OutcomeKind,
    pub status: AcctStatus,
    pub nas_ip: String,
    pub session_key: String,
    /// The session's username (the stored one for known sessions).
    pub username: String,
    pub delta: Usage,
    pub regressed: Regressed,
    /// Set when `delta` is not zero.
    pub attributed: Option<Attribution>,
    /// A disconnect job was queued by this update (month boundary, capping or a
    /// policy quota).
    pub disconnect_queued: bool,
    /// An exhausted-user CoA (throttle / redirect) was queued by this update.
    pub coa_queued: bool,
    /// The policy quota this Start / Interim brought the user to (its session is
    /// queued for disconnection).
    pub quota_reached: Option<crate::policies::Reached>,
    pub anomalies: Anomalies,
}

impl Outcome {
    /// The outcome of an update that did not touch usage.
    pub fn new(kind: OutcomeKind, u: &AcctUpdate) -> Self {
        Outcome {
            kind,
            status: u.status,
            nas_ip: u.nas_ip.clone(),
            session_key: u.session_key().to_string(),
            username: u.username.clone(),
            delta: Usage::default(),
            regressed: Regressed::default(),
            attributed: None,
            disconnect_queued: false,
            coa_queued: false,
            quota_reached: None,
            anomalies: Anomalies::default(),
        }
    }
}

impl std::fmt::Display for AcctStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AcctStatus::Start => "Start",
            AcctStatus::Interim => "interim",
            AcctStatus::Stop => "Stop",
            AcctStatus::AccountingOn => "Accounting-On",
            AcctStatus::AccountingOff => "Accounting-Off",
        })
    }
}

impl std::fmt::Display for Outcome {
    // One line for an operator. User-supplied strings are printed with {:?} so
    // quotes and control characters in them cannot forge log lines.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use OutcomeKind::*;
        if let NasClosed { closed } = self.kind {
            let plural = if closed == 1 { "" } else { "s" };
            return write!(
                f,
                "{} from {}: closed {closed} open session{plural}",
                self.status, self.nas_ip
            );
        }
        write!(
            f,
            "{} for session {:?} of {:?} on {}: ",
            self.status, self.session_key, self.username, self.nas_ip
        )?;
        let decision = match self.kind {
            Opened => "opened",
            DuplicateStart => "duplicate Start (session already known), ignored",
            Updated => "updated",
            OpenedByInterim => "no Start seen, opened it with its full counters",
            Stopped => "closed",
            StoppedWithoutStart => "no Start seen, recorded it closed with its full counters",
            DuplicateStop => "duplicate Stop, ignored",
            IgnoredAfterStop => "session already stopped, ignored and nothing counted",
            Reopened => "session had been closed as stale, reopened",
            LateAfterNasClose => "session was closed by its NAS's Accounting-On/Off, kept closed",
            NasClosed { .. } => "",
        };
        f.write_str(decision)?;
        let counted = matches!(
            self.kind,
            Opened
                | Updated
                | OpenedByInterim
                | Stopped
                | StoppedWithoutStart
                | Reopened
                | LateAfterNasClose
        );
        if counted {
            match self.attributed {
                Some(a) if !self.delta.is_zero() => write!(
                    f,
                    "; +{} in, +{} out, +{} s attributed to {} / {}",
                    self.delta.input_octets,
                    self.delta.output_octets,
                    self.delta.session_time,
                    a.day.format("%Y-%m-%d"),
                    a.month.format("%Y-%m"),
                )?,
                _ => f.write_str("; no new usage")?,
            }
        }
        if self.regressed.any() {
            let names: Vec<&str> = [
                (self.regressed.input, "in"),
                (self.regressed.output, "out"),
                (self.regressed.time, "time"),
            ]
            .iter()
            .filter(|(r, _)| *r)
            .map(|(_, n)| *n)
            .collect();
            write!(
                f,
                "; counters went backwards ({}), kept the higher baseline",
                names.join(", ")
            )?;
        }
        if self.disconnect_queued {
            f.write_str("; started in an earlier month, disconnect queued")?;
        }
        let a = &self.anomalies;
        for (on, what) in [(a.input_wrapped, "input"), (a.output_wrapped, "output")] {
            if on {
                write!(
                    f,
                    "; {what} counter wrapped at 4 GiB (no Gigawords): counted as new + 2^32 - old"
                )?;
            }
        }
        if a.refused_counters {
            f.write_str("; counters refused: more than the session could carry in the elapsed time (max_session_rate), baseline kept")?;
        }
        if a.refused_session_time {
            write!(
                f,
                "; Acct-Session-Time beyond {MAX_SESSION_TIME_SECS} s ignored"
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AcctStatus::*;
    use OutcomeKind::*;

    const T0: i64 = 1_790_000_000;

    fn upd(status: AcctStatus, input: u64, output: u64, time: Option<u32>, at: i64) -> AcctUpdate {
        AcctUpdate {
            status,
            nas_ip: "127.0.0.2".into(),
            session_id: "abc".into(),
            unique_id: None,
            username: "alice".into(),
            input_octets: input,
            output_octets: output,
            gigawords: false,
            session_time: time,
            framed_ip: None,
            calling_station_id: None,
            nas_port: Some(7),
            terminate_cause: (status == Stop).then(|| "User-Request".to_string()),
            event_time: at,
        }
    }

    fn usage(i: u64, o: u64, t: u64) -> Usage {
        Usage {
            input_octets: i,
            output_octets: o,
            session_time: t,
        }
    }

    /// Feeds packets in order; returns (kind, delta) per packet and the final state.
    fn run(packets: &[AcctUpdate]) -> (Vec<(OutcomeKind, Usage)>, Option<Session>) {
        let mut state: Option<Session> = None;
        let mut steps = Vec::new();
        for p in packets {
            let a =
                apply(state.as_ref(), p, &Bounds::default(), &mut || true).expect("session packet");
            steps.push((a.kind, a.delta));
            if let Some(s) = a.state {
                state = Some(s);
            }
        }
        (steps, state)
    }

    #[test]
    fn session_rules() {
        let g = 1u64 << 32;
        // (name, packets, expected (kind, delta) per packet, expected open, expected baseline)
        #[allow(clippy::type_complexity)]
        let cases: Vec<(
            &str,
            Vec<AcctUpdate>,
            Vec<(OutcomeKind, Usage)>,
            bool,
            Usage,
        )> = vec![
            (
                "start, interims, stop",
                vec![
                    upd(Start, 0, 0, None, T0),
                    upd(Interim, 100, 10, Some(60), T0 + 60),
                    upd(Interim, 250, 30, Some(120), T0 + 120),
                    upd(Stop, 300, 35, Some(150), T0 + 150),
                ],
                vec![
                    (Opened, usage(0, 0, 0)),
                    (Updated, usage(100, 10, 60)),
                    (Updated, usage(150, 20, 60)),
                    (Stopped, usage(50, 5, 30)),
                ],
                false,
                usage(300, 35, 150),
            ),
            (
                "duplicate start keeps counters",
                vec![
                    upd(Start, 0, 0, None, T0),
                    upd(Interim, 100, 10, Some(60), T0 + 60),
                    upd(Start, 0, 0, None, T0),
                ],
                vec![
                    (Opened, usage(0, 0, 0)),
                    (Updated, usage(100, 10, 60)),
                    (DuplicateStart, usage(0, 0, 0)),
                ],
                true,
                usage(100, 10, 60),
            ),
            (
                "retransmitted interim counts once",
                vec![
                    upd(Start, 0, 0, None, T0),
                    upd(Interim, 100, 10, Some(60), T0 + 60),
                    upd(Interim, 100, 10, Some(60), T0 + 60),
                ],
                vec![
                    (Opened, usage(0, 0, 0)),
                    (Updated, usage(100, 10, 60)),
                    (Updated, usage(0, 0, 0)),
                ],
                true,
                usage(100, 10, 60),
            ),
            (
                "backwards counter: zero for it, baseline stays at max",
                vec![
                    upd(Interim, 500, 50, Some(100), T0),
                    upd(Interim, 200, 80, Some(90), T0 + 60),
                    upd(Interim, 600, 90, Some(160), T0 + 120),
                ],
                vec![
                    (OpenedByInterim, usage(500, 50, 100)),
                    (Updated, usage(0, 30, 0)),
                    (Updated, usage(100, 10, 60)),
                ],
                true,
                usage(600, 90, 160),
            ),
            (
                "stop without start counts everything",
                vec![upd(Stop, 5 * g + 7, g, Some(3600), T0)],
                vec![(StoppedWithoutStart, usage(5 * g + 7, g, 3600))],
                false,
                usage(5 * g + 7, g, 3600),
            ),
            (
                "retransmitted stop, then interim and start after stop",
                vec![
                    upd(Start, 0, 0, None, T0),
                    upd(Stop, 10, 20, Some(30), T0 + 30),
                    upd(Stop, 10, 20, Some(30), T0 + 30),
                    upd(Interim, 50, 60, Some(90), T0 + 90),
                    upd(Start, 0, 0, None, T0 + 100),
                ],
                vec![
                    (Opened, usage(0, 0, 0)),
                    (Stopped, usage(10, 20, 30)),
                    (DuplicateStop, usage(0, 0, 0)),
                    (IgnoredAfterStop, usage(0, 0, 0)),
                    (IgnoredAfterStop, usage(0, 0, 0)),
                ],
                false,
                usage(10, 20, 30),
            ),
            (
                "interim without session time: no time delta",
                vec![
                    upd(Start, 0, 0, Some(0), T0),
                    upd(Interim, 10, 10, None, T0 + 60),
                ],
                vec![(Opened, usage(0, 0, 0)), (Updated, usage(10, 10, 0))],
                true,
                usage(10, 10, 0),
            ),
            (
                "counters above 4 GiB are exact",
                vec![
                    upd(Start, 0, 0, None, T0),
                    upd(Interim, 3 * g + 1, 2, Some(60), T0 + 60),
                    upd(Interim, 5 * g + 11, 2 * g, Some(120), T0 + 120),
                ],
                vec![
                    (Opened, usage(0, 0, 0)),
                    (Updated, usage(3 * g + 1, 2, 60)),
                    (Updated, usage(2 * g + 10, 2 * g - 2, 60)),
                ],
                true,
                usage(5 * g + 11, 2 * g, 120),
            ),
        ];
        for (name, packets, want_steps, want_open, want_base) in cases {
            let (steps, state) = run(&packets);
            assert_eq!(steps, want_steps, "{name}");
            let s = state.expect(name);
            assert_eq!(s.is_open(), want_open, "{name}");
            assert_eq!(
                usage(s.input_octets, s.output_octets, s.session_time),
                want_base,
                "{name}"
            );
            // Never double counting: the sum of deltas is the baseline.
            let sum = steps.iter().fold(Usage::default(), |a, (_, d)| {
                usage(
                    a.input_octets + d.input_octets,
                    a.output_octets + d.output_octets,
                    a.session_time + d.session_time,
                )
            });
            assert_eq!(sum, want_base, "{name}: deltas sum to the baseline");
        }
    }

    /// Feeds packets with the given bounds and NAS `counter_wrap`; returns the deltas,
    /// the anomalies and the final state.
    fn run_with(
        packets: &[AcctUpdate],
        bounds: Bounds,
        wrap: bool,
    ) -> (Vec<Usage>, Vec<Anomalies>, Session) {
        let (mut state, mut deltas, mut notes) = (None::<Session>, vec![], vec![]);
        for p in packets {
            let a = apply(state.as_ref(), p, &bounds, &mut || wrap).unwrap();
            deltas.push(a.delta);
            notes.push(a.anomalies);
            state = a.state.or(state);
        }
        (deltas, notes, state.unwrap())
    }

    #[test]
    fn counter_wraps_of_a_nas_without_gigawords() {
        let g = 1u64 << 30;
        let narrow = |i: u64, t: u32| upd(Interim, i, 0, Some(t), T0 + i64::from(t));
        let wide = |i: u64, t: u32| AcctUpdate {
            gigawords: true,
            ..narrow(i, t)
        };
        let slow = Bounds {
            max_bytes_per_sec: 1_000_000,
        };
        let wraps_twice = vec![
            upd(Start, 0, 0, None, T0),
            narrow(3 * g + g / 2, 60),
            narrow(g, 120),
            narrow(3 * g, 180),
            narrow(g / 2, 240),
        ];
        // (name, packets, bounds, counter_wrap, input deltas, wrapped flags)
        type Case = (
            &'static str,
            Vec<AcctUpdate>,
            Bounds,
            bool,
            Vec<u64>,
            Vec<bool>,
        );
        let cases: Vec<Case> = vec![
            (
                "wraps twice, each counted once",
                wraps_twice.clone(),
                Bounds::default(),
                true,
                vec![0, 3 * g + g / 2, g + g / 2, 2 * g, g + g / 2],
                vec![false, false, true, false, true],
            ),
            (
                "counter_wrap = off: backwards counts zero",
                wraps_twice[..3].to_vec(),
                Bounds::default(),
                false,
                vec![0, 3 * g + g / 2, 0],
                vec![false, false, false],
            ),
            (
                "64-bit NAS (Gigawords seen): backwards is a regression",
                vec![upd(Start, 0, 0, None, T0), wide(3 * g, 60), narrow(g, 120)],
                Bounds::default(),
                true,
                vec![0, 3 * g, 0],
                vec![false, false, false],
            ),
            (
                "session time did not go forward: a late packet, not a wrap",
                vec![upd(Start, 0, 0, None, T0), narrow(3 * g, 60), narrow(g, 60)],
                Bounds::default(),
                true,
                vec![0, 3 * g, 0],
                vec![false, false, false],
            ),
            (
                "a wrap the NAS could not have carried in the time: not counted",
                vec![
                    upd(Start, 0, 0, None, T0),
                    narrow(100_000_000, 100),
                    narrow(10, 160),
                ],
                slow,
                true,
                vec![0, 100_000_000, 0],
                vec![false, false, false],
            ),
        ];
        for (name, packets, bounds, wrap, want, want_wrapped) in cases {
            let (deltas, notes, s) = run_with(&packets, bounds, wrap);
            let got: Vec<u64> = deltas.iter().map(|d| d.input_octets).collect();
            assert_eq!(got, want, "{name}");
            let wrapped: Vec<bool> = notes.iter().map(|n| n.input_wrapped).collect();
            assert_eq!(wrapped, want_wrapped, "{name}");
            assert_eq!(
                s.input_octets,
                want.iter().sum::<u64>(),
                "{name}: baseline = counted"
            );
        }
    }

    #[test]
    fn implausible_packets_are_refused_and_the_session_goes_on() {
        let max32 = u32::MAX;
        let huge = AcctUpdate {
            gigawords: true,
            ..upd(Interim, u64::MAX, u64::MAX, Some(max32), T0 + 60)
        };
        // An Interim with every counter and the session time at 2^32 - 1, first.
        let (deltas, notes, s) = run_with(std::slice::from_ref(&huge), Bounds::default(), true);
        assert_eq!(deltas, [usage(0, 0, 0)]);
        assert!(notes[0].refused_counters && notes[0].refused_session_time);
        assert_eq!(s.start_time, T0 + 60, "not dated 136 years back");
        // In the middle of a session: refused, the baseline kept, the next one counts.
        let (deltas, notes, s) = run_with(
            &[
                upd(Start, 0, 0, None, T0),
                upd(Interim, 1000, 2000, Some(30), T0 + 30),
                huge,
                upd(Interim, 3000, 5000, Some(120), T0 + 120),
            ],
            Bounds::default(),
            true,
        );
        assert_eq!(
            deltas,
            [
                usage(0, 0, 0),
                usage(1000, 2000, 30),
                usage(0, 0, 0),
                usage(2000, 3000, 90)
            ]
        );
        assert!(notes[2].refused_counters && !notes[3].refused());
        assert_eq!(
            usage(s.input_octets, s.output_octets, s.session_time),
            usage(3000, 5000, 120)
        );
        // The bound follows the elapsed time: 1 MB/s for 30 s (+ 60 s slack) allows 90 MB.
        let slow = Bounds {
            max_bytes_per_sec: 1_000_000,
        };
        let at = |input| {
            run_with(
                &[
                    upd(Start, 0, 0, None, T0),
                    upd(Interim, input, 0, Some(30), T0 + 30),
                ],
                slow,
                true,
            )
            .0[1]
                .input_octets
        };
        assert_eq!(at(90_000_000), 90_000_000);
        assert_eq!(at(90_000_001), 0);
    }

    #[test]
    fn start_time_from_session_time() {
        let cases = [
            (Start, None, T0),
            (Interim, Some(600), T0 - 600),
            (Stop, Some(3600), T0 - 3600),
        ];
        for (status, time, want) in cases {
            let a = apply(
                None,
                &upd(status, 1, 1, time, T0),
                &Bounds::default(),
                &mut || true,
            )
            .unwrap();
            let s = a.state.unwrap();
            assert_eq!(s.start_time, want, "{status:?}");
            assert_eq!(s.last_update, T0);
        }
    }

    #[test]
    fn closed_by_us_then_late_packets() {
        // (closed_reason, late packet, kind, delta, open afterwards, closed_reason afterwards)
        let cases = [
            (
                closed_reason::STALE,
                Interim,
                Reopened,
                usage(50, 5, 60),
                true,
                None,
            ),
            (
                closed_reason::NAS_REBOOT,
                Interim,
                LateAfterNasClose,
                usage(50, 5, 60),
                false,
                Some("nas-reboot"),
            ),
            (
                closed_reason::NAS_OFF,
                Stop,
                Stopped,
                usage(50, 5, 60),
                false,
                Some("stop"),
            ),
            (
                closed_reason::STALE,
                Start,
                DuplicateStart,
                usage(0, 0, 0),
                false,
                Some("stale"),
            ),
        ];
        for (reason, status, kind, delta, open, after) in cases {
            let mut s = run(&[upd(Interim, 100, 10, Some(60), T0)]).1.unwrap();
            s.close_by_us(T0 + 10, reason);
            assert!(!s.is_open());
            let a = apply(
                Some(&s),
                &upd(status, 150, 15, Some(120), T0 + 120),
                &Bounds::default(),
                &mut || true,
            )
            .unwrap();
            assert_eq!((a.kind, a.delta), (kind, delta), "{reason} then {status:?}");
            let s2 = a.state.unwrap_or(s);
            assert_eq!(s2.is_open(), open, "{reason} then {status:?}");
            assert_eq!(
                s2.closed_reason.as_deref(),
                after,
                "{reason} then {status:?}"
            );
        }
    }

    #[test]
    fn close_by_us_leaves_closed_sessions_alone() {
        let mut s = run(&[upd(Start, 0, 0, None, T0), upd(Stop, 1, 1, Some(5), T0 + 5)])
            .1
            .unwrap();
        s.close_by_us(T0 + 99, closed_reason::STALE);
        assert_eq!(s.stop_time, Some(T0 + 5));
        assert_eq!(s.closed_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn nas_packets_are_not_session_packets() {
        for (status, reason) in [(AccountingOn, "nas-reboot"), (AccountingOff, "nas-off")] {
            assert!(apply(
                None,
                &upd(status, 0, 0, None, T0),
                &Bounds::default(),
                &mut || true
            )
            .is_none());
            assert_eq!(nas_close_reason(status), Some(reason));
        }
        assert_eq!(nas_close_reason(Interim), None);
    }

    #[test]
    fn validation() {
        let mut no_id = upd(Interim, 0, 0, None, T0);
        no_id.session_id.clear();
        let mut unique_only = no_id.clone();
        unique_only.unique_id = Some("u1".into());
        let mut on = upd(AccountingOn, 0, 0, None, T0);
        on.session_id.clear();
        let mut no_nas = upd(Start, 0, 0, None, T0);
        no_nas.nas_ip.clear();
        let cases = [
            (no_id, Err("no Acct-Session-Id")),
            (unique_only, Ok(())),
            (on, Ok(())),
            (no_nas, Err("no NAS address")),
        ];
        for (u, want) in cases {
            assert_eq!(validate(&u), want, "{u:?}");
        }
    }

    #[test]
    fn unique_id_is_the_key() {
        let mut u = upd(Start, 0, 0, None, T0);
        assert_eq!(u.session_key(), "abc");
        u.unique_id = Some("uniq".into());
        assert_eq!(u.session_key(), "uniq");
    }

    #[test]
    fn outcome_lines() {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        let month = chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let base = Outcome::new(Updated, &upd(Interim, 0, 0, None, T0));
        let mut counted = base.clone();
        counted.delta = usage(1_048_576, 2048, 60);
        counted.attributed = Some(Attribution { day, month });
        let mut dup = base.clone();
        dup.kind = DuplicateStart;
        dup.status = Start;
        let mut nas = base.clone();
        nas.kind = NasClosed { closed: 3 };
        nas.status = AccountingOn;
        let mut back = base.clone();
        back.regressed = Regressed {
            input: true,
            output: false,
            time: true,
        };
        let mut evil = base.clone();
        evil.username = "bob\"\n[error] forged".into();
        let cases = [
            (
                counted,
                "interim for session \"abc\" of \"alice\" on 127.0.0.2: updated; +1048576 in, +2048 out, +60 s attributed to 2026-11-21 / 2026-11",
            ),
            (dup, "Start for session \"abc\" of \"alice\" on 127.0.0.2: duplicate Start (session already known), ignored"),
            (nas, "Accounting-On from 127.0.0.2: closed 3 open sessions"),
            (
                back,
                "interim for session \"abc\" of \"alice\" on 127.0.0.2: updated; no new usage; counters went backwards (in, time), kept the higher baseline",
            ),
            (
                evil,
                "interim for session \"abc\" of \"bob\\\"\\n[error] forged\" on 127.0.0.2: updated; no new usage",
            ),
        ];
        for (o, want) in cases {
            assert_eq!(o.to_string(), want);
            assert!(!o.to_string().contains('\n'));
        }
    }
}

//! The operator's hooks: for each event whose hook is pending, the configured
//! command runs on a background thread of its own (a slow hook delays no NAS
//! action and no request), with the event's fields in the environment and as one
//! JSON object on stdin. Exit status 0 marks it done; anything else, or a timeout,
//! is retried with backoff up to `retries` times, then marked failed. Status and
//! output are kept on the event (`rlm-rust events`).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::time::Duration;

use crate::background::Job;
use crate::config::Hooks;
use crate::periods;
use crate::store::{backoff_secs, Admin, EventRow, HookOutcome};

/// Events run per pass.
const BATCH: usize = 20;

pub struct HookRunner {
    pub db: PathBuf,
    pub hooks: Hooks,
    admin: Option<Admin>,
}

impl HookRunner {
    pub fn new(db: PathBuf, hooks: Hooks) -> Self {
        HookRunner {
            db,
            hooks,
            admin: None,
        }
    }

    pub fn run_at(&mut self, now: i64) -> Result<usize, String> {
        let admin = match self.admin.take() {
            Some(a) => a,
            None => Admin::open_existing(&self.db).map_err(|e| e.to_string())?,
        };
        let r = self.pass(&admin, now);
        if r.is_ok() {
            self.admin = Some(admin);
        }
        r
    }

    fn pass(&self, admin: &Admin, now: i64) -> Result<usize, String> {
        let due = admin
            .hooks_claim(now, BATCH, crate::store::Lease::current())
            .map_err(|e| e.to_string())?;
        for ev in &due {
            let o = self.run_one(ev, now);
            admin.hook_mark(ev.id, &o).map_err(|e| e.to_string())?;
        }
        Ok(due.len())
    }

    fn run_one(&self, ev: &EventRow, now: i64) -> HookOutcome {
        let Some(argv) = self.hooks.command(&ev.event).filter(|a| !a.is_empty()) else {
            return HookOutcome::NotConfigured;
        };
        let timeout = Duration::from_secs(self.hooks.timeout_secs);
        let result = crate::command::run(argv, &env(ev), json(ev).as_bytes(), timeout);
        let (exit, output, ok) = match result {
            Ok(f) => (f.code, f.output.clone(), f.success()),
            Err(e) => (None, e, false),
        };
        if ok {
            log::debug!("hook for event {} ({}) done", ev.id, ev.event);
            return HookOutcome::Done {
                exit: exit.unwrap_or(0),
                output,
            };
        }
        if ev.hook_attempts >= self.hooks.retries {
            log::error!(
                "hook for event {} ({} of {:?}) failed after {} attempt(s), given up: {}",
                ev.id,
                ev.event,
                ev.username,
                ev.hook_attempts + 1,
                output.trim()
            );
            return HookOutcome::Failed { exit, output };
        }
        let at = now + backoff_secs(ev.hook_attempts);
        log::warn!(
            "hook for event {} ({} of {:?}) failed (attempt {}), retry in {}s: {}",
            ev.id,
            ev.event,
            ev.username,
            ev.hook_attempts + 1,
            at - now,
            output.trim()
        );
        HookOutcome::Retry { exit, output, at }
    }
}

/// The event's fields as environment variables (the user name as its exact bytes).
pub fn env(ev: &EventRow) -> Vec<(&'static str, OsString)> {
    let s = |v: &str| OsString::from(v);
    let o = |v: &Option<String>| OsString::from(v.as_deref().unwrap_or(""));
    vec![
        ("RLM_EVENT", s(&ev.event)),
        ("RLM_EVENT_ID", s(&ev.id.to_string())),
        (
            "RLM_USER",
            OsString::from_vec(crate::names::encode(&ev.username).into_owned()),
        ),
        ("RLM_OLD", o(&ev.old_value)),
        ("RLM_NEW", o(&ev.new_value)),
        ("RLM_SOURCE", s(&ev.source)),
        ("RLM_TIME", s(&ev.at.to_string())),
        ("RLM_DETAIL", o(&ev.detail)),
        ("RLM_ATTEMPT", s(&(ev.hook_attempts + 1).to_string())),
    ]
}

/// The event as one JSON line.
pub fn json(ev: &EventRow) -> String {
    let mut line = serde_json::json!({
        "id": ev.id,
        "username": ev.username,
        "event": ev.event,
        "old": ev.old_value,
        "new": ev.new_value,
        "source": ev.source,
        "at": ev.at,
        "detail": ev.detail,
    })
    .to_string();
    line.push('\n');
    line
}

impl Job for HookRunner {
    fn name(&self) -> &'static str {
        "event hooks"
    }

    fn run(&mut self) -> Result<(), String> {
        // Drain what is due, not just one batch, but give the thread back in time.
        for _ in 0..10 {
            if self.run_at(periods::now())? < BATCH {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::states::worker::{apply, Change};
    use crate::states::{Input, Source};
    use crate::store::{Store, StoreOptions};

    fn hooks(cmd: &str, retries: u32) -> Hooks {
        let mut h = Hooks::deferred();
        for argv in h.commands.values_mut() {
            *argv = vec!["/bin/sh".into(), "-c".into(), cmd.into()];
        }
        h.commands.remove("user_add");
        h.retries = retries;
        h.timeout_secs = 5;
        h
    }

    #[test]
    fn a_failing_hook_is_retried_with_backoff_then_given_up_and_its_output_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite");
        drop(Store::open(&db, StoreOptions::default()).unwrap());
        let admin = Admin::open_existing(&db).unwrap();
        let t = 1_800_000_000;
        // Queued as the CLI does (every event pending).
        let c = Change::new(Input::Block, Source::Operator, t);
        apply(&admin, &Hooks::deferred(), "zoe", &c).unwrap();
        let mut runner = HookRunner::new(
            db.clone(),
            hooks("echo \"no $RLM_EVENT for $RLM_USER\"; exit 7", 1),
        );
        assert_eq!(runner.run_at(t).unwrap(), 2, "user_add and own_disabled");
        let evs = admin.events(Some("zoe"), None, 0, 10).unwrap();
        // user_add has no hook in this config: dropped, not failed.
        assert_eq!(evs[0].event, "user_add");
        assert_eq!(evs[0].hook_state, "none");
        let e = &evs[1];
        assert_eq!(
            (e.hook_state.as_str(), e.hook_attempts, e.hook_exit),
            ("pending", 1, Some(7))
        );
        assert_eq!(e.hook_output.as_deref(), Some("no own_disabled for zoe\n"));
        assert!(e.next_attempt_at.unwrap() >= t + 30, "backoff");
        assert_eq!(runner.run_at(t + 1).unwrap(), 0, "not due yet");
        // The last retry fails too: given up, still visible.
        assert_eq!(runner.run_at(t + 3600).unwrap(), 1);
        let e = &admin.events(Some("zoe"), None, 0, 10).unwrap()[1];
        assert_eq!((e.hook_state.as_str(), e.hook_attempts), ("failed", 2));
        assert_eq!(runner.run_at(t + 7200).unwrap(), 0);
        // A hook that works marks the next event done.
        let c = Change::new(Input::Unblock, Source::Operator, t);
        apply(&admin, &Hooks::deferred(), "zoe", &c).unwrap();
        let mut ok = HookRunner::new(db, hooks("cat >/dev/null; exit 0", 1));
        assert_eq!(ok.run_at(t).unwrap(), 1);
        let e = &admin.events(Some("zoe"), None, 0, 10).unwrap()[2];
        assert_eq!(
            (e.event.as_str(), e.hook_state.as_str(), e.hook_exit),
            ("own_disabled_cancel", "done", Some(0))
        );
    }
}

//! Delivery of queued auto-topup notifications: a background job renders each due
//! outbox row with the operator's template and pipes it into the configured command
//! (for example `/usr/sbin/sendmail -t`). Exit status 0 marks it sent; anything else
//! (or a timeout) is retried with backoff, so a mail server outage loses nothing.

use std::time::Duration;

use crate::background::Job;
use crate::notify::{Template, Vars};
use crate::periods;
use crate::store::{backoff_secs, OutboxResult, OutboxRow, Store};

/// Rows delivered per run of the job.
const BATCH: usize = 50;
/// A delivery command that takes longer is killed and retried.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Outbox {
    pub store: Store,
    pub command: Vec<String>,
    pub template: Template,
}

/// Renders one row; template warnings are logged, never fatal.
pub fn render(template: &Template, row: &OutboxRow) -> Result<String, String> {
    let vars: Vars =
        serde_json::from_str(&row.body).map_err(|e| format!("stored variables unreadable: {e}"))?;
    let r = template.render(&vars);
    for w in &r.warnings {
        log::warn!("notification {}: template: {w}", row.key);
    }
    Ok(r.text)
}

/// Runs `argv` with `input` on stdin; Ok when it exits 0 within `timeout`.
pub fn deliver(argv: &[String], input: &str, timeout: Duration) -> Result<(), String> {
    let prog = argv.first().map_or("", String::as_str);
    let f = crate::command::run(argv, &[], input.as_bytes(), timeout)?;
    if f.success() {
        return Ok(());
    }
    let status = f
        .code
        .map_or_else(|| "a signal".to_string(), |c| format!("exit status: {c}"));
    let out = f.output.trim();
    Err(if out.is_empty() {
        format!("{prog} exited with {status}")
    } else {
        format!(
            "{prog} exited with {status}: {}",
            out.chars().take(200).collect::<String>()
        )
    })
}

impl Job for Outbox {
    fn name(&self) -> &'static str {
        "notifications"
    }

    fn run(&mut self) -> Result<(), String> {
        let now = periods::now();
        let due = self
            .store
            .outbox_due(now, BATCH)
            .map_err(|e| e.to_string())?;
        for row in due {
            let result = render(&self.template, &row)
                .and_then(|text| deliver(&self.command, &text, COMMAND_TIMEOUT));
            let mark = match result {
                Ok(()) => {
                    log::info!("notification {} sent to {}", row.key, row.target);
                    OutboxResult::Sent
                }
                Err(error) if row.attempts + 1 >= crate::disconnect::MAX_ATTEMPTS => {
                    log::error!(
                        "notification {} to {} given up after {} attempts: {error}",
                        row.key,
                        row.target,
                        row.attempts + 1
                    );
                    OutboxResult::Failed {
                        error: format!("given up: {error}"),
                        retry_at: crate::store::NEVER,
                    }
                }
                Err(error) => {
                    let retry_at = now + backoff_secs(row.attempts);
                    log::warn!(
                        "notification {} to {} not delivered (attempt {}), retry in {}s: {error}",
                        row.key,
                        row.target,
                        row.attempts + 1,
                        retry_at - now
                    );
                    OutboxResult::Failed { error, retry_at }
                }
            };
            self.store
                .outbox_mark(&row.key, now, mark)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn delivery_outcomes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("mail");
        let cat = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            format!("cat > {}", out.display()),
        ];
        deliver(&cat, "hello\n", COMMAND_TIMEOUT).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "hello\n");

        let e = deliver(&argv("/bin/false"), "x", COMMAND_TIMEOUT).unwrap_err();
        assert!(e.contains("exited with"), "{e}");
        let e = deliver(&argv("/nonexistent/sendmail -t"), "x", COMMAND_TIMEOUT).unwrap_err();
        assert!(e.contains("cannot run"), "{e}");
        let e = deliver(&argv("/bin/sleep 5"), "x", Duration::from_millis(100)).unwrap_err();
        assert!(e.contains("did not finish"), "{e}");
    }

    #[test]
    fn renders_stored_variables() {
        let mut vars = Vars::new();
        vars.set("user.username", "bob")
            .set("autotopup.toAdd", 2u64);
        let row = OutboxRow {
            key: "k".into(),
            username: "bob".into(),
            kind: "traffic".into(),
            event: "added".into(),
            target: "t".into(),
            body: serde_json::to_string(&vars).unwrap(),
            created: 0,
            attempts: 0,
            next_attempt_at: 0,
            sent_at: None,
            last_error: None,
        };
        let t = Template::parse("[% user.username %]:[% autotopup.toAdd + 1 %]").unwrap();
        assert_eq!(render(&t, &row).unwrap(), "bob:3");
        let bad = OutboxRow {
            body: "{".into(),
            ..row
        };
        assert!(render(&t, &bad).is_err());
    }

    /// A store with one notification for bob queued, and the job that sends it
    /// with a command that always fails.
    fn one_queued(dir: &tempfile::TempDir, now: i64) -> (Store, Outbox) {
        use crate::capping::{Decision, Kind, Notification, NotifyEvent, State};
        use crate::store::StoreOptions;
        let store = Store::open(dir.path().join("db.sqlite"), StoreOptions::default()).unwrap();
        let mut vars = Vars::new();
        vars.set("user.username", "bob");
        let decision = Decision {
            state: State::Allowed {
                remaining_traffic_bytes: Some(1),
                remaining_uptime_secs: None,
            },
            new_auto_topups: Vec::new(),
            topup_consumption: Vec::new(),
            depleted: Vec::new(),
            marks: Vec::new(),
            notifications: vec![Notification {
                kind: Kind::Traffic,
                event: NotifyEvent::Added,
                target: "ops".into(),
                key: "k1".into(),
                vars,
            }],
            explanation: String::new(),
        };
        store.apply_decision("bob", 0, now - 1, &decision).unwrap();
        let job = Outbox {
            store: store.clone(),
            command: argv("/bin/false"),
            template: Template::parse("hi [% user.username %]").unwrap(),
        };
        (store, job)
    }

    #[test]
    fn a_failed_delivery_is_retried_later_and_a_good_one_marks_sent() {
        let dir = tempfile::tempdir().unwrap();
        let now = periods::now();
        let (store, mut job) = one_queued(&dir, now);
        job.run().unwrap();
        let row = &store.outbox_due(i64::MAX, 10).unwrap()[0];
        assert_eq!(row.attempts, 1);
        assert!(row.sent_at.is_none());
        assert!(row.last_error.as_deref().unwrap().contains("exited with"));
        assert!(row.next_attempt_at >= now + 30, "backoff");
        assert!(store.outbox_due(now, 10).unwrap().is_empty(), "not due yet");

        let out = dir.path().join("mail");
        job.command = vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("cat > {}", out.display()),
        ];
        store
            .outbox_mark(
                "k1",
                now,
                OutboxResult::Failed {
                    error: "x".into(),
                    retry_at: now - 1,
                },
            )
            .unwrap();
        job.run().unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "hi bob");
        assert!(store.outbox_due(i64::MAX, 10).unwrap().is_empty(), "sent");
    }

    #[test]
    fn a_notification_that_keeps_failing_is_given_up_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let now = periods::now();
        let (store, mut job) = one_queued(&dir, now);
        for _ in 0..crate::disconnect::MAX_ATTEMPTS {
            job.run().unwrap();
            let row = &store.outbox_due(i64::MAX, 10).unwrap()[0];
            if row.next_attempt_at == crate::store::NEVER {
                break;
            }
            // Due again at once (as if the backoff had passed).
            rusqlite::Connection::open(store.path())
                .unwrap()
                .execute_batch("UPDATE notification_outbox SET next_attempt_at = 0")
                .unwrap();
        }
        let row = &store.outbox_due(i64::MAX, 10).unwrap()[0];
        assert_eq!(row.attempts, crate::disconnect::MAX_ATTEMPTS);
        assert_eq!(row.next_attempt_at, crate::store::NEVER);
        assert!(row.last_error.as_deref().unwrap().starts_with("given up"));
        assert!(store.outbox_due(i64::MAX - 1, 10).unwrap().is_empty());
        let counts = crate::store::Reader::open(store.path())
            .unwrap()
            .queue_counts()
            .unwrap();
        assert!(
            counts
                .iter()
                .any(|c| c.queue == "notification" && c.state == "failed" && c.jobs == 1),
            "{counts:?}"
        );
    }
}

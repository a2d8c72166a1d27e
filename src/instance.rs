//! One configured `rust { ... }` instance in plain Rust: its config, store and
//! background thread, and what each server callback decides. The FFI layer only
//! converts C data to these calls and the [`Rcode`] back.
use crate::accounting::{self, Skip};
use crate::attrs::Attrs;
use crate::background::Background;
use crate::config::Config;
use std::net::IpAddr;
use std::time::Duration;

/// Module return codes, as unlang sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    Reject,
    Fail,
    Ok,
    Handled,
    Invalid,
    Userlock,
    Notfound,
    Noop,
    Updated,
}

pub struct Instance {
    pub name: String,
    pub config: Config,
    background: Option<Background>,
}

impl Instance {
    /// Opens the store and starts the background thread.
    pub fn start(name: String, config: Config) -> Result<Self, String> {
        let background =
            Background::spawn(Duration::from_secs(config.background_interval), Vec::new())
                .map_err(|e| format!("cannot start the background thread: {e}"))?;
        log::info!(
            "instance {name}: db {}, timezone {}, stale_after {}s",
            config.db.display(),
            config.timezone,
            config.stale_after
        );
        Ok(Instance {
            name,
            config,
            background: Some(background),
        })
    }

    pub fn accounting(
        &self,
        attrs: &impl Attrs,
        src_ip: Option<IpAddr>,
        received_at: i64,
    ) -> Rcode {
        match accounting::extract(attrs, src_ip, received_at) {
            Err(Skip::Untracked(code)) => {
                log::debug!(
                    "Acct-Status-Type {code:?} is not tracked: acknowledged without recording"
                );
                Rcode::Ok
            }
            Err(Skip::Invalid(why)) => {
                log::error!("invalid accounting request: {why}");
                Rcode::Invalid
            }
            Ok(update) => {
                log::debug!(
                    "accounting {:?} for session {:?} of {:?} on {}",
                    update.status,
                    update.session_key(),
                    update.username,
                    update.nas_ip
                );
                Rcode::Ok
            }
        }
    }

    /// Stops the background thread; called at detach.
    pub fn stop(&mut self) {
        if let Some(mut bg) = self.background.take() {
            bg.stop();
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stop();
    }
}

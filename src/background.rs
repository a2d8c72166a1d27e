//! The module's background thread: started at instantiate, stopped (and joined) at
//! detach, including the detach of an old instance after a HUP. It runs periodic jobs
//! (closing stale sessions now; draining the disconnect queue later) so that no
//! FreeRADIUS worker thread ever waits on them.
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

/// A periodic job; errors are logged and the job runs again at the next tick.
pub trait Job: Send {
    fn name(&self) -> &'static str;
    fn run(&mut self) -> Result<(), String>;
}

/// A job failing run after run (a database outage): said once, not every tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failing {
    error: String,
    runs: u32,
}

/// What to log of a run, given how the job fared before: a new error (or another
/// one) at error level, the same again at debug, the first success after failures
/// at info.
pub(crate) fn report(
    state: &mut Option<Failing>,
    error: Option<String>,
) -> Option<(log::Level, String)> {
    match (state.as_mut(), error) {
        (None, None) => None,
        (Some(f), None) => {
            let m = format!("works again after {} failed run(s)", f.runs);
            *state = None;
            Some((log::Level::Info, m))
        }
        (Some(f), Some(e)) if f.error == e => {
            f.runs += 1;
            Some((log::Level::Debug, format!("{e} (again)")))
        }
        (_, Some(e)) => {
            *state = Some(Failing {
                error: e.clone(),
                runs: 1,
            });
            Some((log::Level::Error, e))
        }
    }
}

pub struct Background {
    stop: Option<Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Background {
    pub fn spawn(interval: Duration, mut jobs: Vec<Box<dyn Job>>) -> std::io::Result<Self> {
        let (stop, rx) = mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("rlm_rust-bg".into())
            .spawn(move || {
                let mut failing: Vec<Option<Failing>> = jobs.iter().map(|_| None).collect();
                loop {
                    match rx.recv_timeout(interval) {
                        Err(RecvTimeoutError::Timeout) => {
                            for (job, f) in jobs.iter_mut().zip(failing.iter_mut()) {
                                let result = job.run();
                                match report(f, result.err()) {
                                    Some((log::Level::Error, m)) => {
                                        log::error!("background job {}: {m}", job.name())
                                    }
                                    Some((log::Level::Info, m)) => {
                                        log::info!("background job {}: {m}", job.name())
                                    }
                                    Some((_, m)) => {
                                        log::debug!("background job {}: {m}", job.name())
                                    }
                                    None => {}
                                }
                            }
                        }
                        // A message or a dropped sender both mean: stop.
                        _ => return,
                    }
                }
            })?;
        Ok(Background {
            stop: Some(stop),
            handle: Some(handle),
        })
    }

    /// Stops the thread and waits for the job in progress to finish. Idempotent.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Count(Arc<AtomicUsize>, bool);
    impl Job for Count {
        fn name(&self) -> &'static str {
            "count"
        }
        fn run(&mut self) -> Result<(), String> {
            self.0.fetch_add(1, Ordering::SeqCst);
            if self.1 {
                Err("boom".into())
            } else {
                Ok(())
            }
        }
    }

    #[test]
    fn a_failing_job_is_reported_once_per_burst() {
        use log::Level::{Debug, Error, Info};
        let mut st = None;
        let e = |s: &str| Some(s.to_string());
        // (error of this run, what is logged)
        let runs = [
            (None, None),
            (e("db down"), Some(Error)),
            (e("db down"), Some(Debug)),
            (e("db down"), Some(Debug)),
            (e("other"), Some(Error)),
            (None, Some(Info)),
            (None, None),
            (e("db down"), Some(Error)),
        ];
        for (i, (err, want)) in runs.into_iter().enumerate() {
            assert_eq!(report(&mut st, err).map(|(l, _)| l), want, "run {i}");
        }
        let mut st = Some(Failing {
            error: "x".into(),
            runs: 3,
        });
        assert_eq!(
            report(&mut st, None).unwrap().1,
            "works again after 3 failed run(s)"
        );
    }

    #[test]
    fn runs_jobs_until_stopped_even_when_one_fails() {
        let ok = Arc::new(AtomicUsize::new(0));
        let failing = Arc::new(AtomicUsize::new(0));
        let mut bg = Background::spawn(
            Duration::from_millis(5),
            vec![
                Box::new(Count(failing.clone(), true)),
                Box::new(Count(ok.clone(), false)),
            ],
        )
        .unwrap();
        while ok.load(Ordering::SeqCst) < 3 {
            std::thread::sleep(Duration::from_millis(5));
        }
        bg.stop();
        let after = ok.load(Ordering::SeqCst);
        assert!(failing.load(Ordering::SeqCst) >= 3);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(ok.load(Ordering::SeqCst), after, "no job runs after stop");
        bg.stop();
    }
}

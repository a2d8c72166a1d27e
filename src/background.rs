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

pub struct Background {
    stop: Option<Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Background {
    pub fn spawn(interval: Duration, mut jobs: Vec<Box<dyn Job>>) -> std::io::Result<Self> {
        let (stop, rx) = mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("rlm_rust-bg".into())
            .spawn(move || loop {
                match rx.recv_timeout(interval) {
                    Err(RecvTimeoutError::Timeout) => {
                        for job in jobs.iter_mut() {
                            if let Err(e) = job.run() {
                                log::error!("background job {}: {e}", job.name());
                            }
                        }
                    }
                    // A message or a dropped sender both mean: stop.
                    _ => return,
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

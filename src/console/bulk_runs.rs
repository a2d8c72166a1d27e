//! Bulk disconnects started from the console: each runs on a thread of its own, its
//! per-NAS results arriving as NASes finish (the progress view polls them). Real
//! runs leave their `bulk_runs` rows as the CLI's do; the runs themselves are kept
//! in memory (the last [`KEEP`]) for their pages.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::bulk::{self, BulkOptions, NasResult};
use crate::store::{Admin, NasConfig};

/// Runs kept for their pages.
const KEEP: usize = 50;

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub id: u64,
    pub operator: String,
    pub dry_run: bool,
    pub before: i64,
    pub started: i64,
    pub finished: Option<i64>,
    /// NASes in the run, in order.
    pub nases: Vec<String>,
    /// Results so far, in the order they finished.
    pub results: Vec<NasResult>,
    /// Recording the results failed (real runs).
    pub error: Option<String>,
}

impl Run {
    pub fn failed_nases(&self) -> usize {
        self.results.iter().filter(|r| r.is_failure()).count()
    }
}

#[derive(Default)]
pub struct Runs {
    runs: Mutex<VecDeque<Arc<Mutex<Run>>>>,
    next: std::sync::atomic::AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Runs {
    /// Starts a run; returns its id at once.
    pub fn start(
        &self,
        admin_db: std::path::PathBuf,
        operator: &str,
        nases: Vec<NasConfig>,
        opts: BulkOptions,
    ) -> u64 {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let run = Arc::new(Mutex::new(Run {
            id,
            operator: operator.to_string(),
            dry_run: opts.dry_run,
            before: opts.boundary,
            started: opts.now,
            finished: None,
            nases: nases.iter().map(|n| n.nas_ip.clone()).collect(),
            results: Vec::new(),
            error: None,
        }));
        {
            let mut runs = lock(&self.runs);
            runs.push_back(Arc::clone(&run));
            while runs.len() > KEEP {
                runs.pop_front();
            }
        }
        log::info!(
            "console: {operator} started bulk run {id}{} on {} NAS(es)",
            if opts.dry_run { " (dry run)" } else { "" },
            nases.len()
        );
        std::thread::spawn(move || {
            let progress = |r: &NasResult| lock(&run).results.push(r.clone());
            let results = bulk::run(&nases, &opts, None, &progress);
            let recorded = if opts.dry_run {
                Ok(())
            } else {
                Admin::open_existing(&admin_db)
                    .and_then(|a| bulk::record(&a, &results, opts.now, crate::periods::now()))
            };
            let mut r = lock(&run);
            // In the NASes' order now that all are in.
            r.results = results;
            r.finished = Some(crate::periods::now());
            if let Err(e) = recorded {
                log::warn!("console: bulk run {}: results not recorded: {e}", r.id);
                r.error = Some(format!("results not recorded: {e}"));
            }
        });
        id
    }

    pub fn get(&self, id: u64) -> Option<Run> {
        lock(&self.runs)
            .iter()
            .find(|r| lock(r).id == id)
            .map(|r| lock(r).clone())
    }
}

//! Work on many NASes at once without a thread per NAS: a fixed number of scoped
//! threads take the next item until none is left.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// `f` on every item, at most `threads` at once; results in the order of `items`.
/// An item that takes long (a NAS that does not answer) holds up only its own
/// thread: the others keep taking items.
pub fn map<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    let next = AtomicUsize::new(0);
    let threads = threads.clamp(1, items.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { return };
                let r = f(item);
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn keeps_the_order_and_runs_every_item_once() {
        let items: Vec<u32> = (0..50).collect();
        let calls = AtomicUsize::new(0);
        let out = map(&items, 4, |x| {
            calls.fetch_add(1, Ordering::SeqCst);
            x * 2
        });
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        assert_eq!(calls.load(Ordering::SeqCst), 50);
        assert!(map(&[] as &[u32], 4, |x| *x).is_empty());
        assert_eq!(map(&[7], 0, |x| *x), [7], "at least one thread");
    }

    #[test]
    fn a_slow_item_does_not_hold_up_the_others() {
        // Item 0 waits until every other item has finished: the second thread must
        // take all 19 while it waits.
        let done = AtomicUsize::new(0);
        let items: Vec<u32> = (0..20).collect();
        let out = map(&items, 2, |&x| {
            if x == 0 {
                let deadline = Instant::now() + Duration::from_secs(10);
                while done.load(Ordering::SeqCst) < 19 && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(1));
                }
                done.load(Ordering::SeqCst)
            } else {
                done.fetch_add(1, Ordering::SeqCst);
                0
            }
        });
        assert_eq!(out[0], 19, "the other 19 items ran while item 0 waited");
    }
}

//! The bounded worker pool pull and push share: a few threads take items in order, and the first
//! failure stops the others from starting new ones.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Runs `work` on every item with at most `workers` threads at once; the first error is returned
/// once the items already started have finished.
pub(super) fn for_each<T: Sync, E: Send>(
    items: &[T],
    workers: usize,
    work: impl Fn(&T) -> Result<(), E> + Sync,
) -> Result<(), E> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..workers.min(items.len()) {
            s.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    if let Err(e) = work(item) {
                        failed.store(true, Ordering::Relaxed);
                        if let Ok(mut first) = first_error.lock() {
                            first.get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    match first_error.into_inner() {
        Ok(Some(e)) => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_runs_and_the_first_failure_stops_new_ones() {
        let done = AtomicUsize::new(0);
        let all: Vec<u32> = (0..20).collect();
        for_each(&all, 4, |_| {
            done.fetch_add(1, Ordering::Relaxed);
            Ok::<(), ()>(())
        })
        .expect("no failure");
        assert_eq!(done.load(Ordering::Relaxed), 20);

        let started = AtomicUsize::new(0);
        let result = for_each(&all, 1, |i| {
            started.fetch_add(1, Ordering::Relaxed);
            if *i == 3 {
                Err(*i)
            } else {
                Ok(())
            }
        });
        assert_eq!(result, Err(3));
        assert_eq!(
            started.load(Ordering::Relaxed),
            4,
            "nothing starts after the failure"
        );
    }
}

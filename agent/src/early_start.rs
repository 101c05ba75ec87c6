//! Starts that overtake a container's set-up.
//!
//! `create` has the monitor set the container up while the container actor holds its mailbox
//! (`ctx.wait`) until the monitor reports the container ready to exec. A `start` sent meanwhile
//! (`run` sends it right after `create`) used to wait for that report, then go back to the monitor
//! with its START: about a millisecond between the container being ready and its program running.
//! Now whoever queues a `Start` during the set-up also raises this container's flag here; the
//! set-up then sends the monitor its START at once, which the monitor holds until the container is
//! ready and acts on before it reports. The actor still decides and records the start when it
//! handles the queued message, with that early release's outcome.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{oneshot, Notify};

/// The outcome of a START sent ahead: what [`crate::monitor::release`] returned.
pub type Release = oneshot::Receiver<Result<(), String>>;

/// The set-ups in flight, by container id.
#[derive(Default)]
pub struct EarlyStarts {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

/// One container's set-up: whether a start waits, and the release sent for it.
#[derive(Default)]
pub struct Slot {
    requested: Notify,
    release: Mutex<Option<Release>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl EarlyStarts {
    /// A set-up of `id` begins.
    pub fn open(&self, id: &str) -> Arc<Slot> {
        let slot = Arc::new(Slot::default());
        lock(&self.slots).insert(id.to_owned(), slot.clone());
        slot
    }

    /// The set-up of `id` is over (it reported, or failed).
    pub fn close(&self, id: &str) {
        lock(&self.slots).remove(id);
    }

    /// Whether `id` is being set up.
    pub fn preparing(&self, id: &str) -> bool {
        lock(&self.slots).contains_key(id)
    }

    /// Asks the set-up of `id`, if one is in flight, to release the container as soon as it can.
    /// The caller must have queued the actor's `Start` first: only the actor records a start.
    pub fn request(&self, id: &str) {
        if let Some(slot) = lock(&self.slots).get(id) {
            slot.requested.notify_one();
        }
    }
}

impl Slot {
    /// Resolves once a start has been requested.
    pub async fn requested(&self) {
        self.requested.notified().await;
    }

    /// Keeps the outcome of the START sent ahead, for the actor's start.
    pub fn set_release(&self, release: Release) {
        *lock(&self.release) = Some(release);
    }

    /// The outcome of the START sent ahead, if one was.
    pub fn take_release(&self) -> Option<Release> {
        lock(&self.release).take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_reaches_only_an_open_set_up_even_if_made_before_it_waits() {
        let starts = EarlyStarts::default();
        starts.request("c");
        assert!(!starts.preparing("c"));
        let slot = starts.open("c");
        assert!(starts.preparing("c"));
        // Made before anyone waits: the permit is kept.
        starts.request("c");
        tokio::time::timeout(std::time::Duration::from_secs(5), slot.requested())
            .await
            .expect("the request is seen");
        let (tx, rx) = oneshot::channel();
        slot.set_release(rx);
        tx.send(Ok(())).unwrap();
        assert_eq!(slot.take_release().unwrap().await.unwrap(), Ok(()));
        assert!(slot.take_release().is_none());
        starts.close("c");
        assert!(!starts.preparing("c"));
    }
}

//! Registry verbs of the agent: `pull` and `push` (progress streamed to the caller), `login`, and
//! the pull a `create` makes when this node lacks the image (the image must be on the node that
//! runs the container, so the node pulls, not the CLI). The transfers run on blocking threads;
//! [`PullCoordinator`] makes concurrent pulls of images that share layers fetch each blob once.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use protocol::messages::{
    ApiError, ErrorKind, ImageProgress, PullPolicy, RegistryAuth, RegistryTransfer, Response,
};
use protocol::transport::Responder;
use runtime::image::{Digest, ImageError, Reference};
use runtime::registry::{self, Coalesce, Credentials, Fetch, Progress, RegistryError};

use crate::Shared;

type Reply<T> = Result<T, ApiError>;

/// Fetches in flight, by blob digest: the first pull to need a blob fetches it, later ones wait
/// for that fetch and then find the blob (and its layer) in the store.
#[derive(Default)]
pub(crate) struct PullCoordinator {
    inflight: Mutex<HashMap<Digest, Arc<Inflight>>>,
}

#[derive(Default)]
struct Inflight {
    done: Mutex<bool>,
    finished: Condvar,
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Marks a fetch finished (also when it failed or panicked) and wakes its waiters.
struct Release<'a> {
    coordinator: &'a PullCoordinator,
    blob: &'a Digest,
    slot: Arc<Inflight>,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        relock(&self.coordinator.inflight).remove(self.blob);
        *relock(&self.slot.done) = true;
        self.slot.finished.notify_all();
    }
}

impl Coalesce for PullCoordinator {
    fn once(
        &self,
        blob: &Digest,
        fetch: &mut dyn FnMut() -> Result<(), RegistryError>,
    ) -> Result<Fetch, RegistryError> {
        let (slot, mine) = {
            let mut map = relock(&self.inflight);
            match map.get(blob) {
                Some(s) => (s.clone(), false),
                None => {
                    let s = Arc::new(Inflight::default());
                    map.insert(blob.clone(), s.clone());
                    (s, true)
                }
            }
        };
        if !mine {
            let mut done = relock(&slot.done);
            while !*done {
                done = slot
                    .finished
                    .wait(done)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            return Ok(Fetch::Waited);
        }
        let _release = Release {
            coordinator: self,
            blob,
            slot,
        };
        fetch().map(|()| Fetch::Done)
    }
}

fn credentials(auth: Option<RegistryAuth>) -> Option<Credentials> {
    auth.map(|a| Credentials {
        username: a.username,
        password: a.password,
    })
}

fn progress_message(p: Progress) -> ImageProgress {
    ImageProgress {
        id: p.id,
        status: p.status,
        current: p.current,
        total: p.total,
    }
}

/// The registry client's failure as the caller sees it.
fn api_error(e: RegistryError) -> ApiError {
    let kind = match &e {
        RegistryError::ManifestUnknown { .. } | RegistryError::NoPlatform { .. } => {
            ErrorKind::NotFound
        }
        RegistryError::Unauthorized { .. } => ErrorKind::Forbidden,
        RegistryError::Unreachable { .. } | RegistryError::Status { .. } => ErrorKind::Unavailable,
        RegistryError::Config(_) => ErrorKind::InvalidArgument,
        RegistryError::Store(ImageError::NotFound(_)) => ErrorKind::NotFound,
        RegistryError::Store(ImageError::InvalidReference { .. } | ImageError::Invalid(_)) => {
            ErrorKind::InvalidArgument
        }
        RegistryError::Protocol { .. } | RegistryError::Store(_) => ErrorKind::Internal,
    };
    ApiError::new(kind, e.to_string())
}

fn parse_reference(s: &str) -> Reply<Reference> {
    Reference::parse(s).map_err(|e| ApiError::invalid(e.to_string()))
}

/// Which transfer a streamed verb runs.
#[derive(Clone, Copy)]
enum Direction {
    Pull,
    Push,
}

/// `pull` / `push`: runs the transfer on a blocking thread and streams its progress.
async fn transfer(
    shared: Arc<Shared>,
    req: RegistryTransfer,
    mut responder: Responder,
    direction: Direction,
) {
    let reference = match parse_reference(&req.reference) {
        Ok(r) => r,
        Err(e) => {
            let _ = responder.fail(e).await;
            return;
        }
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::task::spawn_blocking(move || {
        let sink = move |p: Progress| {
            let _ = tx.send(p);
        };
        let creds = credentials(req.auth);
        match direction {
            Direction::Pull => registry::pull(
                &shared.images,
                &shared.registry,
                &reference,
                creds,
                &shared.pulls,
                &sink,
            )
            .map(|_| ()),
            Direction::Push => {
                registry::push(&shared.images, &shared.registry, &reference, creds, &sink)
                    .map(|_| ())
            }
        }
    });
    let mut caller_gone = false;
    while let Some(p) = rx.recv().await {
        // A caller that went away does not stop the transfer: its content is still wanted.
        if !caller_gone
            && responder
                .send(Response::Progress(progress_message(p)))
                .await
                .is_err()
        {
            caller_gone = true;
        }
    }
    let result = match task.await {
        Ok(r) => r.map_err(api_error),
        Err(e) => Err(ApiError::internal(format!("transfer: {e}"))),
    };
    let _ = match result {
        Ok(()) => responder.end().await,
        Err(e) => responder.fail(e).await,
    };
}

/// `pull`.
pub async fn pull(shared: Arc<Shared>, req: RegistryTransfer, responder: Responder) {
    transfer(shared, req, responder, Direction::Pull).await
}

/// `push`.
pub async fn push(shared: Arc<Shared>, req: RegistryTransfer, responder: Responder) {
    transfer(shared, req, responder, Direction::Push).await
}

/// `login`: checks the credentials against the registry; the CLI keeps them.
pub async fn login(shared: &Arc<Shared>, registry: String, auth: RegistryAuth) -> Reply<Response> {
    let shared = Arc::clone(shared);
    tokio::task::spawn_blocking(move || {
        let creds = Credentials {
            username: auth.username,
            password: auth.password,
        };
        registry::login(&shared.registry, &registry, creds)
    })
    .await
    .map_err(|e| ApiError::internal(format!("login: {e}")))?
    .map_err(api_error)?;
    Ok(Response::Done)
}

/// A name that is an image id (`sha256:…`, or 12 to 64 hex digits) rather than a reference: never
/// pulled.
fn looks_like_id(image: &str) -> bool {
    let hex = image.strip_prefix("sha256:").unwrap_or(image);
    image.starts_with("sha256:")
        || ((12..=64).contains(&hex.len())
            && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// Before a create: pulls the image if the policy asks and returns the pull's progress lines for
/// the caller to print (empty when nothing was pulled). A failed pull of a missing image fails the
/// create, naming both problems.
pub async fn ensure_image(
    shared: &Arc<Shared>,
    image: &str,
    policy: PullPolicy,
    auth: Option<RegistryAuth>,
) -> Reply<Vec<ImageProgress>> {
    if policy == PullPolicy::Never || looks_like_id(image) {
        return Ok(Vec::new());
    }
    let shared = Arc::clone(shared);
    let image = image.to_string();
    tokio::task::spawn_blocking(move || {
        let missing = matches!(shared.images.resolve(&image), Err(ImageError::NotFound(_)));
        if policy == PullPolicy::Missing && !missing {
            return Ok(Vec::new());
        }
        let reference = parse_reference(&image)?;
        let lines = Mutex::new(Vec::new());
        let sink = |p: Progress| {
            if p.current.is_none() {
                relock(&lines).push(progress_message(p));
            }
        };
        registry::pull(
            &shared.images,
            &shared.registry,
            &reference,
            credentials(auth),
            &shared.pulls,
            &sink,
        )
        .map_err(|e| {
            let e = api_error(e);
            if missing {
                ApiError::new(
                    e.kind,
                    format!("no such image: {image}: pulling it failed: {}", e.message),
                )
            } else {
                e
            }
        })?;
        Ok(lines.into_inner().unwrap_or_else(|p| p.into_inner()))
    })
    .await
    .map_err(|e| ApiError::internal(format!("pull: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn concurrent_claims_of_one_blob_run_one_fetch() {
        let c = PullCoordinator::default();
        let blob = Digest::of(b"layer");
        let runs = AtomicUsize::new(0);
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|s| {
            let (c, blob, runs) = (&c, &blob, &runs);
            let first = s.spawn(move || {
                c.once(blob, &mut || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    started_tx.send(()).unwrap();
                    go_rx.recv().unwrap();
                    Ok(())
                })
                .unwrap()
            });
            started_rx.recv().unwrap();
            let second = s.spawn(move || {
                c.once(blob, &mut || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                })
                .unwrap()
            });
            // Once the second claim holds the in-flight slot (map + first + second), it can only
            // wait for the first fetch.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while relock(&c.inflight).get(blob).map(Arc::strong_count) != Some(3) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "second claim never came"
                );
                std::thread::yield_now();
            }
            go_tx.send(()).unwrap();
            assert_eq!(first.join().unwrap(), Fetch::Done);
            assert_eq!(second.join().unwrap(), Fetch::Waited);
        });
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(relock(&c.inflight).is_empty());
        // A failed fetch releases the blob for the next claim.
        let e = c.once(&blob, &mut || Err(RegistryError::Config("boom".into())));
        assert!(e.is_err());
        assert_eq!(c.once(&blob, &mut || Ok(())).unwrap(), Fetch::Done);
    }

    #[test]
    fn ids_are_never_pulled() {
        assert!(looks_like_id("sha256:abc"));
        assert!(looks_like_id("0123456789ab"));
        assert!(!looks_like_id("busybox"));
        assert!(!looks_like_id("127.0.0.1:5000/x:1"));
    }
}

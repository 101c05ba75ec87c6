//! The container lifecycle state machine, pure and I/O-free: `Created → Running ⇄ Paused`,
//! `Running → Exited`, `Exited → Running`, any non-running state `→ Removed`. An illegal transition is
//! a typed error that names the container, never a panic and never a silent no-op.

use protocol::messages::{ApiError, ContainerStatus};
use serde::{Deserialize, Serialize};

/// Where a container is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Created,
    Running,
    Paused,
    Exited,
    Removed,
}

/// What is asked of a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Start,
    Pause,
    Unpause,
    /// The main process ended (exit, stop, kill).
    Exit,
    Remove {
        force: bool,
    },
}

/// An illegal transition, with the wording Docker users know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("container {0} is already running")]
    AlreadyRunning(String),
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("container {0} is paused, unpause it first")]
    Paused(String),
    #[error("container {0} is not paused")]
    NotPaused(String),
    #[error("you cannot remove a running container {0}: stop it first or use --force")]
    RemoveRunning(String),
    #[error("container {0} is being removed")]
    Removed(String),
}

impl From<TransitionError> for ApiError {
    fn from(e: TransitionError) -> Self {
        let msg = e.to_string();
        match e {
            TransitionError::AlreadyRunning(_) => {
                ApiError::new(protocol::messages::ErrorKind::AlreadyRunning, msg)
            }
            TransitionError::NotRunning(_) | TransitionError::NotPaused(_) => {
                ApiError::not_running(msg)
            }
            _ => ApiError::conflict(msg),
        }
    }
}

impl State {
    /// The state after `event`, or why it cannot happen. `name` is only used for the message.
    pub fn next(self, event: Event, name: &str) -> Result<State, TransitionError> {
        use Event::*;
        use State::*;
        let n = || name.to_owned();
        match (self, event) {
            (Removed, _) => Err(TransitionError::Removed(n())),
            (Created | Exited, Start) => Ok(Running),
            (Running, Start) => Err(TransitionError::AlreadyRunning(n())),
            (Paused, Start) => Err(TransitionError::Paused(n())),
            (Running, Pause) => Ok(Paused),
            (Paused, Pause) => Err(TransitionError::Paused(n())),
            (_, Pause) => Err(TransitionError::NotRunning(n())),
            (Paused, Unpause) => Ok(Running),
            (_, Unpause) => Err(TransitionError::NotPaused(n())),
            (Running | Paused, Exit) => Ok(Exited),
            (_, Exit) => Err(TransitionError::NotRunning(n())),
            (Running | Paused, Remove { force: false }) => Err(TransitionError::RemoveRunning(n())),
            (_, Remove { .. }) => Ok(Removed),
        }
    }

    pub fn is_running(self) -> bool {
        matches!(self, State::Running | State::Paused)
    }

    /// Whether a container the agent finds in this state after a restart, with its monitor gone,
    /// ended while the agent was down. A created one that left an exit file was started: the agent
    /// stopped after releasing it and before recording that it ran.
    pub fn ended_while_away(self, exit_file: bool) -> bool {
        self.is_running() || (self == State::Created && exit_file)
    }

    /// The status Docker prints.
    pub fn status(self) -> ContainerStatus {
        match self {
            State::Created => ContainerStatus::Created,
            State::Running => ContainerStatus::Running,
            State::Paused => ContainerStatus::Paused,
            State::Exited => ContainerStatus::Exited,
            State::Removed => ContainerStatus::Removing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Event::*;
    use super::State::*;
    use super::*;

    #[test]
    fn an_exit_found_after_a_restart() {
        assert!(Running.ended_while_away(false));
        assert!(Paused.ended_while_away(true));
        assert!(Created.ended_while_away(true));
        assert!(!Created.ended_while_away(false));
        assert!(!Exited.ended_while_away(true));
    }

    #[test]
    fn legal_transitions() {
        assert_eq!(Created.next(Start, "c"), Ok(Running));
        assert_eq!(Running.next(Pause, "c"), Ok(Paused));
        assert_eq!(Paused.next(Unpause, "c"), Ok(Running));
        assert_eq!(Running.next(Exit, "c"), Ok(Exited));
        assert_eq!(Paused.next(Exit, "c"), Ok(Exited));
        assert_eq!(Exited.next(Start, "c"), Ok(Running));
        assert_eq!(Created.next(Remove { force: false }, "c"), Ok(Removed));
        assert_eq!(Exited.next(Remove { force: false }, "c"), Ok(Removed));
        assert_eq!(Running.next(Remove { force: true }, "c"), Ok(Removed));
    }

    #[test]
    fn illegal_transitions_name_the_container() {
        let e = Running.next(Start, "web").unwrap_err();
        assert_eq!(e.to_string(), "container web is already running");
        assert_eq!(
            Exited.next(Pause, "web").unwrap_err(),
            TransitionError::NotRunning("web".into())
        );
        assert_eq!(
            Running.next(Unpause, "web").unwrap_err(),
            TransitionError::NotPaused("web".into())
        );
        assert!(matches!(
            Running.next(Remove { force: false }, "web"),
            Err(TransitionError::RemoveRunning(_))
        ));
        assert!(matches!(
            Removed.next(Start, "web"),
            Err(TransitionError::Removed(_))
        ));
        assert!(matches!(
            Created.next(Exit, "web"),
            Err(TransitionError::NotRunning(_))
        ));
    }

    #[test]
    fn every_pair_is_decided() {
        let states = [Created, Running, Paused, Exited, Removed];
        let events = [
            Start,
            Pause,
            Unpause,
            Exit,
            Remove { force: false },
            Remove { force: true },
        ];
        for s in states {
            for e in events {
                // Total: every combination answers, and removal is final.
                let r = s.next(e, "x");
                if s == Removed {
                    assert!(r.is_err());
                }
            }
        }
    }
}

//! Every message that crosses a process boundary: the connection handshake, the request and
//! response enums of the engine's verbs, agent-to-controller events, the join exchange, and the
//! errors carried on the wire.
//!
//! The same [`Request`]/[`Response`] pair is used CLI → controller and controller → agent: the
//! controller forwards a request unchanged to the agent that owns the container.
//!
//! Wire rules (see the crate docs for the stream layout):
//! - one request per bidirectional stream, sent as the first frame by the side that opened it;
//! - answers are [`ResponseFrame`]s: a single answer is one frame; a streamed answer is a sequence
//!   of [`ResponseFrame::Item`] closed by [`ResponseFrame::End`] (or [`ResponseFrame::Error`]);
//! - exec/attach answer one header frame ([`Response::Session`]) and then the stream carries raw
//!   bytes (see [`crate::session`]); uploads (import, load, cp in) send raw bytes after their
//!   request frame; downloads (save, export, cp out) answer a header frame and then raw bytes.
//!
//! Types here are plain data with serde derives. Field names follow Docker's JSON where a type is
//! printed by `inspect`/`ps --format json`, so the CLI can print them directly. The payload format
//! is not self-describing, so these types avoid serde attributes that need one (`flatten`,
//! `untagged`, internally tagged enums, `skip_serializing_if`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The protocol version this build speaks. Bumped on any incompatible change to the types in this
/// module; peers with different versions refuse each other in the handshake.
pub const PROTOCOL_VERSION: u32 = 2;

// ---------------------------------------------------------------------------------------------
// Handshake
// ---------------------------------------------------------------------------------------------

/// What kind of process sits at the other end of a connection. Also written into certificates,
/// so a node cannot claim a role its certificate was not issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The cluster controller (scheduler, cluster state, client API).
    Controller,
    /// A per-host agent running containers.
    Agent,
    /// An administrative client (the `berth` CLI).
    Client,
}

impl Role {
    /// The lowercase name used in certificates and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Controller => "controller",
            Role::Agent => "agent",
            Role::Client => "client",
        }
    }

    /// Parses the name written by [`Role::as_str`].
    pub fn from_name(s: &str) -> Option<Role> {
        match s {
            "controller" => Some(Role::Controller),
            "agent" => Some(Role::Agent),
            "client" => Some(Role::Client),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first frame on the first stream of every connection, sent by the dialing side and answered
/// with a [`HelloReply`]. Nothing else is served on a connection before it succeeds.
///
/// The layout is frozen: `version` must stay the first field so a peer of any version can read it
/// and answer with a clear mismatch error; new information goes into `features`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the sender.
    pub version: u32,
    /// The sender's role; must match its certificate.
    pub role: Role,
    /// The sender's node (or client) name; must match its certificate.
    pub node_name: String,
    /// Free-form software version (e.g. "berth 0.1.0") for logs and `info`.
    pub software: String,
    /// Optional capabilities, for additions that do not need a version bump.
    pub features: Vec<String>,
}

impl Hello {
    /// A hello for this build's protocol version.
    pub fn new(role: Role, node_name: impl Into<String>) -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            role,
            node_name: node_name.into(),
            software: concat!("berth ", env!("CARGO_PKG_VERSION")).to_string(),
            features: Vec::new(),
        }
    }
}

/// The answer to a [`Hello`]. Frozen layout, like `Hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelloReply {
    /// Accepted; carries the accepting side's own hello.
    Welcome(Hello),
    /// Refused (version mismatch, identity mismatch...). `version` is the refusing side's
    /// protocol version so the dialer can report a mismatch precisely.
    Refused {
        /// The refusing side's [`PROTOCOL_VERSION`].
        version: u32,
        /// Why.
        error: ApiError,
    },
}

// ---------------------------------------------------------------------------------------------
// Errors on the wire
// ---------------------------------------------------------------------------------------------

/// The class of a failed request, so the CLI can choose an exit code and wording without parsing
/// messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The named container, volume, image, node or session does not exist.
    NotFound,
    /// The request conflicts with current state (name in use, container running on remove...).
    Conflict,
    /// The request itself is wrong (bad flag value, malformed frame, bad reference).
    InvalidArgument,
    /// The operation needs a running container and it is not running.
    NotRunning,
    /// The operation needs a stopped container and it is running.
    AlreadyRunning,
    /// The caller's role or identity may not do this.
    Forbidden,
    /// The owning node is down or unreachable.
    Unavailable,
    /// The peers speak different protocol versions.
    VersionMismatch,
    /// The verb is known but not supported by this node.
    Unsupported,
    /// A fault inside berth.
    Internal,
}

impl ErrorKind {
    /// A short stable name, for logs and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::NotRunning => "not running",
            ErrorKind::AlreadyRunning => "already running",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::VersionMismatch => "version mismatch",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Internal => "internal error",
        }
    }
}

/// A request's failure as sent to the caller: a kind for programs and one line for people
/// (`no such container: web`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The class of failure.
    pub kind: ErrorKind,
    /// One line naming the object and the problem.
    pub message: String,
}

impl ApiError {
    /// An error of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: message.into(),
        }
    }
    /// Shorthand for [`ErrorKind::NotFound`].
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::NotFound, message)
    }
    /// Shorthand for [`ErrorKind::Conflict`].
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::Conflict, message)
    }
    /// Shorthand for [`ErrorKind::InvalidArgument`].
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::InvalidArgument, message)
    }
    /// Shorthand for [`ErrorKind::NotRunning`].
    pub fn not_running(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::NotRunning, message)
    }
    /// Shorthand for [`ErrorKind::Internal`].
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::Internal, message)
    }
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// How a request is answered on its stream; lets generic code (the controller's forwarder, the
/// CLI) pick the right reading loop without knowing each verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerShape {
    /// One [`ResponseFrame`].
    Single,
    /// [`ResponseFrame::Item`]s until [`ResponseFrame::End`] or [`ResponseFrame::Error`].
    Stream,
    /// One header frame, then raw bytes in both directions (exec, attach).
    Raw,
    /// The caller sends raw bytes after its request frame, then gets one [`ResponseFrame`].
    Upload,
    /// One header frame ([`Response::Download`]), then raw bytes up to the end of the stream; a
    /// stream reset instead of a clean end means the download failed (save, export, cp out).
    Download,
}

/// A verb of the engine. A name or id (or unique id prefix) is accepted wherever a container is
/// named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Node or cluster information. Answer: [`Response::Info`].
    Info,
    /// Application heartbeat. Answer: [`Response::Pong`].
    Ping,
    /// Create a container. Answer: [`Response::Created`].
    Create(Box<ContainerConfig>),
    /// Start a created or exited container. Answer: [`Response::Done`].
    Start {
        /// Container name or id.
        container: String,
    },
    /// Stop with the stop signal, then SIGKILL after the timeout. Answer: [`Response::Done`].
    Stop {
        /// Container name or id.
        container: String,
        /// Seconds to wait before killing; `None` uses the container's stop timeout.
        timeout: Option<u32>,
    },
    /// Send a signal. Answer: [`Response::Done`].
    Kill {
        /// Container name or id.
        container: String,
        /// Signal name or number ("KILL", "SIGTERM", "9"); `None` means SIGKILL.
        signal: Option<String>,
    },
    /// Remove a container. Answer: [`Response::Done`].
    Remove {
        /// Container name or id.
        container: String,
        /// Kill it first if running.
        force: bool,
        /// Also remove its anonymous volumes.
        volumes: bool,
    },
    /// Stop then start. Answer: [`Response::Done`].
    Restart {
        /// Container name or id.
        container: String,
        /// As for [`Request::Stop`].
        timeout: Option<u32>,
    },
    /// Freeze all processes. Answer: [`Response::Done`].
    Pause {
        /// Container name or id.
        container: String,
    },
    /// Thaw. Answer: [`Response::Done`].
    Unpause {
        /// Container name or id.
        container: String,
    },
    /// List containers (`ps`). Answer: [`Response::Containers`].
    List(ListOptions),
    /// Details of one container. Answer: [`Response::Inspect`].
    Inspect {
        /// Container name or id.
        container: String,
    },
    /// Container output. Answer: stream of [`Response::Log`].
    Logs {
        /// Container name or id.
        container: String,
        /// What to send.
        options: LogsOptions,
    },
    /// Block until the container stops. Answer: [`Response::Exited`].
    Wait {
        /// Container name or id.
        container: String,
        /// Which state to wait for.
        condition: WaitCondition,
    },
    /// Run a process in a running container. Answer: [`Response::Session`] header then raw bytes
    /// (or just the header when `config.detach`).
    Exec {
        /// Container name or id.
        container: String,
        /// The process to run.
        config: ExecConfig,
    },
    /// Attach to the main process's stdio. Answer: [`Response::Session`] header then raw bytes.
    Attach {
        /// Container name or id.
        container: String,
        /// Which streams.
        options: AttachOptions,
    },
    /// Resize the terminal of an exec/attach session. Sent on its own stream, never inside the
    /// session's raw byte stream. Answer: [`Response::Done`].
    Resize {
        /// Container that owns the session (lets the controller route it).
        container: String,
        /// The session, from its [`SessionHeader`].
        session: String,
        /// New size.
        size: WindowSize,
    },
    /// Processes of a container (`top`). Answer: [`Response::Top`].
    Top {
        /// Container name or id.
        container: String,
        /// `ps` options, e.g. "-ef"; `None` uses the default.
        ps_args: Option<String>,
    },
    /// Resource usage. Answer: [`Response::Stats`] once, or a stream of them when `stream`.
    Stats {
        /// Container name or id.
        container: String,
        /// Keep sending (about once a second) until the caller closes the stream.
        stream: bool,
    },
    /// Filesystem changes against the image. Answer: [`Response::Changes`].
    Diff {
        /// Container name or id.
        container: String,
    },
    /// Rename a container. Answer: [`Response::Done`].
    Rename {
        /// Container name or id.
        container: String,
        /// The new name.
        new_name: String,
    },
    /// Remove all stopped containers. Answer: [`Response::Pruned`].
    ContainerPrune {
        /// Docker-style filters (`until`, `label`).
        filters: Filters,
    },
    /// Volume verbs.
    Volume(VolumeRequest),
    /// Network verbs.
    Network(NetworkRequest),
    /// Import a root filesystem tarball as an image; the tarball follows the request frame as raw
    /// bytes up to the end of the caller's send side. Answer: [`Response::ImageImported`].
    ImportImage(ImportImage),
    /// List images. Answer: [`Response::Images`].
    ListImages {
        /// Include intermediate images.
        all: bool,
        /// Docker-style filters.
        filters: Filters,
    },
    /// Pull an image from its registry. Answer: stream of [`Response::Progress`].
    Pull(RegistryTransfer),
    /// Push a stored image to its registry. Answer: stream of [`Response::Progress`].
    Push(RegistryTransfer),
    /// Check credentials against a registry (`login`). Answer: [`Response::Done`].
    Login {
        /// `HOST[:PORT]`.
        registry: String,
        /// The credentials to check.
        auth: RegistryAuth,
    },
    /// Load images from a docker-archive or OCI layout archive that follows the request frame as
    /// raw bytes. Answer: [`Response::ImagesLoaded`].
    LoadImage,
    /// Write images (references or ids) as one archive. Answer: [`Response::Download`], then the
    /// archive's raw bytes.
    SaveImages {
        /// What to save.
        images: Vec<String>,
    },
    /// Remove an image reference or an image (`rmi`). Answer: [`Response::ImagesDeleted`].
    RemoveImage {
        /// Reference, id or id prefix.
        image: String,
        /// Remove even when containers use it or it has several references.
        force: bool,
    },
    /// Point a new reference at an image (`tag`). Answer: [`Response::Done`].
    TagImage {
        /// The image (reference or id).
        source: String,
        /// The new `name[:tag]`.
        target: String,
    },
    /// Details of an image. Answer: [`Response::ImageInspect`].
    InspectImage {
        /// Reference or id.
        image: String,
    },
    /// The history of an image. Answer: [`Response::History`].
    ImageHistory {
        /// Reference or id.
        image: String,
    },
    /// Remove unused images: dangling ones, or with `all` every image no container uses. Answer:
    /// [`Response::ImagesDeleted`].
    ImagePrune {
        /// Not only dangling images.
        all: bool,
        /// Docker-style filters.
        filters: Filters,
    },
    /// Make an image from a container's changes. Answer: [`Response::Committed`].
    Commit {
        /// Container name or id.
        container: String,
        /// Name, message, author and changes.
        options: CommitOptions,
    },
    /// The container's file system as a tar. Answer: [`Response::Download`], then the tar.
    Export {
        /// Container name or id.
        container: String,
    },
    /// A path of the container as a tar whose one top-level entry is the path's last component.
    /// Answer: [`Response::Download`], then the tar.
    CopyFrom {
        /// Container name or id.
        container: String,
        /// Absolute path in the container.
        path: String,
    },
    /// Unpack the tar that follows the request frame at a path of the container. Answer:
    /// [`Response::Done`].
    CopyTo {
        /// Container name or id.
        container: String,
        /// Destination in the container: an existing directory receives the archive's entries;
        /// otherwise the archive's single top-level entry becomes this path.
        path: String,
        /// The archive came from the user as is (`cp - c:/dir`): the destination must be a
        /// directory.
        into_dir_only: bool,
    },
    /// Fleet or node events (`events`). Answer: stream of [`Response::Event`].
    Events {
        /// Only events at or after this time (unix nanoseconds).
        since: Option<i64>,
        /// Docker-style filters.
        filters: Filters,
    },
    /// Agent → controller: a state change or a full snapshot. Answer: [`Response::Done`].
    Report(AgentEvent),
}

impl Request {
    /// How this request is answered.
    pub fn answer_shape(&self) -> AnswerShape {
        match self {
            Request::Logs { .. } | Request::Events { .. } => AnswerShape::Stream,
            Request::Pull(_) | Request::Push(_) => AnswerShape::Stream,
            Request::Stats { stream: true, .. } => AnswerShape::Stream,
            Request::Exec { config, .. } if !config.detach => AnswerShape::Raw,
            Request::Attach { .. } => AnswerShape::Raw,
            Request::ImportImage(_) | Request::LoadImage | Request::CopyTo { .. } => {
                AnswerShape::Upload
            }
            Request::SaveImages { .. } | Request::Export { .. } | Request::CopyFrom { .. } => {
                AnswerShape::Download
            }
            _ => AnswerShape::Single,
        }
    }

    /// The container this request is about, if any: what the controller routes on.
    pub fn container(&self) -> Option<&str> {
        match self {
            Request::Start { container }
            | Request::Stop { container, .. }
            | Request::Kill { container, .. }
            | Request::Remove { container, .. }
            | Request::Restart { container, .. }
            | Request::Pause { container }
            | Request::Unpause { container }
            | Request::Inspect { container }
            | Request::Logs { container, .. }
            | Request::Wait { container, .. }
            | Request::Exec { container, .. }
            | Request::Attach { container, .. }
            | Request::Resize { container, .. }
            | Request::Top { container, .. }
            | Request::Stats { container, .. }
            | Request::Diff { container }
            | Request::Rename { container, .. }
            | Request::Commit { container, .. }
            | Request::Export { container }
            | Request::CopyFrom { container, .. }
            | Request::CopyTo { container, .. } => Some(container),
            _ => None,
        }
    }

    /// A short verb name for logs ("start", "logs"...), never containing user data.
    pub fn verb(&self) -> &'static str {
        match self {
            Request::Info => "info",
            Request::Ping => "ping",
            Request::Create(_) => "create",
            Request::Start { .. } => "start",
            Request::Stop { .. } => "stop",
            Request::Kill { .. } => "kill",
            Request::Remove { .. } => "rm",
            Request::Restart { .. } => "restart",
            Request::Pause { .. } => "pause",
            Request::Unpause { .. } => "unpause",
            Request::List(_) => "ps",
            Request::Inspect { .. } => "inspect",
            Request::Logs { .. } => "logs",
            Request::Wait { .. } => "wait",
            Request::Exec { .. } => "exec",
            Request::Attach { .. } => "attach",
            Request::Resize { .. } => "resize",
            Request::Top { .. } => "top",
            Request::Stats { .. } => "stats",
            Request::Diff { .. } => "diff",
            Request::Rename { .. } => "rename",
            Request::ContainerPrune { .. } => "container prune",
            Request::Volume(v) => match v {
                VolumeRequest::Create { .. } => "volume create",
                VolumeRequest::List { .. } => "volume ls",
                VolumeRequest::Inspect { .. } => "volume inspect",
                VolumeRequest::Remove { .. } => "volume rm",
                VolumeRequest::Prune { .. } => "volume prune",
            },
            Request::Network(n) => match n {
                NetworkRequest::Create { .. } => "network create",
                NetworkRequest::List => "network ls",
                NetworkRequest::Inspect { .. } => "network inspect",
                NetworkRequest::Remove { .. } => "network rm",
                NetworkRequest::Prune => "network prune",
                NetworkRequest::Connect { .. } => "network connect",
                NetworkRequest::Disconnect { .. } => "network disconnect",
            },
            Request::ImportImage(_) => "import",
            Request::ListImages { .. } => "images",
            Request::Pull(_) => "pull",
            Request::Push(_) => "push",
            Request::Login { .. } => "login",
            Request::LoadImage => "load",
            Request::SaveImages { .. } => "save",
            Request::RemoveImage { .. } => "rmi",
            Request::TagImage { .. } => "tag",
            Request::InspectImage { .. } => "image inspect",
            Request::ImageHistory { .. } => "history",
            Request::ImagePrune { .. } => "image prune",
            Request::Commit { .. } => "commit",
            Request::Export { .. } => "export",
            Request::CopyFrom { .. } | Request::CopyTo { .. } => "cp",
            Request::Events { .. } => "events",
            Request::Report(_) => "report",
        }
    }
}

/// Docker-style filters: key → accepted values (`label` → [`a=b`], `status` → [`exited`]).
pub type Filters = BTreeMap<String, Vec<String>>;

/// Options of `ps`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListOptions {
    /// Include stopped containers.
    pub all: bool,
    /// Only the n most recently created.
    pub limit: Option<u32>,
    /// Docker-style filters (`status`, `label`, `name`, `id`, `node`...).
    pub filters: Filters,
}

/// Options of `logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsOptions {
    /// Keep the stream open and send new output.
    pub follow: bool,
    /// Only the last n lines; `None` for all.
    pub tail: Option<u64>,
    /// Prefix lines with their timestamp.
    pub timestamps: bool,
    /// Only output at or after this time (unix nanoseconds).
    pub since: Option<i64>,
    /// Only output before this time (unix nanoseconds).
    pub until: Option<i64>,
    /// Include stdout.
    pub stdout: bool,
    /// Include stderr.
    pub stderr: bool,
}

impl Default for LogsOptions {
    fn default() -> Self {
        LogsOptions {
            follow: false,
            tail: None,
            timestamps: false,
            since: None,
            until: None,
            stdout: true,
            stderr: true,
        }
    }
}

/// What `wait` waits for (Docker's `condition`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum WaitCondition {
    /// The container is not running (returns at once if already stopped).
    #[default]
    NotRunning,
    /// The next exit after this request.
    NextExit,
    /// The container is removed.
    Removed,
}

/// A terminal size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSize {
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// The process `exec` runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecConfig {
    /// Program and arguments.
    pub cmd: Vec<String>,
    /// Extra environment, `KEY=value`.
    pub env: Vec<String>,
    /// Working directory inside the container.
    pub working_dir: Option<String>,
    /// `user[:group]` to run as.
    pub user: Option<String>,
    /// Allocate a pseudo-terminal.
    pub tty: bool,
    /// Initial terminal size when `tty`; later changes use [`Request::Resize`].
    pub tty_size: Option<WindowSize>,
    /// Forward the caller's stdin.
    pub attach_stdin: bool,
    /// Send stdout.
    pub attach_stdout: bool,
    /// Send stderr.
    pub attach_stderr: bool,
    /// Start and return at once (`exec -d`): only the header frame is sent.
    pub detach: bool,
    /// Give the process extended privileges.
    pub privileged: bool,
}

/// Options of `attach`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachOptions {
    /// Forward the caller's stdin to the container.
    pub stdin: bool,
    /// Send stdout.
    pub stdout: bool,
    /// Send stderr.
    pub stderr: bool,
    /// Replay recent output before live output (`logs` + attach).
    pub logs: bool,
    /// Key sequence that detaches, e.g. "ctrl-p,ctrl-q"; handled by the CLI.
    pub detach_keys: Option<String>,
    /// Terminal size to apply on attach when the container has a tty.
    pub tty_size: Option<WindowSize>,
    /// Start the container once attached (`run`, `start -a`): one round trip instead of two, and
    /// no output can be missed. A container that cannot be attached before it starts is refused
    /// with `NotRunning` and not started; a failed start is the answer's error.
    pub start: bool,
}

impl Default for AttachOptions {
    fn default() -> Self {
        AttachOptions {
            stdin: false,
            stdout: true,
            stderr: true,
            logs: false,
            detach_keys: None,
            tty_size: None,
            start: false,
        }
    }
}

/// Volume verbs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VolumeRequest {
    /// Create a named volume (a generated name when `None`). Answer: [`Response::Volume`].
    Create {
        /// Volume name.
        name: Option<String>,
        /// Driver, "local" by default.
        driver: Option<String>,
        /// Labels.
        labels: BTreeMap<String, String>,
        /// Driver options.
        options: BTreeMap<String, String>,
    },
    /// List volumes. Answer: [`Response::Volumes`].
    List {
        /// Docker-style filters (`dangling`, `label`, `name`).
        filters: Filters,
    },
    /// One volume. Answer: [`Response::Volume`].
    Inspect {
        /// Volume name.
        name: String,
    },
    /// Remove a volume. Answer: [`Response::Done`].
    Remove {
        /// Volume name.
        name: String,
        /// Remove even if in use by a stopped container.
        force: bool,
    },
    /// Remove unused volumes. Answer: [`Response::Pruned`].
    Prune {
        /// Docker-style filters.
        filters: Filters,
    },
}

/// Network verbs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetworkRequest {
    /// Create a bridge network. Answer: [`Response::Network`].
    Create {
        /// Network name.
        name: String,
        /// `--subnet`; the next free pool when `None`.
        subnet: Option<String>,
    },
    /// List networks. Answer: [`Response::Networks`].
    List,
    /// One network. Answer: [`Response::Network`].
    Inspect {
        /// Network name or id (prefix).
        name: String,
    },
    /// Remove a network that no running container uses. Answer: [`Response::Done`].
    Remove {
        /// Network name or id (prefix).
        name: String,
    },
    /// Remove every user network no container uses. Answer: [`Response::Pruned`].
    Prune,
    /// Attach a running container to a network. Answer: [`Response::Done`].
    Connect {
        /// Network name or id.
        network: String,
        /// Container name or id.
        container: String,
    },
    /// Detach a container from a network. Answer: [`Response::Done`].
    Disconnect {
        /// Network name or id.
        network: String,
        /// Container name or id.
        container: String,
    },
}

/// One container on a network, as `network inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkContainer {
    /// Container name.
    pub name: String,
    /// `172.18.0.2/16`.
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    /// MAC address.
    pub mac_address: String,
}

/// One subnet of a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfig {
    /// `172.18.0.0/16`.
    pub subnet: String,
    /// `172.18.0.1`.
    pub gateway: String,
}

/// `IPAM` of `network inspect`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ipam {
    /// "default".
    pub driver: String,
    /// Its subnets.
    pub config: Vec<IpamConfig>,
}

/// A network as `network ls`/`network inspect` show it (Docker's field names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkInfo {
    /// Name.
    pub name: String,
    /// 64-hex id.
    pub id: String,
    /// RFC 3339 creation time.
    pub created: String,
    /// "local".
    pub scope: String,
    /// "bridge", "host" or "null".
    pub driver: String,
    /// Its address management.
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    /// The Linux bridge carrying it, empty for host/none.
    pub bridge: String,
    /// Containers attached now, by id.
    pub containers: BTreeMap<String, NetworkContainer>,
}

/// Header of `import`: the tarball follows as raw bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportImage {
    /// `name[:tag]` to give the image, if any.
    pub reference: Option<String>,
    /// Dockerfile-like changes (`CMD ["sh"]`, `ENV A=b`) applied to the config.
    pub changes: Vec<String>,
    /// Commit message.
    pub message: Option<String>,
    /// Announced tarball size, when known, for progress and early refusal.
    pub size: Option<u64>,
}

/// Options of `commit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitOptions {
    /// `name[:tag]` for the new image; dangling when `None`.
    pub reference: Option<String>,
    /// `-m`: the history comment.
    pub message: Option<String>,
    /// `-a`: the author.
    pub author: Option<String>,
    /// `-c`: Dockerfile instructions applied to the config (CMD, ENV, ...).
    pub changes: Vec<String>,
    /// `-p` (docker's default): freeze a running container while its layer is read.
    pub pause: bool,
}

// ---------------------------------------------------------------------------------------------
// Container configuration (what `docker run` flags express)
// ---------------------------------------------------------------------------------------------

/// Everything needed to create a container; one field per family of `docker run` flags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// Image reference (`alpine`, `registry:5000/app:1.2`, `sha256:...`).
    pub image: String,
    /// `--name`; generated when `None`.
    pub name: Option<String>,
    /// Command; `None` uses the image's `Cmd`.
    pub cmd: Option<Vec<String>>,
    /// `--entrypoint`; `None` uses the image's, `Some(vec![])` clears it.
    pub entrypoint: Option<Vec<String>>,
    /// `-e KEY=value`, added to the image's environment.
    pub env: Vec<String>,
    /// `-w`.
    pub working_dir: Option<String>,
    /// `-u user[:group]`.
    pub user: Option<String>,
    /// `-h`.
    pub hostname: Option<String>,
    /// `-l key=value`.
    pub labels: BTreeMap<String, String>,
    /// `-v` / `--mount` / `--tmpfs`.
    pub mounts: Vec<MountSpec>,
    /// `-p`.
    pub ports: Vec<PortBinding>,
    /// `-P`: publish every port the image exposes on an ephemeral host port.
    #[serde(default)]
    pub publish_all: bool,
    /// `--restart`.
    pub restart_policy: RestartPolicy,
    /// `-m`, `--cpus`, `--pids-limit`.
    pub resources: Resources,
    /// `--read-only`.
    pub read_only_rootfs: bool,
    /// `--cap-add` (names without the `CAP_` prefix, or `ALL`).
    pub cap_add: Vec<String>,
    /// `--cap-drop`.
    pub cap_drop: Vec<String>,
    /// `--network`.
    pub network: NetworkMode,
    /// `-t`.
    pub tty: bool,
    /// `-i`.
    pub open_stdin: bool,
    /// `--rm`.
    pub auto_remove: bool,
    /// `--stop-signal`; `None` uses the image's or SIGTERM.
    pub stop_signal: Option<String>,
    /// `--stop-timeout` in seconds; `None` means 10.
    pub stop_timeout: Option<u32>,
    /// Cluster placement constraints; ignored on a single host.
    pub placement: Placement,
    /// `--pull`: whether the node pulls the image first.
    pub pull: PullPolicy,
    /// Credentials for the image's registry, used if the node pulls it; never stored.
    pub registry_auth: Option<RegistryAuth>,
}

/// `run --pull`: when the node that runs the container pulls its image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PullPolicy {
    /// Only if the node does not have it (docker's default).
    #[default]
    Missing,
    /// Every time.
    Always,
    /// Never: a missing image fails the create.
    Never,
}

/// A user name and password (or token) for one registry. The CLI keeps them (`login`) and sends
/// them with each request that may reach the registry; the node uses and forgets them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryAuth {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// `pull` and `push`: the image and the credentials for its registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryTransfer {
    /// `name[:tag]` or `name@sha256:…`.
    pub reference: String,
    /// Credentials for the reference's registry, if the user logged in to it.
    pub auth: Option<RegistryAuth>,
}

/// One step of a pull or push, as docker's JSON progress messages: `id` is a layer's short digest
/// or a tag, `status` what happened (`Pull complete`, `Digest: sha256:…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageProgress {
    /// Layer short digest or tag, if the line is about one.
    pub id: Option<String>,
    /// What happened.
    pub status: String,
    /// Bytes done so far, while transferring.
    pub current: Option<u64>,
    /// Bytes in total, while transferring.
    pub total: Option<u64>,
}

/// One mount of a container, typed by where its data lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountSpec {
    /// A named volume, created on first use (`-v data:/var/lib/data`).
    Named {
        /// Volume name.
        name: String,
        /// Path in the container.
        target: String,
        /// Mount read-only.
        read_only: bool,
    },
    /// A host path (`-v /srv/www:/usr/share/nginx/html:ro`).
    Bind {
        /// Absolute host path.
        source: String,
        /// Path in the container.
        target: String,
        /// Mount read-only.
        read_only: bool,
    },
    /// A volume with a generated name, owned by the container (`-v /data`).
    Anonymous {
        /// Path in the container.
        target: String,
    },
    /// A tmpfs (`--tmpfs /run:size=64m`).
    Tmpfs {
        /// Path in the container.
        target: String,
        /// Size limit in bytes.
        size: Option<u64>,
    },
}

impl MountSpec {
    /// The path inside the container.
    pub fn target(&self) -> &str {
        match self {
            MountSpec::Named { target, .. }
            | MountSpec::Bind { target, .. }
            | MountSpec::Anonymous { target }
            | MountSpec::Tmpfs { target, .. } => target,
        }
    }
}

/// A published port (`-p [ip:][hostPort:]containerPort[/proto]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    /// Host address to bind; `None` for all.
    pub host_ip: Option<String>,
    /// Host port; `None` picks a free one.
    pub host_port: Option<u16>,
    /// Port in the container.
    pub container_port: u16,
    /// Transport protocol.
    pub protocol: PortProtocol,
}

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortProtocol {
    /// TCP (the default).
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl PortProtocol {
    /// "tcp" or "udp".
    pub fn as_str(self) -> &'static str {
        match self {
            PortProtocol::Tcp => "tcp",
            PortProtocol::Udp => "udp",
        }
    }
}

/// `--restart`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartPolicy {
    /// Never restart (the default).
    #[default]
    No,
    /// Restart on a non-zero exit, at most `max_retries` times when set.
    OnFailure {
        /// Retry limit; `None` for unlimited.
        max_retries: Option<u32>,
    },
    /// Always restart, including after the daemon restarts.
    Always,
    /// Like `Always`, except after an explicit stop.
    UnlessStopped,
}

impl RestartPolicy {
    /// Docker's name: "no", "on-failure", "always", "unless-stopped".
    pub fn name(&self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure { .. } => "on-failure",
            RestartPolicy::Always => "always",
            RestartPolicy::UnlessStopped => "unless-stopped",
        }
    }
}

/// Resource limits; `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Memory limit in bytes (`-m`).
    pub memory_bytes: Option<u64>,
    /// CPU quota in billionths of a CPU (`--cpus 1.5` = 1_500_000_000).
    pub nano_cpus: Option<u64>,
    /// Maximum number of processes (`--pids-limit`).
    pub pids_limit: Option<i64>,
}

/// `--network`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetworkMode {
    /// Loopback only.
    None,
    /// The host's network namespace.
    Host,
    /// The default bridge.
    #[default]
    Bridge,
    /// A user-defined network.
    Named(String),
}

impl NetworkMode {
    /// Docker's spelling: "none", "host", "bridge" or the network name.
    pub fn name(&self) -> &str {
        match self {
            NetworkMode::None => "none",
            NetworkMode::Host => "host",
            NetworkMode::Bridge => "bridge",
            NetworkMode::Named(n) => n,
        }
    }
}

/// Where in a cluster a container may run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// Run on this node only.
    pub node: Option<String>,
    /// Constraints such as `node.labels.disk==ssd`.
    pub constraints: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

/// One frame of an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ResponseFrame {
    /// The single answer, one item of a streamed answer, or the header of a raw session.
    Item(Response),
    /// The request failed; nothing follows.
    Error(ApiError),
    /// A streamed answer is complete.
    End,
}

/// The successful answers; which one a request gets is documented on each [`Request`] variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// Success with nothing to report.
    Done,
    /// Heartbeat answer.
    Pong,
    /// `info`.
    Info(Box<SystemInfo>),
    /// `create`.
    Created {
        /// Full container id.
        id: String,
        /// Non-fatal warnings to print.
        warnings: Vec<String>,
        /// The progress of the pull the node made first, if it had to pull the image.
        pulled: Vec<ImageProgress>,
    },
    /// `ps`.
    Containers(Vec<ContainerSummary>),
    /// `inspect`.
    Inspect(Box<ContainerInspect>),
    /// One chunk of `logs`.
    Log(LogChunk),
    /// `wait`.
    Exited {
        /// The container's exit code.
        exit_code: i64,
        /// An error from the wait itself, if any.
        error: Option<String>,
    },
    /// Header of an exec/attach session; raw bytes follow.
    Session(SessionHeader),
    /// `top`.
    Top(TopResult),
    /// `stats`.
    Stats(Box<ContainerStats>),
    /// `diff`.
    Changes(Vec<FilesystemChange>),
    /// `container prune`, `volume prune`.
    Pruned {
        /// Ids or names removed.
        deleted: Vec<String>,
        /// Bytes freed.
        space_reclaimed: u64,
    },
    /// `volume create`, `volume inspect`.
    Volume(VolumeInfo),
    /// `volume ls`.
    Volumes {
        /// The volumes.
        volumes: Vec<VolumeInfo>,
        /// Non-fatal warnings (an unreachable node...).
        warnings: Vec<String>,
    },
    /// `network create`, `network inspect`.
    Network(NetworkInfo),
    /// `network ls`.
    Networks(Vec<NetworkInfo>),
    /// `import`.
    ImageImported {
        /// Image id (`sha256:...`).
        id: String,
        /// The reference it was tagged with, if any.
        reference: Option<String>,
    },
    /// `images`.
    Images(Vec<ImageSummary>),
    /// `load`: each image loaded.
    ImagesLoaded(Vec<LoadedImage>),
    /// Header of a download (save, export, cp out); the raw bytes follow.
    Download,
    /// `rmi`, `image prune`.
    ImagesDeleted {
        /// Docker's `Untagged:` / `Deleted:` lines, in order.
        items: Vec<ImageDeleted>,
        /// Bytes freed.
        space_reclaimed: u64,
    },
    /// `image inspect`.
    ImageInspect(Box<ImageInspect>),
    /// `history`: newest first.
    History(Vec<HistoryEntry>),
    /// `commit`.
    Committed {
        /// The new image's id (`sha256:...`).
        id: String,
    },
    /// One item of `events`.
    Event(Event),
    /// One step of `pull` or `push`.
    Progress(ImageProgress),
}

/// Lifecycle state of a container, as Docker names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerStatus {
    /// Created, never started.
    Created,
    /// Running.
    Running,
    /// Frozen.
    Paused,
    /// Being restarted by its restart policy.
    Restarting,
    /// Being removed.
    Removing,
    /// Stopped.
    Exited,
    /// Could not be stopped or removed cleanly.
    Dead,
}

impl ContainerStatus {
    /// Docker's lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerStatus::Created => "created",
            ContainerStatus::Running => "running",
            ContainerStatus::Paused => "paused",
            ContainerStatus::Restarting => "restarting",
            ContainerStatus::Removing => "removing",
            ContainerStatus::Exited => "exited",
            ContainerStatus::Dead => "dead",
        }
    }
}

/// A published port as `ps` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortSummary {
    /// Host address.
    #[serde(rename = "IP")]
    pub ip: Option<String>,
    /// Port in the container.
    pub private_port: u16,
    /// Port on the host, when published.
    pub public_port: Option<u16>,
    /// "tcp" or "udp".
    #[serde(rename = "Type")]
    pub protocol: String,
}

/// One row of `ps`; also the payload of agent state-change events, so the controller answers
/// fleet-wide `ps` from its own copy. Field names follow Docker's `/containers/json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerSummary {
    /// Full id.
    pub id: String,
    /// Names, each with a leading `/` as Docker prints them.
    pub names: Vec<String>,
    /// Image reference as given at create.
    pub image: String,
    /// Resolved image id.
    #[serde(rename = "ImageID")]
    pub image_id: String,
    /// Command line, quoted for display.
    pub command: String,
    /// Creation time, unix seconds.
    pub created: i64,
    /// Published ports.
    pub ports: Vec<PortSummary>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Lifecycle state.
    pub state: ContainerStatus,
    /// Last exit code (meaningful when exited).
    pub exit_code: i64,
    /// Last start, unix seconds; 0 if never started.
    pub started_at: i64,
    /// Last exit, unix seconds; 0 if never exited.
    pub finished_at: i64,
    /// Node running the container.
    pub node: String,
}

/// `State` of `inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerState {
    /// "created", "running", ...
    pub status: ContainerStatus,
    /// Running (true also while paused, as in Docker).
    pub running: bool,
    /// Paused.
    pub paused: bool,
    /// Being restarted by its policy.
    pub restarting: bool,
    /// Killed by the OOM killer.
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    /// Could not be stopped or removed cleanly.
    pub dead: bool,
    /// Host pid of the main process, 0 when not running.
    pub pid: i64,
    /// Last exit code.
    pub exit_code: i64,
    /// Last error from the engine, empty if none.
    pub error: String,
    /// RFC 3339; "0001-01-01T00:00:00Z" if never started.
    pub started_at: String,
    /// RFC 3339; "0001-01-01T00:00:00Z" if never exited.
    pub finished_at: String,
}

/// `Config` of `inspect` (Docker's field names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectConfig {
    /// Hostname.
    pub hostname: String,
    /// User.
    pub user: String,
    /// Stdin kept open.
    pub open_stdin: bool,
    /// Tty allocated.
    pub tty: bool,
    /// Environment, `KEY=value`.
    pub env: Vec<String>,
    /// Command.
    pub cmd: Option<Vec<String>>,
    /// Image reference.
    pub image: String,
    /// Working directory.
    pub working_dir: String,
    /// Entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Stop signal.
    pub stop_signal: Option<String>,
    /// Stop timeout in seconds.
    pub stop_timeout: Option<u32>,
}

impl InspectConfig {
    /// The `Config` section for a container created from `cfg` (before image defaults are merged
    /// in, which the agent does).
    pub fn from_config(cfg: &ContainerConfig) -> InspectConfig {
        InspectConfig {
            hostname: cfg.hostname.clone().unwrap_or_default(),
            user: cfg.user.clone().unwrap_or_default(),
            open_stdin: cfg.open_stdin,
            tty: cfg.tty,
            env: cfg.env.clone(),
            cmd: cfg.cmd.clone(),
            image: cfg.image.clone(),
            working_dir: cfg.working_dir.clone().unwrap_or_default(),
            entrypoint: cfg.entrypoint.clone(),
            labels: cfg.labels.clone(),
            stop_signal: cfg.stop_signal.clone(),
            stop_timeout: cfg.stop_timeout,
        }
    }
}

/// `HostConfig.RestartPolicy` as Docker prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RestartPolicyJson {
    /// "no", "on-failure", "always", "unless-stopped".
    pub name: String,
    /// Retry limit for on-failure, 0 otherwise.
    pub maximum_retry_count: u32,
}

/// One entry of `HostConfig.PortBindings` values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostPort {
    /// Host address, "" for all.
    pub host_ip: String,
    /// Host port, "" when picked by the engine.
    pub host_port: String,
}

/// `HostConfig` of `inspect` (Docker's field names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfig {
    /// Bind and volume mounts in `-v` syntax.
    pub binds: Vec<String>,
    /// "none", "host", "bridge" or a network name.
    pub network_mode: String,
    /// `"80/tcp"` → host bindings.
    pub port_bindings: BTreeMap<String, Vec<HostPort>>,
    /// Restart policy.
    pub restart_policy: RestartPolicyJson,
    /// `--rm`.
    pub auto_remove: bool,
    /// Added capabilities.
    pub cap_add: Vec<String>,
    /// Dropped capabilities.
    pub cap_drop: Vec<String>,
    /// `--read-only`.
    pub readonly_rootfs: bool,
    /// Memory limit in bytes, 0 for none.
    pub memory: u64,
    /// CPU quota in nano-CPUs, 0 for none.
    pub nano_cpus: u64,
    /// Pids limit, `None` for none.
    pub pids_limit: Option<i64>,
    /// tmpfs mounts: target → options.
    pub tmpfs: BTreeMap<String, String>,
}

impl HostConfig {
    /// The `HostConfig` section for a container created from `cfg`.
    pub fn from_config(cfg: &ContainerConfig) -> HostConfig {
        let mut binds = Vec::new();
        let mut tmpfs = BTreeMap::new();
        for m in &cfg.mounts {
            match m {
                MountSpec::Named {
                    name,
                    target,
                    read_only,
                } => binds.push(bind_string(name, target, *read_only)),
                MountSpec::Bind {
                    source,
                    target,
                    read_only,
                } => binds.push(bind_string(source, target, *read_only)),
                MountSpec::Anonymous { .. } => {}
                MountSpec::Tmpfs { target, size } => {
                    let opts = size.map(|s| format!("size={s}")).unwrap_or_default();
                    tmpfs.insert(target.clone(), opts);
                }
            }
        }
        let mut port_bindings: BTreeMap<String, Vec<HostPort>> = BTreeMap::new();
        for p in &cfg.ports {
            port_bindings
                .entry(format!("{}/{}", p.container_port, p.protocol.as_str()))
                .or_default()
                .push(HostPort {
                    host_ip: p.host_ip.clone().unwrap_or_default(),
                    host_port: p.host_port.map(|h| h.to_string()).unwrap_or_default(),
                });
        }
        let maximum_retry_count = match cfg.restart_policy {
            RestartPolicy::OnFailure {
                max_retries: Some(n),
            } => n,
            _ => 0,
        };
        HostConfig {
            binds,
            network_mode: cfg.network.name().to_string(),
            port_bindings,
            restart_policy: RestartPolicyJson {
                name: cfg.restart_policy.name().to_string(),
                maximum_retry_count,
            },
            auto_remove: cfg.auto_remove,
            cap_add: cfg.cap_add.clone(),
            cap_drop: cfg.cap_drop.clone(),
            readonly_rootfs: cfg.read_only_rootfs,
            memory: cfg.resources.memory_bytes.unwrap_or(0),
            nano_cpus: cfg.resources.nano_cpus.unwrap_or(0),
            pids_limit: cfg.resources.pids_limit,
            tmpfs,
        }
    }
}

fn bind_string(source: &str, target: &str, read_only: bool) -> String {
    if read_only {
        format!("{source}:{target}:ro")
    } else {
        format!("{source}:{target}")
    }
}

/// One entry of `Mounts` in `inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountPoint {
    /// "volume", "bind" or "tmpfs".
    #[serde(rename = "Type")]
    pub kind: String,
    /// Volume name; empty for binds.
    pub name: String,
    /// Host path.
    pub source: String,
    /// Path in the container.
    pub destination: String,
    /// Volume driver; empty for binds.
    pub driver: String,
    /// "ro", "rw" or "".
    pub mode: String,
    /// Writable.
    #[serde(rename = "RW")]
    pub rw: bool,
    /// Mount propagation, e.g. "rprivate".
    pub propagation: String,
}

/// `NetworkSettings` essentials of `inspect`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkSettings {
    /// Address on the container's network, empty if none.
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    /// Gateway.
    pub gateway: String,
    /// MAC address.
    pub mac_address: String,
    /// `"80/tcp"` → host bindings actually in force.
    pub ports: BTreeMap<String, Vec<HostPort>>,
    /// Prefix length of `IPAddress`.
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    /// Each network the container is attached to, by name.
    pub networks: BTreeMap<String, EndpointSettings>,
}

/// One network attachment of a container in `inspect` (`NetworkSettings.Networks`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointSettings {
    /// The network's id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// Gateway.
    pub gateway: String,
    /// Address.
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    /// Prefix length.
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    /// MAC address.
    pub mac_address: String,
}

/// `inspect` output, mirroring the main fields of Docker's JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerInspect {
    /// Full id.
    pub id: String,
    /// Name with a leading `/`.
    pub name: String,
    /// RFC 3339 creation time.
    pub created: String,
    /// Path of the main process.
    pub path: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Runtime state.
    pub state: ContainerState,
    /// Resolved image id.
    pub image: String,
    /// Times the restart policy restarted it.
    pub restart_count: u32,
    /// Node running it.
    pub node: String,
    /// Container configuration.
    pub config: InspectConfig,
    /// Host-side configuration.
    pub host_config: HostConfig,
    /// Mounts actually in place.
    pub mounts: Vec<MountPoint>,
    /// Network attachment.
    pub network_settings: NetworkSettings,
}

/// Which output stream a chunk belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputStream {
    /// Standard input (echoed or logged input).
    Stdin,
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One piece of `logs` output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogChunk {
    /// Which stream it was written to.
    pub stream: OutputStream,
    /// When it was written, unix nanoseconds.
    pub timestamp: i64,
    /// The bytes, usually one line with its newline.
    pub data: Vec<u8>,
}

/// The header frame of an exec/attach session; the stream carries raw bytes after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionHeader {
    /// Identifies the session in [`Request::Resize`].
    pub session: String,
    /// A terminal is attached: output is the terminal's byte stream (all as stdout).
    pub tty: bool,
    /// Bytes the caller writes are forwarded to the process's stdin.
    pub stdin: bool,
}

/// `top`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TopResult {
    /// Column titles.
    pub titles: Vec<String>,
    /// One row per process.
    pub processes: Vec<Vec<String>>,
}

/// `stats`, as plain counters; the CLI computes percentages between two samples.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStats {
    /// Container id.
    pub id: String,
    /// Container name.
    pub name: String,
    /// Sample time, unix nanoseconds.
    pub read_at: i64,
    /// Total CPU time of the container, nanoseconds.
    pub cpu_total_ns: u64,
    /// Total CPU time of the host, nanoseconds.
    pub system_cpu_ns: u64,
    /// CPUs online.
    pub online_cpus: u32,
    /// Memory in use, bytes (without page cache).
    pub memory_usage: u64,
    /// Memory limit, bytes.
    pub memory_limit: u64,
    /// Network bytes received.
    pub net_rx_bytes: u64,
    /// Network bytes sent.
    pub net_tx_bytes: u64,
    /// Block bytes read.
    pub block_read_bytes: u64,
    /// Block bytes written.
    pub block_write_bytes: u64,
    /// Processes.
    pub pids: u64,
}

/// Kind of a `diff` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    /// "C".
    Modified,
    /// "A".
    Added,
    /// "D".
    Deleted,
}

/// One line of `diff`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FilesystemChange {
    /// Path in the container.
    pub path: String,
    /// What happened to it.
    pub kind: ChangeKind,
}

/// A volume (`volume inspect` / `volume ls`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeInfo {
    /// Name.
    pub name: String,
    /// Driver.
    pub driver: String,
    /// Host path of the data.
    pub mountpoint: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Driver options.
    pub options: BTreeMap<String, String>,
    /// "local".
    pub scope: String,
    /// Node holding it.
    pub node: String,
}

/// One row of `images`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageSummary {
    /// `sha256:...`.
    pub id: String,
    /// `name:tag` references.
    pub repo_tags: Vec<String>,
    /// `name@sha256:...` references.
    pub repo_digests: Vec<String>,
    /// Creation time, unix seconds.
    pub created: i64,
    /// Size in bytes.
    pub size: u64,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Node holding it.
    pub node: String,
}

/// One image `load` added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadedImage {
    /// `sha256:...`.
    pub id: String,
    /// The names it was loaded under (empty: docker prints the id instead).
    pub repo_tags: Vec<String>,
}

/// One line of `rmi` / `image prune` output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImageDeleted {
    /// A reference removed.
    Untagged(String),
    /// An image id (or layer) deleted.
    Deleted(String),
}

/// `image inspect` of one image, in Docker's terms.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInspect {
    /// `sha256:` of the config.
    pub id: String,
    /// `name:tag` references.
    pub repo_tags: Vec<String>,
    /// `name@sha256:` references (the manifest digest under each repository).
    pub repo_digests: Vec<String>,
    /// RFC 3339, empty when unknown.
    pub created: String,
    /// Author, empty when unset.
    pub author: String,
    /// Bytes of file content in all layers.
    pub size: u64,
    /// `amd64`, ...
    pub architecture: String,
    /// `linux`.
    pub os: String,
    /// The execution defaults.
    pub config: ImageRunConfig,
    /// Diff ids, bottom first.
    pub layers: Vec<String>,
    /// Node holding it.
    pub node: String,
}

/// The execution defaults of an image (Docker's `Config`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRunConfig {
    /// `USER`.
    pub user: String,
    /// `EXPOSE` ports, `80/tcp`.
    pub exposed_ports: Vec<String>,
    /// `KEY=value`.
    pub env: Vec<String>,
    /// `CMD`, `None` when unset.
    pub cmd: Option<Vec<String>>,
    /// `ENTRYPOINT`, `None` when unset.
    pub entrypoint: Option<Vec<String>>,
    /// `VOLUME` paths.
    pub volumes: Vec<String>,
    /// `WORKDIR`.
    pub working_dir: String,
    /// `LABEL`s.
    pub labels: BTreeMap<String, String>,
    /// `STOPSIGNAL`, empty when unset.
    pub stop_signal: String,
}

/// One row of `history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The image id for the top row, `<missing>` below (as docker shows layers of pulled images).
    pub id: String,
    /// Unix seconds; 0 when unknown.
    pub created: i64,
    /// The command that made the step.
    pub created_by: String,
    /// Bytes the step added (0 for a step without a layer).
    pub size: u64,
    /// The comment.
    pub comment: String,
    /// The step made no layer.
    pub empty_layer: bool,
}

/// An item of `events` (Docker's shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// "container", "volume", "image", "node".
    #[serde(rename = "Type")]
    pub kind: String,
    /// "create", "start", "die", ...
    #[serde(rename = "Action")]
    pub action: String,
    /// Id of the object.
    #[serde(rename = "ID")]
    pub actor_id: String,
    /// Attributes (name, image, exitCode...).
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
    /// Node it happened on.
    #[serde(rename = "Node")]
    pub node: String,
    /// Unix nanoseconds.
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

/// `info`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SystemInfo {
    /// Answering node.
    pub name: String,
    /// Software version.
    pub server_version: String,
    /// Protocol version.
    pub protocol_version: u32,
    /// Containers in total.
    pub containers: u64,
    /// Running containers.
    pub containers_running: u64,
    /// Paused containers.
    pub containers_paused: u64,
    /// Stopped containers.
    pub containers_stopped: u64,
    /// Images.
    pub images: u64,
    /// Kernel version.
    pub kernel_version: String,
    /// Operating system.
    pub operating_system: String,
    /// CPU architecture.
    pub architecture: String,
    /// CPUs.
    #[serde(rename = "NCPU")]
    pub ncpu: u32,
    /// Memory in bytes.
    pub mem_total: u64,
    /// Data root.
    pub root_dir: String,
    /// Cluster nodes as the controller sees them; empty on an agent.
    pub nodes: Vec<NodeStatus>,
}

/// A node's health and capacity, sent in heartbeats and listed by `info`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeStatus {
    /// Node name.
    pub name: String,
    /// Addresses it can be reached at.
    pub addresses: Vec<String>,
    /// Node labels used by placement constraints.
    pub labels: BTreeMap<String, String>,
    /// CPUs.
    #[serde(rename = "NCPU")]
    pub ncpu: u32,
    /// Memory in bytes.
    pub mem_total: u64,
    /// Memory reserved by containers' limits.
    pub mem_reserved: u64,
    /// Nano-CPUs reserved by containers' limits.
    pub nano_cpus_reserved: u64,
    /// Running containers.
    pub containers_running: u64,
    /// Image ids present (for image locality in scheduling).
    pub images: Vec<String>,
    /// Up (true) or marked down by the controller.
    pub ready: bool,
}

/// Agent → controller notifications, sent as [`Request::Report`] on streams the agent opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentEvent {
    /// A container changed state (created, started, exited, paused, renamed...).
    ContainerChanged(ContainerSummary),
    /// A container is gone.
    ContainerRemoved {
        /// Its id.
        id: String,
    },
    /// The full list of the agent's containers, sent after (re)connecting so the controller's
    /// copy is reconciled after a partition.
    Snapshot(Vec<ContainerSummary>),
    /// Periodic health and capacity.
    Heartbeat(NodeStatus),
}

// ---------------------------------------------------------------------------------------------
// Join
// ---------------------------------------------------------------------------------------------

/// What a joining agent sends on the join endpoint (see [`crate::tls::JoinToken`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// [`PROTOCOL_VERSION`] of the agent; first field, like in [`Hello`].
    pub version: u32,
    /// The secret half of the join token, hex.
    pub secret: String,
    /// Name the node wants; becomes its certificate's common name and DNS SAN.
    pub node_name: String,
    /// Extra DNS names or IP addresses for the certificate.
    pub addresses: Vec<String>,
    /// PKCS#10 certificate signing request, DER.
    pub csr_der: Vec<u8>,
}

/// The controller's answer to a [`JoinRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinReply {
    /// The signed node certificate (DER) and the CA certificate (DER).
    Accepted {
        /// The agent's new certificate.
        cert_der: Vec<u8>,
        /// The cluster CA certificate.
        ca_der: Vec<u8>,
    },
    /// Refused (bad secret, name taken, bad CSR...).
    Refused(ApiError),
}

// ---------------------------------------------------------------------------------------------
// Time formatting shared by inspect producers
// ---------------------------------------------------------------------------------------------

/// Docker's "zero time", printed for never-started/never-finished containers.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Formats unix nanoseconds as RFC 3339 UTC with nanoseconds, as Docker prints times in inspect;
/// 0 gives [`ZERO_TIME`].
pub fn rfc3339_nanos(unix_nanos: i64) -> String {
    if unix_nanos == 0 {
        return ZERO_TIME.to_string();
    }
    let secs = unix_nanos.div_euclid(1_000_000_000);
    let nanos = unix_nanos.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (era-based day arithmetic).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    fn config() -> ContainerConfig {
        ContainerConfig {
            image: "nginx:1.27".into(),
            name: Some("web".into()),
            cmd: Some(vec!["nginx".into(), "-g".into(), "daemon off;".into()]),
            env: vec!["A=b".into()],
            labels: [("tier".to_string(), "front".to_string())].into(),
            mounts: vec![
                MountSpec::Named {
                    name: "data".into(),
                    target: "/data".into(),
                    read_only: false,
                },
                MountSpec::Bind {
                    source: "/srv/www".into(),
                    target: "/usr/share/nginx/html".into(),
                    read_only: true,
                },
                MountSpec::Anonymous {
                    target: "/cache".into(),
                },
                MountSpec::Tmpfs {
                    target: "/run".into(),
                    size: Some(64 << 20),
                },
            ],
            ports: vec![PortBinding {
                host_ip: None,
                host_port: Some(8080),
                container_port: 80,
                protocol: PortProtocol::Tcp,
            }],
            restart_policy: RestartPolicy::OnFailure {
                max_retries: Some(3),
            },
            resources: Resources {
                memory_bytes: Some(256 << 20),
                nano_cpus: Some(1_500_000_000),
                pids_limit: Some(100),
            },
            cap_add: vec!["NET_ADMIN".into()],
            cap_drop: vec!["MKNOD".into()],
            network: NetworkMode::Named("backend".into()),
            tty: true,
            open_stdin: true,
            auto_remove: true,
            stop_signal: Some("SIGQUIT".into()),
            stop_timeout: Some(5),
            ..Default::default()
        }
    }

    #[test]
    fn requests_round_trip_through_codec() {
        let reqs = vec![
            Request::Info,
            Request::Create(Box::new(config())),
            Request::Stop {
                container: "web".into(),
                timeout: Some(3),
            },
            Request::List(ListOptions {
                all: true,
                limit: Some(5),
                filters: [("status".to_string(), vec!["exited".to_string()])].into(),
            }),
            Request::Logs {
                container: "web".into(),
                options: LogsOptions {
                    follow: true,
                    tail: Some(10),
                    ..Default::default()
                },
            },
            Request::Exec {
                container: "web".into(),
                config: ExecConfig {
                    cmd: vec!["sh".into()],
                    tty: true,
                    tty_size: Some(WindowSize { rows: 24, cols: 80 }),
                    ..Default::default()
                },
            },
            Request::Volume(VolumeRequest::Remove {
                name: "data".into(),
                force: true,
            }),
            Request::ImportImage(ImportImage {
                reference: Some("mine:1".into()),
                ..Default::default()
            }),
        ];
        for r in reqs {
            let bytes = codec::encode(&r).unwrap();
            assert_eq!(codec::decode::<Request>(&bytes).unwrap(), r);
        }
    }

    #[test]
    fn hello_version_is_readable_alone() {
        let h = Hello::new(Role::Agent, "node-1");
        let bytes = codec::encode(&h).unwrap();
        let (v, _) = codec::decode_prefix::<u32>(&bytes).unwrap();
        assert_eq!(v, PROTOCOL_VERSION);
    }

    #[test]
    fn answer_shapes() {
        let logs = Request::Logs {
            container: "a".into(),
            options: LogsOptions::default(),
        };
        assert_eq!(logs.answer_shape(), AnswerShape::Stream);
        assert_eq!(logs.container(), Some("a"));
        let exec_d = Request::Exec {
            container: "a".into(),
            config: ExecConfig {
                detach: true,
                ..Default::default()
            },
        };
        assert_eq!(exec_d.answer_shape(), AnswerShape::Single);
        assert_eq!(
            Request::ImportImage(ImportImage::default()).answer_shape(),
            AnswerShape::Upload
        );
        assert_eq!(Request::Info.answer_shape(), AnswerShape::Single);
        assert_eq!(Request::LoadImage.answer_shape(), AnswerShape::Upload);
        let save = Request::SaveImages {
            images: vec!["busybox".into()],
        };
        assert_eq!(save.answer_shape(), AnswerShape::Download);
        assert_eq!(save.container(), None);
        let cp = Request::CopyFrom {
            container: "web".into(),
            path: "/etc".into(),
        };
        assert_eq!(cp.answer_shape(), AnswerShape::Download);
        assert_eq!(cp.container(), Some("web"));
        let commit = Request::Commit {
            container: "web".into(),
            options: CommitOptions::default(),
        };
        assert_eq!(commit.answer_shape(), AnswerShape::Single);
        assert_eq!(commit.container(), Some("web"));
    }

    #[test]
    fn host_config_mirrors_docker() {
        let hc = HostConfig::from_config(&config());
        assert_eq!(
            hc.binds,
            vec![
                "data:/data".to_string(),
                "/srv/www:/usr/share/nginx/html:ro".to_string()
            ]
        );
        assert_eq!(hc.restart_policy.name, "on-failure");
        assert_eq!(hc.restart_policy.maximum_retry_count, 3);
        assert_eq!(hc.network_mode, "backend");
        assert_eq!(hc.port_bindings["80/tcp"][0].host_port, "8080");
        assert_eq!(hc.tmpfs["/run"], format!("size={}", 64 << 20));
        assert_eq!(hc.memory, 256 << 20);
    }

    #[test]
    fn rfc3339_formatting() {
        assert_eq!(rfc3339_nanos(0), ZERO_TIME);
        assert_eq!(rfc3339_nanos(1), "1970-01-01T00:00:00.000000001Z");
        // 2024-02-29T12:34:56.5Z
        assert_eq!(
            rfc3339_nanos(1_709_210_096_500_000_000),
            "2024-02-29T12:34:56.500000000Z"
        );
        assert_eq!(
            rfc3339_nanos(-1_000_000_000),
            "1969-12-31T23:59:59.000000000Z"
        );
    }

    #[test]
    fn api_error_displays_one_line() {
        let e = ApiError::not_found("no such container: web");
        assert_eq!(e.to_string(), "no such container: web");
        assert_eq!(e.kind.as_str(), "not found");
    }
}

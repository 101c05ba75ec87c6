//! Messages, frame codec and QUIC/mTLS plumbing shared by the CLI, the controller and the agents.
//!
//! Everything that crosses a process boundary in Berth is defined here, and nothing else:
//! this crate holds no business logic.
//!
//! - [`codec`]: length-prefixed, size-limited frames; the only module that knows the payload
//!   format (bincode).
//! - [`known_certs`]: certificate checks made once per certificate, not once per connection.
//! - [`messages`]: the handshake, the request/response enums of every verb, events, join
//!   messages, wire errors, and Docker-shaped data for `ps`/`inspect`.
//! - [`session`]: the raw byte layout of exec/attach streams after their header frame.
//! - [`tls`]: the cluster CA, certificates, join tokens and the rustls configurations.
//! - [`transport`]: quinn endpoints, the connection handshake, and one stream per request.
//!
//! On the wire, a connection carries:
//! ```text
//! stream 0 (dialer-opened):  Hello ─▶   ◀─ HelloReply
//! each request stream:       Request ─▶ ◀─ ResponseFrame::Item            (single answer)
//!                            Request ─▶ ◀─ Item, Item, …, End | Error     (streamed answer)
//!                            Request ─▶ ◀─ Item(Session header), then raw bytes both ways
//!                            Request, raw tarball bytes ─▶ ◀─ Item         (upload)
//! ```

pub mod codec;
pub mod known_certs;
pub mod messages;
pub mod session;
pub mod tls;
pub mod transport;

pub use messages::{ApiError, ErrorKind, Hello, Request, Response, Role, PROTOCOL_VERSION};
pub use transport::{Dialing, Peer, Responder, TransportConfig, TransportError};

//! Messages, frame codec and QUIC/mTLS plumbing shared by the CLI, the controller and the agents.

//! Cluster state, the pure scheduler and the client-facing API.

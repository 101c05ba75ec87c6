//! The per-host daemon: actix actors for the node, its containers, images and networks.

//! Node sessions: which agents are connected, their last heartbeat, and whether a node counts
//! as up. A node whose connection drops stays "ready" for a grace period (it may be a blip, and
//! its containers keep running) and is marked down after it; a connected node whose heartbeats
//! stop is marked down the same way.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use protocol::messages::NodeStatus;
use protocol::Peer;

use crate::scheduler::{NodeId, NodeSnapshot};

/// One agent as the controller sees it.
#[derive(Debug)]
struct NodeEntry {
    /// The live connection, `None` while disconnected.
    peer: Option<Peer>,
    /// Bumped at each connection, so the end of an old connection cannot mark a newer one
    /// disconnected.
    generation: u64,
    /// Last heartbeat's content.
    status: NodeStatus,
    last_heartbeat: Option<Instant>,
    disconnected_at: Option<Instant>,
    /// Whether "marked down" has been logged for the current outage.
    down_logged: bool,
}

/// All nodes that ever connected since the controller started.
#[derive(Debug)]
pub struct NodeRegistry {
    nodes: BTreeMap<String, NodeEntry>,
    next_generation: u64,
    grace: Duration,
    heartbeat_timeout: Duration,
}

impl NodeRegistry {
    /// An empty registry with the given grace period (after a disconnection) and heartbeat
    /// timeout (while connected).
    pub fn new(grace: Duration, heartbeat_timeout: Duration) -> NodeRegistry {
        NodeRegistry {
            nodes: BTreeMap::new(),
            next_generation: 1,
            grace,
            heartbeat_timeout,
        }
    }

    /// Records a new connection of `name`; returns its generation.
    pub fn connected(&mut self, name: &str, peer: Peer) -> u64 {
        let generation = self.next_generation;
        self.next_generation += 1;
        let entry = self
            .nodes
            .entry(name.to_string())
            .or_insert_with(|| NodeEntry {
                peer: None,
                generation,
                status: NodeStatus {
                    name: name.to_string(),
                    ..Default::default()
                },
                last_heartbeat: None,
                disconnected_at: None,
                down_logged: false,
            });
        if let Some(old) = entry.peer.replace(peer) {
            old.close("replaced by a newer connection");
        }
        entry.generation = generation;
        entry.disconnected_at = None;
        entry.down_logged = false;
        entry.last_heartbeat = None;
        generation
    }

    /// Records the end of connection `generation` of `name` (ignored if a newer one exists).
    pub fn disconnected(&mut self, name: &str, generation: u64) -> bool {
        match self.nodes.get_mut(name) {
            Some(e) if e.generation == generation => {
                e.peer = None;
                e.disconnected_at = Some(Instant::now());
                true
            }
            _ => false,
        }
    }

    /// Stores a heartbeat.
    pub fn heartbeat(&mut self, name: &str, status: NodeStatus) {
        if let Some(e) = self.nodes.get_mut(name) {
            e.status = NodeStatus {
                name: name.to_string(),
                ..status
            };
            e.last_heartbeat = Some(Instant::now());
        }
    }

    fn is_ready(&self, e: &NodeEntry, now: Instant) -> bool {
        match (&e.peer, e.disconnected_at) {
            (None, Some(at)) => now.duration_since(at) < self.grace,
            (None, None) => false,
            (Some(_), _) => e
                .last_heartbeat
                .is_none_or(|t| now.duration_since(t) < self.heartbeat_timeout),
        }
    }

    /// The live connection to `name`, if connected.
    pub fn peer(&self, name: &str) -> Option<Peer> {
        self.nodes.get(name).and_then(|e| e.peer.clone())
    }

    /// Names and connections of every connected node.
    pub fn connected_peers(&self) -> Vec<(String, Peer)> {
        self.nodes
            .iter()
            .filter_map(|(n, e)| e.peer.clone().map(|p| (n.clone(), p)))
            .collect()
    }

    /// True when `name` is connected.
    pub fn is_connected(&self, name: &str) -> bool {
        self.nodes.get(name).is_some_and(|e| e.peer.is_some())
    }

    /// Every node's status as `info` lists it (`containers_running` filled by the caller's
    /// counts).
    pub fn statuses(&self, running: impl Fn(&str) -> u64) -> Vec<NodeStatus> {
        let now = Instant::now();
        self.nodes
            .iter()
            .map(|(name, e)| NodeStatus {
                ready: self.is_ready(e, now),
                containers_running: running(name),
                ..e.status.clone()
            })
            .collect()
    }

    /// What the scheduler sees (`containers` filled from the index by the caller).
    pub fn snapshots(&self, containers: impl Fn(&str) -> u64) -> Vec<NodeSnapshot> {
        let now = Instant::now();
        self.nodes
            .iter()
            .map(|(name, e)| NodeSnapshot {
                id: NodeId(name.clone()),
                // A node must be connected to receive work, whatever the grace period says.
                ready: e.peer.is_some() && self.is_ready(e, now),
                labels: e.status.labels.clone(),
                ncpu: e.status.ncpu,
                mem_total: e.status.mem_total,
                mem_reserved: e.status.mem_reserved,
                nano_cpus_reserved: e.status.nano_cpus_reserved,
                containers: containers(name),
                images: e.status.images.clone(),
            })
            .collect()
    }

    /// Nodes that went down since the last call (to log it once per outage).
    pub fn newly_down(&mut self) -> Vec<String> {
        let now = Instant::now();
        let down: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, e)| !e.down_logged && !self.is_ready(e, now))
            .map(|(n, _)| n.clone())
            .collect();
        for n in &down {
            if let Some(e) = self.nodes.get_mut(n) {
                e.down_logged = true;
            }
        }
        down
    }
}

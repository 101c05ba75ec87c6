//! Placement: which node a new container runs on. A pure function of a snapshot of the nodes and
//! the container's configuration, so it can be tested and benchmarked without any I/O.
//!
//! Rules, in order:
//! 1. `placement.node` names the node outright (it must exist and be up);
//! 2. `placement.constraints` (`node.name==X`, `node.labels.KEY==V`, `!=` for both) filter the
//!    nodes that are up;
//! 3. resources: a memory or CPU limit must fit in what the node has left unreserved (a node
//!    that reports no capacity is not filtered);
//! 4. spread: the node with the fewest containers wins; ties go to a node that already holds the
//!    image, then to the smallest name (so the choice is deterministic).

use std::collections::BTreeMap;
use std::fmt;

use protocol::messages::ContainerConfig;

/// A node's identity in the cluster: its name, as written in its certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub String);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the scheduler knows about one node at decision time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSnapshot {
    /// The node.
    pub id: NodeId,
    /// Connected and healthy; a node that is down never receives a container.
    pub ready: bool,
    /// Node labels matched by `node.labels.*` constraints.
    pub labels: BTreeMap<String, String>,
    /// CPUs; 0 when unknown.
    pub ncpu: u32,
    /// Memory in bytes; 0 when unknown.
    pub mem_total: u64,
    /// Memory already promised to containers' limits.
    pub mem_reserved: u64,
    /// Nano-CPUs already promised to containers' limits.
    pub nano_cpus_reserved: u64,
    /// Containers the node holds (any state).
    pub containers: u64,
    /// Image ids and references present on the node.
    pub images: Vec<String>,
}

/// Why no node could be chosen; each variant is one line for the CLI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cluster has no node at all.
    #[error("no node is available to run the container")]
    NoNodes,
    /// `placement.node` names a node the cluster does not have.
    #[error("no such node: {0}")]
    NoSuchNode(String),
    /// `placement.node` names a node that is down.
    #[error("node {0} is down")]
    NodeDown(String),
    /// A constraint cannot be parsed.
    #[error("invalid placement constraint {0:?}: expected node.name==NAME or node.labels.KEY==VALUE (or !=)")]
    BadConstraint(String),
    /// Nodes exist but none fits; says why for each kind of refusal.
    #[error("no node satisfies the placement: {0}")]
    NoMatch(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    Name,
    Label(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Constraint {
    field: Field,
    equal: bool,
    value: String,
}

impl Constraint {
    fn parse(text: &str) -> Result<Constraint, ScheduleError> {
        let bad = || ScheduleError::BadConstraint(text.to_string());
        let (lhs, rhs, equal) = if let Some((l, r)) = text.split_once("==") {
            (l, r, true)
        } else if let Some((l, r)) = text.split_once("!=") {
            (l, r, false)
        } else {
            return Err(bad());
        };
        let lhs = lhs.trim();
        let value = rhs.trim().to_string();
        let field = match lhs {
            "node.name" | "node.hostname" => Field::Name,
            _ => match lhs.strip_prefix("node.labels.") {
                Some(k) if !k.is_empty() => Field::Label(k.to_string()),
                _ => return Err(bad()),
            },
        };
        if value.is_empty() {
            return Err(bad());
        }
        Ok(Constraint {
            field,
            equal,
            value,
        })
    }

    fn holds(&self, node: &NodeSnapshot) -> bool {
        let actual = match &self.field {
            Field::Name => Some(node.id.0.as_str()),
            Field::Label(k) => node.labels.get(k).map(String::as_str),
        };
        (actual == Some(self.value.as_str())) == self.equal
    }
}

/// Why a node was passed over, counted for the error message.
#[derive(Default)]
struct Refusals {
    down: usize,
    constraints: usize,
    memory: usize,
    cpu: usize,
}

impl Refusals {
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (n, what) in [
            (self.down, "down"),
            (self.constraints, "not matching the constraints"),
            (self.memory, "without enough free memory"),
            (self.cpu, "without enough free CPU"),
        ] {
            if n > 0 {
                parts.push(format!("{n} node{} {what}", if n == 1 { "" } else { "s" }));
            }
        }
        parts.join(", ")
    }
}

fn fits(node: &NodeSnapshot, cfg: &ContainerConfig, why: &mut Refusals) -> bool {
    if let Some(mem) = cfg.resources.memory_bytes {
        if node.mem_total > 0 && node.mem_reserved.saturating_add(mem) > node.mem_total {
            why.memory += 1;
            return false;
        }
    }
    if let Some(cpu) = cfg.resources.nano_cpus {
        let total = u64::from(node.ncpu).saturating_mul(1_000_000_000);
        if total > 0 && node.nano_cpus_reserved.saturating_add(cpu) > total {
            why.cpu += 1;
            return false;
        }
    }
    true
}

/// Chooses the node for a new container (see the module docs for the rules).
pub fn schedule(nodes: &[NodeSnapshot], cfg: &ContainerConfig) -> Result<NodeId, ScheduleError> {
    if nodes.is_empty() {
        return Err(ScheduleError::NoNodes);
    }
    let constraints = cfg
        .placement
        .constraints
        .iter()
        .map(|c| Constraint::parse(c))
        .collect::<Result<Vec<_>, _>>()?;
    let mut why = Refusals::default();
    if let Some(wanted) = &cfg.placement.node {
        let node = nodes
            .iter()
            .find(|n| &n.id.0 == wanted)
            .ok_or_else(|| ScheduleError::NoSuchNode(wanted.clone()))?;
        if !node.ready {
            return Err(ScheduleError::NodeDown(wanted.clone()));
        }
        if !constraints.iter().all(|c| c.holds(node)) {
            why.constraints += 1;
            return Err(ScheduleError::NoMatch(why.describe()));
        }
        if !fits(node, cfg, &mut why) {
            return Err(ScheduleError::NoMatch(why.describe()));
        }
        return Ok(node.id.clone());
    }
    let best = nodes
        .iter()
        .filter(|n| {
            if !n.ready {
                why.down += 1;
                return false;
            }
            if !constraints.iter().all(|c| c.holds(n)) {
                why.constraints += 1;
                return false;
            }
            fits(n, cfg, &mut why)
        })
        .min_by(|a, b| {
            let has = |n: &NodeSnapshot| n.images.iter().any(|i| i == &cfg.image);
            a.containers
                .cmp(&b.containers)
                .then_with(|| has(b).cmp(&has(a)))
                .then_with(|| a.id.cmp(&b.id))
        });
    best.map(|n| n.id.clone())
        .ok_or_else(|| ScheduleError::NoMatch(why.describe()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::messages::{Placement, Resources};

    fn node(name: &str, containers: u64) -> NodeSnapshot {
        NodeSnapshot {
            id: NodeId(name.into()),
            ready: true,
            containers,
            ncpu: 4,
            mem_total: 8 << 30,
            ..Default::default()
        }
    }

    fn cfg() -> ContainerConfig {
        ContainerConfig {
            image: "busybox".into(),
            ..Default::default()
        }
    }

    fn placed(placement: Placement) -> ContainerConfig {
        ContainerConfig { placement, ..cfg() }
    }

    #[test]
    fn one_node_is_chosen_trivially() {
        assert_eq!(
            schedule(&[node("solo", 40)], &cfg()),
            Ok(NodeId("solo".into()))
        );
    }

    #[test]
    fn no_nodes_is_an_error() {
        assert_eq!(schedule(&[], &cfg()), Err(ScheduleError::NoNodes));
    }

    #[test]
    fn spread_picks_fewest_containers_then_image_then_name() {
        let nodes = [node("a", 3), node("b", 1), node("c", 1)];
        assert_eq!(schedule(&nodes, &cfg()), Ok(NodeId("b".into())));
        let mut with_image = node("c", 1);
        with_image.images = vec!["busybox".into()];
        let nodes = [node("a", 3), node("b", 1), with_image];
        assert_eq!(schedule(&nodes, &cfg()), Ok(NodeId("c".into())));
    }

    #[test]
    fn down_nodes_are_skipped() {
        let mut down = node("a", 0);
        down.ready = false;
        assert_eq!(
            schedule(&[down.clone(), node("b", 9)], &cfg()),
            Ok(NodeId("b".into()))
        );
        let err = schedule(&[down], &cfg()).unwrap_err();
        assert_eq!(err, ScheduleError::NoMatch("1 node down".into()));
    }

    #[test]
    fn named_node_wins_over_spread() {
        let nodes = [node("a", 0), node("b", 5)];
        let p = Placement {
            node: Some("b".into()),
            constraints: vec![],
        };
        assert_eq!(schedule(&nodes, &placed(p)), Ok(NodeId("b".into())));
        let p = Placement {
            node: Some("zz".into()),
            constraints: vec![],
        };
        assert_eq!(
            schedule(&nodes, &placed(p)),
            Err(ScheduleError::NoSuchNode("zz".into()))
        );
        let mut down = node("b", 0);
        down.ready = false;
        let p = Placement {
            node: Some("b".into()),
            constraints: vec![],
        };
        assert_eq!(
            schedule(&[down], &placed(p)),
            Err(ScheduleError::NodeDown("b".into()))
        );
    }

    #[test]
    fn label_constraints_filter() {
        let mut ssd = node("a", 5);
        ssd.labels.insert("disk".into(), "ssd".into());
        let mut hdd = node("b", 0);
        hdd.labels.insert("disk".into(), "hdd".into());
        let nodes = [ssd, hdd, node("c", 0)];
        let p = |c: &str| Placement {
            node: None,
            constraints: vec![c.into()],
        };
        assert_eq!(
            schedule(&nodes, &placed(p("node.labels.disk==ssd"))),
            Ok(NodeId("a".into()))
        );
        // `!=` also matches nodes without the label.
        assert_eq!(
            schedule(&nodes, &placed(p("node.labels.disk!=hdd"))),
            Ok(NodeId("c".into()))
        );
        assert_eq!(
            schedule(&nodes, &placed(p("node.name==b"))),
            Ok(NodeId("b".into()))
        );
        assert_eq!(
            schedule(&nodes, &placed(p("node.labels.disk==nvme"))),
            Err(ScheduleError::NoMatch(
                "3 nodes not matching the constraints".into()
            ))
        );
        for bad in ["disk=ssd", "node.labels.==x", "node.cpu==4", "node.name=="] {
            assert_eq!(
                schedule(&nodes, &placed(p(bad))),
                Err(ScheduleError::BadConstraint(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn resources_must_fit() {
        let mut full = node("a", 0);
        full.mem_reserved = 8 << 30;
        let mut busy = node("b", 0);
        busy.nano_cpus_reserved = 4_000_000_000;
        let unknown = NodeSnapshot {
            id: NodeId("c".into()),
            ready: true,
            containers: 50,
            ..Default::default()
        };
        let mut c = cfg();
        c.resources = Resources {
            memory_bytes: Some(1 << 30),
            nano_cpus: Some(500_000_000),
            pids_limit: None,
        };
        assert_eq!(
            schedule(&[full.clone(), busy.clone(), unknown], &c),
            Ok(NodeId("c".into()))
        );
        let err = schedule(&[full, busy], &c).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no node satisfies the placement: 1 node without enough free memory, 1 node without enough free CPU"
        );
    }
}

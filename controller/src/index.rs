//! The fleet container index: every container of every node (id, names, node, `ps` summary),
//! kept from the agents' reports, so `ps` across the fleet is a local read and a request naming
//! a container is routed without asking any node.
//!
//! Also resolves what a user typed (full id, name, unique id prefix) to one container, and
//! applies Docker's `ps` options (`-a`, `-n`, `--filter`) to the index.

use std::collections::{HashMap, HashSet, VecDeque};

use protocol::messages::{
    ApiError, ContainerConfig, ContainerStatus, ContainerSummary, ListOptions,
};

/// How many removed ids are remembered, so a state report that overtakes a removal (they travel
/// on different streams) cannot bring a removed container back.
const TOMBSTONES: usize = 4096;

/// The `ps` filter keys understood, as Docker spells them (plus `node`).
pub const FILTER_KEYS: &[&str] = &[
    "id", "name", "label", "status", "exited", "ancestor", "before", "since", "node",
];

/// All containers of the fleet by id.
#[derive(Debug, Default)]
pub struct ContainerIndex {
    by_id: HashMap<String, ContainerSummary>,
    /// When each container was first seen here: orders containers created within the same
    /// second (summaries carry whole seconds), so `ps -n`/`-l` follow creation order.
    seen: HashMap<String, u64>,
    next_seen: u64,
    removed: HashSet<String>,
    removed_order: VecDeque<String>,
}

fn strip_slash(name: &str) -> &str {
    name.strip_prefix('/').unwrap_or(name)
}

/// Quotes a command line for display as Docker's `ps` does: arguments joined by spaces, the
/// whole in double quotes (added by the CLI); here only the join.
fn command_line(cfg: &ContainerConfig) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(ep) = &cfg.entrypoint {
        parts.extend(ep.iter().cloned());
    }
    if let Some(cmd) = &cfg.cmd {
        parts.extend(cmd.iter().cloned());
    }
    parts.join(" ")
}

impl ContainerIndex {
    /// An empty index.
    pub fn new() -> ContainerIndex {
        ContainerIndex::default()
    }

    /// Number of containers known.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when no container is known.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Records a container's new state as reported by `node` (the connection's node, not the
    /// payload's claim, is trusted).
    pub fn upsert(&mut self, node: &str, mut summary: ContainerSummary) {
        if self.removed.contains(&summary.id) {
            return;
        }
        summary.node = node.to_string();
        self.mark_seen(&summary.id);
        self.by_id.insert(summary.id.clone(), summary);
    }

    fn mark_seen(&mut self, id: &str) {
        if !self.seen.contains_key(id) {
            self.seen.insert(id.to_string(), self.next_seen);
            self.next_seen += 1;
        }
    }

    /// Creation order: creation second, then first sight.
    fn order(&self, c: &ContainerSummary) -> (i64, u64) {
        (c.created, self.seen.get(&c.id).copied().unwrap_or(0))
    }

    /// Forgets a container for good.
    pub fn remove(&mut self, id: &str) -> Option<ContainerSummary> {
        if self.removed.insert(id.to_string()) {
            self.removed_order.push_back(id.to_string());
            while self.removed_order.len() > TOMBSTONES {
                if let Some(old) = self.removed_order.pop_front() {
                    self.removed.remove(&old);
                }
            }
        }
        self.seen.remove(id);
        self.by_id.remove(id)
    }

    /// Replaces everything known about `node` by its full list (sent when it (re)connects).
    pub fn replace_node(&mut self, node: &str, containers: Vec<ContainerSummary>) {
        self.by_id.retain(|_, c| c.node != node);
        let by_id = &self.by_id;
        self.seen.retain(|id, _| by_id.contains_key(id));
        for c in containers {
            self.upsert(node, c);
        }
    }

    /// Records a container just created on `node` before its own report arrives, so the next
    /// request naming it is routed (read-your-writes for `create` then `start`).
    pub fn note_created(&mut self, node: &str, id: &str, cfg: &ContainerConfig, now_secs: i64) {
        if self.by_id.contains_key(id) || self.removed.contains(id) {
            return;
        }
        let summary = ContainerSummary {
            id: id.to_string(),
            names: cfg.name.iter().map(|n| format!("/{n}")).collect(),
            image: cfg.image.clone(),
            image_id: String::new(),
            command: command_line(cfg),
            created: now_secs,
            ports: Vec::new(),
            labels: cfg.labels.clone(),
            state: ContainerStatus::Created,
            exit_code: 0,
            started_at: 0,
            finished_at: 0,
            node: node.to_string(),
        };
        self.mark_seen(id);
        self.by_id.insert(id.to_string(), summary);
    }

    /// Renames a container in the index after the owning agent accepted it.
    pub fn rename(&mut self, id: &str, new_name: &str) {
        if let Some(c) = self.by_id.get_mut(id) {
            c.names = vec![format!("/{}", strip_slash(new_name))];
        }
    }

    /// The container using `name`, if any.
    pub fn by_name(&self, name: &str) -> Option<&ContainerSummary> {
        let name = strip_slash(name);
        self.by_id
            .values()
            .find(|c| c.names.iter().any(|n| strip_slash(n) == name))
    }

    /// Resolves what a user typed: a full id, then a name, then a unique id prefix (Docker's
    /// order).
    pub fn resolve(&self, what: &str) -> Result<&ContainerSummary, ApiError> {
        if what.is_empty() {
            return Err(ApiError::invalid("a container name or id is required"));
        }
        if let Some(c) = self.by_id.get(what) {
            return Ok(c);
        }
        if let Some(c) = self.by_name(what) {
            return Ok(c);
        }
        let mut found = self.by_id.values().filter(|c| c.id.starts_with(what));
        match (found.next(), found.next()) {
            (Some(c), None) => Ok(c),
            (Some(_), Some(_)) => Err(ApiError::invalid(format!(
                "multiple containers found with provided prefix: {what}"
            ))),
            _ => Err(ApiError::not_found(format!("no such container: {what}"))),
        }
    }

    /// Every container on `node`.
    pub fn on_node<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a ContainerSummary> {
        self.by_id.values().filter(move |c| c.node == node)
    }

    /// Every container.
    pub fn all(&self) -> impl Iterator<Item = &ContainerSummary> {
        self.by_id.values()
    }

    /// `ps`: Docker's semantics for `-a`, `-n`/`-l` and `--filter`, newest first.
    pub fn list(&self, opts: &ListOptions) -> Result<Vec<ContainerSummary>, ApiError> {
        let f = Filter::new(self, opts)?;
        let mut rows: Vec<&ContainerSummary> = self.by_id.values().filter(|c| f.keeps(c)).collect();
        rows.sort_by(|a, b| {
            self.order(b)
                .cmp(&self.order(a))
                .then_with(|| a.id.cmp(&b.id))
        });
        if let Some(n) = opts.limit.filter(|n| *n > 0) {
            rows.truncate(n as usize);
        }
        Ok(rows.into_iter().cloned().collect())
    }
}

/// A parsed `ps` filter set.
struct Filter<'a> {
    index: &'a ContainerIndex,
    opts: &'a ListOptions,
    all: bool,
    before: Option<(i64, u64)>,
    since: Option<(i64, u64)>,
}

fn valid_status(s: &str) -> bool {
    matches!(
        s,
        "created" | "running" | "paused" | "restarting" | "removing" | "exited" | "dead"
    )
}

fn is_up(state: ContainerStatus) -> bool {
    matches!(
        state,
        ContainerStatus::Running | ContainerStatus::Paused | ContainerStatus::Restarting
    )
}

impl<'a> Filter<'a> {
    fn new(index: &'a ContainerIndex, opts: &'a ListOptions) -> Result<Filter<'a>, ApiError> {
        for (key, values) in &opts.filters {
            if !FILTER_KEYS.contains(&key.as_str()) {
                return Err(ApiError::invalid(format!("invalid filter '{key}'")));
            }
            for v in values {
                match key.as_str() {
                    "status" if !valid_status(v) => {
                        return Err(ApiError::invalid(format!(
                            "invalid filter 'status={v}': expected created, restarting, running, removing, paused, exited or dead"
                        )))
                    }
                    "exited" if v.parse::<i64>().is_err() => {
                        return Err(ApiError::invalid(format!(
                            "invalid filter 'exited={v}': not an exit code"
                        )))
                    }
                    _ => {}
                }
            }
        }
        let bound = |key: &str| -> Result<Option<(i64, u64)>, ApiError> {
            match opts.filters.get(key).and_then(|v| v.first()) {
                Some(what) => Ok(Some(index.order(index.resolve(what)?))),
                None => Ok(None),
            }
        };
        let before = bound("before")?;
        let since = bound("since")?;
        let all = opts.all
            || opts.limit.is_some_and(|n| n > 0)
            || opts.filters.contains_key("status")
            || before.is_some()
            || since.is_some();
        Ok(Filter {
            index,
            opts,
            all,
            before,
            since,
        })
    }

    fn any(&self, key: &str, pred: impl Fn(&str) -> bool) -> bool {
        match self.opts.filters.get(key) {
            Some(values) if !values.is_empty() => values.iter().any(|v| pred(v)),
            _ => true,
        }
    }

    fn keeps(&self, c: &ContainerSummary) -> bool {
        if !self.all && !is_up(c.state) {
            return false;
        }
        let at = self.index.order(c);
        if self.before.is_some_and(|t| at >= t) || self.since.is_some_and(|t| at <= t) {
            return false;
        }
        self.any("id", |v| c.id.starts_with(v))
            && self.any("name", |v| {
                c.names.iter().any(|n| strip_slash(n).contains(strip_slash(v)))
            })
            && self.any("status", |v| c.state.as_str() == v)
            && self.any("exited", |v| {
                c.state == ContainerStatus::Exited && v.parse::<i64>().ok() == Some(c.exit_code)
            })
            && self.any("ancestor", |v| {
                c.image == v
                    || c.image_id == v
                    || c.image_id.strip_prefix("sha256:").is_some_and(|h| h.starts_with(v))
                    || c.image.split(':').next() == Some(v)
            })
            && self.any("node", |v| c.node == v)
            // Every label filter must hold (Docker ANDs labels).
            && self.opts.filters.get("label").is_none_or(|labels| {
                labels.iter().all(|l| match l.split_once('=') {
                    Some((k, v)) => c.labels.get(k).is_some_and(|x| x == v),
                    None => c.labels.contains_key(l.as_str()),
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn summary(id: &str, name: &str, state: ContainerStatus, created: i64) -> ContainerSummary {
        ContainerSummary {
            id: id.into(),
            names: vec![format!("/{name}")],
            image: "busybox:latest".into(),
            image_id: "sha256:abcdef".into(),
            command: "sh".into(),
            created,
            ports: vec![],
            labels: BTreeMap::new(),
            state,
            exit_code: 0,
            started_at: 0,
            finished_at: 0,
            node: "ignored".into(),
        }
    }

    fn index() -> ContainerIndex {
        let mut ix = ContainerIndex::new();
        ix.upsert("n1", summary("aaa111", "web", ContainerStatus::Running, 10));
        ix.upsert("n1", summary("aaa222", "db", ContainerStatus::Exited, 20));
        let mut l = summary("bbb333", "cache", ContainerStatus::Paused, 30);
        l.labels.insert("tier".into(), "back".into());
        ix.upsert("n2", l);
        ix
    }

    fn list(ix: &ContainerIndex, all: bool, filters: &[(&str, &str)]) -> Vec<String> {
        let mut f: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in filters {
            f.entry(k.to_string()).or_default().push(v.to_string());
        }
        ix.list(&ListOptions {
            all,
            limit: None,
            filters: f,
        })
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect()
    }

    #[test]
    fn resolve_by_id_name_and_prefix() {
        let ix = index();
        assert_eq!(ix.resolve("aaa111").unwrap().node, "n1");
        assert_eq!(ix.resolve("web").unwrap().id, "aaa111");
        assert_eq!(ix.resolve("/web").unwrap().id, "aaa111");
        assert_eq!(ix.resolve("bbb").unwrap().id, "bbb333");
        let e = ix.resolve("aaa").unwrap_err();
        assert_eq!(e.kind, protocol::ErrorKind::InvalidArgument);
        assert!(e.message.contains("multiple containers"), "{e}");
        let e = ix.resolve("nope").unwrap_err();
        assert_eq!(e.kind, protocol::ErrorKind::NotFound);
        assert_eq!(e.message, "no such container: nope");
    }

    #[test]
    fn names_win_over_prefixes() {
        let mut ix = index();
        ix.upsert("n1", summary("ccc444", "bbb", ContainerStatus::Running, 40));
        assert_eq!(ix.resolve("bbb").unwrap().id, "ccc444");
    }

    #[test]
    fn list_defaults_and_all() {
        let ix = index();
        assert_eq!(list(&ix, false, &[]), vec!["bbb333", "aaa111"]);
        assert_eq!(list(&ix, true, &[]), vec!["bbb333", "aaa222", "aaa111"]);
        let newest = ix
            .list(&ListOptions {
                all: false,
                limit: Some(1),
                filters: Default::default(),
            })
            .unwrap();
        assert_eq!(newest[0].id, "bbb333");
    }

    #[test]
    fn list_filters() {
        let ix = index();
        assert_eq!(list(&ix, false, &[("status", "exited")]), vec!["aaa222"]);
        assert_eq!(list(&ix, true, &[("name", "we")]), vec!["aaa111"]);
        assert_eq!(list(&ix, true, &[("label", "tier=back")]), vec!["bbb333"]);
        assert_eq!(list(&ix, true, &[("label", "tier")]), vec!["bbb333"]);
        assert!(list(&ix, true, &[("label", "tier=front")]).is_empty());
        assert_eq!(list(&ix, true, &[("node", "n2")]), vec!["bbb333"]);
        assert_eq!(list(&ix, true, &[("exited", "0")]), vec!["aaa222"]);
        assert_eq!(list(&ix, true, &[("id", "aaa2")]), vec!["aaa222"]);
        assert_eq!(
            list(&ix, false, &[("before", "cache")]),
            vec!["aaa222", "aaa111"]
        );
        assert_eq!(
            list(&ix, false, &[("since", "web")]),
            vec!["bbb333", "aaa222"]
        );
        assert_eq!(list(&ix, true, &[("ancestor", "busybox")]).len(), 3);
        assert_eq!(
            list(&ix, true, &[("status", "running"), ("status", "paused")]),
            vec!["bbb333", "aaa111"]
        );
        let bad = ix.list(&ListOptions {
            all: true,
            limit: None,
            filters: [("colour".to_string(), vec!["red".to_string()])].into(),
        });
        assert_eq!(bad.unwrap_err().message, "invalid filter 'colour'");
        let bad = ix.list(&ListOptions {
            all: true,
            limit: None,
            filters: [("status".to_string(), vec!["sleeping".to_string()])].into(),
        });
        assert!(bad.is_err());
    }

    #[test]
    fn same_second_follows_creation_order() {
        let mut ix = ContainerIndex::new();
        for (id, name) in [("z1", "first"), ("a2", "second"), ("m3", "third")] {
            ix.upsert("n", summary(id, name, ContainerStatus::Exited, 5));
        }
        assert_eq!(list(&ix, true, &[]), vec!["m3", "a2", "z1"]);
        assert_eq!(list(&ix, true, &[("before", "third")]), vec!["a2", "z1"]);
        assert_eq!(list(&ix, true, &[("since", "first")]), vec!["m3", "a2"]);
    }

    #[test]
    fn snapshots_replace_and_tombstones_hold() {
        let mut ix = index();
        ix.replace_node(
            "n1",
            vec![summary("ddd555", "new", ContainerStatus::Running, 50)],
        );
        assert_eq!(ix.len(), 2);
        assert!(ix.resolve("web").is_err());
        ix.remove("ddd555");
        ix.upsert("n1", summary("ddd555", "new", ContainerStatus::Exited, 50));
        assert!(
            ix.resolve("ddd555").is_err(),
            "a late report must not revive it"
        );
        let cfg = ContainerConfig {
            image: "busybox".into(),
            name: Some("fresh".into()),
            cmd: Some(vec!["sleep".into(), "1".into()]),
            ..Default::default()
        };
        ix.note_created("n2", "eee666", &cfg, 60);
        let c = ix.resolve("fresh").unwrap();
        assert_eq!((c.node.as_str(), c.command.as_str()), ("n2", "sleep 1"));
        ix.rename("eee666", "renamed");
        assert_eq!(ix.resolve("renamed").unwrap().id, "eee666");
    }
}

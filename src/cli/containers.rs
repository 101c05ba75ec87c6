//! Container verbs: create, run, start, stop, kill, rm, restart, pause, unpause, ps, inspect,
//! wait, top, stats, diff, rename and `container prune`. Flags become a [`ContainerConfig`] or
//! a request here; output follows Docker's.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{ArgAction, Args};
use protocol::messages::{
    ChangeKind, ContainerConfig, ContainerStats, ContainerSummary, ListOptions, NetworkMode,
    Placement, PullPolicy, Request, Resources, Response, RestartPolicy, WaitCondition,
};
use serde_json::{json, Value};

use super::client::{unexpected, Client};
use super::output::{self, now_secs};
use super::{credentials, exec, parse, registry, report_error};

// The flags `create` and `run` share (`docker create`'s).
#[derive(Args, Debug, Clone)]
pub struct ContainerOpts {
    /// Name of the container (generated when absent).
    #[arg(long)]
    name: Option<String>,
    /// Set an environment variable (KEY=value, or KEY to copy it from here).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Read environment variables from a file.
    #[arg(long = "env-file", value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir")]
    workdir: Option<String>,
    /// User (name|uid[:group|gid]).
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Overwrite the image's entrypoint ("" clears it).
    #[arg(long, allow_hyphen_values = true)]
    entrypoint: Option<String>,
    /// Container host name.
    #[arg(short = 'h', long)]
    hostname: Option<String>,
    /// Mount a volume: NAME:/path[:ro], /host/path:/path[:ro], or /path (anonymous).
    #[arg(short = 'v', long = "volume")]
    volumes: Vec<String>,
    /// Mount a tmpfs: /path[:size=64m].
    #[arg(long)]
    tmpfs: Vec<String>,
    /// Restart policy: no, on-failure[:max-retries], always, unless-stopped.
    #[arg(long, default_value = "no")]
    restart: String,
    /// Memory limit (b, k, m, g).
    #[arg(short = 'm', long)]
    memory: Option<String>,
    /// Number of CPUs (fractions allowed).
    #[arg(long)]
    cpus: Option<String>,
    /// Maximum number of processes (-1 for unlimited).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Mount the root filesystem read-only.
    #[arg(long = "read-only")]
    read_only: bool,
    /// Add Linux capabilities.
    #[arg(long = "cap-add")]
    cap_add: Vec<String>,
    /// Drop Linux capabilities.
    #[arg(long = "cap-drop")]
    cap_drop: Vec<String>,
    /// Set metadata (key=value).
    #[arg(short = 'l', long = "label")]
    labels: Vec<String>,
    /// Network: none, host, bridge or a network name.
    #[arg(long, alias = "net", default_value = "bridge")]
    network: String,
    /// Publish a port: [ip:][hostPort:]containerPort[/proto].
    #[arg(short = 'p', long = "publish")]
    publish: Vec<String>,
    /// Publish every exposed port on an ephemeral host port.
    #[arg(short = 'P', long = "publish-all")]
    publish_all: bool,
    /// Signal to stop the container.
    #[arg(long = "stop-signal")]
    stop_signal: Option<String>,
    /// Seconds to wait for the stop signal before killing.
    #[arg(long = "stop-timeout")]
    stop_timeout: Option<u32>,
    /// Keep stdin open.
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short = 't', long)]
    tty: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    rm: bool,
    /// Pull the image before creating: missing (default), always, never.
    #[arg(long, default_value = "missing")]
    pull: String,
    /// Run on this node (cluster placement).
    #[arg(long)]
    node: Option<String>,
    /// Placement constraint, e.g. node.labels.disk==ssd.
    #[arg(long)]
    constraint: Vec<String>,
    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
    /// The image.
    image: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn cap_name(c: &str) -> String {
    let up = c.to_ascii_uppercase();
    up.strip_prefix("CAP_").unwrap_or(&up).to_string()
}

impl ContainerOpts {
    /// The container configuration these flags describe.
    pub fn to_config(&self) -> Result<ContainerConfig> {
        let mut env = Vec::new();
        for f in &self.env_file {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read env file {}", f.display()))?;
            env.extend(
                parse::parse_env_file(&text)
                    .with_context(|| format!("invalid env file {}", f.display()))?,
            );
        }
        for e in &self.env {
            env.extend(parse::parse_env(e)?);
        }
        let mut mounts = Vec::new();
        for v in &self.volumes {
            mounts.push(parse::parse_volume(v)?);
        }
        for t in &self.tmpfs {
            mounts.push(parse::parse_tmpfs(t)?);
        }
        let mut ports = Vec::new();
        for p in &self.publish {
            ports.extend(parse::parse_ports(p)?);
        }
        let restart_policy = parse::parse_restart(&self.restart)?;
        if self.rm && restart_policy != RestartPolicy::No {
            bail!("conflicting options: --restart and --rm");
        }
        let network = match self.network.as_str() {
            "none" => NetworkMode::None,
            "host" => NetworkMode::Host,
            "bridge" | "default" => NetworkMode::Bridge,
            "" => bail!("invalid --network: empty name"),
            other => NetworkMode::Named(other.to_string()),
        };
        let resources = Resources {
            memory_bytes: self
                .memory
                .as_deref()
                .map(parse::parse_memory)
                .transpose()?,
            nano_cpus: self.cpus.as_deref().map(parse::parse_cpus).transpose()?,
            pids_limit: match self.pids_limit {
                Some(n) if n <= 0 => None,
                other => other,
            },
        };
        Ok(ContainerConfig {
            image: self.image.clone(),
            name: self.name.clone(),
            cmd: if self.command.is_empty() {
                None
            } else {
                Some(self.command.clone())
            },
            entrypoint: self.entrypoint.as_ref().map(|e| {
                if e.is_empty() {
                    Vec::new()
                } else {
                    vec![e.clone()]
                }
            }),
            env,
            working_dir: self.workdir.clone(),
            user: self.user.clone(),
            hostname: self.hostname.clone(),
            labels: parse::parse_labels(&self.labels)?,
            mounts,
            ports,
            publish_all: self.publish_all,
            restart_policy,
            resources,
            read_only_rootfs: self.read_only,
            cap_add: self.cap_add.iter().map(|c| cap_name(c)).collect(),
            cap_drop: self.cap_drop.iter().map(|c| cap_name(c)).collect(),
            network,
            tty: self.tty,
            open_stdin: self.interactive,
            auto_remove: self.rm,
            stop_signal: self.stop_signal.clone(),
            stop_timeout: self.stop_timeout,
            placement: Placement {
                node: self.node.clone(),
                constraints: self.constraint.clone(),
            },
            pull: match self.pull.as_str() {
                "missing" => PullPolicy::Missing,
                "always" => PullPolicy::Always,
                "never" => PullPolicy::Never,
                other => bail!("invalid --pull {other:?}: use missing, always or never"),
            },
            registry_auth: None,
        })
    }
}

// `berth create`.
#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct CreateCmd {
    #[command(flatten)]
    opts: ContainerOpts,
}

// `berth run`.
#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct RunCmd {
    /// Run in the background and print the container id.
    #[arg(short = 'd', long)]
    detach: bool,
    /// Key sequence that detaches (default ctrl-p,ctrl-q).
    #[arg(long = "detach-keys")]
    detach_keys: Option<String>,
    #[command(flatten)]
    opts: ContainerOpts,
}

// `berth start`.
#[derive(Args, Debug)]
pub struct StartCmd {
    /// Attach stdout/stderr and forward signals; exit with the container's code.
    #[arg(short = 'a', long)]
    attach: bool,
    /// Attach stdin.
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Key sequence that detaches.
    #[arg(long = "detach-keys")]
    detach_keys: Option<String>,
    /// Containers.
    #[arg(required = true)]
    containers: Vec<String>,
}

// `berth stop` / `berth restart`.
#[derive(Args, Debug)]
pub struct StopCmd {
    /// Seconds to wait before killing.
    #[arg(short = 't', long = "time", alias = "timeout")]
    time: Option<u32>,
    /// Containers.
    #[arg(required = true)]
    containers: Vec<String>,
}

// `berth kill`.
#[derive(Args, Debug)]
pub struct KillCmd {
    /// Signal to send (name or number).
    #[arg(short = 's', long, default_value = "KILL")]
    signal: String,
    /// Containers.
    #[arg(required = true)]
    containers: Vec<String>,
}

// `berth rm`.
#[derive(Args, Debug)]
pub struct RmCmd {
    /// Kill a running container first.
    #[arg(short = 'f', long)]
    force: bool,
    /// Remove its anonymous volumes.
    #[arg(short = 'v', long)]
    volumes: bool,
    /// Containers.
    #[arg(required = true)]
    containers: Vec<String>,
}

// Verbs that take only container names (pause, unpause, wait).
#[derive(Args, Debug)]
pub struct NamesCmd {
    /// Containers.
    #[arg(required = true)]
    containers: Vec<String>,
}

// `berth ps`.
#[derive(Args, Debug)]
pub struct PsCmd {
    /// Show all containers (default: running ones).
    #[arg(short = 'a', long)]
    all: bool,
    /// Only ids.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// The n last created containers (any state).
    #[arg(short = 'n', long = "last")]
    last: Option<i64>,
    /// The latest created container (any state).
    #[arg(short = 'l', long)]
    latest: bool,
    /// Filter (status=, name=, id=, label=, exited=, ancestor=, before=, since=, node=).
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// table (default), json, or a template like {{.ID}}.
    #[arg(long)]
    format: Option<String>,
    /// Do not truncate ids and commands.
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Accepted for compatibility; sizes are not shown.
    #[arg(short = 's', long, hide = true)]
    size: bool,
}

// `berth inspect`.
#[derive(Args, Debug)]
pub struct InspectCmd {
    /// json (default) or a template like {{.State.Status}}.
    #[arg(short = 'f', long)]
    format: Option<String>,
    /// Accepted for compatibility: only containers are inspected here.
    #[arg(long = "type", hide = true)]
    kind: Option<String>,
    /// Containers.
    #[arg(required = true)]
    containers: Vec<String>,
}

// `berth top`.
#[derive(Args, Debug)]
pub struct TopCmd {
    /// Container.
    container: String,
    /// ps options.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

// `berth stats`.
#[derive(Args, Debug)]
pub struct StatsCmd {
    /// All containers (default: running ones).
    #[arg(short = 'a', long)]
    all: bool,
    /// Print one sample and exit.
    #[arg(long = "no-stream")]
    no_stream: bool,
    /// Do not truncate ids.
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// table (default) or json.
    #[arg(long)]
    format: Option<String>,
    /// Containers (default: all running).
    containers: Vec<String>,
}

// `berth diff`.
#[derive(Args, Debug)]
pub struct DiffCmd {
    /// Container.
    container: String,
}

// `berth rename`.
#[derive(Args, Debug)]
pub struct RenameCmd {
    /// Container.
    container: String,
    /// New name.
    new_name: String,
}

// `berth container prune`.
#[derive(Args, Debug)]
pub struct PruneCmd {
    /// Do not prompt for confirmation.
    #[arg(short = 'f', long)]
    force: bool,
    /// Filters (until=, label=).
    #[arg(long = "filter")]
    filter: Vec<String>,
}

/// Docker's wording of "the command cannot be run" (126) and "not found" (127).
pub fn start_failure_code(message: &str) -> Option<i32> {
    let m = message.to_ascii_lowercase();
    if m.contains("executable file not found")
        || (m.contains("exec") && m.contains("no such file or directory"))
        || m.contains("command not found")
    {
        Some(127)
    } else if m.contains("permission denied") && m.contains("exec") {
        Some(126)
    } else {
        None
    }
}

/// Creates a container; prints warnings; returns its id.
async fn create_container(client: &Client, mut cfg: ContainerConfig) -> Result<String> {
    if cfg.pull != PullPolicy::Never {
        cfg.registry_auth = credentials::for_image(&client.credentials(), &cfg.image)?;
    }
    let (image, missing) = (cfg.image.clone(), cfg.pull == PullPolicy::Missing);
    match client.call(&Request::Create(Box::new(cfg))).await? {
        Response::Created {
            id,
            warnings,
            pulled,
        } => {
            registry::print_pulled(&image, missing, &pulled);
            for w in warnings {
                eprintln!("WARNING: {w}");
            }
            Ok(id)
        }
        other => Err(unexpected("create", &other)),
    }
}

/// Starts a container, classifying a process that cannot run as 126/127.
pub async fn start_container(client: &Client, container: &str) -> Result<()> {
    client
        .call(&Request::Start {
            container: container.to_string(),
        })
        .await
        .map(|_| ())
        .map_err(start_error)
}

/// A failed start carries docker's exit code for its cause (125, 126 or 127).
pub fn start_error(e: anyhow::Error) -> anyhow::Error {
    match super::client::api_error(&e).and_then(|a| start_failure_code(&a.message)) {
        Some(code) => super::Coded::new(code, format!("{e:#}")).into(),
        None => e,
    }
}

/// `berth create`.
pub async fn create(client: &Client, cmd: CreateCmd) -> Result<i32> {
    let cfg = cmd.opts.to_config()?;
    let id = create_container(client, cfg).await?;
    println!("{id}");
    Ok(0)
}

/// `berth run`: create, then attach (unless -d) and start; the container's exit code is the
/// CLI's.
pub async fn run(client: &Client, cmd: RunCmd) -> Result<i32> {
    let cfg = cmd.opts.to_config()?;
    if cmd.detach && cmd.opts.rm && cfg.restart_policy != RestartPolicy::No {
        bail!("conflicting options: --restart and --rm");
    }
    let keys = exec::detach_keys(cmd.detach_keys.as_deref())?;
    let id = create_container(client, cfg).await?;
    if cmd.detach {
        start_container(client, &id).await?;
        println!("{id}");
        return Ok(0);
    }
    exec::attach_and_wait(client, &id, cmd.opts.interactive, keys, true).await
}

/// `berth start`.
pub async fn start(client: &Client, cmd: StartCmd) -> Result<i32> {
    if cmd.attach || cmd.interactive {
        if cmd.containers.len() > 1 {
            bail!("you cannot start and attach multiple containers at once");
        }
        let keys = exec::detach_keys(cmd.detach_keys.as_deref())?;
        return exec::attach_and_wait(client, &cmd.containers[0], cmd.interactive, keys, true)
            .await;
    }
    let mut code = 0;
    for c in &cmd.containers {
        match start_container(client, c).await {
            Ok(()) => println!("{c}"),
            Err(e) => code = report_error(&e),
        }
    }
    Ok(code)
}

/// Sends one request per container, printing each name that succeeded (Docker's output of
/// stop, kill, rm, pause...).
async fn each(client: &Client, names: &[String], req: impl Fn(String) -> Request) -> Result<i32> {
    let mut code = 0;
    for n in names {
        match client.call(&req(n.clone())).await {
            Ok(_) => println!("{n}"),
            Err(e) => code = report_error(&e),
        }
    }
    Ok(code)
}

/// `berth stop`.
pub async fn stop(client: &Client, cmd: StopCmd) -> Result<i32> {
    each(client, &cmd.containers, |container| Request::Stop {
        container,
        timeout: cmd.time,
    })
    .await
}

/// `berth restart`.
pub async fn restart(client: &Client, cmd: StopCmd) -> Result<i32> {
    each(client, &cmd.containers, |container| Request::Restart {
        container,
        timeout: cmd.time,
    })
    .await
}

/// `berth kill`.
pub async fn kill(client: &Client, cmd: KillCmd) -> Result<i32> {
    each(client, &cmd.containers, |container| Request::Kill {
        container,
        signal: Some(cmd.signal.clone()),
    })
    .await
}

/// `berth rm`.
pub async fn rm(client: &Client, cmd: RmCmd) -> Result<i32> {
    each(client, &cmd.containers, |container| Request::Remove {
        container,
        force: cmd.force,
        volumes: cmd.volumes,
    })
    .await
}

/// `berth pause`.
pub async fn pause(client: &Client, cmd: NamesCmd) -> Result<i32> {
    each(client, &cmd.containers, |container| Request::Pause {
        container,
    })
    .await
}

/// `berth unpause`.
pub async fn unpause(client: &Client, cmd: NamesCmd) -> Result<i32> {
    each(client, &cmd.containers, |container| Request::Unpause {
        container,
    })
    .await
}

/// `berth wait`: prints each container's exit code.
pub async fn wait(client: &Client, cmd: NamesCmd) -> Result<i32> {
    let mut code = 0;
    for c in &cmd.containers {
        let r = client
            .call(&Request::Wait {
                container: c.clone(),
                condition: WaitCondition::NotRunning,
            })
            .await;
        match r {
            Ok(Response::Exited { exit_code, .. }) => println!("{exit_code}"),
            Ok(other) => code = report_error(&unexpected("wait", &other)),
            Err(e) => code = report_error(&e),
        }
    }
    Ok(code)
}

/// A `ps` row as Docker's `--format json` prints it.
fn ps_json(c: &ContainerSummary, now: i64, no_trunc: bool) -> Value {
    let labels = c
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    json!({
        "Command": output::command_column(&c.command, no_trunc),
        "CreatedAt": protocol::messages::rfc3339_nanos(c.created.saturating_mul(1_000_000_000)),
        "ID": if no_trunc { c.id.clone() } else { output::short_id(&c.id) },
        "Image": c.image,
        "Labels": labels,
        "Names": output::names_column(&c.names),
        "Node": c.node,
        "Ports": output::ports_column(&c.ports),
        "RunningFor": output::ago(c.created, now),
        "State": c.state.as_str(),
        "Status": output::status_string(c, now),
    })
}

/// `berth ps`.
pub async fn ps(client: &Client, cmd: PsCmd) -> Result<i32> {
    let limit = if cmd.latest {
        Some(1)
    } else {
        match cmd.last {
            Some(n) if n > 0 => Some(u32::try_from(n).unwrap_or(u32::MAX)),
            _ => None,
        }
    };
    let opts = ListOptions {
        all: cmd.all,
        limit,
        filters: parse::parse_filters(&cmd.filter)?,
    };
    let rows = match client.call(&Request::List(opts)).await? {
        Response::Containers(rows) => rows,
        other => return Err(unexpected("ps", &other)),
    };
    let now = now_secs();
    if cmd.quiet {
        let mut s = String::new();
        for c in &rows {
            s.push_str(&if cmd.no_trunc {
                c.id.clone()
            } else {
                output::short_id(&c.id)
            });
            s.push('\n');
        }
        output::print(&s);
        return Ok(0);
    }
    match cmd.format.as_deref() {
        None | Some("table") => {
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|c| {
                    vec![
                        if cmd.no_trunc {
                            c.id.clone()
                        } else {
                            output::short_id(&c.id)
                        },
                        if c.image.starts_with("sha256:") && !cmd.no_trunc {
                            output::short_id(&c.image)
                        } else {
                            c.image.clone()
                        },
                        output::command_column(&c.command, cmd.no_trunc),
                        output::ago(c.created, now),
                        output::status_string(c, now),
                        output::ports_column(&c.ports),
                        output::names_column(&c.names),
                    ]
                })
                .collect();
            output::print(&output::table(
                &[
                    "CONTAINER ID",
                    "IMAGE",
                    "COMMAND",
                    "CREATED",
                    "STATUS",
                    "PORTS",
                    "NAMES",
                ],
                &table,
            ));
        }
        Some("json") => {
            let mut s = String::new();
            for c in &rows {
                s.push_str(&ps_json(c, now, cmd.no_trunc).to_string());
                s.push('\n');
            }
            output::print(&s);
        }
        Some(tpl) => {
            let tpl = tpl.strip_prefix("table ").unwrap_or(tpl);
            let mut s = String::new();
            for c in &rows {
                let line = output::render_template(tpl, &ps_json(c, now, cmd.no_trunc))
                    .map_err(anyhow::Error::msg)?;
                s.push_str(&line);
                s.push('\n');
            }
            output::print(&s);
        }
    }
    Ok(0)
}

/// `berth inspect`: a JSON array like Docker's, or one template line per container.
pub async fn inspect(client: &Client, cmd: InspectCmd) -> Result<i32> {
    if let Some(k) = cmd.kind.as_deref() {
        if k != "container" {
            bail!("inspect --type {k} is not supported: only containers");
        }
    }
    let mut found = Vec::new();
    let mut code = 0;
    for c in &cmd.containers {
        match client
            .call(&Request::Inspect {
                container: c.clone(),
            })
            .await
        {
            Ok(Response::Inspect(i)) => found.push(serde_json::to_value(&*i)?),
            Ok(other) => code = report_error(&unexpected("inspect", &other)),
            Err(e) => code = report_error(&e),
        }
    }
    output::print_inspected(cmd.format.as_deref(), &found)?;
    Ok(code)
}

/// `berth top`.
pub async fn top(client: &Client, cmd: TopCmd) -> Result<i32> {
    let ps_args = if cmd.ps_args.is_empty() {
        None
    } else {
        Some(cmd.ps_args.join(" "))
    };
    match client
        .call(&Request::Top {
            container: cmd.container,
            ps_args,
        })
        .await?
    {
        Response::Top(t) => {
            let titles: Vec<&str> = t.titles.iter().map(String::as_str).collect();
            output::print(&output::table(&titles, &t.processes));
            Ok(0)
        }
        other => Err(unexpected("top", &other)),
    }
}

/// One `stats` row from two samples of a container.
fn stats_row(prev: Option<&ContainerStats>, cur: &ContainerStats, no_trunc: bool) -> Vec<String> {
    let cpu = match prev {
        Some(p) => {
            let cpu_delta = cur.cpu_total_ns.saturating_sub(p.cpu_total_ns) as f64;
            let sys_delta = cur.system_cpu_ns.saturating_sub(p.system_cpu_ns) as f64;
            if sys_delta > 0.0 && cpu_delta > 0.0 {
                cpu_delta / sys_delta * f64::from(cur.online_cpus.max(1)) * 100.0
            } else {
                0.0
            }
        }
        None => 0.0,
    };
    let mem_pct = if cur.memory_limit > 0 {
        cur.memory_usage as f64 / cur.memory_limit as f64 * 100.0
    } else {
        0.0
    };
    vec![
        if no_trunc {
            cur.id.clone()
        } else {
            output::short_id(&cur.id)
        },
        cur.name.trim_start_matches('/').to_string(),
        format!("{cpu:.2}%"),
        format!(
            "{} / {}",
            output::bytes_size(cur.memory_usage),
            output::bytes_size(cur.memory_limit)
        ),
        format!("{mem_pct:.2}%"),
        format!(
            "{} / {}",
            output::human_size(cur.net_rx_bytes),
            output::human_size(cur.net_tx_bytes)
        ),
        format!(
            "{} / {}",
            output::human_size(cur.block_read_bytes),
            output::human_size(cur.block_write_bytes)
        ),
        cur.pids.to_string(),
    ]
}

const STATS_HEADERS: &[&str] = &[
    "CONTAINER ID",
    "NAME",
    "CPU %",
    "MEM USAGE / LIMIT",
    "MEM %",
    "NET I/O",
    "BLOCK I/O",
    "PIDS",
];

async fn sample(client: &Client, names: &[String]) -> Vec<Result<ContainerStats>> {
    let mut out = Vec::new();
    for n in names {
        let r = client
            .call(&Request::Stats {
                container: n.clone(),
                stream: false,
            })
            .await
            .and_then(|r| match r {
                Response::Stats(s) => Ok(*s),
                other => Err(unexpected("stats", &other)),
            });
        out.push(r);
    }
    out
}

/// `berth stats`: samples every container twice (the CPU percentage is a rate), prints Docker's
/// table once (`--no-stream`) or every second.
pub async fn stats(client: &Client, cmd: StatsCmd) -> Result<i32> {
    let names = if cmd.containers.is_empty() {
        match client
            .call(&Request::List(ListOptions {
                all: cmd.all,
                ..Default::default()
            }))
            .await?
        {
            Response::Containers(rows) => rows.into_iter().map(|c| c.id).collect(),
            other => return Err(unexpected("stats", &other)),
        }
    } else {
        cmd.containers.clone()
    };
    let json = match cmd.format.as_deref() {
        None | Some("table") => false,
        Some("json") => true,
        Some(f) => bail!("stats --format {f:?} is not supported: use table or json"),
    };
    let clear = !cmd.no_stream && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut prev: Vec<Option<ContainerStats>> = sample(client, &names)
        .await
        .into_iter()
        .map(Result::ok)
        .collect();
    let mut code = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(if cmd.no_stream {
            500
        } else {
            1000
        }))
        .await;
        let cur = sample(client, &names).await;
        let mut rows = Vec::new();
        let mut objects = Vec::new();
        for (i, r) in cur.into_iter().enumerate() {
            match r {
                Ok(s) => {
                    let row = stats_row(prev[i].as_ref(), &s, cmd.no_trunc);
                    objects.push(json!({
                        "ID": row[0], "Name": row[1], "CPUPerc": row[2], "MemUsage": row[3],
                        "MemPerc": row[4], "NetIO": row[5], "BlockIO": row[6], "PIDs": row[7],
                    }));
                    rows.push(row);
                    prev[i] = Some(s);
                }
                Err(e) => {
                    if cmd.no_stream || !cmd.containers.is_empty() {
                        code = report_error(&e);
                    }
                }
            }
        }
        let mut s = String::new();
        if clear {
            s.push_str("\x1b[2J\x1b[H");
        }
        if json {
            for o in objects {
                s.push_str(&o.to_string());
                s.push('\n');
            }
        } else {
            s.push_str(&output::table(STATS_HEADERS, &rows));
        }
        output::print(&s);
        if cmd.no_stream {
            return Ok(code);
        }
    }
}

/// `berth diff`.
pub async fn diff(client: &Client, cmd: DiffCmd) -> Result<i32> {
    match client
        .call(&Request::Diff {
            container: cmd.container,
        })
        .await?
    {
        Response::Changes(changes) => {
            let mut s = String::new();
            for c in changes {
                let k = match c.kind {
                    ChangeKind::Added => 'A',
                    ChangeKind::Modified => 'C',
                    ChangeKind::Deleted => 'D',
                };
                s.push_str(&format!("{k} {}\n", c.path));
            }
            output::print(&s);
            Ok(0)
        }
        other => Err(unexpected("diff", &other)),
    }
}

/// `berth rename`.
pub async fn rename(client: &Client, cmd: RenameCmd) -> Result<i32> {
    client
        .call(&Request::Rename {
            container: cmd.container,
            new_name: cmd.new_name,
        })
        .await?;
    Ok(0)
}

/// Asks for confirmation on stdin (Docker's prune prompt); true to go on.
pub fn confirm(warning: &str) -> bool {
    eprint!("{warning}\nAre you sure you want to continue? [y/N] ");
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim(), "y" | "Y" | "yes" | "Yes")
}

/// `berth container prune`.
pub async fn prune(client: &Client, cmd: PruneCmd) -> Result<i32> {
    if !cmd.force && !confirm("WARNING! This will remove all stopped containers.") {
        return Ok(0);
    }
    match client
        .call(&Request::ContainerPrune {
            filters: parse::parse_filters(&cmd.filter)?,
        })
        .await?
    {
        Response::Pruned {
            deleted,
            space_reclaimed,
        } => {
            let s = output::prune_report("Deleted Containers", &deleted, space_reclaimed);
            output::print(&s);
            Ok(0)
        }
        other => Err(unexpected("container prune", &other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    #[command(disable_help_flag = true)]
    struct T {
        #[command(flatten)]
        opts: ContainerOpts,
    }

    fn cfg(args: &[&str]) -> Result<ContainerConfig> {
        let mut argv = vec!["t"];
        argv.extend_from_slice(args);
        let t = T::try_parse_from(argv).map_err(|e| anyhow::anyhow!("{e}"))?;
        t.opts.to_config()
    }

    #[test]
    fn flags_become_a_config() {
        let c = cfg(&[
            "--name",
            "web",
            "-e",
            "A=1",
            "-v",
            "data:/d",
            "-v",
            "/x",
            "--tmpfs",
            "/run",
            "-p",
            "8080:80",
            "--restart",
            "on-failure:2",
            "-m",
            "64m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "50",
            "--read-only",
            "--cap-add",
            "net_admin",
            "--cap-drop",
            "CAP_MKNOD",
            "-l",
            "a=b",
            "--network",
            "none",
            "--stop-signal",
            "SIGQUIT",
            "--stop-timeout",
            "3",
            "-h",
            "box",
            "-w",
            "/tmp",
            "-u",
            "1000:1000",
            "-it",
            "--entrypoint",
            "",
            "busybox",
            "sh",
            "-c",
            "echo hi",
        ])
        .unwrap();
        assert_eq!(c.image, "busybox");
        assert_eq!(c.name.as_deref(), Some("web"));
        assert_eq!(
            c.cmd,
            Some(vec!["sh".into(), "-c".into(), "echo hi".into()])
        );
        assert_eq!(c.entrypoint, Some(vec![]));
        assert_eq!(c.mounts.len(), 3);
        assert_eq!(c.ports[0].host_port, Some(8080));
        assert_eq!(c.resources.memory_bytes, Some(64 << 20));
        assert_eq!(c.resources.nano_cpus, Some(500_000_000));
        assert_eq!(c.resources.pids_limit, Some(50));
        assert_eq!(c.cap_add, vec!["NET_ADMIN"]);
        assert_eq!(c.cap_drop, vec!["MKNOD"]);
        assert_eq!(c.network, NetworkMode::None);
        assert!(c.tty && c.open_stdin && c.read_only_rootfs);
        assert_eq!(c.hostname.as_deref(), Some("box"));
        assert_eq!(c.user.as_deref(), Some("1000:1000"));
        assert_eq!(c.working_dir.as_deref(), Some("/tmp"));
        assert_eq!(c.labels["a"], "b");
    }

    #[test]
    fn flags_after_the_image_belong_to_the_command() {
        let c = cfg(&["busybox", "ls", "-l", "--name", "x"]).unwrap();
        assert_eq!(c.name, None);
        assert_eq!(
            c.cmd,
            Some(vec!["ls".into(), "-l".into(), "--name".into(), "x".into()])
        );
        assert_eq!(c.network, NetworkMode::Bridge);
        assert_eq!(c.cmd.as_ref().map(Vec::len), Some(4));
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(cfg(&["-m", "lots", "busybox"]).is_err());
        assert!(cfg(&["--restart", "maybe", "busybox"]).is_err());
        assert!(cfg(&["--rm", "--restart", "always", "busybox"]).is_err());
        assert!(cfg(&["-p", "99999:1", "busybox"]).is_err());
        assert!(cfg(&["-v", "bad name:/x", "busybox"]).is_err());
    }

    #[test]
    fn start_failures_map_to_docker_codes() {
        assert_eq!(
            start_failure_code("exec: \"nope\": executable file not found in $PATH"),
            Some(127)
        );
        assert_eq!(
            start_failure_code("exec /etc/passwd: permission denied"),
            Some(126)
        );
        assert_eq!(start_failure_code("no such container: x"), None);
    }

    #[test]
    fn stats_rows() {
        let a = ContainerStats {
            id: "f".repeat(64),
            name: "/web".into(),
            cpu_total_ns: 0,
            system_cpu_ns: 0,
            online_cpus: 2,
            ..Default::default()
        };
        let b = ContainerStats {
            cpu_total_ns: 500,
            system_cpu_ns: 1000,
            memory_usage: 1 << 20,
            memory_limit: 4 << 20,
            pids: 3,
            ..a.clone()
        };
        let row = stats_row(Some(&a), &b, false);
        assert_eq!(row[0], "ffffffffffff");
        assert_eq!(row[1], "web");
        assert_eq!(row[2], "100.00%");
        assert_eq!(row[3], "1MiB / 4MiB");
        assert_eq!(row[4], "25.00%");
        assert_eq!(row[7], "3");
    }
}

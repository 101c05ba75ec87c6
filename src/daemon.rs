//! The daemon (`berthd`, started as `berth daemon`): a one-host cluster in one process. Bootstraps
//! the PKI, binds the controller, then starts the local agent inside the same actix System; the
//! agent dials the controller over QUIC with its node certificate exactly as a remote agent would.
//! `client.toml` is (re)written once the local node has registered, so `berth info` answers as
//! soon as the file points at this daemon. SIGTERM/SIGINT stop the daemon; containers keep running
//! (live restore is the agent's job at the next start).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use controller::{bootstrap, Controller, ControllerConfig};
use tokio::signal::unix::{signal, SignalKind};

/// How long the local agent may take to connect and register.
const AGENT_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// `berth daemon`'s flags.
#[derive(Args, Debug)]
pub struct DaemonArgs {
    /// State directory (images, containers, volumes, certificates, client.toml).
    #[arg(long, default_value = "/var/lib/berth")]
    root: PathBuf,
    /// Controller address (port 0 picks a free port, written into client.toml).
    #[arg(long, default_value = "127.0.0.1:7443")]
    listen: SocketAddr,
    /// Node name (default: derived from the host name).
    #[arg(long = "node-name")]
    node_name: Option<String>,
    /// A registry HOST[:PORT] spoken to over plain HTTP (loopback registries always are).
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    insecure_registries: Vec<String>,
    /// Directory of HOST:PORT/ca.crt files: the CA each registry's certificate must chain to
    /// (default ROOT/certs.d).
    #[arg(long = "registry-certs", value_name = "DIR")]
    registry_certs: Option<PathBuf>,
    /// Subnet of the default bridge network (default: the first of 172.17–31.0.0/16, then
    /// 192.168.x.0/20, that the host does not route yet).
    #[arg(long = "bridge-subnet", value_parser = parse_subnet)]
    bridge_subnet: Option<runtime::network::Ipv4Net>,
}

fn parse_subnet(s: &str) -> Result<runtime::network::Ipv4Net, String> {
    s.parse()
        .map_err(|e: runtime::network::cidr::CidrError| e.to_string())
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

/// Runs the daemon until a termination signal.
pub fn main(args: DaemonArgs) -> Result<i32> {
    init_logging();
    let node = match &args.node_name {
        Some(n) => n.clone(),
        None => controller::bootstrap::node_name_from_hostname(&host_name()),
    };
    std::fs::create_dir_all(&args.root)
        .with_context(|| format!("cannot create the root directory {}", args.root.display()))?;
    let root = args
        .root
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", args.root.display()))?;
    let boot = bootstrap(&root, args.listen, &node)
        .with_context(|| format!("cannot set up certificates under {}", root.display()))?;
    let system = actix::System::new();
    let registry = runtime::registry::RegistryConfig {
        insecure: args.insecure_registries.clone(),
        certs_dir: Some(
            args.registry_certs
                .clone()
                .unwrap_or_else(|| root.join("certs.d")),
        ),
    };
    system.block_on(serve(
        root,
        args.listen,
        node,
        boot,
        registry,
        args.bridge_subnet,
    ))
}

async fn serve(
    root: PathBuf,
    listen: SocketAddr,
    node: String,
    boot: controller::Bootstrap,
    registry: runtime::registry::RegistryConfig,
    bridge_subnet: Option<runtime::network::Ipv4Net>,
) -> Result<i32> {
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let ctl = Controller::bind(ControllerConfig::new(
        &node,
        boot.controller.clone(),
        listen,
    ))
    .with_context(|| format!("cannot start the controller on {listen}"))?;
    let addr = ctl.local_addr();
    let handle = ctl.handle();
    tokio::spawn(ctl.run());
    let agent_cfg = agent::AgentConfig {
        root: root.clone(),
        node_name: node.clone(),
        controller_addr: controller::bootstrap::connect_addr(addr),
        controller_name: node.clone(),
        identity: boot.agent.clone(),
        registry,
        bridge_subnet,
    };
    let _agent = agent::start(agent_cfg)
        .await
        .context("cannot start the local agent")?;
    if !handle.wait_for_node(&node, AGENT_READY_TIMEOUT).await {
        handle.shutdown();
        bail!(
            "the local agent did not register with the controller within {AGENT_READY_TIMEOUT:?}"
        );
    }
    boot.write_client_config(addr)
        .context("cannot write client.toml")?;
    tracing::info!(%addr, node = %node, root = %root.display(), config = %boot.client_config.display(), "berth daemon ready");
    tokio::select! {
        _ = sigterm.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = sigint.recv() => tracing::info!("SIGINT: shutting down"),
    }
    handle.shutdown();
    handle.wait_idle(Duration::from_secs(2)).await;
    tracing::info!("berth daemon stopped");
    Ok(0)
}

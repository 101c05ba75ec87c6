//! `berth network create|ls|inspect|rm|prune|connect|disconnect` and `berth port`.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use protocol::messages::{NetworkInfo, NetworkRequest, Request, Response};

use super::client::{unexpected, Client};
use super::containers::confirm;
use super::{output, report_error};

/// Network verbs.
#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum NetworkCommand {
    /// Create a bridge network.
    Create(CreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Show networks in JSON.
    Inspect(InspectArgs),
    /// Remove networks.
    #[command(alias = "remove")]
    Rm(NamesArgs),
    /// Remove unused networks.
    Prune(PruneArgs),
    /// Connect a running container to a network.
    Connect(PlugArgs),
    /// Disconnect a container from a network.
    Disconnect(PlugArgs),
}

// `network create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Driver (only bridge).
    #[arg(short = 'd', long)]
    driver: Option<String>,
    /// Subnet in CIDR form, e.g. 172.30.0.0/16.
    #[arg(long)]
    subnet: Option<String>,
    /// Network name.
    name: String,
}

// `network ls`.
#[derive(Args, Debug)]
pub struct LsArgs {
    /// Only ids.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Full ids.
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// table (default) or json.
    #[arg(long)]
    format: Option<String>,
}

// `network inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// json (default) or a template.
    #[arg(short = 'f', long)]
    format: Option<String>,
    /// Networks.
    #[arg(required = true)]
    names: Vec<String>,
}

// `network rm`.
#[derive(Args, Debug)]
pub struct NamesArgs {
    /// Networks.
    #[arg(required = true)]
    names: Vec<String>,
}

// `network prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Do not prompt.
    #[arg(short = 'f', long)]
    force: bool,
}

// `network connect|disconnect NETWORK CONTAINER`.
#[derive(Args, Debug)]
pub struct PlugArgs {
    /// Accepted for compatibility (disconnect).
    #[arg(short = 'f', long)]
    force: bool,
    /// Network.
    network: String,
    /// Container.
    container: String,
}

// `berth port CONTAINER [PRIVATE_PORT[/PROTO]]`.
#[derive(Args, Debug)]
pub struct PortCmd {
    /// Container.
    container: String,
    /// Only this container port (`80` or `80/tcp`).
    port: Option<String>,
}

async fn call(client: &Client, req: NetworkRequest) -> Result<Response> {
    client.call(&Request::Network(req)).await
}

/// Runs a network verb.
pub async fn main(client: &Client, cmd: NetworkCommand) -> Result<i32> {
    match cmd {
        NetworkCommand::Create(a) => {
            if let Some(d) = a.driver.as_deref().filter(|d| *d != "bridge") {
                bail!("network driver {d:?} is not supported: only bridge");
            }
            match call(
                client,
                NetworkRequest::Create {
                    name: a.name,
                    subnet: a.subnet,
                },
            )
            .await?
            {
                Response::Network(n) => println!("{}", n.id),
                other => return Err(unexpected("network create", &other)),
            }
            Ok(0)
        }
        NetworkCommand::Ls(a) => {
            let networks = match call(client, NetworkRequest::List).await? {
                Response::Networks(n) => n,
                other => return Err(unexpected("network ls", &other)),
            };
            let id = |n: &NetworkInfo| {
                if a.no_trunc {
                    n.id.clone()
                } else {
                    output::short_id(&n.id)
                }
            };
            let mut s = String::new();
            if a.quiet {
                for n in &networks {
                    s += &format!("{}\n", id(n));
                }
            } else {
                match a.format.as_deref() {
                    None | Some("table") => {
                        let rows: Vec<Vec<String>> = networks
                            .iter()
                            .map(|n| vec![id(n), n.name.clone(), n.driver.clone(), n.scope.clone()])
                            .collect();
                        s = output::table(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &rows);
                    }
                    Some("json") => {
                        for n in &networks {
                            s += &serde_json::to_string(n)?;
                            s.push('\n');
                        }
                    }
                    Some(f) => {
                        bail!("network ls --format {f:?} is not supported: use table or json")
                    }
                }
            }
            output::print(&s);
            Ok(0)
        }
        NetworkCommand::Inspect(a) => {
            let mut found = Vec::new();
            let mut code = 0;
            for n in &a.names {
                match call(client, NetworkRequest::Inspect { name: n.clone() }).await {
                    Ok(Response::Network(info)) => found.push(serde_json::to_value(&info)?),
                    Ok(other) => code = report_error(&unexpected("network inspect", &other)),
                    Err(e) => code = report_error(&e),
                }
            }
            output::print_inspected(a.format.as_deref(), &found)?;
            Ok(code)
        }
        NetworkCommand::Rm(a) => {
            let mut code = 0;
            for n in &a.names {
                match call(client, NetworkRequest::Remove { name: n.clone() }).await {
                    Ok(_) => println!("{n}"),
                    Err(e) => code = report_error(&e),
                }
            }
            Ok(code)
        }
        NetworkCommand::Prune(a) => {
            if !a.force && !confirm("WARNING! This will remove all custom networks not used by at least one container.") {
                return Ok(0);
            }
            match call(client, NetworkRequest::Prune).await? {
                Response::Pruned { deleted, .. } => {
                    let mut s = String::new();
                    if !deleted.is_empty() {
                        s += "Deleted Networks:\n";
                        for d in deleted {
                            s += &format!("{d}\n");
                        }
                    }
                    output::print(&s);
                    Ok(0)
                }
                other => Err(unexpected("network prune", &other)),
            }
        }
        NetworkCommand::Connect(a) => {
            call(
                client,
                NetworkRequest::Connect {
                    network: a.network,
                    container: a.container,
                },
            )
            .await?;
            Ok(0)
        }
        NetworkCommand::Disconnect(a) => {
            call(
                client,
                NetworkRequest::Disconnect {
                    network: a.network,
                    container: a.container,
                },
            )
            .await?;
            Ok(0)
        }
    }
}

/// `berth port`: the container's published ports, `80/tcp -> 0.0.0.0:8000` per line.
pub async fn port(client: &Client, cmd: PortCmd) -> Result<i32> {
    let info = match client
        .call(&Request::Inspect {
            container: cmd.container.clone(),
        })
        .await?
    {
        Response::Inspect(i) => i,
        other => return Err(unexpected("port", &other)),
    };
    let wanted = cmd.port.as_deref().map(|p| {
        if p.contains('/') {
            p.to_owned()
        } else {
            format!("{p}/tcp")
        }
    });
    let mut s = String::new();
    for (private, bindings) in &info.network_settings.ports {
        if wanted.as_deref().is_some_and(|w| w != private) {
            continue;
        }
        for b in bindings {
            if wanted.is_some() {
                s += &format!("{}:{}\n", b.host_ip, b.host_port);
            } else {
                s += &format!("{private} -> {}:{}\n", b.host_ip, b.host_port);
            }
        }
    }
    if let (Some(w), true) = (&wanted, s.is_empty()) {
        bail!("no public port '{w}' published for {}", cmd.container);
    }
    output::print(&s);
    Ok(0)
}

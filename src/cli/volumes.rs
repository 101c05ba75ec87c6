//! `berth volume create|ls|inspect|rm|prune`. With several nodes, `volume create` needs the
//! `berth.node=NODE` label to say where; the controller routes the rest.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use protocol::messages::{Request, Response, VolumeInfo, VolumeRequest};

use super::client::{unexpected, Client};
use super::containers::confirm;
use super::{output, parse, report_error};

/// Volume verbs.
#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum VolumeCommand {
    /// Create a volume.
    Create(CreateArgs),
    /// List volumes.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Show volumes in JSON.
    Inspect(InspectArgs),
    /// Remove volumes.
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove unused volumes.
    Prune(PruneArgs),
}

// `volume create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Driver.
    #[arg(short = 'd', long)]
    driver: Option<String>,
    /// Labels (key=value).
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Driver options (key=value).
    #[arg(short = 'o', long = "opt")]
    opts: Vec<String>,
    /// Name (generated when absent).
    name: Option<String>,
}

// `volume ls`.
#[derive(Args, Debug)]
pub struct LsArgs {
    /// Only names.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Filters (dangling=, label=, name=).
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// table (default) or json.
    #[arg(long)]
    format: Option<String>,
}

// `volume inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// json (default) or a template.
    #[arg(short = 'f', long)]
    format: Option<String>,
    /// Volumes.
    #[arg(required = true)]
    names: Vec<String>,
}

// `volume rm`.
#[derive(Args, Debug)]
pub struct RmArgs {
    /// Remove even if a stopped container uses it.
    #[arg(short = 'f', long)]
    force: bool,
    /// Volumes.
    #[arg(required = true)]
    names: Vec<String>,
}

// `volume prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Do not prompt.
    #[arg(short = 'f', long)]
    force: bool,
    /// Also named volumes, not only anonymous ones.
    #[arg(short = 'a', long)]
    all: bool,
    /// Filters.
    #[arg(long = "filter")]
    filter: Vec<String>,
}

/// Runs a volume verb.
pub async fn main(client: &Client, cmd: VolumeCommand) -> Result<i32> {
    match cmd {
        VolumeCommand::Create(a) => {
            let r = client
                .call(&Request::Volume(VolumeRequest::Create {
                    name: a.name,
                    driver: a.driver,
                    labels: parse::parse_labels(&a.labels)?,
                    options: parse::parse_labels(&a.opts)?,
                }))
                .await?;
            match r {
                Response::Volume(v) => println!("{}", v.name),
                other => return Err(unexpected("volume create", &other)),
            }
            Ok(0)
        }
        VolumeCommand::Ls(a) => {
            let r = client
                .call(&Request::Volume(VolumeRequest::List {
                    filters: parse::parse_filters(&a.filter)?,
                }))
                .await?;
            let (mut volumes, warnings) = match r {
                Response::Volumes { volumes, warnings } => (volumes, warnings),
                other => return Err(unexpected("volume ls", &other)),
            };
            for w in warnings {
                eprintln!("WARNING: {w}");
            }
            volumes.sort_by(|a, b| a.name.cmp(&b.name));
            let mut s = String::new();
            if a.quiet {
                for v in &volumes {
                    s.push_str(&v.name);
                    s.push('\n');
                }
            } else {
                match a.format.as_deref() {
                    None | Some("table") => {
                        let rows: Vec<Vec<String>> = volumes
                            .iter()
                            .map(|v| vec![v.driver.clone(), v.name.clone()])
                            .collect();
                        s = output::table(&["DRIVER", "VOLUME NAME"], &rows);
                    }
                    Some("json") => {
                        for v in &volumes {
                            s.push_str(&serde_json::to_string(v)?);
                            s.push('\n');
                        }
                    }
                    Some(f) => {
                        bail!("volume ls --format {f:?} is not supported: use table or json")
                    }
                }
            }
            output::print(&s);
            Ok(0)
        }
        VolumeCommand::Inspect(a) => {
            let mut found: Vec<VolumeInfo> = Vec::new();
            let mut code = 0;
            for n in &a.names {
                match client
                    .call(&Request::Volume(VolumeRequest::Inspect { name: n.clone() }))
                    .await
                {
                    Ok(Response::Volume(v)) => found.push(v),
                    Ok(other) => code = report_error(&unexpected("volume inspect", &other)),
                    Err(e) => code = report_error(&e),
                }
            }
            output::print_inspected(a.format.as_deref(), &found)?;
            Ok(code)
        }
        VolumeCommand::Rm(a) => {
            let mut code = 0;
            for n in &a.names {
                match client
                    .call(&Request::Volume(VolumeRequest::Remove {
                        name: n.clone(),
                        force: a.force,
                    }))
                    .await
                {
                    Ok(_) => println!("{n}"),
                    Err(e) => code = report_error(&e),
                }
            }
            Ok(code)
        }
        VolumeCommand::Prune(a) => {
            let warning = if a.all {
                "WARNING! This will remove all local volumes not used by at least one container."
            } else {
                "WARNING! This will remove anonymous local volumes not used by at least one container."
            };
            if !a.force && !confirm(warning) {
                return Ok(0);
            }
            let mut filters = parse::parse_filters(&a.filter)?;
            if a.all {
                filters.insert("all".into(), vec!["true".into()]);
            }
            match client
                .call(&Request::Volume(VolumeRequest::Prune { filters }))
                .await?
            {
                Response::Pruned {
                    deleted,
                    space_reclaimed,
                } => {
                    let s = output::prune_report("Deleted Volumes", &deleted, space_reclaimed);
                    output::print(&s);
                    Ok(0)
                }
                other => Err(unexpected("volume prune", &other)),
            }
        }
    }
}

//! `berth info` (the cluster as the controller sees it, plus the local node's details) and
//! `berth version`.

use anyhow::Result;
use clap::Args;
use protocol::messages::{Request, Response, SystemInfo};

use super::client::{unexpected, Client};
use super::output;

// `berth info`.
#[derive(Args, Debug)]
pub struct InfoCmd {
    /// json, or a template like {{.Name}}.
    #[arg(short = 'f', long)]
    format: Option<String>,
}

// `berth version`.
#[derive(Args, Debug)]
pub struct VersionCmd {
    /// json.
    #[arg(short = 'f', long)]
    format: Option<String>,
}

async fn fetch(client: &Client) -> Result<SystemInfo> {
    match client.call(&Request::Info).await? {
        Response::Info(i) => Ok(*i),
        other => Err(unexpected("info", &other)),
    }
}

/// The text `info` prints.
pub fn render_info(i: &SystemInfo) -> String {
    let mut s = String::new();
    s.push_str("Client:\n");
    s.push_str(&format!(" Version:    {}\n", env!("CARGO_PKG_VERSION")));
    s.push_str("\nServer:\n");
    s.push_str(&format!(" Containers: {}\n", i.containers));
    s.push_str(&format!("  Running: {}\n", i.containers_running));
    s.push_str(&format!("  Paused: {}\n", i.containers_paused));
    s.push_str(&format!("  Stopped: {}\n", i.containers_stopped));
    s.push_str(&format!(" Images: {}\n", i.images));
    s.push_str(&format!(" Server Version: {}\n", i.server_version));
    s.push_str(&format!(" Protocol Version: {}\n", i.protocol_version));
    s.push_str(&format!(" Kernel Version: {}\n", i.kernel_version));
    s.push_str(&format!(" Operating System: {}\n", i.operating_system));
    s.push_str(&format!(" Architecture: {}\n", i.architecture));
    s.push_str(&format!(" CPUs: {}\n", i.ncpu));
    s.push_str(&format!(
        " Total Memory: {}\n",
        output::bytes_size(i.mem_total)
    ));
    s.push_str(&format!(" Name: {}\n", i.name));
    if !i.root_dir.is_empty() {
        s.push_str(&format!(" Berth Root Dir: {}\n", i.root_dir));
    }
    s.push_str(&format!(" Nodes: {}\n", i.nodes.len()));
    for n in &i.nodes {
        s.push_str(&format!(
            "  {}: {} ({} running)\n",
            n.name,
            if n.ready { "ready" } else { "down" },
            n.containers_running
        ));
    }
    s
}

/// `berth info`.
pub async fn info(client: &Client, cmd: InfoCmd) -> Result<i32> {
    let i = fetch(client).await?;
    match cmd.format.as_deref() {
        None | Some("table") => output::print(&render_info(&i)),
        Some("json") => output::print(&format!("{}\n", serde_json::to_string(&i)?)),
        Some(tpl) => {
            let v = serde_json::to_value(&i)?;
            let line = output::render_template(tpl, &v).map_err(anyhow::Error::msg)?;
            output::print(&format!("{line}\n"));
        }
    }
    Ok(0)
}

/// `berth version`: the client's version, then the server's (an error if it cannot be reached).
pub async fn version(client: Result<Client>, cmd: VersionCmd) -> Result<i32> {
    let server = match client {
        Ok(c) => {
            let info = fetch(&c).await;
            c.close().await;
            Some(info)
        }
        Err(e) => Some(Err(e)),
    };
    let client_version = env!("CARGO_PKG_VERSION");
    let json = cmd.format.as_deref() == Some("json");
    let (server_info, err) = match server {
        Some(Ok(i)) => (Some(i), None),
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    if json {
        let v = serde_json::json!({
            "Client": {"Version": client_version, "ProtocolVersion": protocol::PROTOCOL_VERSION},
            "Server": server_info.as_ref().map(|i| serde_json::json!({
                "Version": i.server_version, "ProtocolVersion": i.protocol_version,
                "KernelVersion": i.kernel_version, "Os": i.operating_system, "Arch": i.architecture,
            })),
        });
        output::print(&format!("{v}\n"));
    } else {
        let mut s = format!(
            "Client:\n Version:          {client_version}\n Protocol version: {}\n OS/Arch:          {}/{}\n",
            protocol::PROTOCOL_VERSION,
            std::env::consts::OS,
            std::env::consts::ARCH
        );
        if let Some(i) = &server_info {
            s.push_str(&format!(
                "\nServer:\n Version:          {}\n Protocol version: {}\n Kernel:           {}\n Node:             {}\n",
                i.server_version, i.protocol_version, i.kernel_version, i.name
            ));
        }
        output::print(&s);
    }
    match err {
        Some(e) => Err(e),
        None => Ok(0),
    }
}

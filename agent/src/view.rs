//! Docker-shaped views of a container record: the `ps` summary and the `inspect` document.

use protocol::messages::{
    rfc3339_nanos, ContainerInspect, ContainerState, ContainerSummary, HostConfig, InspectConfig,
    NetworkSettings,
};

use std::collections::BTreeMap;

use protocol::messages::{EndpointSettings, HostPort, PortSummary};

use crate::record::Record;

/// Published ports in force (while the container runs on a bridge network).
fn ports(r: &Record) -> Vec<PortSummary> {
    let Some(ep) = &r.network else {
        return Vec::new();
    };
    ep.ports
        .iter()
        .map(|p| PortSummary {
            ip: Some(
                p.host_ip
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "0.0.0.0".into()),
            ),
            private_port: p.container_port,
            public_port: Some(p.host_port),
            protocol: p.proto.as_str().to_owned(),
        })
        .collect()
}

fn network_settings(r: &Record) -> NetworkSettings {
    let Some(ep) = &r.network else {
        return NetworkSettings::default();
    };
    let mut ports: BTreeMap<String, Vec<HostPort>> = BTreeMap::new();
    for p in &ep.ports {
        ports
            .entry(format!("{}/{}", p.container_port, p.proto.as_str()))
            .or_default()
            .push(HostPort {
                host_ip: p
                    .host_ip
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "0.0.0.0".into()),
                host_port: p.host_port.to_string(),
            });
    }
    let networks = ep
        .attachments
        .iter()
        .map(|a| {
            (
                a.network.clone(),
                EndpointSettings {
                    network_id: a.network_id.clone(),
                    gateway: a.subnet.gateway().to_string(),
                    ip_address: a.ip.to_string(),
                    ip_prefix_len: a.subnet.prefix(),
                    mac_address: a.mac(),
                },
            )
        })
        .collect();
    let first = ep.attachments.first();
    NetworkSettings {
        ip_address: first.map(|a| a.ip.to_string()).unwrap_or_default(),
        gateway: first
            .map(|a| a.subnet.gateway().to_string())
            .unwrap_or_default(),
        mac_address: first.map(|a| a.mac()).unwrap_or_default(),
        ports,
        ip_prefix_len: first.map(|a| a.subnet.prefix()).unwrap_or(0),
        networks,
    }
}

/// The command line as `ps` shows it: arguments joined, each quoted only when it needs to be.
pub fn command_line(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.is_empty() || a.contains(char::is_whitespace) || a.contains('"') {
                format!("{a:?}")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn summary(r: &Record, node: &str) -> ContainerSummary {
    ContainerSummary {
        id: r.id.clone(),
        names: vec![format!("/{}", r.name)],
        image: r.config.image.clone(),
        image_id: r.image_id.clone(),
        command: command_line(&r.args),
        created: r.created / 1_000_000_000,
        ports: ports(r),
        labels: r.config.labels.clone(),
        state: r.state.status(),
        exit_code: r.exit_code,
        started_at: r.started_at / 1_000_000_000,
        finished_at: r.finished_at / 1_000_000_000,
        node: node.to_owned(),
    }
}

pub fn inspect(r: &Record, node: &str) -> ContainerInspect {
    let mut config = InspectConfig::from_config(&r.config);
    config.hostname = r.hostname.clone();
    ContainerInspect {
        id: r.id.clone(),
        name: format!("/{}", r.name),
        created: rfc3339_nanos(r.created),
        path: r.args.first().cloned().unwrap_or_default(),
        args: r.args.iter().skip(1).cloned().collect(),
        state: ContainerState {
            status: r.state.status(),
            running: r.state.is_running(),
            paused: r.state == crate::lifecycle::State::Paused,
            restarting: false,
            oom_killed: r.oom_killed,
            dead: false,
            pid: if r.state.is_running() {
                r.pid.unwrap_or(0) as i64
            } else {
                0
            },
            exit_code: r.exit_code,
            error: String::new(),
            started_at: rfc3339_nanos(r.started_at),
            finished_at: rfc3339_nanos(r.finished_at),
        },
        image: r.image_id.clone(),
        restart_count: r.restart_count,
        node: node.to_owned(),
        config,
        host_config: HostConfig::from_config(&r.config),
        mounts: r.mounts.clone(),
        network_settings: network_settings(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_quotes_only_when_needed() {
        let args: Vec<String> = ["sh", "-c", "echo hi", ""]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(command_line(&args), r#"sh -c "echo hi" """#);
    }
}

//! Docker-shaped output: aligned tables, `ps` status strings ("Up 3 seconds", "Exited (0) 2
//! minutes ago"), "5 seconds ago", command truncation, sizes, pretty JSON, and the simple
//! `{{.Field.Path}}` templates of `inspect -f`.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use protocol::messages::{ContainerStatus, ContainerSummary, PortSummary};
use serde_json::Value;

/// Unix seconds now.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Docker's `units.HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    if s < 1 {
        return "Less than a second".into();
    }
    if s == 1 {
        return "1 second".into();
    }
    if s < 60 {
        return format!("{s} seconds");
    }
    let minutes = s / 60;
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = (s as f64 / 3600.0 + 0.5) as i64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", s / 3600 / 24 / 365)
}

/// "5 seconds ago".
pub fn ago(then: i64, now: i64) -> String {
    format!("{} ago", human_duration(now - then))
}

/// The STATUS column of `ps`.
pub fn status_string(c: &ContainerSummary, now: i64) -> String {
    match c.state {
        ContainerStatus::Created => "Created".into(),
        ContainerStatus::Running => format!("Up {}", human_duration(now - c.started_at)),
        ContainerStatus::Paused => {
            format!("Up {} (Paused)", human_duration(now - c.started_at))
        }
        ContainerStatus::Restarting => {
            format!("Restarting ({}) {}", c.exit_code, ago(c.finished_at, now))
        }
        ContainerStatus::Removing => "Removal In Progress".into(),
        ContainerStatus::Exited => {
            if c.finished_at == 0 {
                format!("Exited ({})", c.exit_code)
            } else {
                format!("Exited ({}) {}", c.exit_code, ago(c.finished_at, now))
            }
        }
        ContainerStatus::Dead => "Dead".into(),
    }
}

/// Cuts `s` to `max` characters, the last one an ellipsis, as Docker's `Ellipsis`.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Double-quotes a string the way Go's `strconv.Quote` does for printable text.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The COMMAND column: truncated to 20 characters unless `no_trunc`, then quoted.
pub fn command_column(command: &str, no_trunc: bool) -> String {
    if no_trunc {
        quote(command)
    } else {
        quote(&ellipsis(command, 20))
    }
}

/// A 64-hex id (optionally `sha256:`-prefixed) cut to Docker's 12 characters.
pub fn short_id(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.chars().take(12).collect()
}

/// The PORTS column.
pub fn ports_column(ports: &[PortSummary]) -> String {
    ports
        .iter()
        .map(|p| match p.public_port {
            Some(public) => format!(
                "{}:{}->{}/{}",
                p.ip.as_deref().unwrap_or("0.0.0.0"),
                public,
                p.private_port,
                p.protocol
            ),
            None => format!("{}/{}", p.private_port, p.protocol),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The NAMES column: names without their leading slash.
pub fn names_column(names: &[String]) -> String {
    names
        .iter()
        .map(|n| n.strip_prefix('/').unwrap_or(n))
        .collect::<Vec<_>>()
        .join(",")
}

/// Formats `v` with `digits` significant digits like Go's `%.Ng` for the magnitudes sizes have
/// (no exponent form), trailing zeros removed.
fn sig(v: f64, digits: i32) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (digits - 1 - magnitude).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn scaled(size: f64, base: f64, units: &[&str], digits: i32) -> String {
    let mut v = size;
    let mut i = 0;
    while v >= base && i + 1 < units.len() {
        v /= base;
        i += 1;
    }
    format!("{}{}", sig(v, digits), units[i])
}

/// Docker's `HumanSizeWithPrecision(size, 3)` (decimal units), as `images` prints sizes.
pub fn human_size(bytes: u64) -> String {
    scaled(
        bytes as f64,
        1000.0,
        &["B", "kB", "MB", "GB", "TB", "PB"],
        3,
    )
}

/// Docker's `BytesSize` (binary units, 4 significant digits), as `stats` prints memory.
pub fn bytes_size(bytes: u64) -> String {
    scaled(
        bytes as f64,
        1024.0,
        &["B", "KiB", "MiB", "GiB", "TiB", "PiB"],
        4,
    )
}

/// A left-aligned table with Docker's spacing (3 spaces between columns).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let cols = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate().take(cols) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                l.push_str(cell);
                let pad = widths[i] + 3 - cell.chars().count();
                l.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

/// Writes to stdout, ignoring a closed pipe (`berth ps | head`).
pub fn print(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}

/// Pretty JSON with Docker's 4-space indentation.
pub fn pretty_json(v: &impl serde::Serialize) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    if v.serialize(&mut ser).is_err() {
        return "null".into();
    }
    String::from_utf8(buf).unwrap_or_default()
}

/// Prints what an `inspect` verb found: a JSON array (the default, `json`), or `format` rendered
/// as a template once per item.
pub fn print_inspected<T: serde::Serialize>(
    format: Option<&str>,
    found: &[T],
) -> anyhow::Result<()> {
    match format {
        None | Some("json") => print(&format!("{}\n", pretty_json(&found))),
        Some(tpl) => {
            let mut s = String::new();
            for item in found {
                let v = serde_json::to_value(item)?;
                s.push_str(&render_template(tpl, &v).map_err(anyhow::Error::msg)?);
                s.push('\n');
            }
            print(&s);
        }
    }
    Ok(())
}

/// Renders a simple Go template against a JSON value: `{{.A.B}}` and `{{json .A}}` (and `{{.}}`),
/// other text verbatim. Strings print bare, other values as JSON.
pub fn render_template(tpl: &str, v: &Value) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = tpl;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("template {tpl:?}: unclosed action"))?;
        let action = after[..end].trim();
        let (as_json, path) = match action.strip_prefix("json ") {
            Some(p) => (true, p.trim()),
            None => (false, action),
        };
        let path = path
            .strip_prefix('.')
            .ok_or_else(|| format!("template {tpl:?}: unsupported action {action:?}"))?;
        let mut cur = v;
        for key in path.split('.').filter(|k| !k.is_empty()) {
            cur = cur
                .get(key)
                .ok_or_else(|| format!("template {tpl:?}: no field {key:?}"))?;
        }
        match (as_json, cur) {
            (false, Value::String(s)) => out.push_str(s),
            (false, Value::Null) => out.push_str("<no value>"),
            _ => out.push_str(&cur.to_string()),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Docker's prune report: the removed objects under `heading`, then the space reclaimed.
pub fn prune_report(heading: &str, deleted: &[String], space_reclaimed: u64) -> String {
    let mut s = String::new();
    if !deleted.is_empty() {
        s.push_str(heading);
        s.push_str(":\n");
        for d in deleted {
            s.push_str(d);
            s.push('\n');
        }
        s.push('\n');
    }
    s.push_str(&format!(
        "Total reclaimed space: {}\n",
        human_size(space_reclaimed)
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn summary(state: ContainerStatus) -> ContainerSummary {
        ContainerSummary {
            id: "0123456789abcdef".repeat(4),
            names: vec!["/web".into()],
            image: "busybox".into(),
            image_id: "sha256:aa".into(),
            command: "sleep 100".into(),
            created: 1000,
            ports: vec![],
            labels: BTreeMap::new(),
            state,
            exit_code: 3,
            started_at: 1000,
            finished_at: 1100,
            node: "n".into(),
        }
    }

    #[test]
    fn durations_like_docker() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(60), "About a minute");
        assert_eq!(human_duration(125), "2 minutes");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(5 * 3600), "5 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
        assert_eq!(human_duration(20 * 86400), "2 weeks");
        assert_eq!(human_duration(90 * 86400), "3 months");
        assert_eq!(human_duration(800 * 86400), "2 years");
        assert_eq!(ago(100, 105), "5 seconds ago");
    }

    #[test]
    fn statuses() {
        assert_eq!(
            status_string(&summary(ContainerStatus::Running), 1003),
            "Up 3 seconds"
        );
        assert_eq!(
            status_string(&summary(ContainerStatus::Paused), 1001),
            "Up 1 second (Paused)"
        );
        assert_eq!(
            status_string(&summary(ContainerStatus::Exited), 1220),
            "Exited (3) 2 minutes ago"
        );
        assert_eq!(
            status_string(&summary(ContainerStatus::Created), 5000),
            "Created"
        );
    }

    #[test]
    fn truncation_and_quoting() {
        assert_eq!(command_column("sleep 100", false), "\"sleep 100\"");
        assert_eq!(
            command_column("sh -c 'while true; do echo hi; done'", false),
            "\"sh -c 'while true; …\""
        );
        assert_eq!(
            command_column("a \"b\"", true),
            "\"a \\\"b\\\"\"",
            "quotes escaped"
        );
        assert_eq!(short_id(&"ab".repeat(32)), "abababababab");
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(ellipsis("abc", 3), "abc");
        assert_eq!(ellipsis("abcd", 3), "ab…");
    }

    #[test]
    fn ports_and_names() {
        let ports = vec![
            PortSummary {
                ip: Some("0.0.0.0".into()),
                private_port: 80,
                public_port: Some(8080),
                protocol: "tcp".into(),
            },
            PortSummary {
                ip: None,
                private_port: 53,
                public_port: None,
                protocol: "udp".into(),
            },
        ];
        assert_eq!(ports_column(&ports), "0.0.0.0:8080->80/tcp, 53/udp");
        assert_eq!(names_column(&["/a".into(), "/b".into()]), "a,b");
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(4_264_000), "4.26MB");
        assert_eq!(human_size(12_000_000), "12MB");
        assert_eq!(bytes_size(1536), "1.5KiB");
        assert_eq!(bytes_size(8 << 30), "8GiB");
        assert_eq!(bytes_size(1_536_000), "1.465MiB");
    }

    #[test]
    fn tables_align() {
        let t = table(
            &["CONTAINER ID", "NAMES"],
            &[vec!["abc".into(), "web".into()]],
        );
        assert_eq!(t, "CONTAINER ID   NAMES\nabc            web\n");
    }

    #[test]
    fn templates() {
        let v: Value =
            serde_json::json!({"State": {"Status": "running", "Pid": 42}, "Name": "/web"});
        assert_eq!(render_template("{{.State.Status}}", &v).unwrap(), "running");
        assert_eq!(
            render_template("{{ .Name }} {{.State.Pid}}", &v).unwrap(),
            "/web 42"
        );
        assert_eq!(
            render_template("{{json .State}}", &v).unwrap(),
            r#"{"Pid":42,"Status":"running"}"#
        );
        assert!(render_template("{{.Nope}}", &v).is_err());
        assert!(render_template("{{.State", &v).is_err());
    }
}

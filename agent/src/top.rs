//! `top` (ps(1) filtered to the container's pids) and `stats` (cgroup counters).

use std::path::Path;

use nix::unistd::Pid;
use protocol::messages::{ApiError, ContainerStats, TopResult};

use crate::record::{now_nanos, Record};

/// Runs `ps` with the given options (default `-ef`) and keeps the header and the container's rows.
pub async fn run(pids: &[Pid], ps_args: Option<&str>) -> Result<TopResult, ApiError> {
    let args: Vec<&str> = ps_args.unwrap_or("-ef").split_whitespace().collect();
    let out = tokio::process::Command::new("ps")
        .args(&args)
        .output()
        .await
        .map_err(|e| ApiError::internal(format!("run ps: {e}")))?;
    if !out.status.success() {
        return Err(ApiError::invalid(format!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    parse(&String::from_utf8_lossy(&out.stdout), pids)
}

fn parse(text: &str, pids: &[Pid]) -> Result<TopResult, ApiError> {
    let mut lines = text.lines();
    let titles: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let pid_col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| ApiError::invalid("ps output has no PID column: add -o pid"))?;
    let n = titles.len();
    let processes = lines
        .filter_map(|line| {
            let mut cols: Vec<String> = Vec::with_capacity(n);
            let mut rest = line.trim_start();
            while cols.len() + 1 < n {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                cols.push(rest[..end].to_owned());
                rest = rest[end..].trim_start();
            }
            cols.push(rest.to_owned());
            let pid: i32 = cols.get(pid_col)?.parse().ok()?;
            pids.iter().any(|p| p.as_raw() == pid).then_some(cols)
        })
        .collect();
    Ok(TopResult { titles, processes })
}

/// One sample of the container's resource counters.
pub fn stats(record: &Record, runtime_root: &Path) -> Result<ContainerStats, ApiError> {
    let mut s = ContainerStats {
        id: record.id.clone(),
        name: record.name.clone(),
        read_at: now_nanos(),
        system_cpu_ns: system_cpu_ns(),
        // SAFETY: sysconf has no preconditions.
        online_cpus: unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as u32,
        ..Default::default()
    };
    if !record.state.is_running() {
        return Ok(s);
    }
    let rt = runtime::Runtime::new(runtime_root);
    let (state, _) = rt
        .state(&record.id)
        .map_err(|e| ApiError::internal(format!("stats: {e}")))?;
    let cg = runtime::cgroups::Cgroup::open(&state.cgroup_path)
        .and_then(|c| c.stats())
        .map_err(|e| ApiError::internal(format!("stats: {e}")))?;
    s.cpu_total_ns = cg.cpu_usage_ns.unwrap_or(0);
    s.memory_usage = cg
        .memory_usage_bytes
        .unwrap_or(0)
        .saturating_sub(cg.memory_inactive_file_bytes.unwrap_or(0));
    s.memory_limit = cg.memory_limit_bytes.unwrap_or_else(host_memory);
    s.pids = cg.pids_current.unwrap_or(0);
    Ok(s)
}

/// Total CPU time of the host from /proc/stat, in nanoseconds (the denominator of CPU %).
fn system_cpu_ns() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0;
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    stat.lines()
        .next()
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .take(8)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum::<u64>()
        })
        .map(|ticks| ticks * 1_000_000_000 / hz)
        .unwrap_or(0)
}

fn host_memory() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let (pages, size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    (pages.max(0) as u64) * (size.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_header_and_container_rows() {
        let text = "UID          PID    PPID  C STIME TTY          TIME CMD\n\
                    root           1       0  0 08:00 ?        00:00:01 /sbin/init splash\n\
                    root        4242       1  0 08:01 ?        00:00:00 sleep 100\n";
        let top = parse(text, &[Pid::from_raw(4242)]).unwrap();
        assert_eq!(top.titles.len(), 8);
        assert_eq!(top.processes.len(), 1);
        assert_eq!(top.processes[0][7], "sleep 100");
        assert!(parse("USER CMD\nx y\n", &[]).is_err());
    }
}

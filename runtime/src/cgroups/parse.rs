//! Pure conversions between OCI resource values and cgroup file contents, and parsers for the
//! files this module reads (flat keyed files such as `memory.stat`, `cpu.stat`, `cgroup.events`,
//! `memory.events`, `memory.oom_control`; pid lists; limits). Kept free of I/O so they can be
//! unit-tested with fixtures.

use std::path::Path;

use nix::unistd::Pid;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::CgroupError;

/// v1 reports "no limit" as a huge page-aligned number (e.g. 9223372036854771712); anything at
/// or above this is treated as unlimited.
const V1_UNLIMITED: u64 = 1 << 62;

/// The value of `key` in a flat keyed file ("key value" per line), as an integer.
pub(crate) fn keyed_u64(content: &str, key: &str) -> Option<u64> {
    content.lines().find_map(|line| {
        let mut it = line.split_ascii_whitespace();
        if it.next() == Some(key) {
            it.next().and_then(|v| v.parse().ok())
        } else {
            None
        }
    })
}

/// Parses a `cgroup.procs` listing (one pid per line).
pub(crate) fn parse_pids(content: &str, path: &Path) -> Result<Vec<Pid>, CgroupError> {
    content
        .split_ascii_whitespace()
        .map(|tok| {
            tok.parse::<i32>()
                .ok()
                .filter(|p| *p > 0)
                .map(Pid::from_raw)
                .ok_or_else(|| CgroupError::Parse {
                    path: path.to_path_buf(),
                    reason: format!("{tok:?} is not a pid"),
                })
        })
        .collect()
}

/// Parses a single-value limit or counter file: `Ok(None)` for "max" (v2) or the v1 unlimited
/// sentinel.
pub(crate) fn parse_limit(content: &str, path: &Path) -> Result<Option<u64>, CgroupError> {
    let v = content.trim();
    if v == "max" {
        return Ok(None);
    }
    match v.parse::<u64>() {
        Ok(n) if n >= V1_UNLIMITED => Ok(None),
        Ok(n) => Ok(Some(n)),
        // v1 shows -1 in a few files (cpu.cfs_quota_us) for "unlimited".
        Err(_) if v == "-1" => Ok(None),
        Err(_) => Err(CgroupError::Parse {
            path: path.to_path_buf(),
            reason: format!("{v:?} is neither a number nor \"max\""),
        }),
    }
}

/// Parses a plain counter file (e.g. `memory.usage_in_bytes`, `cpuacct.usage`, `pids.current`).
pub(crate) fn parse_u64(content: &str, path: &Path) -> Result<u64, CgroupError> {
    let v = content.trim();
    v.parse().map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        reason: format!("{v:?} is not a number"),
    })
}

/// OCI (and Docker) treat 0 as "not set" for memory and CPU values written by Go tooling.
pub(crate) fn set_i64(v: Option<i64>) -> Option<i64> {
    v.filter(|v| *v != 0)
}

/// v1 memory value: negative means unlimited, written as -1.
pub(crate) fn v1_bytes(v: i64) -> String {
    if v < 0 {
        "-1".to_owned()
    } else {
        v.to_string()
    }
}

/// v2 memory value: negative means unlimited, written as "max".
pub(crate) fn v2_bytes(v: i64) -> String {
    if v < 0 {
        "max".to_owned()
    } else {
        v.to_string()
    }
}

/// Checks the OCI rule that memory+swap (`swap`) is not below the memory limit.
pub(crate) fn check_swap(limit: Option<i64>, swap: Option<i64>) -> Result<(), String> {
    match (limit, swap) {
        (Some(l), Some(s)) if l > 0 && s > 0 && s < l => Err(format!(
            "memory+swap limit {s} is below the memory limit {l}"
        )),
        _ => Ok(()),
    }
}

/// The v1 `memory.memsw.limit_in_bytes` value: the OCI swap value (memory+swap), or, when only
/// a memory limit is given, the same as the memory limit so the container cannot use swap.
pub(crate) fn v1_memsw(limit: Option<i64>, swap: Option<i64>) -> Option<i64> {
    swap.or(limit)
}

/// The v2 `memory.swap.max` value. OCI `swap` is memory+swap (v1 semantics) while v2 limits
/// swap alone, so it becomes `swap - limit`; with a memory limit and no swap value, swap is
/// disabled (0), matching what v1 does.
pub(crate) fn v2_swap_max(limit: Option<i64>, swap: Option<i64>) -> Result<Option<String>, String> {
    match (limit, swap) {
        (None, None) => Ok(None),
        (_, Some(s)) if s < 0 => Ok(Some("max".to_owned())),
        (Some(l), None) if l < 0 => Ok(Some("max".to_owned())),
        (Some(_), None) => Ok(Some("0".to_owned())),
        (None, Some(_)) => Err("a swap limit needs a memory limit on cgroup v2".to_owned()),
        (Some(l), Some(_)) if l < 0 => {
            Err("a swap limit needs a memory limit on cgroup v2".to_owned())
        }
        (Some(l), Some(s)) => {
            check_swap(Some(l), Some(s))?;
            Ok(Some((s - l).to_string()))
        }
    }
}

/// Converts v1 CPU shares (2..=262144, default 1024) to a v2 `cpu.weight` (1..=10000, default
/// 100) with the linear mapping runc and crun use, so a spec means the same on both hierarchies.
pub(crate) fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// The v2 `cpu.max` value ("quota period", quota "max" for unlimited) for an OCI quota/period
/// pair, or `None` when neither is set. `current` is the file's present content, needed only
/// when the period changes alone (the quota must then be kept).
pub(crate) fn cpu_max(
    quota: Option<i64>,
    period: Option<u64>,
    current: Option<&str>,
) -> Option<String> {
    let period = period.filter(|p| *p > 0);
    let quota = match set_i64(quota) {
        Some(q) if q > 0 => q.to_string(),
        Some(_) => "max".to_owned(),
        None => {
            period?;
            current
                .and_then(|c| c.split_ascii_whitespace().next())
                .unwrap_or("max")
                .to_owned()
        }
    };
    Some(match period {
        Some(p) => format!("{quota} {p}"),
        None => quota,
    })
}

/// Formats an OCI device rule for v1 `devices.allow`/`devices.deny`: `Ok(None)` for rules the
/// devices controller cannot express and need not (FIFOs are not device nodes).
pub(crate) fn device_rule(rule: &LinuxDeviceCgroup) -> Result<Option<String>, String> {
    let typ = match rule.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => "a",
        LinuxDeviceType::B => "b",
        LinuxDeviceType::C | LinuxDeviceType::U => "c",
        LinuxDeviceType::P => return Ok(None),
    };
    let num = |n: Option<i64>| match n {
        Some(n) if n >= 0 => Ok(n.to_string()),
        Some(n) => Err(format!("negative device number {n}")),
        None => Ok("*".to_owned()),
    };
    let access = rule.access().as_deref().unwrap_or("");
    let access = if access.is_empty() { "rwm" } else { access };
    if access.len() > 3 || !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(format!(
            "access {access:?} is not a combination of r, w and m"
        ));
    }
    Ok(Some(format!(
        "{typ} {}:{} {access}",
        num(rule.major())?,
        num(rule.minor())?
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    const V2_MEMORY_STAT: &str = "anon 1290240\nfile 4096\nkernel 462848\nkernel_stack 65536\n\
inactive_anon 1269760\nactive_anon 8192\ninactive_file 4096\nactive_file 0\n";
    const V1_MEMORY_STAT: &str = "cache 0\nrss 1048576\ninactive_file 0\n\
hierarchical_memory_limit 9223372036854771712\ntotal_cache 8192\ntotal_inactive_file 8192\n";
    const CPU_STAT: &str = "usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\n\
nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n";
    const EVENTS: &str = "populated 1\nfrozen 1\n";
    const MEMORY_EVENTS: &str = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
    const OOM_CONTROL: &str = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";

    #[test]
    fn keyed_files() {
        assert_eq!(keyed_u64(V2_MEMORY_STAT, "inactive_file"), Some(4096));
        assert_eq!(keyed_u64(V2_MEMORY_STAT, "file"), Some(4096));
        assert_eq!(keyed_u64(V2_MEMORY_STAT, "anon"), Some(1290240));
        assert_eq!(keyed_u64(V1_MEMORY_STAT, "total_inactive_file"), Some(8192));
        assert_eq!(keyed_u64(V1_MEMORY_STAT, "inactive_file"), Some(0));
        assert_eq!(keyed_u64(CPU_STAT, "usage_usec"), Some(123456));
        assert_eq!(keyed_u64(EVENTS, "frozen"), Some(1));
        assert_eq!(keyed_u64("populated 0\nfrozen 0\n", "frozen"), Some(0));
        assert_eq!(keyed_u64(MEMORY_EVENTS, "oom_kill"), Some(1));
        assert_eq!(keyed_u64(OOM_CONTROL, "oom_kill"), Some(3));
        assert_eq!(keyed_u64(OOM_CONTROL, "missing"), None);
        assert_eq!(keyed_u64("oom_kill notanumber\n", "oom_kill"), None);
    }

    #[test]
    fn pids_and_limits() {
        let p = Path::new("/x/cgroup.procs");
        assert_eq!(
            parse_pids("12\n345\n", p).expect("pids"),
            vec![Pid::from_raw(12), Pid::from_raw(345)]
        );
        assert!(parse_pids("", p).expect("empty").is_empty());
        assert!(matches!(
            parse_pids("12\nx\n", p),
            Err(CgroupError::Parse { .. })
        ));
        assert_eq!(parse_limit("max\n", p).expect("max"), None);
        assert_eq!(parse_limit("9223372036854771712\n", p).expect("v1"), None);
        assert_eq!(parse_limit("-1\n", p).expect("-1"), None);
        assert_eq!(parse_limit("33554432\n", p).expect("n"), Some(33554432));
        assert!(parse_limit("lots", p).is_err());
        assert_eq!(parse_u64("42\n", p).expect("n"), 42);
    }

    #[test]
    fn shares_weight_conversion() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(512), 20);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(0), 1);
        assert_eq!(shares_to_weight(1_000_000), 10_000);
    }

    #[test]
    fn cpu_max_values() {
        assert_eq!(cpu_max(None, None, None), None);
        assert_eq!(
            cpu_max(Some(50_000), Some(100_000), None).as_deref(),
            Some("50000 100000")
        );
        assert_eq!(cpu_max(Some(50_000), None, None).as_deref(), Some("50000"));
        assert_eq!(cpu_max(Some(-1), None, None).as_deref(), Some("max"));
        assert_eq!(
            cpu_max(Some(-1), Some(20_000), None).as_deref(),
            Some("max 20000")
        );
        assert_eq!(cpu_max(Some(0), None, None), None);
        assert_eq!(
            cpu_max(None, Some(20_000), Some("30000 100000\n")).as_deref(),
            Some("30000 20000")
        );
        assert_eq!(
            cpu_max(None, Some(20_000), None).as_deref(),
            Some("max 20000")
        );
    }

    #[test]
    fn swap_values() {
        assert_eq!(v2_swap_max(None, None), Ok(None));
        assert_eq!(v2_swap_max(Some(100), None), Ok(Some("0".into())));
        assert_eq!(v2_swap_max(Some(-1), None), Ok(Some("max".into())));
        assert_eq!(v2_swap_max(Some(100), Some(-1)), Ok(Some("max".into())));
        assert_eq!(v2_swap_max(Some(100), Some(300)), Ok(Some("200".into())));
        assert!(v2_swap_max(Some(100), Some(50)).is_err());
        assert!(v2_swap_max(None, Some(50)).is_err());
        assert!(v2_swap_max(Some(-1), Some(50)).is_err());
        assert_eq!(v1_memsw(Some(100), None), Some(100));
        assert_eq!(v1_memsw(Some(100), Some(300)), Some(300));
        assert_eq!(v1_memsw(None, None), None);
        assert!(check_swap(Some(100), Some(50)).is_err());
        assert!(check_swap(Some(100), Some(-1)).is_ok());
        assert_eq!(v1_bytes(-5), "-1");
        assert_eq!(v2_bytes(-1), "max");
        assert_eq!(set_i64(Some(0)), None);
    }

    #[test]
    fn device_rules() {
        let rule = |typ: Option<LinuxDeviceType>, major, minor, access: &str| {
            let mut b = LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .access(access);
            if let Some(t) = typ {
                b = b.typ(t);
            }
            if let Some(m) = major {
                b = b.major(m);
            }
            if let Some(m) = minor {
                b = b.minor(m);
            }
            b.build().expect("rule")
        };
        assert_eq!(
            device_rule(&rule(None, None, None, "")),
            Ok(Some("a *:* rwm".into()))
        );
        assert_eq!(
            device_rule(&rule(Some(LinuxDeviceType::C), Some(1), Some(3), "rw")),
            Ok(Some("c 1:3 rw".into()))
        );
        assert_eq!(
            device_rule(&rule(Some(LinuxDeviceType::U), Some(136), None, "rwm")),
            Ok(Some("c 136:* rwm".into()))
        );
        assert_eq!(
            device_rule(&rule(Some(LinuxDeviceType::B), None, None, "m")),
            Ok(Some("b *:* m".into()))
        );
        assert_eq!(
            device_rule(&rule(Some(LinuxDeviceType::P), None, None, "rwm")),
            Ok(None)
        );
        assert!(device_rule(&rule(Some(LinuxDeviceType::C), Some(1), Some(3), "rwx")).is_err());
        assert!(device_rule(&rule(Some(LinuxDeviceType::C), Some(-1), Some(3), "r")).is_err());
    }
}

//! Parsers for the values of Docker-style flags: `-p`, `-v`, `--tmpfs`, `-m`, `--cpus`,
//! `--restart`, `-e`/`--env-file`, `-l`, `--since`, `--filter` and `--detach-keys`. Each returns a
//! one-line error naming the flag and the value, so bad input never reaches the controller.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use protocol::messages::{MountSpec, PortBinding, PortProtocol, RestartPolicy};

/// A size with Docker's units: a number (fractions allowed) followed by `b`, `k`, `m`, `g`, `t`
/// (optionally `b`/`ib` after the letter, any case), powers of 1024. No unit means bytes.
pub fn parse_bytes(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| anyhow!("invalid size: {s:?}"))?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => bail!("invalid size: {s:?}: unknown unit {unit:?} (use b, k, m or g)"),
    };
    let v = n * mult as f64;
    if !v.is_finite() || v < 0.0 || v > u64::MAX as f64 {
        bail!("invalid size: {s:?}");
    }
    Ok(v as u64)
}

/// `--memory`: a size, at least 6 MiB as Docker requires.
pub fn parse_memory(s: &str) -> Result<u64> {
    let v = parse_bytes(s).map_err(|e| anyhow!("invalid argument {s:?} for --memory: {e}"))?;
    if v < 6 << 20 {
        bail!("invalid argument {s:?} for --memory: the minimum memory limit is 6MB");
    }
    Ok(v)
}

/// `--cpus 1.5` → nano-CPUs.
pub fn parse_cpus(s: &str) -> Result<u64> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| anyhow!("invalid argument {s:?} for --cpus: not a number"))?;
    if !v.is_finite() || v <= 0.0 {
        bail!("invalid argument {s:?} for --cpus: must be a positive number");
    }
    Ok((v * 1e9).round() as u64)
}

/// `--restart no|on-failure[:N]|always|unless-stopped`.
pub fn parse_restart(s: &str) -> Result<RestartPolicy> {
    let (name, max) = match s.split_once(':') {
        Some((n, m)) => (n, Some(m)),
        None => (s, None),
    };
    let policy = match (name, max) {
        ("no", None) | ("", None) => RestartPolicy::No,
        ("always", None) => RestartPolicy::Always,
        ("unless-stopped", None) => RestartPolicy::UnlessStopped,
        ("on-failure", None) => RestartPolicy::OnFailure { max_retries: None },
        ("on-failure", Some(m)) => {
            let n: u32 = m.parse().map_err(|_| {
                anyhow!("invalid restart policy {s:?}: maximum retry count must be a number")
            })?;
            RestartPolicy::OnFailure {
                max_retries: Some(n),
            }
        }
        (n, Some(_)) if ["no", "always", "unless-stopped"].contains(&n) => {
            bail!("invalid restart policy {s:?}: maximum retry count can only be used with 'on-failure'")
        }
        _ => bail!(
            "invalid restart policy {s:?}: use no, always, unless-stopped or on-failure[:max-retries]"
        ),
    };
    Ok(policy)
}

fn parse_port_number(s: &str, spec: &str) -> Result<u16> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => bail!("invalid port {s:?} in -p {spec:?}"),
    }
}

/// A port or an inclusive range `8000-8010`.
fn parse_port_range(s: &str, spec: &str) -> Result<(u16, u16)> {
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (parse_port_number(a, spec)?, parse_port_number(b, spec)?);
            if a > b {
                bail!("invalid port range {s:?} in -p {spec:?}: the end is before the start");
            }
            Ok((a, b))
        }
        None => {
            let p = parse_port_number(s, spec)?;
            Ok((p, p))
        }
    }
}

/// `-p [ip:][hostPort:]containerPort[/tcp|udp]` where both ports may be ranges of equal length
/// (`8000-8010:80-90`), or the container port alone a range (ephemeral host ports): one binding
/// per container port.
pub fn parse_ports(spec: &str) -> Result<Vec<PortBinding>> {
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((r, "tcp")) => (r, PortProtocol::Tcp),
        Some((r, "udp")) => (r, PortProtocol::Udp),
        Some((_, p)) => bail!("invalid protocol {p:?} in -p {spec:?}: use tcp or udp"),
        None => (spec, PortProtocol::Tcp),
    };
    let (ip, ports) = split_host_ip(rest, spec)?;
    let (host, container) = match ports.split_once(':') {
        Some(("", c)) => (None, parse_port_range(c, spec)?),
        Some((h, c)) => (Some(parse_port_range(h, spec)?), parse_port_range(c, spec)?),
        None => (None, parse_port_range(&ports, spec)?),
    };
    if let Some(h) = host {
        if h.1 - h.0 != container.1 - container.0 {
            bail!("invalid -p {spec:?}: the host and container port ranges differ in length");
        }
    }
    Ok((container.0..=container.1)
        .enumerate()
        .map(|(i, container_port)| PortBinding {
            host_ip: ip.clone(),
            host_port: host.map(|h| h.0 + i as u16),
            container_port,
            protocol,
        })
        .collect())
}

/// Splits `[ip:]ports` (IPv6 in brackets) and checks the address.
fn split_host_ip(rest: &str, spec: &str) -> Result<(Option<String>, String)> {
    // Split off a bracketed IPv6 address first.
    let (ip, ports) = if let Some(after) = rest.strip_prefix('[') {
        let (addr, tail) = after
            .split_once(']')
            .ok_or_else(|| anyhow!("invalid -p {spec:?}: unclosed '['"))?;
        let tail = tail
            .strip_prefix(':')
            .ok_or_else(|| anyhow!("invalid -p {spec:?}: expected ':' after the address"))?;
        (Some(addr.to_string()), tail.to_string())
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        match parts.len() {
            1 | 2 => (None, rest.to_string()),
            3 => (
                Some(parts[0].to_string()).filter(|s| !s.is_empty()),
                format!("{}:{}", parts[1], parts[2]),
            ),
            _ => bail!("invalid -p {spec:?}: expected [ip:][hostPort:]containerPort[/proto]"),
        }
    };
    if let Some(ip) = &ip {
        ip.parse::<IpAddr>()
            .map_err(|_| anyhow!("invalid -p {spec:?}: {ip:?} is not an IP address"))?;
    }
    Ok((ip, ports))
}

fn valid_volume_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `-v name:/path[:ro|rw]`, `-v /host:/path[:ro|rw]`, `-v /path` (anonymous).
pub fn parse_volume(spec: &str) -> Result<MountSpec> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [t] => (None, *t, None),
        [s, t] => (Some(*s), *t, None),
        [s, t, m] => (Some(*s), *t, Some(*m)),
        _ => bail!("invalid volume specification {spec:?}"),
    };
    if !target.starts_with('/') {
        bail!(
            "invalid volume specification {spec:?}: the container path {target:?} must be absolute"
        );
    }
    if target == "/" {
        bail!("invalid volume specification {spec:?}: cannot mount over /");
    }
    let read_only = match mode {
        None | Some("rw") => false,
        Some("ro") => true,
        Some(m) => {
            bail!("invalid volume specification {spec:?}: invalid mode {m:?} (use ro or rw)")
        }
    };
    Ok(match source {
        None => MountSpec::Anonymous {
            target: target.to_string(),
        },
        Some(s) if s.starts_with('/') => MountSpec::Bind {
            source: s.to_string(),
            target: target.to_string(),
            read_only,
        },
        Some(s) if valid_volume_name(s) => MountSpec::Named {
            name: s.to_string(),
            target: target.to_string(),
            read_only,
        },
        Some(s) => bail!(
            "invalid volume specification {spec:?}: {s:?} includes invalid characters for a local volume name, only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed; a host directory must be an absolute path"
        ),
    })
}

/// `--tmpfs /path[:size=64m,...]`; only `size` is kept, other options are accepted.
pub fn parse_tmpfs(spec: &str) -> Result<MountSpec> {
    let (target, opts) = spec.split_once(':').unwrap_or((spec, ""));
    if !target.starts_with('/') || target == "/" {
        bail!("invalid --tmpfs {spec:?}: the container path must be absolute and not /");
    }
    let mut size = None;
    for opt in opts.split(',').filter(|o| !o.is_empty()) {
        if let Some(v) = opt.strip_prefix("size=") {
            size = Some(parse_bytes(v).with_context(|| format!("invalid --tmpfs {spec:?}"))?);
        }
    }
    Ok(MountSpec::Tmpfs {
        target: target.to_string(),
        size,
    })
}

/// `-e KEY=value` as is; `-e KEY` takes the value from this environment, or is dropped when
/// unset (Docker's rule).
pub fn parse_env(item: &str) -> Result<Option<String>> {
    if item.is_empty() || item.starts_with('=') {
        bail!("invalid environment variable {item:?}");
    }
    if item.contains('=') {
        return Ok(Some(item.to_string()));
    }
    Ok(std::env::var(item).ok().map(|v| format!("{item}={v}")))
}

/// The lines of an `--env-file`: `KEY=value` or `KEY`, blank lines and `#` comments skipped.
pub fn parse_env_file(text: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(kv) = parse_env(line).with_context(|| format!("line {}", n + 1))? {
            out.push(kv);
        }
    }
    Ok(out)
}

/// `-l key=value` (or `-l key` for an empty value) into a map.
pub fn parse_labels(items: &[String]) -> Result<BTreeMap<String, String>> {
    let mut m = BTreeMap::new();
    for l in items {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        if k.is_empty() {
            bail!("invalid label {l:?}: empty key");
        }
        m.insert(k.to_string(), v.to_string());
    }
    Ok(m)
}

/// `--filter key=value` (repeatable) into Docker's filter map.
pub fn parse_filters(items: &[String]) -> Result<BTreeMap<String, Vec<String>>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in items {
        match f.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                m.entry(k.to_string()).or_default().push(v.to_string())
            }
            _ => bail!("bad format of filter {f:?} (expected name=value)"),
        }
    }
    Ok(m)
}

fn unix_nanos(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

/// `--since`/`--until`: a relative duration (`10m`, `1h30m`, `45s`: that long before `now`), an
/// RFC 3339 time (`2024-01-02T15:04:05Z`, fractions allowed), a date (`2024-01-02`), or unix
/// seconds (`1700000000[.5]`). Returns unix nanoseconds.
pub fn parse_time(s: &str, now: SystemTime) -> Result<i64> {
    let t = s.trim();
    if t.is_empty() {
        bail!("invalid time {s:?}");
    }
    if t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        let secs: f64 = t.parse().map_err(|_| anyhow!("invalid time {s:?}"))?;
        return Ok((secs * 1e9) as i64);
    }
    if let Ok(d) = humantime::parse_duration(t) {
        return Ok(unix_nanos(now.checked_sub(d).unwrap_or(UNIX_EPOCH)));
    }
    let candidate = if t.len() == 10 && t.as_bytes().get(4) == Some(&b'-') {
        format!("{t}T00:00:00Z")
    } else {
        t.to_string()
    };
    if let Ok(at) = humantime::parse_rfc3339_weak(&candidate) {
        return Ok(unix_nanos(at));
    }
    if let Some(off) = parse_offset_time(&candidate) {
        return Ok(off);
    }
    bail!("invalid time {s:?}: use a duration like 10m or 1h30m, an RFC 3339 time, or unix seconds")
}

/// RFC 3339 with a numeric offset (`2024-01-02T15:04:05+02:00`), which humantime does not take.
fn parse_offset_time(s: &str) -> Option<i64> {
    let (pos, sign) = s
        .char_indices()
        .skip(19)
        .find(|(_, c)| *c == '+' || *c == '-')
        .map(|(i, c)| (i, if c == '+' { 1i64 } else { -1 }))?;
    let (base, off) = s.split_at(pos);
    let (h, m) = off[1..].split_once(':')?;
    let secs = h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60;
    let at = humantime::parse_rfc3339_weak(base).ok()?;
    Some(unix_nanos(at) - sign * secs * 1_000_000_000)
}

/// `--detach-keys`: comma-separated keys, each `ctrl-X` (X a letter or one of `@[\]^_`) or a
/// single character. Docker's default is `ctrl-p,ctrl-q`.
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for key in s.split(',') {
        let key = key.trim();
        let b = if let Some(c) = key.strip_prefix("ctrl-") {
            let mut cs = c.chars();
            match (cs.next(), cs.next()) {
                (Some(ch), None) if ch.is_ascii_alphabetic() => {
                    (ch.to_ascii_lowercase() as u8) & 0x1f
                }
                (Some(ch @ ('@' | '[' | '\\' | ']' | '^' | '_')), None) => (ch as u8) & 0x1f,
                _ => bail!("invalid detach keys {s:?}: unknown key {key:?}"),
            }
        } else {
            let mut cs = key.chars();
            match (cs.next(), cs.next()) {
                (Some(ch), None) if ch.is_ascii() => ch as u8,
                _ => bail!("invalid detach keys {s:?}: unknown key {key:?}"),
            }
        };
        out.push(b);
    }
    if out.is_empty() {
        bail!("invalid detach keys {s:?}");
    }
    Ok(out)
}

/// Docker's default detach sequence, Ctrl-P Ctrl-Q.
pub const DEFAULT_DETACH_KEYS: &[u8] = &[0x10, 0x11];

/// Finds the detach sequence in a stream of stdin bytes, holding back a partial match until it
/// is complete (detach) or broken (the held bytes are forwarded).
#[derive(Debug)]
pub struct DetachMatcher {
    keys: Vec<u8>,
    held: usize,
}

impl DetachMatcher {
    /// A matcher for `keys`; empty keys never match.
    pub fn new(keys: Vec<u8>) -> DetachMatcher {
        DetachMatcher { keys, held: 0 }
    }

    /// Feeds input; returns the bytes to forward and whether the sequence completed (bytes
    /// after it are dropped, as the session ends).
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        if self.keys.is_empty() {
            out.extend_from_slice(input);
            return (out, false);
        }
        for &b in input {
            if b == self.keys[self.held] {
                self.held += 1;
                if self.held == self.keys.len() {
                    self.held = 0;
                    return (out, true);
                }
            } else {
                out.extend_from_slice(&self.keys[..self.held]);
                self.held = 0;
                if b == self.keys[0] {
                    self.held = 1;
                } else {
                    out.push(b);
                }
            }
        }
        (out, false)
    }

    /// Bytes held back by a partial match (forwarded when stdin ends).
    pub fn flush(&mut self) -> Vec<u8> {
        let v = self.keys[..self.held].to_vec();
        self.held = 0;
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sizes_with_docker_units() {
        assert_eq!(parse_bytes("512").unwrap(), 512);
        assert_eq!(parse_bytes("10b").unwrap(), 10);
        assert_eq!(parse_bytes("4k").unwrap(), 4096);
        assert_eq!(parse_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("64MB").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("2GiB").unwrap(), 2 << 30);
        assert!(parse_bytes("12x").is_err());
        assert!(parse_bytes("m").is_err());
        assert!(parse_bytes("-3m").is_err());
        assert_eq!(parse_memory("256m").unwrap(), 256 << 20);
        let e = parse_memory("1m").unwrap_err().to_string();
        assert!(e.contains("--memory") && e.contains("6MB"), "{e}");
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpus("1.5").unwrap(), 1_500_000_000);
        assert_eq!(parse_cpus("0.25").unwrap(), 250_000_000);
        assert!(parse_cpus("0").is_err());
        assert!(parse_cpus("lots").is_err());
    }

    #[test]
    fn restart_policies() {
        assert_eq!(parse_restart("no").unwrap(), RestartPolicy::No);
        assert_eq!(parse_restart("always").unwrap(), RestartPolicy::Always);
        assert_eq!(
            parse_restart("unless-stopped").unwrap(),
            RestartPolicy::UnlessStopped
        );
        assert_eq!(
            parse_restart("on-failure").unwrap(),
            RestartPolicy::OnFailure { max_retries: None }
        );
        assert_eq!(
            parse_restart("on-failure:3").unwrap(),
            RestartPolicy::OnFailure {
                max_retries: Some(3)
            }
        );
        assert!(parse_restart("on-failure:x").is_err());
        assert!(parse_restart("always:2").is_err());
        assert!(parse_restart("sometimes").is_err());
    }

    fn one(spec: &str) -> Result<PortBinding> {
        let mut v = parse_ports(spec)?;
        assert_eq!(v.len(), 1, "{spec}");
        Ok(v.remove(0))
    }

    #[test]
    fn port_ranges() {
        let v = parse_ports("8000-8002:80-82/udp").unwrap();
        let pairs: Vec<_> = v.iter().map(|p| (p.host_port, p.container_port)).collect();
        assert_eq!(
            pairs,
            [(Some(8000), 80), (Some(8001), 81), (Some(8002), 82)]
        );
        assert!(v.iter().all(|p| p.protocol == PortProtocol::Udp));
        let v = parse_ports("80-81").unwrap();
        assert_eq!(v.len(), 2);
        assert!(v.iter().all(|p| p.host_port.is_none()));
        assert!(parse_ports("8000-8010:80").is_err());
        assert!(parse_ports("90-80").is_err());
        assert!(parse_ports("99999:80").is_err());
        assert!(parse_ports("abc").is_err());
    }

    #[test]
    fn ports() {
        let p = one("8080:80").unwrap();
        assert_eq!(
            (p.host_ip, p.host_port, p.container_port, p.protocol),
            (None, Some(8080), 80, PortProtocol::Tcp)
        );
        let p = one("80").unwrap();
        assert_eq!((p.host_port, p.container_port), (None, 80));
        let p = one("127.0.0.1:53:53/udp").unwrap();
        assert_eq!(
            (p.host_ip.as_deref(), p.host_port, p.protocol),
            (Some("127.0.0.1"), Some(53), PortProtocol::Udp)
        );
        let p = one("127.0.0.1::80").unwrap();
        assert_eq!((p.host_port, p.container_port), (None, 80));
        let p = one("[::1]:8080:80").unwrap();
        assert_eq!(p.host_ip.as_deref(), Some("::1"));
        for bad in [
            "",
            "0",
            "70000",
            "80/sctp",
            "a:b",
            "1.2.3:80:80",
            "8000-8010:80",
            "1:2:3:4",
        ] {
            assert!(parse_ports(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn volumes() {
        assert_eq!(
            parse_volume("data:/var/lib/data").unwrap(),
            MountSpec::Named {
                name: "data".into(),
                target: "/var/lib/data".into(),
                read_only: false
            }
        );
        assert_eq!(
            parse_volume("/srv:/www:ro").unwrap(),
            MountSpec::Bind {
                source: "/srv".into(),
                target: "/www".into(),
                read_only: true
            }
        );
        assert_eq!(
            parse_volume("/cache").unwrap(),
            MountSpec::Anonymous {
                target: "/cache".into()
            }
        );
        for bad in [
            "data:rel",
            "./x:/y",
            "a:/b:rx",
            "a:/b:ro:x",
            "x:/",
            "relative",
        ] {
            assert!(parse_volume(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_tmpfs("/run:size=64m,mode=1777").unwrap(),
            MountSpec::Tmpfs {
                target: "/run".into(),
                size: Some(64 << 20)
            }
        );
        assert!(parse_tmpfs("run").is_err());
    }

    #[test]
    fn env_and_labels() {
        assert_eq!(parse_env("A=b=c").unwrap(), Some("A=b=c".into()));
        std::env::set_var("BERTH_TEST_PARSE_ENV", "v");
        assert_eq!(
            parse_env("BERTH_TEST_PARSE_ENV").unwrap(),
            Some("BERTH_TEST_PARSE_ENV=v".into())
        );
        assert_eq!(parse_env("BERTH_TEST_SURELY_UNSET_9").unwrap(), None);
        assert!(parse_env("=x").is_err());
        let f = parse_env_file("# comment\n\nA=1\n  B=two words\n").unwrap();
        assert_eq!(f, vec!["A=1".to_string(), "B=two words".to_string()]);
        let l = parse_labels(&["a=b".into(), "flag".into()]).unwrap();
        assert_eq!(l["a"], "b");
        assert_eq!(l["flag"], "");
        assert!(parse_labels(&["=x".into()]).is_err());
        let f = parse_filters(&["status=exited".into(), "status=created".into()]).unwrap();
        assert_eq!(f["status"], vec!["exited", "created"]);
        assert!(parse_filters(&["nokey".into()]).is_err());
    }

    #[test]
    fn times() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let n = 1_700_000_000i64 * 1_000_000_000;
        assert_eq!(parse_time("10m", now).unwrap(), n - 600 * 1_000_000_000);
        assert_eq!(parse_time("1h30m", now).unwrap(), n - 5400 * 1_000_000_000);
        assert_eq!(parse_time("1700000000", now).unwrap(), n);
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z", now).unwrap(),
            n,
            "RFC 3339 in UTC"
        );
        assert_eq!(parse_time("2023-11-14T23:13:20+01:00", now).unwrap(), n);
        assert_eq!(
            parse_time("2023-11-14", now).unwrap(),
            (1_700_000_000 - 80_000) * 1_000_000_000
        );
        assert!(parse_time("yesterday", now).is_err());
    }

    #[test]
    fn detach_keys() {
        assert_eq!(
            parse_detach_keys("ctrl-p,ctrl-q").unwrap(),
            DEFAULT_DETACH_KEYS
        );
        assert_eq!(parse_detach_keys("ctrl-a,x").unwrap(), vec![1, b'x']);
        assert_eq!(parse_detach_keys("ctrl-@").unwrap(), vec![0]);
        assert!(parse_detach_keys("ctrl-1").is_err());
        assert!(parse_detach_keys("ab").is_err());

        let mut m = DetachMatcher::new(DEFAULT_DETACH_KEYS.to_vec());
        assert_eq!(m.feed(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(m.feed(b"c"), (b"\x10c".to_vec(), false));
        assert_eq!(m.feed(b"\x10\x10"), (b"\x10".to_vec(), false));
        assert_eq!(m.feed(b"\x11rest"), (Vec::new(), true));
        let mut m = DetachMatcher::new(DEFAULT_DETACH_KEYS.to_vec());
        assert_eq!(m.feed(b"x\x10"), (b"x".to_vec(), false));
        assert_eq!(m.flush(), b"\x10".to_vec());
        let mut none = DetachMatcher::new(Vec::new());
        assert_eq!(none.feed(b"\x10\x11"), (b"\x10\x11".to_vec(), false));
    }
}

//! The monitor's command line, written (by the agent, through [`ContainerArgs`]) and parsed here,
//! by hand: `--flag VALUE` for paths and the id, bare `--tty`, `--stdin`, `--hold`,
//! `--wait-for-go`. A spare monitor,
//! started as `--spare --runtime-root DIR` before its container existed, receives the other
//! arguments on stdin instead ([`encode`]), each ended by a NUL byte, which no argument can
//! contain.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use super::MonitorConfig;

/// Makes a monitor wait for its go ([`MonitorConfig::wait_for_go`]).
pub const WAIT_FOR_GO: &str = "--wait-for-go";

/// The first argument of a spare monitor ([`spare_args`], [`parse_spare`]).
pub const SPARE: &str = "--spare";

/// What the agent tells a monitor about its container: the arguments [`parse`] reads, except the
/// runtime root, which a spare monitor has from its start ([`spare_args`]).
pub struct ContainerArgs<'a> {
    pub bundle: &'a Path,
    pub id: &'a str,
    pub log: &'a Path,
    pub exit_file: &'a Path,
    pub socket: &'a Path,
    pub tty: bool,
    pub stdin: bool,
    pub hold: bool,
}

impl ContainerArgs<'_> {
    /// These values as the flags [`parse`] reads.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "--bundle".into(),
            self.bundle.into(),
            "--id".into(),
            self.id.into(),
            "--log".into(),
            self.log.into(),
            "--exit-file".into(),
            self.exit_file.into(),
            "--socket".into(),
            self.socket.into(),
        ];
        for (set, flag) in [
            (self.tty, "--tty"),
            (self.stdin, "--stdin"),
            (self.hold, "--hold"),
        ] {
            if set {
                args.push(flag.into());
            }
        }
        args
    }
}

/// `--runtime-root DIR`, which comes before a monitor's other arguments.
pub fn runtime_root_args(root: &Path) -> Vec<OsString> {
    vec!["--runtime-root".into(), root.into()]
}

/// The command line of a spare monitor, which [`parse_spare`] reads after `--spare`.
pub fn spare_args(root: &Path) -> Vec<OsString> {
    let mut args = vec![OsString::from(SPARE)];
    args.extend(runtime_root_args(root));
    args
}

/// Reads a monitor's arguments (the program name excluded).
pub fn parse(mut args: impl Iterator<Item = OsString>) -> Result<MonitorConfig, String> {
    let mut runtime_root = None;
    let mut bundle = None;
    let mut id = None;
    let mut log = None;
    let mut exit_file = None;
    let mut socket = None;
    let (mut tty, mut stdin, mut hold, mut wait_for_go) = (false, false, false, false);
    while let Some(arg) = args.next() {
        let flag = arg.to_string_lossy().into_owned();
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--runtime-root" => runtime_root = Some(PathBuf::from(value()?)),
            "--bundle" => bundle = Some(PathBuf::from(value()?)),
            "--id" => {
                id = Some(
                    value()?
                        .into_string()
                        .map_err(|_| "--id is not UTF-8".to_string())?,
                )
            }
            "--log" => log = Some(PathBuf::from(value()?)),
            "--exit-file" => exit_file = Some(PathBuf::from(value()?)),
            "--socket" => socket = Some(PathBuf::from(value()?)),
            "--tty" => tty = true,
            "--stdin" => stdin = true,
            "--hold" => hold = true,
            WAIT_FOR_GO => wait_for_go = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let need = |v: Option<PathBuf>, name: &str| v.ok_or_else(|| format!("{name} is required"));
    Ok(MonitorConfig {
        runtime_root: need(runtime_root, "--runtime-root")?,
        bundle: need(bundle, "--bundle")?,
        id: id.ok_or("--id is required")?,
        log: need(log, "--log")?,
        exit_file: need(exit_file, "--exit-file")?,
        socket: need(socket, "--socket")?,
        tty,
        stdin,
        hold,
        wait_for_go,
    })
}

/// The runtime root of `--spare --runtime-root DIR` (the arguments after `--spare`).
pub fn parse_spare(mut args: impl Iterator<Item = OsString>) -> Result<PathBuf, String> {
    match (args.next(), args.next(), args.next()) {
        (Some(flag), Some(root), None) if flag == "--runtime-root" => Ok(PathBuf::from(root)),
        _ => Err("--spare takes exactly --runtime-root DIR".to_string()),
    }
}

/// A spare monitor's launch: the arguments, each ended by NUL.
pub fn encode(args: &[OsString]) -> Vec<u8> {
    let mut out = Vec::new();
    for a in args {
        out.extend_from_slice(a.as_bytes());
        out.push(0);
    }
    out
}

/// The arguments of a launch [`encode`] made; a launch cut short is refused.
pub fn decode(bytes: &[u8]) -> Result<Vec<OsString>, String> {
    let Some(body) = bytes.strip_suffix(&[0]) else {
        return Err("the launch is cut short (no NUL after its last argument)".to_string());
    };
    Ok(body
        .split(|b| *b == 0)
        .map(|a| OsString::from_vec(a.to_vec()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    const FULL: &[&str] = &[
        "--runtime-root",
        "/r",
        "--bundle",
        "/b",
        "--id",
        "abc",
        "--log",
        "/b/log",
        "--exit-file",
        "/b/exit",
        "--socket",
        "/b/sock",
        "--tty",
        "--hold",
    ];

    #[test]
    fn what_the_agent_writes_parses_back() {
        let container = ContainerArgs {
            bundle: Path::new("/b"),
            id: "abc",
            log: Path::new("/b/log"),
            exit_file: Path::new("/b/exit"),
            socket: Path::new("/b/sock"),
            tty: true,
            stdin: false,
            hold: true,
        };
        let mut line = runtime_root_args(Path::new("/r"));
        line.extend(container.to_args());
        line.push(WAIT_FOR_GO.into());
        let c = parse(line.into_iter()).unwrap();
        assert_eq!(c.runtime_root, Path::new("/r"));
        assert_eq!(c.bundle, Path::new("/b"));
        assert_eq!(c.id, "abc");
        assert_eq!(c.log, Path::new("/b/log"));
        assert_eq!(c.exit_file, Path::new("/b/exit"));
        assert_eq!(c.socket, Path::new("/b/sock"));
        assert!(c.tty && !c.stdin && c.hold && c.wait_for_go);
        assert_eq!(
            parse_spare(spare_args(Path::new("/r")).into_iter().skip(1)).unwrap(),
            Path::new("/r")
        );
    }

    #[test]
    fn a_launch_decodes_to_the_arguments_that_were_encoded() {
        let mut list = args(FULL);
        list.push(OsString::from_vec(b"/with\nnewline \xff".to_vec()));
        assert_eq!(decode(&encode(&list)).unwrap(), list);
    }

    #[test]
    fn a_launch_cut_short_is_refused() {
        let bytes = encode(&args(FULL));
        let err = decode(&bytes[..bytes.len() - 3]).unwrap_err();
        assert!(err.contains("cut short"), "{err}");
        assert!(decode(b"").is_err());
    }

    #[test]
    fn parse_reads_flags_and_names_what_is_missing_or_unknown() {
        let c = parse(args(FULL).into_iter()).unwrap();
        assert_eq!(c.id, "abc");
        assert_eq!(c.socket, PathBuf::from("/b/sock"));
        assert!(c.tty && c.hold && !c.stdin && !c.wait_for_go);
        let err = parse(args(&["--bundle", "/b"]).into_iter()).unwrap_err();
        assert_eq!(err, "--runtime-root is required");
        let err = parse(args(&["--bogus"]).into_iter()).unwrap_err();
        assert!(err.contains("unknown argument"), "{err}");
        let err = parse(args(&["--id"]).into_iter()).unwrap_err();
        assert_eq!(err, "--id needs a value");
    }

    #[test]
    fn a_spare_takes_exactly_its_runtime_root() {
        let root = parse_spare(args(&["--runtime-root", "/r"]).into_iter()).unwrap();
        assert_eq!(root, PathBuf::from("/r"));
        for bad in [
            &[][..],
            &["--runtime-root"],
            &["--id", "x"],
            &["--runtime-root", "/r", "x"],
        ] {
            assert!(parse_spare(args(bad).into_iter()).is_err(), "{bad:?}");
        }
    }
}

//! Seccomp filters for containers, from OCI profiles, without libseccomp.
//!
//! The runtime compiles the profile of `config.json` (or Docker's default, [`docker_default`]) into
//! a classic BPF program on the host side, where errors can still be reported cleanly, and the
//! container's init installs it with [`Filter::install`] as its last step before `execve`.
//!
//! Semantics, matching runc/libseccomp where the OCI spec leaves room:
//! - Syscall names resolve to the host architecture's numbers; names it does not have are skipped,
//!   so one profile serves every architecture.
//! - A syscall's rules are tried in profile order and the first whose conditions all hold decides;
//!   a syscall matching no rule gets the default action.
//! - Argument conditions compare full 64-bit values, unsigned. `SCMP_CMP_MASKED_EQ` takes the mask
//!   in `value` and the expected result in `valueTwo` (0 when absent).
//! - `errnoRet` defaults to EPERM for `SCMP_ACT_ERRNO` (and as the `SCMP_ACT_TRACE` message).
//! - Only native syscalls are matched against the rules. 32-bit compat syscalls (x86 and x32 on
//!   x86_64, AArch32 on arm64), listed in `architectures` or not, get the default action, i.e. they
//!   are denied under a deny-by-default profile; when the default action lets syscalls through,
//!   they get `ERRNO(EPERM)` instead, since a deny rule could not be enforced for them. Either way
//!   the filter is a safe subset of the profile.
//! - `SCMP_ACT_NOTIFY` is refused ([`SeccompError::Unsupported`]): there is no seccomp agent.

mod arch;
mod bpf;
mod compile;
mod default;
#[cfg(test)]
mod tests;

use nix::errno::Errno;
use oci_spec::runtime::{Capability, LinuxSeccomp};

pub use crate::defaults::DOCKER_CAPABILITIES as DOCKER_DEFAULT_CAPS;
pub use bpf::MAX_INSNS;

/// Why a profile could not be compiled or a filter installed. Each message is one line naming the
/// offending rule or the system call that failed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The profile asks for something berth cannot do (e.g. `SCMP_ACT_NOTIFY`).
    #[error("{0}")]
    Unsupported(String),
    /// berth does not know the `AUDIT_ARCH` value of the architecture it was built for.
    #[error("no seccomp support for host architecture {0}")]
    UnsupportedHostArch(&'static str),
    /// A rule without syscall names (almost certainly a typo, e.g. `name` for `names`).
    #[error("syscalls rule #{position} has no names")]
    NoNames { position: usize },
    /// An argument condition on an argument a syscall does not have.
    #[error("{what}: argument index {index} out of range 0-5")]
    ArgIndex { what: String, index: usize },
    /// An `errnoRet` the kernel cannot return.
    #[error("{what}: errnoRet {value} out of range 0-{max}")]
    ErrnoRange { what: String, value: u32, max: u32 },
    /// A JSON profile that does not parse, or is in Docker's format rather than OCI's.
    #[error("profile: {0}")]
    Profile(String),
    /// The program exceeds the kernel's limit.
    #[error(
        "filter has {len} instructions, over the kernel limit of {MAX_INSNS}; simplify the profile"
    )]
    TooLong { len: usize },
    /// `seccomp(SECCOMP_SET_MODE_FILTER)` failed.
    #[error("seccomp(SECCOMP_SET_MODE_FILTER, flags {flags:#x}): {errno}{}", install_hint(*errno, *flags))]
    Install { errno: Errno, flags: u32 },
    /// `SECCOMP_FILTER_FLAG_TSYNC` could not apply the filter to another thread.
    #[error("seccomp TSYNC: thread {tid} cannot take the filter")]
    Tsync { tid: libc::c_long },
    /// A bug in the compiler.
    #[error("internal compiler error: {0}")]
    Internal(&'static str),
}

fn install_hint(errno: Errno, flags: u32) -> &'static str {
    match errno {
        Errno::EACCES => {
            " (set no_new_privs first, or keep CAP_SYS_ADMIN until the filter is installed)"
        }
        Errno::EINVAL if flags != 0 => " (this kernel may not support a requested filter flag)",
        Errno::ENOMEM => " (too many filters installed in this process tree)",
        _ => "",
    }
}

/// A compiled classic-BPF program ready to install, with the filter flags of its profile.
///
/// It is built before the container's init is forked, so the init only has to hand it to the
/// kernel, see [`Filter::install`].
#[derive(Clone)]
pub struct Filter {
    program: Vec<libc::sock_filter>,
    flags: u32,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("instructions", &self.program.len())
            .field("flags", &format_args!("{:#x}", self.flags))
            .finish()
    }
}

/// Compiles an OCI seccomp profile into a filter for the host architecture (see the module
/// documentation for the semantics). Fails with a one-line reason on an invalid or unsupported
/// profile, or if the program would exceed [`MAX_INSNS`].
pub fn compile(profile: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    compile::compile(profile)
}

/// Docker's default profile (moby's `profiles/seccomp/default.json`) resolved for the container's
/// effective capabilities and the host architecture, so `--cap-add SYS_ADMIN` also allows `mount`,
/// `unshare`, namespace flags on `clone` and `clone3`, `--cap-add SYS_PTRACE` allows `kcmp` and
/// `pidfd_getfd`, and so on. Default action `ERRNO(EPERM)`; `clone3` gets `ENOSYS` without
/// CAP_SYS_ADMIN so libc falls back to `clone`, whose flags the filter can check.
pub fn docker_default(caps: &[Capability]) -> LinuxSeccomp {
    default::docker_default(caps)
}

/// Parses a seccomp profile in OCI form (the `linux.seccomp` object of `config.json`), e.g. for
/// `--security-opt seccomp=FILE`. A Docker-format profile is refused rather than misread: OCI
/// parsing would ignore its `includes`/`excludes` and so allow every conditional entry.
pub fn parse_profile(json: &str) -> Result<LinuxSeccomp, SeccompError> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| SeccompError::Profile(e.to_string()))?;
    let docker_only = |v: &serde_json::Value| {
        v.get("archMap").is_some()
            || v.get("syscalls")
                .and_then(|s| s.as_array())
                .is_some_and(|rules| {
                    rules
                        .iter()
                        .any(|r| r.get("includes").is_some() || r.get("excludes").is_some())
                })
    };
    if docker_only(&value) {
        return Err(SeccompError::Profile(
            "Docker-format profile (archMap/includes/excludes); give the OCI form".into(),
        ));
    }
    serde_json::from_value(value).map_err(|e| SeccompError::Profile(e.to_string()))
}

impl Filter {
    /// Installs the filter on the calling thread with `seccomp(SECCOMP_SET_MODE_FILTER)`, passing the
    /// profile's flags (`SECCOMP_FILTER_FLAG_LOG`, `_SPEC_ALLOW`, `_TSYNC`).
    ///
    /// The kernel accepts a filter only from a thread with `no_new_privs` set or with CAP_SYS_ADMIN
    /// in its user namespace; which one is the caller's choice (runc installs after setting
    /// no_new_privs, or before dropping capabilities when the process keeps privileges). Once
    /// installed, the filter also governs the caller's remaining setup syscalls.
    ///
    /// This does not allocate and makes a single syscall, so it is safe in a child forked from a
    /// multi-threaded process.
    pub fn install(&self) -> Result<(), SeccompError> {
        let prog = libc::sock_fprog {
            // compile() caps the length at MAX_INSNS, which fits.
            len: self.program.len() as libc::c_ushort,
            filter: self.program.as_ptr().cast_mut(),
        };
        // SAFETY: `prog` points to `len` initialized instructions that outlive the call; the
        // kernel copies them.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                libc::c_ulong::from(self.flags),
                &prog as *const libc::sock_fprog,
            )
        };
        match r {
            0 => Ok(()),
            tid if tid > 0 => Err(SeccompError::Tsync { tid }),
            _ => Err(SeccompError::Install {
                errno: Errno::last(),
                flags: self.flags,
            }),
        }
    }

    /// Number of BPF instructions.
    pub fn len(&self) -> usize {
        self.program.len()
    }

    /// Never true for a compiled filter; present because `len` is.
    pub fn is_empty(&self) -> bool {
        self.program.is_empty()
    }

    /// The program, e.g. to dump or to attach by other means.
    pub fn instructions(&self) -> &[libc::sock_filter] {
        &self.program
    }

    /// The `SECCOMP_FILTER_FLAG_*` bits [`install`](Self::install) passes.
    pub fn flags(&self) -> u32 {
        self.flags
    }
}

//! The process's credentials and limits, applied last before exec: rlimits, user and groups,
//! capabilities (bounding, effective, permitted, inheritable, ambient) and no_new_privs.

use caps::{CapSet, CapsHashSet};
use oci_spec::runtime::{Capability, LinuxCapabilities, PosixRlimitType};

use super::InitError;

/// Capability sets resolved from the spec before the init is cloned.
#[derive(Debug, Default)]
pub struct CapPlan {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub permitted: CapsHashSet,
}

impl CapPlan {
    /// Maps the spec's bounding, effective and permitted sets. Inheritable and ambient are always left
    /// empty, whatever the spec says, so no capability survives an exec into a non-root program by
    /// accident (the design notes make that a requirement).
    pub fn from_spec(spec: Option<&LinuxCapabilities>) -> Result<Self, String> {
        let Some(spec) = spec else {
            return Ok(CapPlan::default());
        };
        let conv = |set: &Option<oci_spec::runtime::Capabilities>| -> Result<CapsHashSet, String> {
            set.iter()
                .flatten()
                .map(|c| to_caps(*c))
                .collect::<Result<CapsHashSet, String>>()
        };
        Ok(CapPlan {
            bounding: conv(spec.bounding())?,
            effective: conv(spec.effective())?,
            permitted: conv(spec.permitted())?,
        })
    }
}

fn to_caps(c: Capability) -> Result<caps::Capability, String> {
    let name = format!("CAP_{c}");
    name.parse::<caps::Capability>()
        .map_err(|_| format!("unknown capability {name}"))
}

/// Maps an OCI rlimit name to its resource number.
pub fn rlimit_resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

pub fn set_rlimits(limits: &[(libc::__rlimit_resource_t, u64, u64)]) -> Result<(), InitError> {
    for &(resource, soft, hard) in limits {
        let lim = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(resource, &lim) } != 0 {
            return Err(InitError(format!(
                "setrlimit {resource}: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    Ok(())
}

/// Drops the bounding set to the plan's, switches to the container user keeping the permitted set
/// across the uid change, then sets the final sets with inheritable and ambient empty.
pub fn apply_identity(
    caps_plan: &CapPlan,
    uid: u32,
    gid: u32,
    groups: &[libc::gid_t],
) -> Result<(), InitError> {
    let err = |what: &str, e: &dyn std::fmt::Display| InitError(format!("{what}: {e}"));
    for cap in caps::runtime::thread_all_supported() {
        if !caps_plan.bounding.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(|e| err("drop bounding capability", &e))?;
        }
    }
    // SAFETY: plain prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    // SAFETY: setgroups reads `groups.len()` gids from the pointer.
    if unsafe { libc::setgroups(groups.len(), groups.as_ptr()) } != 0 {
        return Err(err("setgroups", &std::io::Error::last_os_error()));
    }
    // SAFETY: plain syscalls with integer arguments.
    if unsafe { libc::setresgid(gid, gid, gid) } != 0 {
        return Err(err("setgid", &std::io::Error::last_os_error()));
    }
    // SAFETY: as above.
    if unsafe { libc::setresuid(uid, uid, uid) } != 0 {
        return Err(err("setuid", &std::io::Error::last_os_error()));
    }
    // SAFETY: as above.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    capset(caps_plan).map_err(|e| err("set capabilities", &e))?;
    caps::clear(None, CapSet::Ambient).map_err(|e| err("clear ambient capabilities", &e))?;
    Ok(())
}

/// Sets effective, permitted and inheritable in one capset(2), so no intermediate combination (such as
/// an effective set larger than the permitted one) is ever requested.
fn capset(plan: &CapPlan) -> std::io::Result<()> {
    let mask = |set: &CapsHashSet| -> u64 { set.iter().fold(0u64, |m, c| m | c.bitmask()) };
    let (eff, perm, inh) = (mask(&plan.effective), mask(&plan.permitted), 0u64);
    let mut header = libc_cap::Header {
        version: libc_cap::VERSION_3,
        pid: 0,
    };
    let data = [
        libc_cap::Data {
            effective: eff as u32,
            permitted: perm as u32,
            inheritable: inh as u32,
        },
        libc_cap::Data {
            effective: (eff >> 32) as u32,
            permitted: (perm >> 32) as u32,
            inheritable: (inh >> 32) as u32,
        },
    ];
    // SAFETY: capset reads a v3 header and two data structs from valid pointers.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut _, data.as_ptr()) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The kernel's capset(2) ABI (linux/capability.h), which libc does not expose.
mod libc_cap {
    pub const VERSION_3: u32 = 0x2008_0522;
    #[repr(C)]
    pub struct Header {
        pub version: u32,
        pub pid: i32,
    }
    #[repr(C)]
    pub struct Data {
        pub effective: u32,
        pub permitted: u32,
        pub inheritable: u32,
    }
}

pub fn set_no_new_privs() -> Result<(), InitError> {
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(InitError(format!(
            "no_new_privs: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

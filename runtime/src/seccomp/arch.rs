//! The host architecture as seccomp sees it: its `AUDIT_ARCH_*` value (what the kernel puts in
//! `seccomp_data.arch`), how 64-bit arguments are laid out, and syscall names resolved to this
//! architecture's numbers.
//!
//! Only the native architecture is ever compiled into a filter: a container runs the host's binaries,
//! and resolving names for compat ABIs would need a second syscall table per ABI (and doubles the
//! program). See `compile` for what compat syscalls get instead.

use std::str::FromStr;

use super::SeccompError;

/// `seccomp_data.arch` of the host, and its name in Docker profiles (Go's `GOARCH`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Native {
    /// `AUDIT_ARCH_*` value the kernel reports for native syscalls.
    pub audit: u32,
    /// `GOARCH`-style name, as used by the `arches` includes of Docker's profile.
    pub go_name: &'static str,
    /// x86_64 only: the x32 ABI shares `AUDIT_ARCH_X86_64` and is told apart by bit 30 of the
    /// syscall number, so the filter has to test that bit explicitly.
    pub x32_bit: bool,
}

/// The `__X32_SYSCALL_BIT` of x86_64.
pub(crate) const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The architecture this binary was built for, or an error naming it when berth has no seccomp
/// support for it (its `AUDIT_ARCH` value is not known here).
pub(crate) fn native() -> Result<Native, SeccompError> {
    let n = |audit, go_name, x32_bit| {
        Ok(Native {
            audit,
            go_name,
            x32_bit,
        })
    };
    if cfg!(target_arch = "x86_64") {
        n(0xc000_003e, "amd64", true)
    } else if cfg!(target_arch = "aarch64") {
        n(0xc000_00b7, "arm64", false)
    } else if cfg!(target_arch = "riscv64") {
        n(0xc000_00f3, "riscv64", false)
    } else if cfg!(target_arch = "s390x") {
        n(0x8000_0016, "s390x", false)
    } else if cfg!(all(target_arch = "powerpc64", target_endian = "little")) {
        n(0xc000_0015, "ppc64le", false)
    } else if cfg!(target_arch = "x86") {
        n(0x4000_0003, "386", false)
    } else if cfg!(all(target_arch = "arm", target_endian = "little")) {
        n(0x4000_0028, "arm", false)
    } else {
        Err(SeccompError::UnsupportedHostArch(std::env::consts::ARCH))
    }
}

/// Offset in `struct seccomp_data` of the 32-bit word holding bits 0-31 (`high == false`) or 32-63
/// of syscall argument `index`. `args` starts at byte 16; each is a `__u64` in host byte order.
pub(crate) fn arg_word_offset(index: u8, high: bool) -> u32 {
    let base = 16 + 8 * u32::from(index);
    let high_first = cfg!(target_endian = "big");
    if high == high_first {
        base
    } else {
        base + 4
    }
}

/// Offset of `seccomp_data.nr`.
pub(crate) const NR_OFFSET: u32 = 0;
/// Offset of `seccomp_data.arch`.
pub(crate) const ARCH_OFFSET: u32 = 4;

/// Syscalls newer than the `syscalls` crate's table. Since Linux 5.1 (number 424 on) every
/// architecture berth supports shares one numbering, so one list serves them all; `uretprobe` is
/// x86_64-only. Without these, Docker's profile would deny syscalls a current libc already uses.
const NEWER_SYSCALLS: &[(&str, u32)] = &[
    ("mseal", 462),
    ("setxattrat", 463),
    ("getxattrat", 464),
    ("listxattrat", 465),
    ("removexattrat", 466),
    ("open_tree_attr", 467),
];

/// The native number of syscall `name`, or `None` when this architecture has no such syscall (the
/// profile entry is then skipped, as libseccomp does, so one profile serves every architecture).
pub(crate) fn resolve(name: &str) -> Option<u32> {
    if let Ok(sysno) = syscalls::Sysno::from_str(name) {
        return u32::try_from(sysno.id()).ok();
    }
    if cfg!(target_arch = "x86_64") && name == "uretprobe" {
        return Some(335);
    }
    NEWER_SYSCALLS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, nr)| *nr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_native_names_and_skips_foreign_ones() {
        let getpid = resolve("getpid").expect("getpid exists everywhere");
        assert_eq!(i64::from(getpid), libc::SYS_getpid);
        assert_eq!(resolve("mseal"), Some(462));
        assert_eq!(resolve("no_such_syscall"), None);
        if cfg!(target_arch = "x86_64") {
            assert_eq!(resolve("_llseek"), None, "32-bit only syscall");
            assert_eq!(i64::from(resolve("mkdir").unwrap()), libc::SYS_mkdir);
        }
    }

    #[test]
    fn argument_words_follow_host_byte_order() {
        let lo = arg_word_offset(0, false);
        let hi = arg_word_offset(0, true);
        assert_eq!(lo.min(hi), 16);
        assert_eq!(lo.abs_diff(hi), 4);
        assert_eq!(arg_word_offset(5, false).min(arg_word_offset(5, true)), 56);
    }
}

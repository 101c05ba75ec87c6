//! OCI seccomp profile → classic BPF.
//!
//! Program shape:
//!
//! 1. `seccomp_data.arch` is compared with the native `AUDIT_ARCH`; anything else (32-bit compat
//!    syscalls such as `int 0x80` on x86_64, or AArch32 on arm64) returns the *compat action*.
//!    On x86_64 the x32 ABI shares the native arch value, so a syscall number with bit 30 set gets
//!    the compat action too.
//! 2. A balanced binary search over syscall-number ranges. Consecutive numbers with the same
//!    unconditional action (including the gaps, which get the default action) form one range, so
//!    Docker's default profile (171 instructions) decides a plain syscall in 11 instructions.
//! 3. A syscall with argument conditions ends in its own block: its rules in profile order, each an
//!    AND of conditions on full 64-bit arguments, the first match returning its action, and the
//!    default action when none matches.
//!
//! The compat action is the profile's default action, except when that default lets syscalls
//! through (allow, log, trace): the compat syscall tables are not compiled, so a deny rule could not
//! be enforced for them, and they get `ERRNO(EPERM)` instead. Denying what the filter cannot
//! inspect keeps every profile a safe subset of what it says.

use std::collections::BTreeMap;

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction as Action, LinuxSeccompArg, LinuxSeccompFilterFlag as Flag,
    LinuxSeccompOperator as Op, LinuxSyscall,
};

use super::arch::{self, Native, ARCH_OFFSET, NR_OFFSET, X32_SYSCALL_BIT};
use super::bpf::{Asm, Cmp, Label};
use super::{Filter, SeccompError};

/// Highest errno a filter can return (`MAX_ERRNO`); the kernel would clamp anything larger.
const MAX_ERRNO: u32 = 4095;

/// A condition on one syscall argument, compared as an unsigned 64-bit value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cond {
    index: u8,
    op: Op,
    value: u64,
    value_two: u64,
}

/// One profile rule as it applies to one syscall: an AND of conditions and the action on match.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    action: u32,
    conds: Vec<Cond>,
}

/// What the search tree ends in for a range of syscall numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leaf {
    Ret(u32),
    /// Index into the list of conditional rule lists.
    Rules(usize),
}

pub(super) fn compile(profile: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    let native = arch::native()?;
    let default = encode_action(
        profile.default_action(),
        profile.default_errno_ret(),
        || "defaultAction".to_string(),
    )?;
    let compat = if is_permissive(default) {
        libc::SECCOMP_RET_ERRNO | libc::EPERM as u32
    } else {
        default
    };

    let by_nr = collect_rules(profile.syscalls().as_deref().unwrap_or_default(), default)?;
    let mut blocks: Vec<Vec<Rule>> = Vec::new();
    let mut segments: Vec<(u32, Leaf)> = Vec::new();
    push_segment(&mut segments, 0, Leaf::Ret(default));
    for (nr, rules) in by_nr {
        let leaf = match rules.as_slice() {
            [only] if only.conds.is_empty() => Leaf::Ret(only.action),
            _ => {
                blocks.push(rules);
                Leaf::Rules(blocks.len() - 1)
            }
        };
        push_segment(&mut segments, nr, leaf);
        if let Some(next) = nr.checked_add(1) {
            push_segment(&mut segments, next, Leaf::Ret(default));
        }
    }

    let mut asm = Asm::default();
    emit_arch_check(&mut asm, native, compat);
    emit_tree(&mut asm, &segments, &blocks, default);
    Ok(Filter {
        program: asm.assemble()?,
        flags: filter_flags(profile.flags().as_deref().unwrap_or_default()),
    })
}

/// Whether a `SECCOMP_RET_*` value lets the syscall run (or leaves the decision to a tracer).
fn is_permissive(ret: u32) -> bool {
    matches!(
        ret & libc::SECCOMP_RET_ACTION_FULL,
        libc::SECCOMP_RET_ALLOW | libc::SECCOMP_RET_LOG | libc::SECCOMP_RET_TRACE
    )
}

/// `SECCOMP_RET_*` value for an OCI action. `errno_ret` is the errno of `SCMP_ACT_ERRNO` (EPERM when
/// absent, as runc does) or the message of `SCMP_ACT_TRACE`; other actions ignore it.
pub(super) fn encode_action(
    action: Action,
    errno_ret: Option<u32>,
    what: impl Fn() -> String,
) -> Result<u32, SeccompError> {
    let data = |max: u32| -> Result<u32, SeccompError> {
        let v = errno_ret.unwrap_or(libc::EPERM as u32);
        if v > max {
            return Err(SeccompError::ErrnoRange {
                what: what(),
                value: v,
                max,
            });
        }
        Ok(v)
    };
    Ok(match action {
        Action::ScmpActKill | Action::ScmpActKillThread => libc::SECCOMP_RET_KILL_THREAD,
        Action::ScmpActKillProcess => libc::SECCOMP_RET_KILL_PROCESS,
        Action::ScmpActTrap => libc::SECCOMP_RET_TRAP,
        Action::ScmpActErrno => libc::SECCOMP_RET_ERRNO | data(MAX_ERRNO)?,
        Action::ScmpActTrace => libc::SECCOMP_RET_TRACE | data(u32::from(u16::MAX))?,
        Action::ScmpActLog => libc::SECCOMP_RET_LOG,
        Action::ScmpActAllow => libc::SECCOMP_RET_ALLOW,
        Action::ScmpActNotify => {
            return Err(SeccompError::Unsupported(format!(
                "{}: SCMP_ACT_NOTIFY needs a seccomp agent (listenerPath), which berth does not support",
                what()
            )))
        }
    })
}

/// Names the rule at `position` (1-based) for error messages: `rule #3 (mkdir, mkdirat)`.
fn describe(position: usize, names: &[String]) -> String {
    let mut shown = names.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 3 {
        shown.push_str(", ...");
    }
    format!("syscalls rule #{position} ({shown})")
}

fn convert_arg(arg: &LinuxSeccompArg, what: impl Fn() -> String) -> Result<Cond, SeccompError> {
    let index = u8::try_from(arg.index())
        .ok()
        .filter(|i| *i < 6)
        .ok_or_else(|| SeccompError::ArgIndex {
            what: what(),
            index: arg.index(),
        })?;
    Ok(Cond {
        index,
        op: arg.op(),
        value: arg.value(),
        value_two: arg.value_two().unwrap_or(0),
    })
}

/// Validates every rule and groups them by native syscall number, keeping profile order. Names
/// unknown on this architecture are skipped. Rules that can never decide anything are dropped: those
/// after an unconditional one, and trailing ones whose action is the default anyway.
fn collect_rules(
    syscalls: &[LinuxSyscall],
    default: u32,
) -> Result<BTreeMap<u32, Vec<Rule>>, SeccompError> {
    let mut by_nr: BTreeMap<u32, Vec<Rule>> = BTreeMap::new();
    for (i, sc) in syscalls.iter().enumerate() {
        let what = || describe(i + 1, sc.names());
        if sc.names().is_empty() {
            return Err(SeccompError::NoNames { position: i + 1 });
        }
        let action = encode_action(sc.action(), sc.errno_ret(), what)?;
        let conds = sc
            .args()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|a| convert_arg(a, what))
            .collect::<Result<Vec<_>, _>>()?;
        for nr in sc.names().iter().filter_map(|n| arch::resolve(n)) {
            by_nr.entry(nr).or_default().push(Rule {
                action,
                conds: conds.clone(),
            });
        }
    }
    by_nr.retain(|_, rules| {
        if let Some(first_unconditional) = rules.iter().position(|r| r.conds.is_empty()) {
            rules.truncate(first_unconditional + 1);
        }
        while rules.last().is_some_and(|r| r.action == default) {
            rules.pop();
        }
        !rules.is_empty()
    });
    Ok(by_nr)
}

/// Appends the range starting at `lo`, replacing a range that started there already and merging
/// with the previous range when both simply return the same value.
fn push_segment(segments: &mut Vec<(u32, Leaf)>, lo: u32, leaf: Leaf) {
    if segments.last().is_some_and(|(start, _)| *start == lo) {
        segments.pop();
    }
    if matches!(leaf, Leaf::Ret(_)) && segments.last().is_some_and(|(_, l)| *l == leaf) {
        return;
    }
    segments.push((lo, leaf));
}

/// `SECCOMP_FILTER_FLAG_*` bits (linux/seccomp.h).
const FLAG_TSYNC: u32 = 1;
const FLAG_LOG: u32 = 2;
const FLAG_SPEC_ALLOW: u32 = 4;

fn filter_flags(flags: &[Flag]) -> u32 {
    flags.iter().fold(0, |acc, f| {
        acc | match f {
            Flag::SeccompFilterFlagLog => FLAG_LOG,
            Flag::SeccompFilterFlagTsync => FLAG_TSYNC,
            Flag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
        }
    })
}

/// Leaves the syscall number in A for native syscalls; returns `compat` for everything else.
fn emit_arch_check(asm: &mut Asm, native: Native, compat: u32) {
    let is_native = asm.label();
    let foreign = asm.label();
    asm.load(ARCH_OFFSET);
    asm.jump(Cmp::Eq, native.audit, is_native, foreign);
    asm.bind(foreign);
    asm.ret(compat);
    asm.bind(is_native);
    asm.load(NR_OFFSET);
    if native.x32_bit {
        let x32 = asm.label();
        let not_x32 = asm.label();
        asm.jump(Cmp::Ge, X32_SYSCALL_BIT, x32, not_x32);
        asm.bind(x32);
        asm.ret(compat);
        asm.bind(not_x32);
    }
}

/// Binary search over `segments` (sorted, contiguous, the first starting at 0) with the syscall
/// number in A. The left half follows each comparison directly so most jumps stay short.
fn emit_tree(asm: &mut Asm, segments: &[(u32, Leaf)], blocks: &[Vec<Rule>], default: u32) {
    match segments {
        [] => asm.ret(default),
        [(_, Leaf::Ret(k))] => asm.ret(*k),
        [(_, Leaf::Rules(i))] => emit_rules(asm, &blocks[*i], default),
        _ => {
            let mid = segments.len() / 2;
            let left = asm.label();
            let right = asm.label();
            asm.jump(Cmp::Ge, segments[mid].0, right, left);
            asm.bind(left);
            emit_tree(asm, &segments[..mid], blocks, default);
            asm.bind(right);
            emit_tree(asm, &segments[mid..], blocks, default);
        }
    }
}

/// The rules of one syscall, tried in order; the default action when none matches.
fn emit_rules(asm: &mut Asm, rules: &[Rule], default: u32) {
    for rule in rules {
        let next_rule = asm.label();
        for cond in &rule.conds {
            let pass = asm.label();
            emit_cond(asm, cond, pass, next_rule);
            asm.bind(pass);
        }
        asm.ret(rule.action);
        asm.bind(next_rule);
    }
    asm.ret(default);
}

/// Jumps to `pass` when the 64-bit argument satisfies `cond`, else to `fail`. The high words decide
/// unless they are equal, in which case the low words do.
fn emit_cond(asm: &mut Asm, cond: &Cond, pass: Label, fail: Label) {
    let hi = arch::arg_word_offset(cond.index, true);
    let lo = arch::arg_word_offset(cond.index, false);
    let split = |v: u64| ((v >> 32) as u32, v as u32);
    let (vh, vl) = split(cond.value);
    match cond.op {
        Op::ScmpCmpEq | Op::ScmpCmpNe => {
            // Equal means both words equal; NE swaps the outcomes.
            let (eq, ne) = if cond.op == Op::ScmpCmpEq {
                (pass, fail)
            } else {
                (fail, pass)
            };
            let low = asm.label();
            asm.load(hi);
            asm.jump(Cmp::Eq, vh, low, ne);
            asm.bind(low);
            asm.load(lo);
            asm.jump(Cmp::Eq, vl, eq, ne);
        }
        Op::ScmpCmpGt | Op::ScmpCmpGe | Op::ScmpCmpLt | Op::ScmpCmpLe => {
            // Evaluate "greater" (GT, or GE when the low words may be equal) and route its outcome;
            // LT and LE are the negations of GE and GT.
            let (greater, low_cmp) = match cond.op {
                Op::ScmpCmpGt | Op::ScmpCmpLe => (cond.op == Op::ScmpCmpGt, Cmp::Gt),
                _ => (cond.op == Op::ScmpCmpGe, Cmp::Ge),
            };
            let (yes, no) = if greater { (pass, fail) } else { (fail, pass) };
            let hi_equal = asm.label();
            asm.load(hi);
            let hi_not_greater = asm.label();
            asm.jump(Cmp::Gt, vh, yes, hi_not_greater);
            asm.bind(hi_not_greater);
            asm.jump(Cmp::Eq, vh, hi_equal, no);
            asm.bind(hi_equal);
            asm.load(lo);
            asm.jump(low_cmp, vl, yes, no);
        }
        Op::ScmpCmpMaskedEq => {
            // value is the mask, valueTwo the expected result. A high word with neither mask nor
            // expected bits always matches, so it is not loaded.
            let (eh, el) = split(cond.value_two);
            if vh != 0 || eh != 0 {
                let low = asm.label();
                asm.load(hi);
                asm.and(vh);
                asm.jump(Cmp::Eq, eh, low, fail);
                asm.bind(low);
            }
            asm.load(lo);
            asm.and(vl);
            asm.jump(Cmp::Eq, el, pass, fail);
        }
    }
}

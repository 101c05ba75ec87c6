//! A small classic-BPF assembler with symbolic labels.
//!
//! Conditional jumps in classic BPF carry 8-bit forward offsets, so a jump over more than 255
//! instructions cannot be written directly. The compiler emits jumps to labels and [`Asm::assemble`]
//! lays the program out, widening any conditional jump whose target is out of reach into a short
//! jump onto an unconditional `BPF_JA` (32-bit offset) trampoline placed right after it. Widening
//! moves later code, so layout repeats until nothing changes; every widening is permanent, so this
//! terminates after at most two rounds per jump.

use super::SeccompError;

// Instruction classes, sizes, modes and operations (linux/bpf_common.h).
pub(crate) const LD: u16 = 0x00;
pub(crate) const ALU: u16 = 0x04;
pub(crate) const JMP: u16 = 0x05;
pub(crate) const RET: u16 = 0x06;
pub(crate) const W: u16 = 0x00;
pub(crate) const ABS: u16 = 0x20;
pub(crate) const AND: u16 = 0x50;
pub(crate) const JA: u16 = 0x00;
pub(crate) const JEQ: u16 = 0x10;
pub(crate) const JGT: u16 = 0x20;
pub(crate) const JGE: u16 = 0x30;
pub(crate) const K: u16 = 0x00;

/// The kernel's limit on a classic BPF program (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;

/// A jump target, bound to a position with [`Asm::bind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Label(usize);

/// A conditional comparison of the accumulator with a constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Gt,
    Ge,
}

enum Item {
    /// A non-jump instruction.
    Stmt {
        code: u16,
        k: u32,
    },
    /// `if A <cmp> k goto jt else goto jf`.
    Jump {
        cmp: Cmp,
        k: u32,
        jt: Label,
        jf: Label,
    },
    Bind(Label),
}

/// Collects instructions and labels; see the module documentation.
#[derive(Default)]
pub(crate) struct Asm {
    items: Vec<Item>,
    labels: usize,
}

impl Asm {
    /// A fresh, unbound label.
    pub fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }

    /// Binds `label` to the next instruction emitted. Labels may only be jumped to forwards (classic
    /// BPF has no backward jumps), so a label must be bound after every jump that uses it.
    pub fn bind(&mut self, label: Label) {
        self.items.push(Item::Bind(label));
    }

    /// `A = seccomp_data[offset..offset+4]`.
    pub fn load(&mut self, offset: u32) {
        self.items.push(Item::Stmt {
            code: LD | W | ABS,
            k: offset,
        });
    }

    /// `A &= k`.
    pub fn and(&mut self, k: u32) {
        self.items.push(Item::Stmt {
            code: ALU | AND | K,
            k,
        });
    }

    /// `return k` (a `SECCOMP_RET_*` value).
    pub fn ret(&mut self, k: u32) {
        self.items.push(Item::Stmt { code: RET | K, k });
    }

    /// `if A <cmp> k goto jt else goto jf`.
    pub fn jump(&mut self, cmp: Cmp, k: u32, jt: Label, jf: Label) {
        self.items.push(Item::Jump { cmp, k, jt, jf });
    }

    /// Lays the program out and resolves every label. Fails if the result exceeds the kernel limit.
    pub fn assemble(self) -> Result<Vec<libc::sock_filter>, SeccompError> {
        // Per item: whether its true / false edge goes through a trampoline.
        let mut wide = vec![(false, false); self.items.len()];
        let mut at = vec![0usize; self.labels];
        let mut pcs = vec![0usize; self.items.len()];
        loop {
            // Positions come from the current widening; edges found too long are widened for the
            // next round, which lays everything out again.
            let len = self.layout(&wide, &mut at, &mut pcs);
            let mut changed = false;
            for ((item, w), &pc) in self.items.iter().zip(wide.iter_mut()).zip(&pcs) {
                let Item::Jump { jt, jf, .. } = item else {
                    continue;
                };
                // Short edges count from the instruction after the conditional jump, whichever
                // edges are widened.
                let next = pc + 1;
                for (edge, widened) in [(jt, &mut w.0), (jf, &mut w.1)] {
                    let target = at[edge.0];
                    if target < next {
                        return Err(SeccompError::Internal("backward jump"));
                    }
                    if !*widened && target - next > usize::from(u8::MAX) {
                        *widened = true;
                        changed = true;
                    }
                }
            }
            if !changed {
                if len > MAX_INSNS {
                    return Err(SeccompError::TooLong { len });
                }
                return self.emit(&wide, &at, len);
            }
        }
    }

    /// Computes the position of every label and item for the given widening; returns the program
    /// length.
    fn layout(&self, wide: &[(bool, bool)], at: &mut [usize], pcs: &mut [usize]) -> usize {
        let mut pc = 0;
        for ((item, w), item_pc) in self.items.iter().zip(wide).zip(pcs.iter_mut()) {
            *item_pc = pc;
            match item {
                Item::Bind(l) => at[l.0] = pc,
                Item::Stmt { .. } => pc += 1,
                Item::Jump { .. } => pc += 1 + usize::from(w.0) + usize::from(w.1),
            }
        }
        pc
    }

    fn emit(
        &self,
        wide: &[(bool, bool)],
        at: &[usize],
        len: usize,
    ) -> Result<Vec<libc::sock_filter>, SeccompError> {
        let insn = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
        let short = |target: usize, from: usize| -> Result<u8, SeccompError> {
            u8::try_from(target - from).map_err(|_| SeccompError::Internal("jump out of range"))
        };
        let long = |target: usize, from: usize| -> Result<u32, SeccompError> {
            u32::try_from(target - from).map_err(|_| SeccompError::Internal("jump out of range"))
        };
        let mut out = Vec::with_capacity(len);
        for (item, &(wt, wf)) in self.items.iter().zip(wide) {
            match *item {
                Item::Bind(_) => {}
                Item::Stmt { code, k } => out.push(insn(code, 0, 0, k)),
                Item::Jump { cmp, k, jt, jf } => {
                    let code = JMP
                        | K
                        | match cmp {
                            Cmp::Eq => JEQ,
                            Cmp::Gt => JGT,
                            Cmp::Ge => JGE,
                        };
                    let next = out.len() + 1;
                    let (t, f) = match (wt, wf) {
                        (false, false) => (short(at[jt.0], next)?, short(at[jf.0], next)?),
                        // The true edge lands on the trampoline right after the jump.
                        (true, false) => (0, short(at[jf.0], next)?),
                        (false, true) => (short(at[jt.0], next)?, 0),
                        (true, true) => (0, 1),
                    };
                    out.push(insn(code, t, f, k));
                    if wt {
                        let from = out.len() + 1;
                        out.push(insn(JMP | JA, 0, 0, long(at[jt.0], from)?));
                    }
                    if wf {
                        let from = out.len() + 1;
                        out.push(insn(JMP | JA, 0, 0, long(at[jf.0], from)?));
                    }
                }
            }
        }
        debug_assert_eq!(out.len(), len);
        Ok(out)
    }
}

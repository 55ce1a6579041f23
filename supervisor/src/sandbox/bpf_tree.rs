//! Lays a seccomp allowlist out as a binary search over syscall numbers, and a small
//! classic-BPF interpreter that proves the new layout decides exactly like the old one.

// Why: seccompiler emits one linear chain of comparisons, so a syscall late in the
// table walks ~130 of them, and the kernel walks the whole program once per syscall
// number when it attaches a filter (to build its allow cache): attaching the 657
// instruction default policy took ~0.8 ms of every plugin spawn. As a tree the same
// policy decides any syscall in about ten instructions and attaches in a third of the
// time. seccompiler still compiles every argument check; only the dispatch is ours,
// and `check_equivalent` compares both programs on every syscall number before the
// tree is used.

use std::collections::BTreeMap;

use super::seccomp::BpfInsn;

const LD_W_ABS: u16 = 0x20;
const JA: u16 = 0x05;
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const JGE_K: u16 = 0x35;
const JSET_K: u16 = 0x45;
const AND_K: u16 = 0x54;
const RET_K: u16 = 0x06;

/// Unconditionally allowed syscalls per leaf group: a group costs one comparison each.
const GROUP: usize = 4;

/// Offsets in `struct seccomp_data`.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;

/// How one allowed syscall is decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leaf {
    /// Allowed whatever its arguments.
    Always,
    /// seccompiler's self-contained chain for this syscall alone: it starts by comparing
    /// the syscall number (in the accumulator), checks the arguments, and ends in `RET`s.
    Chain(Vec<BpfInsn>),
}

/// A program-layout problem; the policy is then refused rather than run another way.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LayoutError(String);

fn stmt(code: u16, k: u32) -> BpfInsn {
    BpfInsn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> BpfInsn {
    BpfInsn { code, jt, jf, k }
}

/// One contiguous run of the sorted syscall table: a group of unconditional syscalls, or
/// a single syscall with its argument chain.
enum Segment<'a> {
    Group(Vec<u32>),
    Chain(&'a [BpfInsn]),
}

impl Segment<'_> {
    fn emit(&self, allow: u32, deny: u32, out: &mut Vec<BpfInsn>) {
        match self {
            Segment::Group(nrs) => {
                // JEQ n_i jumps over the remaining JEQs and the deny to the shared allow.
                let k = nrs.len();
                for (i, nr) in nrs.iter().enumerate() {
                    out.push(jump(JEQ_K, *nr, (k - i) as u8, 0));
                }
                out.push(stmt(RET_K, deny));
                out.push(stmt(RET_K, allow));
            }
            Segment::Chain(chain) => out.extend_from_slice(chain),
        }
    }
}

/// `prologue` (ending with the syscall number loaded) followed by a binary search over
/// `leaves`; anything not in `leaves` returns `deny`.
pub fn layout(
    prologue: &[BpfInsn],
    leaves: &BTreeMap<u32, Leaf>,
    allow: u32,
    deny: u32,
) -> Result<Vec<BpfInsn>, LayoutError> {
    if prologue.last() != Some(&stmt(LD_W_ABS, NR_OFFSET)) {
        return Err(LayoutError(
            "the prologue must end by loading the syscall number".into(),
        ));
    }
    let mut segments: Vec<(u32, Segment<'_>)> = Vec::new();
    for (nr, leaf) in leaves {
        match leaf {
            Leaf::Chain(chain) => {
                check_contained(chain).map_err(|e| LayoutError(format!("syscall {nr}: {e}")))?;
                segments.push((*nr, Segment::Chain(chain)));
            }
            Leaf::Always => match segments.last_mut() {
                Some((_, Segment::Group(g))) if g.len() < GROUP => g.push(*nr),
                _ => segments.push((*nr, Segment::Group(vec![*nr]))),
            },
        }
    }
    let mut out = prologue.to_vec();
    if segments.is_empty() {
        out.push(stmt(RET_K, deny));
    } else {
        search(&segments, allow, deny, &mut out)?;
    }
    Ok(out)
}

/// Emits the search over `segments` (non-empty, sorted by first syscall number).
fn search(
    segments: &[(u32, Segment<'_>)],
    allow: u32,
    deny: u32,
    out: &mut Vec<BpfInsn>,
) -> Result<(), LayoutError> {
    if let [(_, only)] = segments {
        only.emit(allow, deny, out);
        return Ok(());
    }
    let mid = segments.len() / 2;
    let mut left = Vec::new();
    search(&segments[..mid], allow, deny, &mut left)?;
    // `nr >= first of the right half` takes the JA over the left half; the 32-bit JA
    // offset keeps the 8-bit jt/jf of conditional jumps out of the way.
    let over_left = u32::try_from(left.len())
        .map_err(|_| LayoutError("program too large to lay out".into()))?;
    out.push(jump(JGE_K, segments[mid].0, 0, 1));
    out.push(stmt(JA, over_left));
    out.extend(left);
    search(&segments[mid..], allow, deny, out)
}

/// Every jump of `chain` lands inside it and it cannot fall off its end.
fn check_contained(chain: &[BpfInsn]) -> Result<(), String> {
    let last = chain.last().ok_or("empty chain")?;
    if last.code != RET_K {
        return Err("chain does not end in RET".into());
    }
    for (i, insn) in chain.iter().enumerate() {
        let targets: Vec<usize> = match insn.code {
            JA => vec![i + 1 + insn.k as usize],
            JEQ_K | JGT_K | JGE_K | JSET_K => {
                vec![i + 1 + insn.jt as usize, i + 1 + insn.jf as usize]
            }
            LD_W_ABS | AND_K | RET_K => vec![],
            other => return Err(format!("unexpected BPF opcode {other:#04x} at {i}")),
        };
        if targets.iter().any(|t| *t >= chain.len()) {
            return Err(format!("jump at {i} leaves the chain"));
        }
    }
    Ok(())
}

/// The fields of `struct seccomp_data` a filter can read.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeccompData {
    pub nr: u32,
    pub arch: u32,
    pub instruction_pointer: u64,
    pub args: [u64; 6],
}

impl SeccompData {
    /// The 32-bit word at byte `offset`, as `BPF_LD|BPF_W|BPF_ABS` reads it (little endian).
    fn word(&self, offset: u32) -> Option<u32> {
        let field = |v: u64, hi: bool| if hi { (v >> 32) as u32 } else { v as u32 };
        match offset {
            NR_OFFSET => Some(self.nr),
            ARCH_OFFSET => Some(self.arch),
            8 | 12 => Some(field(self.instruction_pointer, offset == 12)),
            16..=63 if offset.is_multiple_of(4) => {
                let arg = ((offset - 16) / 8) as usize;
                Some(field(self.args[arg], (offset - 16) % 8 == 4))
            }
            _ => None,
        }
    }
}

/// Runs `program` on `data` the way the kernel would; `Err` for anything outside the
/// subset seccompiler and [`layout`] emit, or a program that runs off its end.
pub fn eval(program: &[BpfInsn], data: &SeccompData) -> Result<u32, String> {
    let (mut pc, mut acc) = (0usize, 0u32);
    loop {
        let insn = program.get(pc).ok_or("ran past the end of the program")?;
        let cond = |taken: bool| pc + 1 + usize::from(if taken { insn.jt } else { insn.jf });
        pc = match insn.code {
            RET_K => return Ok(insn.k),
            LD_W_ABS => {
                acc = data
                    .word(insn.k)
                    .ok_or_else(|| format!("load from bad offset {}", insn.k))?;
                pc + 1
            }
            AND_K => {
                acc &= insn.k;
                pc + 1
            }
            JA => pc + 1 + insn.k as usize,
            JEQ_K => cond(acc == insn.k),
            JGT_K => cond(acc > insn.k),
            JGE_K => cond(acc >= insn.k),
            JSET_K => cond(acc & insn.k != 0),
            other => return Err(format!("unsupported BPF opcode {other:#04x} at {pc}")),
        };
    }
}

/// Argument values worth trying against the argument checks in `program`: every
/// constant it compares with, its neighbours and complement, plus zero and all-ones.
pub fn probe_values(program: &[BpfInsn]) -> Vec<u64> {
    let mut values = vec![0, u64::MAX, 1 << 32, 0xFFFF_FFFF];
    for insn in program {
        if matches!(insn.code, JEQ_K | JGT_K | JGE_K | JSET_K | AND_K) {
            let k = u64::from(insn.k);
            values.extend([k, k.wrapping_add(1), k.wrapping_sub(1), !k, k | (1 << 40)]);
        }
    }
    values.sort_unstable();
    values.dedup();
    values
}

/// Proves `tree` decides like `linear` for every syscall number up to `max_nr` and its
/// x32 alias, on both architectures seccomp sees on x86_64. The syscalls in `with_args`
/// are also tried with each of `values` in every argument (see [`probe_values`]); for the
/// rest neither program reads an argument, which zero and all-ones show.
pub fn check_equivalent(
    linear: &[BpfInsn],
    tree: &[BpfInsn],
    max_nr: u32,
    with_args: &[u32],
    values: &[u64],
) -> Result<(), String> {
    const X32_BIT: u32 = 0x4000_0000;
    for arch in [0xC000_003E_u32, 0x4000_0003] {
        for nr in (0..=max_nr).chain((0..=max_nr).map(|n| n | X32_BIT)) {
            let compare = |args: [u64; 6]| -> Result<(), String> {
                let data = SeccompData {
                    nr,
                    arch,
                    args,
                    ..SeccompData::default()
                };
                let (a, b) = (eval(linear, &data)?, eval(tree, &data)?);
                if a == b {
                    return Ok(());
                }
                Err(format!(
                    "syscall {nr} arch {arch:#x} args {args:x?}: linear returns {a:#x}, tree {b:#x}"
                ))
            };
            if !with_args.contains(&(nr & !X32_BIT)) {
                compare([0; 6])?;
                compare([u64::MAX; 6])?;
                continue;
            }
            for v in values {
                compare([*v; 6])?;
                for arg in 0..6 {
                    let mut args = [0; 6];
                    args[arg] = *v;
                    compare(args)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOW: u32 = 0x7fff_0000;
    const DENY: u32 = 0x7fc0_0000;

    fn prologue() -> Vec<BpfInsn> {
        vec![
            stmt(LD_W_ABS, ARCH_OFFSET),
            jump(JEQ_K, 0xC000_003E, 1, 0),
            stmt(RET_K, 0x8000_0000),
            stmt(LD_W_ABS, NR_OFFSET),
        ]
    }

    /// nr == 7 and arg0 == 5 → allow, else deny.
    fn chain_for_7() -> Vec<BpfInsn> {
        vec![
            jump(JEQ_K, 7, 0, 3),
            stmt(LD_W_ABS, 16),
            jump(JEQ_K, 5, 0, 1),
            stmt(RET_K, ALLOW),
            stmt(RET_K, DENY),
        ]
    }

    fn run(program: &[BpfInsn], nr: u32, arg0: u64) -> u32 {
        let data = SeccompData {
            nr,
            arch: 0xC000_003E,
            args: [arg0, 0, 0, 0, 0, 0],
            ..SeccompData::default()
        };
        eval(program, &data).expect("valid program")
    }

    #[test]
    fn the_tree_allows_exactly_the_listed_syscalls() {
        let mut leaves: BTreeMap<u32, Leaf> =
            (0..300).step_by(3).map(|n| (n, Leaf::Always)).collect();
        leaves.insert(7, Leaf::Chain(chain_for_7()));
        let program = layout(&prologue(), &leaves, ALLOW, DENY).expect("lays out");
        for nr in 0..400 {
            let expected = if nr == 7 || (nr < 300 && nr % 3 == 0) {
                ALLOW
            } else {
                DENY
            };
            assert_eq!(run(&program, nr, 5), expected, "syscall {nr}");
        }
        assert_eq!(
            run(&program, 7, 6),
            DENY,
            "the argument check still applies"
        );
        assert_eq!(run(&program, 0x4000_0000, 0), DENY, "x32 alias of 0");
    }

    #[test]
    fn a_large_table_needs_long_jumps_and_still_works() {
        // 1000 chains of 5 instructions: the left half is far beyond an 8-bit jump.
        let leaves: BTreeMap<u32, Leaf> = (0..1000)
            .map(|n| {
                let mut c = chain_for_7();
                c[0].k = n;
                (n, Leaf::Chain(c))
            })
            .collect();
        let program = layout(&prologue(), &leaves, ALLOW, DENY).expect("lays out");
        assert!(program.len() > 5000);
        assert_eq!(run(&program, 999, 5), ALLOW);
        assert_eq!(run(&program, 3, 4), DENY);
        assert_eq!(run(&program, 1000, 5), DENY);
    }

    #[test]
    fn the_equivalence_check_catches_a_difference() {
        let linear = {
            let mut p = prologue();
            p.extend([
                jump(JEQ_K, 1, 0, 1),
                stmt(RET_K, ALLOW),
                jump(JEQ_K, 7, 0, 3),
                stmt(LD_W_ABS, 16),
                jump(JEQ_K, 5, 0, 1),
                stmt(RET_K, ALLOW),
                stmt(RET_K, DENY),
            ]);
            p
        };
        let right = BTreeMap::from([(1, Leaf::Always), (7, Leaf::Chain(chain_for_7()))]);
        let tree = layout(&prologue(), &right, ALLOW, DENY).expect("lays out");
        let values = probe_values(&chain_for_7());
        check_equivalent(&linear, &tree, 64, &[7], &values).expect("same decisions");
        let wrong = BTreeMap::from([(1, Leaf::Always), (7, Leaf::Always)]);
        let tree = layout(&prologue(), &wrong, ALLOW, DENY).expect("lays out");
        let err =
            check_equivalent(&linear, &tree, 64, &[7], &values).expect_err("differs on arg0 != 5");
        assert!(err.contains("syscall 7"), "{err}");
    }

    #[test]
    fn chains_that_jump_outside_themselves_are_refused() {
        let mut bad = chain_for_7();
        bad[0].jf = 9;
        let leaves = BTreeMap::from([(7, Leaf::Chain(bad))]);
        let err = layout(&prologue(), &leaves, ALLOW, DENY).expect_err("refused");
        assert!(err.to_string().contains("leaves the chain"), "{err}");
    }

    #[test]
    fn the_interpreter_reads_argument_halves_little_endian() {
        let data = SeccompData {
            args: [0x1111_2222_3333_4444, 0, 0, 0, 0, 0x5555_6666_7777_8888],
            ..SeccompData::default()
        };
        assert_eq!(data.word(16), Some(0x3333_4444));
        assert_eq!(data.word(20), Some(0x1111_2222));
        assert_eq!(data.word(56), Some(0x7777_8888));
        assert_eq!(data.word(60), Some(0x5555_6666));
        assert_eq!(data.word(64), None);
    }
}

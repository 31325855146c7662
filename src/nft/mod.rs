//! The kernel side: operations on secgroupd's nftables table, behind a trait so that the
//! reconciler can be tested against an in-memory fake.

pub mod fake;
pub mod monitor;
pub mod netlink;

use crate::compile::plan::{ChainName, ChainSpec, Elem, Family, RuleSpec, SetName, SetSpec};

/// Where a new rule goes in its chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// At the end of the chain.
    Append,
    /// Immediately before the rule with this handle.
    Before(u64),
}

/// One message of a batch. A batch is applied by the kernel atomically, in order.
/// Chains and sets belong to the table of their family ([`ChainName::family`],
/// [`SetName::family`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Create the table of this family if it does not exist.
    AddTable(Family),
    /// Delete the table of this family with everything in it.
    DelTable(Family),
    AddChain(ChainSpec),
    /// Delete an (empty, unreferenced) chain.
    DelChain(ChainName),
    AddSet(SetSpec),
    DelSet(SetName),
    /// Add elements; for a verdict map each carries `Some(chain)`: `key : jump chain`.
    AddElems(SetName, Vec<(Elem, Option<ChainName>)>),
    DelElems(SetName, Vec<Elem>),
    AddRule(RuleSpec, Position),
    DelRule {
        chain: ChainName,
        handle: u64,
    },
    /// Delete a rule of a chain secgroupd does not know by name (drift repair).
    DelForeignRule {
        family: Family,
        chain: String,
        handle: u64,
    },
    /// Delete every rule of a chain (drift repair: emptied before chains are deleted, so
    /// that references between chains being deleted do not matter).
    FlushChain(Family, String),
    /// Delete a chain secgroupd does not know by name, with its rules (drift repair).
    DelForeignChain(Family, String),
    /// Delete a set secgroupd does not know by name (drift repair).
    DelForeignSet(Family, String),
}

impl Op {
    /// The family of the table the op concerns.
    pub fn family(&self) -> Family {
        match self {
            Op::AddTable(f) | Op::DelTable(f) => *f,
            Op::AddChain(c) => c.name.family(),
            Op::DelChain(c) => c.family(),
            Op::AddSet(s) => s.name.family(),
            Op::DelSet(s) | Op::AddElems(s, _) | Op::DelElems(s, _) => s.family(),
            Op::AddRule(r, _) => r.chain.family(),
            Op::DelRule { chain, .. } => chain.family(),
            Op::DelForeignRule { family, .. }
            | Op::FlushChain(family, _)
            | Op::DelForeignChain(family, _)
            | Op::DelForeignSet(family, _) => *family,
        }
    }
}

/// A rule as read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRule {
    pub handle: u64,
    /// The rule comment (userdata, type 0), if it has one.
    pub comment: Option<String>,
}

/// A chain as read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelChain {
    pub name: String,
    /// `(hook number, priority, policy)` for base chains; hook numbers are the kernel's
    /// `NF_INET_*` values, policy is `NF_ACCEPT` (1) or `NF_DROP` (0).
    pub hook: Option<(u32, i32, u32)>,
    /// Rules in chain order.
    pub rules: Vec<KernelRule>,
}

/// A set or map as read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSet {
    pub name: String,
    pub key_type: u32,
    pub key_len: u32,
    /// Whether it is a verdict map (`NFT_SET_MAP` with data type verdict).
    pub verdict_map: bool,
    /// Element keys as raw bytes, with the chain a verdict map element jumps to (`None`
    /// for plain sets, and for map elements whose verdict is not a jump).
    pub elems: Vec<(Vec<u8>, Option<String>)>,
}

/// One of secgroupd's tables as the kernel has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelTable {
    pub family: Family,
    /// Ruleset generation at the time of the dump (`NFT_MSG_GETGEN`).
    pub genid: u32,
    pub exists: bool,
    pub chains: Vec<KernelChain>,
    pub sets: Vec<KernelSet>,
}

/// What a committed batch reports back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Committed {
    /// The handle of each `AddRule` of the batch, in batch order.
    pub handles: Vec<u64>,
}

/// Why a batch did not commit. For `GenerationChanged` and `Rejected` the kernel rolled
/// the whole batch back; after `Io` or `Protocol` errors the outcome is unknown (the
/// batch may have committed): the caller must read the kernel again.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// The ruleset changed since the generation the batch was built against (ERESTART).
    #[error("the ruleset changed since it was read (generation check failed)")]
    GenerationChanged,
    /// The kernel refused a message of the batch.
    #[error("the kernel refused operation {index} ({op}): {source}")]
    Rejected {
        index: usize,
        op: String,
        #[source]
        source: std::io::Error,
    },
    #[error("netlink I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("netlink protocol: {0}")]
    Protocol(String),
}

/// A kernel backend. Calls block; the reconciler runs them on a thread of their own.
pub trait Backend: Send {
    /// Reads the whole table of one family (chains with rule handles and comments, sets
    /// with elements) and the ruleset generation.
    fn dump(&mut self, table: &str, family: Family) -> Result<KernelTable, NftError>;

    /// Sends `ops` as one batch and waits until it is committed or refused. With
    /// `genid`, the batch only commits if the ruleset generation is still `genid`.
    fn commit(
        &mut self,
        table: &str,
        ops: &[Op],
        genid: Option<u32>,
    ) -> Result<Committed, NftError>;
}

//! In-memory stand-in for the kernel, for unit tests of the reconciler. It enforces the
//! rules the kernel enforces (atomic batches, generation check, handles that exist,
//! chains and sets that exist and are unreferenced when deleted) so that a batch the
//! fake accepts is a batch the kernel would accept.

use super::{
    Backend, Committed, KernelChain, KernelRule, KernelSet, KernelTable, NftError, Op, Position,
};
use crate::compile::plan::{Family, Match, Verdict};
use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};

/// A rule in the fake kernel: handle, comment, and what it references.
#[derive(Debug, Clone)]
struct FakeRule {
    handle: u64,
    comment: Option<String>,
    jumps_to: Option<String>,
    sets: Vec<String>,
}

#[derive(Debug, Clone)]
struct FakeChain {
    name: String,
    hook: Option<(u32, i32, u32)>,
    rules: Vec<FakeRule>,
}

#[derive(Debug, Clone)]
struct FakeSet {
    name: String,
    key_type: u32,
    key_len: u32,
    verdict_map: bool,
    elems: Vec<(Vec<u8>, Option<String>)>,
}

#[derive(Debug, Clone, Default)]
struct Table {
    exists: bool,
    chains: Vec<FakeChain>,
    sets: Vec<FakeSet>,
    next_handle: u64,
}

/// The shared fake kernel state.
#[derive(Debug, Default)]
pub struct FakeKernel {
    tables: BTreeMap<Family, Table>,
    genid: u32,
    /// Number of batches committed.
    pub commits: usize,
    /// Ops of every committed batch, in order.
    pub history: Vec<Vec<Op>>,
    /// If set, the next commit fails with this errno at op 0.
    pub fail_next: Option<i32>,
}

impl FakeKernel {
    fn inet(&self) -> &Table {
        static EMPTY: std::sync::OnceLock<Table> = std::sync::OnceLock::new();
        self.tables
            .get(&Family::Inet)
            .unwrap_or_else(|| EMPTY.get_or_init(Table::default))
    }
}

/// A `Backend` over a shared [`FakeKernel`]; clone it to inspect the kernel in tests.
#[derive(Debug, Clone, Default)]
pub struct FakeBackend {
    pub kernel: Arc<Mutex<FakeKernel>>,
}

fn err(index: usize, op: &Op, errno: i32) -> NftError {
    NftError::Rejected {
        index,
        op: format!("{op:?}").chars().take(80).collect(),
        source: io::Error::from_raw_os_error(errno),
    }
}

impl Table {
    fn chain(&mut self, name: &str) -> Option<&mut FakeChain> {
        self.chains.iter_mut().find(|c| c.name == name)
    }
    fn referenced_chain(&self, name: &str) -> bool {
        self.chains
            .iter()
            .flat_map(|c| &c.rules)
            .any(|r| r.jumps_to.as_deref() == Some(name))
            || self
                .sets
                .iter()
                .flat_map(|s| &s.elems)
                .any(|(_, to)| to.as_deref() == Some(name))
    }
    fn referenced_set(&self, name: &str) -> bool {
        self.chains
            .iter()
            .flat_map(|c| &c.rules)
            .any(|r| r.sets.iter().any(|s| s == name))
    }
    fn del_chain(&mut self, name: &str) -> Result<(), i32> {
        if !self.chains.iter().any(|c| c.name == name) {
            return Err(libc::ENOENT);
        }
        if self.referenced_chain(name) {
            return Err(libc::EBUSY);
        }
        self.chains.retain(|c| c.name != name);
        Ok(())
    }
    fn del_set(&mut self, name: &str) -> Result<(), i32> {
        if !self.sets.iter().any(|s| s.name == name) {
            return Err(libc::ENOENT);
        }
        if self.referenced_set(name) {
            return Err(libc::EBUSY);
        }
        self.sets.retain(|s| s.name != name);
        Ok(())
    }

    fn apply(&mut self, op: &Op, handles: &mut Vec<u64>) -> Result<(), i32> {
        if !self.exists && !matches!(op, Op::AddTable(_)) {
            return Err(libc::ENOENT);
        }
        match op {
            Op::AddTable(_) => self.exists = true,
            Op::DelTable(_) => {
                *self = Table {
                    next_handle: self.next_handle,
                    ..Table::default()
                }
            }
            Op::AddChain(c) => {
                let name = c.name.to_string();
                if self.chain(&name).is_none() {
                    let hook = c.base.map(|b| (b.hook.number(), b.priority, 1));
                    self.chains.push(FakeChain {
                        name,
                        hook,
                        rules: vec![],
                    });
                }
            }
            Op::DelChain(c) => self.del_chain(&c.to_string())?,
            Op::DelForeignChain(_, name) => self.del_chain(name)?,
            Op::FlushChain(_, name) => self.chain(name).ok_or(libc::ENOENT)?.rules.clear(),
            Op::AddSet(s) => {
                let name = s.name.to_string();
                if !self.sets.iter().any(|x| x.name == name) {
                    self.sets.push(FakeSet {
                        name,
                        key_type: s.key.nft_type(),
                        key_len: s.key.key_len(),
                        verdict_map: s.name.is_verdict_map(),
                        elems: vec![],
                    });
                }
            }
            Op::DelSet(s) => self.del_set(&s.to_string())?,
            Op::DelForeignSet(_, name) => self.del_set(name)?,
            Op::AddElems(s, elems) => {
                let name = s.to_string();
                let targets: Vec<String> = self.chains.iter().map(|c| c.name.clone()).collect();
                let set = self
                    .sets
                    .iter_mut()
                    .find(|x| x.name == name)
                    .ok_or(libc::ENOENT)?;
                for (e, to) in elems {
                    if to.is_some() != set.verdict_map {
                        return Err(libc::EINVAL);
                    }
                    if let Some(t) = to
                        && !targets.contains(&t.to_string())
                    {
                        return Err(libc::ENOENT);
                    }
                    let k = e.key_bytes();
                    if k.len() as u32 != set.key_len {
                        return Err(libc::EINVAL);
                    }
                    match set.elems.iter().find(|(x, _)| *x == k) {
                        // The kernel refuses to change an element's data in place.
                        Some((_, old)) if *old != to.map(|c| c.to_string()) => {
                            return Err(libc::EEXIST);
                        }
                        Some(_) => {}
                        None => set.elems.push((k, to.map(|c| c.to_string()))),
                    }
                }
            }
            Op::DelElems(s, elems) => {
                let name = s.to_string();
                let set = self
                    .sets
                    .iter_mut()
                    .find(|x| x.name == name)
                    .ok_or(libc::ENOENT)?;
                for e in elems {
                    let k = e.key_bytes();
                    let i = set
                        .elems
                        .iter()
                        .position(|(x, _)| *x == k)
                        .ok_or(libc::ENOENT)?;
                    set.elems.remove(i);
                }
            }
            Op::AddRule(r, pos) => {
                let jumps_to = match r.verdict {
                    Verdict::Jump(c) => Some(c.to_string()),
                    _ => None,
                };
                if let Some(t) = &jumps_to
                    && self.chain(t).is_none()
                {
                    return Err(libc::ENOENT);
                }
                let sets: Vec<String> = r
                    .matches
                    .iter()
                    .filter_map(|m| match m {
                        Match::L4ProtoIn(s) | Match::SaddrIn(_, s) => Some(s.to_string()),
                        _ => None,
                    })
                    .collect();
                for s in &sets {
                    if !self.sets.iter().any(|x| &x.name == s) {
                        return Err(libc::ENOENT);
                    }
                }
                self.next_handle += 1;
                let handle = self.next_handle;
                let chain = self.chain(&r.chain.to_string()).ok_or(libc::ENOENT)?;
                let rule = FakeRule {
                    handle,
                    comment: Some(r.comment.to_string()),
                    jumps_to,
                    sets,
                };
                match pos {
                    Position::Append => chain.rules.push(rule),
                    Position::Before(h) => {
                        let i = chain
                            .rules
                            .iter()
                            .position(|x| x.handle == *h)
                            .ok_or(libc::ENOENT)?;
                        chain.rules.insert(i, rule);
                    }
                }
                handles.push(handle);
            }
            Op::DelRule { chain, handle } => {
                self.del_rule(&chain.to_string(), *handle)?;
            }
            Op::DelForeignRule { chain, handle, .. } => self.del_rule(chain, *handle)?,
        }
        Ok(())
    }

    fn del_rule(&mut self, chain: &str, handle: u64) -> Result<(), i32> {
        let c = self.chain(chain).ok_or(libc::ENOENT)?;
        let i = c
            .rules
            .iter()
            .position(|r| r.handle == handle)
            .ok_or(libc::ENOENT)?;
        c.rules.remove(i);
        Ok(())
    }
}

impl FakeBackend {
    pub fn new() -> Self {
        FakeBackend::default()
    }

    /// `(handle, comment)` of the rules of a chain, in order.
    pub fn rules(&self, chain: &str) -> Vec<(u64, String)> {
        let k = self.kernel.lock().expect("fake kernel lock");
        k.inet()
            .chains
            .iter()
            .find(|c| c.name == chain)
            .map(|c| {
                c.rules
                    .iter()
                    .map(|r| (r.handle, r.comment.clone().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every rule handle in the table, sorted.
    pub fn all_handles(&self) -> Vec<u64> {
        let k = self.kernel.lock().expect("fake kernel lock");
        let mut v: Vec<u64> = k
            .tables
            .values()
            .flat_map(|t| &t.chains)
            .flat_map(|c| c.rules.iter().map(|r| r.handle))
            .collect();
        v.sort_unstable();
        v
    }

    /// Simulates another program changing the ruleset: runs ops outside secgroupd.
    pub fn tamper(&self, ops: &[Op]) {
        let mut k = self.kernel.lock().expect("fake kernel lock");
        let mut handles = vec![];
        for op in ops {
            let _ = k
                .tables
                .entry(op.family())
                .or_default()
                .apply(op, &mut handles);
        }
        k.genid += 1;
    }

    /// Simulates a foreign rule added to one of secgroupd's chains.
    pub fn add_foreign_rule(&self, chain: &str, comment: Option<&str>) {
        let mut k = self.kernel.lock().expect("fake kernel lock");
        let t = k.tables.entry(Family::Inet).or_default();
        t.next_handle += 1;
        let handle = t.next_handle;
        if let Some(c) = t.chain(chain) {
            c.rules.push(FakeRule {
                handle,
                comment: comment.map(str::to_string),
                jumps_to: None,
                sets: vec![],
            });
        }
        k.genid += 1;
    }

    /// Simulates `nft delete rule ... handle H` by another program.
    pub fn delete_rule(&self, chain: &str, handle: u64) {
        let mut k = self.kernel.lock().expect("fake kernel lock");
        let _ = k
            .tables
            .entry(Family::Inet)
            .or_default()
            .del_rule(chain, handle);
        k.genid += 1;
    }

    /// `(key, target chain)` of the elements of a verdict map of the inet table.
    pub fn map(&self, set: &str) -> Vec<(Vec<u8>, Option<String>)> {
        let k = self.kernel.lock().expect("fake kernel lock");
        k.inet()
            .sets
            .iter()
            .find(|s| s.name == set)
            .map(|s| s.elems.clone())
            .unwrap_or_default()
    }

    /// Element keys of a set of the inet table.
    pub fn elems(&self, set: &str) -> Vec<Vec<u8>> {
        let k = self.kernel.lock().expect("fake kernel lock");
        k.inet()
            .sets
            .iter()
            .find(|s| s.name == set)
            .map(|s| s.elems.iter().map(|(e, _)| e.clone()).collect())
            .unwrap_or_default()
    }
}

impl Backend for FakeBackend {
    fn dump(&mut self, _table: &str, family: Family) -> Result<KernelTable, NftError> {
        let k = self.kernel.lock().expect("fake kernel lock");
        let empty = Table::default();
        let t = k.tables.get(&family).unwrap_or(&empty);
        Ok(KernelTable {
            family,
            genid: k.genid,
            exists: t.exists,
            chains: t
                .chains
                .iter()
                .map(|c| KernelChain {
                    name: c.name.clone(),
                    hook: c.hook,
                    rules: c
                        .rules
                        .iter()
                        .map(|r| KernelRule {
                            handle: r.handle,
                            comment: r.comment.clone(),
                        })
                        .collect(),
                })
                .collect(),
            sets: t
                .sets
                .iter()
                .map(|s| KernelSet {
                    name: s.name.clone(),
                    key_type: s.key_type,
                    key_len: s.key_len,
                    verdict_map: s.verdict_map,
                    elems: s.elems.clone(),
                })
                .collect(),
        })
    }

    fn commit(
        &mut self,
        _table: &str,
        ops: &[Op],
        genid: Option<u32>,
    ) -> Result<Committed, NftError> {
        let mut k = self.kernel.lock().expect("fake kernel lock");
        if let Some(errno) = k.fail_next.take() {
            return Err(err(0, &ops[0], errno));
        }
        if genid.is_some_and(|g| g != k.genid) {
            return Err(NftError::GenerationChanged);
        }
        let mut tables = k.tables.clone();
        let mut handles = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            tables
                .entry(op.family())
                .or_default()
                .apply(op, &mut handles)
                .map_err(|e| err(i, op, e))?;
        }
        k.tables = tables;
        k.genid += 1;
        k.commits += 1;
        k.history.push(ops.to_vec());
        Ok(Committed { handles })
    }
}

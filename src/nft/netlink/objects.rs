//! Encoding of `Op`s as nf_tables messages of a batch.
//!
//! Each op goes to the table of its family ([`Op::family`]): secgroupd's `inet` table or
//! its `bridge` table of the same name; one batch may hold ops of both, and the kernel
//! commits them together. Tables, chains and rules go through nftnl's types and their
//! `NlMsg::write`, with the header flags adjusted afterwards where nftnl's choice is not
//! ours; sets and elements are in [`super::sets`].

use super::batch::{Batch, Slot};
use super::family::proto_family;
use super::lower::{cstring, lower};
use super::sets;
use crate::compile::plan::{ChainSpec, Family, Hook};
use crate::nft::{NftError, Op, Position};
use nftnl::{Chain, ChainType, MsgType, Policy, Rule, Table};
use std::collections::HashMap;
use std::ffi::CString;

const F_CREATE: u16 = libc::NLM_F_CREATE as u16;
const F_APPEND: u16 = libc::NLM_F_APPEND as u16;
const F_EXCL: u16 = libc::NLM_F_EXCL as u16;
const F_ECHO: u16 = libc::NLM_F_ECHO as u16;

/// A batch ready to send, and which operations are rule additions.
pub(super) struct Encoded {
    pub(super) batch: Batch,
    /// For each op, its position among the batch's `AddRule`s (the index of its handle in
    /// `Committed::handles`).
    pub(super) rule_index: Vec<Option<usize>>,
    pub(super) rules: usize,
}

pub(super) fn encode(
    first_seq: u32,
    table: &str,
    ops: &[Op],
    genid: Option<u32>,
) -> Result<Encoded, NftError> {
    let tname = CString::new(table).map_err(|_| {
        NftError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("table name {table:?} contains a NUL byte"),
        ))
    })?;
    let mut enc = Encoder {
        tables: Tables {
            inet: Table::new(&tname, proto_family(Family::Inet)),
            bridge: Table::new(&tname, proto_family(Family::Bridge)),
        },
        tname,
        batch: Batch::new(first_seq, genid),
        set_ids: HashMap::new(),
        last_set_id: 0,
    };
    let mut rule_index = Vec::with_capacity(ops.len());
    let mut rules = 0;
    for (i, op) in ops.iter().enumerate() {
        enc.op(i, op).map_err(|e| NftError::Rejected {
            index: i,
            op: describe(op),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        })?;
        rule_index.push(matches!(op, Op::AddRule(..)).then(|| {
            rules += 1;
            rules - 1
        }));
    }
    enc.batch.finish();
    Ok(Encoded {
        batch: enc.batch,
        rule_index,
        rules,
    })
}

/// secgroupd's two tables (same name, two families), as nftnl objects that chains and
/// rules are created in.
struct Tables {
    inet: Table,
    bridge: Table,
}

impl Tables {
    fn get(&self, f: Family) -> &Table {
        match f {
            Family::Inet => &self.inet,
            Family::Bridge => &self.bridge,
        }
    }
}

struct Encoder {
    tables: Tables,
    tname: CString,
    batch: Batch,
    /// Batch-local ids of the sets this batch creates (`NFTA_SET_ID`), by family and name:
    /// both tables have a set called `spoof_in`.
    set_ids: HashMap<(Family, String), u32>,
    last_set_id: u32,
}

impl Encoder {
    fn op(&mut self, i: usize, op: &Op) -> Result<(), String> {
        let slot = Slot::Op(i);
        let family = op.family();
        match op {
            // No NLM_F_EXCL: adding the table again is a no-op.
            Op::AddTable(f) => {
                let t = self.tables.get(*f);
                self.batch.push_msg(slot, t, MsgType::Add, F_CREATE, 0);
            }
            Op::DelTable(f) => {
                let t = self.tables.get(*f);
                self.batch.push_msg(slot, t, MsgType::Del, 0, 0);
            }
            Op::AddChain(spec) => self.add_chain(slot, spec)?,
            Op::DelChain(name) => self.del_chain(slot, family, &name.to_string())?,
            Op::DelForeignChain(f, name) => self.del_chain(slot, *f, name)?,
            Op::FlushChain(f, name) => {
                // A DELRULE naming only table and chain deletes every rule of the chain.
                let c = Chain::new(cstring(name.clone())?, self.tables.get(*f));
                let r = Rule::new(&c);
                self.batch.push_msg(slot, &r, MsgType::Del, 0, 0);
            }
            Op::AddSet(spec) => {
                self.last_set_id += 1;
                let id = self.last_set_id;
                sets::add(&mut self.batch, slot, &self.tname, spec, id)?;
                self.set_ids.insert((family, spec.name.to_string()), id);
            }
            Op::DelSet(name) => sets::del(
                &mut self.batch,
                slot,
                &self.tname,
                family,
                &name.to_string(),
            )?,
            Op::DelForeignSet(f, name) => sets::del(&mut self.batch, slot, &self.tname, *f, name)?,
            Op::AddElems(set, elems) => {
                sets::elems(&mut self.batch, slot, &self.tname, *set, elems, true)?
            }
            Op::DelElems(set, elems) => {
                let keys: Vec<_> = elems.iter().map(|e| (*e, None)).collect();
                sets::elems(&mut self.batch, slot, &self.tname, *set, &keys, false)?
            }
            Op::AddRule(rule, pos) => {
                let chain = Chain::new(cstring(rule.chain.to_string())?, self.tables.get(family));
                let mut r = Rule::new(&chain);
                let ids = &self.set_ids;
                for e in lower(rule, |s| ids.get(&(s.family(), s.to_string())).copied())? {
                    r.add_expr(&e);
                }
                // An empty comment is left out (and so reads back as `None`). Longer than
                // 125 bytes does not fit nft's userdata buffer: refused, not truncated.
                if !rule.comment.is_empty() {
                    r.set_comment(cstring(rule.comment.to_string())?)
                        .map_err(|_| {
                            format!("comment of {} bytes is too long", rule.comment.len())
                        })?;
                }
                // nftnl writes CREATE|APPEND|EXCL|ACK. We add ECHO to learn the handle and
                // drop EXCL, which means nothing for rules (nft does not send it). With a
                // position and without APPEND the kernel inserts before that rule (tested).
                let clear = match pos {
                    Position::Append => F_EXCL,
                    Position::Before(h) => {
                        r.set_position(*h);
                        F_EXCL | F_APPEND
                    }
                };
                self.batch.push_msg(slot, &r, MsgType::Add, F_ECHO, clear);
            }
            Op::DelRule { chain, handle } => {
                self.del_rule(slot, family, &chain.to_string(), *handle)?
            }
            Op::DelForeignRule {
                family,
                chain,
                handle,
            } => self.del_rule(slot, *family, chain, *handle)?,
        }
        Ok(())
    }

    /// A chain; a base chain has type filter, its hook and priority, policy accept. The
    /// bridge family numbers its prerouting, forward and output hooks (`NF_BR_*`) as the
    /// inet family does, so nftnl's inet hook numbers serve both.
    fn add_chain(&mut self, slot: Slot, spec: &ChainSpec) -> Result<(), String> {
        let family = spec.name.family();
        let mut c = Chain::new(cstring(spec.name.to_string())?, self.tables.get(family));
        if let Some(base) = spec.base {
            let hook = match base.hook {
                Hook::Forward => nftnl::Hook::Forward,
                Hook::Output => nftnl::Hook::Out,
                Hook::Prerouting => nftnl::Hook::PreRouting,
            };
            c.set_type(ChainType::Filter);
            c.set_hook(hook, base.priority);
            c.set_policy(Policy::Accept);
        }
        // nftnl writes CREATE|ACK: adding an identical chain again is a no-op.
        self.batch.push_msg(slot, &c, MsgType::Add, 0, 0);
        Ok(())
    }

    /// DELCHAIN removes the chain's rules with it (verified on 6.18, see the tests), so no
    /// flush is needed; it fails with EBUSY while a rule or a map element jumps to it.
    fn del_chain(&mut self, slot: Slot, family: Family, name: &str) -> Result<(), String> {
        let c = Chain::new(cstring(name.to_owned())?, self.tables.get(family));
        self.batch.push_msg(slot, &c, MsgType::Del, 0, 0);
        Ok(())
    }

    fn del_rule(
        &mut self,
        slot: Slot,
        family: Family,
        chain: &str,
        handle: u64,
    ) -> Result<(), String> {
        let c = Chain::new(cstring(chain.to_owned())?, self.tables.get(family));
        let mut r = Rule::new(&c);
        r.set_handle(handle);
        self.batch.push_msg(slot, &r, MsgType::Del, 0, 0);
        Ok(())
    }
}

/// Short text naming an operation, for errors: `add bridge chain hook_forward`.
pub(super) fn describe(op: &Op) -> String {
    let f = op.family().as_str();
    match op {
        Op::AddTable(_) => format!("add {f} table"),
        Op::DelTable(_) => format!("delete {f} table"),
        Op::AddChain(c) => format!("add {f} chain {}", c.name),
        Op::DelChain(c) => format!("delete {f} chain {c}"),
        Op::AddSet(s) => format!("add {f} set {}", s.name),
        Op::DelSet(s) => format!("delete {f} set {s}"),
        Op::AddElems(s, e) => format!("add {} elements to {f} set {s}", e.len()),
        Op::DelElems(s, e) => format!("delete {} elements from {f} set {s}", e.len()),
        Op::AddRule(r, Position::Append) => {
            format!("append rule {} to {f} chain {}", r.id, r.chain)
        }
        Op::AddRule(r, Position::Before(h)) => {
            format!(
                "insert rule {} into {f} chain {} before handle {h}",
                r.id, r.chain
            )
        }
        Op::DelRule { chain, handle } => format!("delete rule {handle} of {f} chain {chain}"),
        Op::DelForeignRule { chain, handle, .. } => {
            format!("delete foreign rule {handle} of {f} chain {chain:?}")
        }
        Op::FlushChain(_, c) => format!("flush {f} chain {c:?}"),
        Op::DelForeignChain(_, c) => format!("delete foreign {f} chain {c:?}"),
        Op::DelForeignSet(_, s) => format!("delete foreign {f} set {s:?}"),
    }
}

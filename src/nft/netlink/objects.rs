//! Encoding of `Op`s as nf_tables messages of a batch.
//!
//! Tables, chains and rules go through nftnl's types and their `NlMsg::write`, with the
//! header flags adjusted afterwards where nftnl's choice is not ours; sets and elements are
//! built on libnftnl directly (nftnl's `Set` only knows address keys and creates elements
//! with `NLM_F_EXCL`, which would make re-adding an element an error).

use super::batch::{Batch, Slot};
use super::lower::lower;
use super::raw::RawSet;
use crate::compile::plan::{ChainSpec, Elem, Hook, SetName, SetSpec};
use crate::nft::{NftError, Op, Position};
use nftnl::nftnl_sys as sys;
use nftnl::{Chain, ChainType, MsgType, Policy, ProtoFamily, Rule, Table};
use std::collections::HashMap;
use std::ffi::CString;

/// Elements per element message: 1024 IPv6 keys take ~28 KiB, well under the 64 KiB an
/// attribute nest can hold.
const ELEMS_PER_MSG: usize = 1024;

const F_ACK: u16 = libc::NLM_F_ACK as u16;
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
        table: Table::new(&tname, ProtoFamily::Inet),
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

struct Encoder {
    table: Table,
    tname: CString,
    batch: Batch,
    /// Batch-local ids of the sets this batch creates, by name (`NFTA_SET_ID`).
    set_ids: HashMap<String, u32>,
    last_set_id: u32,
}

impl Encoder {
    fn op(&mut self, i: usize, op: &Op) -> Result<(), String> {
        let slot = Slot::Op(i);
        if op.family() != crate::compile::plan::Family::Inet {
            return Err("bridge-family tables are not supported by this backend yet".into());
        }
        let b = &mut self.batch;
        match op {
            // No NLM_F_EXCL: adding the table again is a no-op.
            Op::AddTable(_) => {
                b.push_msg(slot, &self.table, MsgType::Add, F_CREATE, 0);
            }
            Op::DelTable(_) => {
                b.push_msg(slot, &self.table, MsgType::Del, 0, 0);
            }
            Op::AddChain(spec) => self.add_chain(slot, spec)?,
            Op::DelChain(name) => self.del_chain(slot, &name.to_string())?,
            Op::DelForeignChain(_, name) => self.del_chain(slot, name)?,
            Op::FlushChain(_, name) => {
                // A DELRULE naming only table and chain deletes every rule of the chain.
                let c = Chain::new(cstring(name.clone())?, &self.table);
                let r = Rule::new(&c);
                self.batch.push_msg(slot, &r, MsgType::Del, 0, 0);
            }
            Op::AddSet(spec) => self.add_set(slot, spec)?,
            Op::DelSet(name) => self.del_set(slot, &name.to_string())?,
            Op::DelForeignSet(_, name) => self.del_set(slot, name)?,
            Op::AddElems(set, elems) => {
                if elems.iter().any(|(_, to)| to.is_some()) {
                    return Err("verdict maps are not supported by this backend yet".into());
                }
                let keys: Vec<_> = elems.iter().map(|(e, _)| *e).collect();
                self.elems(slot, *set, &keys, true)?
            }
            Op::DelElems(set, elems) => self.elems(slot, *set, elems, false)?,
            Op::AddRule(rule, pos) => {
                let chain = Chain::new(cstring(rule.chain.to_string())?, &self.table);
                let mut r = Rule::new(&chain);
                let ids = &self.set_ids;
                for e in lower(rule, |s| ids.get(s).copied())? {
                    r.add_expr(&e);
                }
                // An empty comment is left out (and so reads back as `None`). Longer than
                // 125 bytes does not fit nft's userdata buffer: refused, not truncated.
                if !rule.comment.is_empty() {
                    r.set_comment(cstring(rule.comment.clone())?).map_err(|_| {
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
            Op::DelRule { chain, handle } => self.del_rule(slot, &chain.to_string(), *handle)?,
            Op::DelForeignRule { chain, handle, .. } => self.del_rule(slot, chain, *handle)?,
        }
        Ok(())
    }

    fn add_chain(&mut self, slot: Slot, spec: &ChainSpec) -> Result<(), String> {
        let mut c = Chain::new(cstring(spec.name.to_string())?, &self.table);
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
    /// flush is needed; it fails with EBUSY while another rule jumps to the chain.
    fn del_chain(&mut self, slot: Slot, name: &str) -> Result<(), String> {
        let c = Chain::new(cstring(name.to_owned())?, &self.table);
        self.batch.push_msg(slot, &c, MsgType::Del, 0, 0);
        Ok(())
    }

    fn del_rule(&mut self, slot: Slot, chain: &str, handle: u64) -> Result<(), String> {
        let c = Chain::new(cstring(chain.to_owned())?, &self.table);
        let mut r = Rule::new(&c);
        r.set_handle(handle);
        self.batch.push_msg(slot, &r, MsgType::Del, 0, 0);
        Ok(())
    }

    fn set(&self, name: &str) -> Result<RawSet, String> {
        let s = RawSet::new().map_err(|e| e.to_string())?;
        s.set_str(sys::NFTNL_SET_TABLE, &self.tname);
        s.set_str(sys::NFTNL_SET_NAME, &cstring(name.to_owned())?);
        s.set_u32(sys::NFTNL_SET_FAMILY, libc::NFPROTO_INET as u32);
        Ok(s)
    }

    fn add_set(&mut self, slot: Slot, spec: &SetSpec) -> Result<(), String> {
        let name = spec.name.to_string();
        let s = self.set(&name)?;
        self.last_set_id += 1;
        let id = self.last_set_id;
        self.set_ids.insert(name, id);
        s.set_u32(sys::NFTNL_SET_ID, id);
        s.set_u32(sys::NFTNL_SET_KEY_TYPE, spec.key.nft_type());
        s.set_u32(sys::NFTNL_SET_KEY_LEN, spec.key.key_len());
        // No EXCL: re-adding an identical set is a no-op (a different key type is EEXIST).
        self.push_set(slot, &s, libc::NFT_MSG_NEWSET, F_CREATE);
        Ok(())
    }

    fn del_set(&mut self, slot: Slot, name: &str) -> Result<(), String> {
        let s = self.set(name)?;
        self.push_set(slot, &s, libc::NFT_MSG_DELSET, 0);
        Ok(())
    }

    /// One message per [`ELEMS_PER_MSG`] elements; none for an empty list. Adding uses
    /// CREATE without EXCL, so adding an element that is there already is not an error.
    fn elems(&mut self, slot: Slot, set: SetName, elems: &[Elem], add: bool) -> Result<(), String> {
        let name = set.to_string();
        for chunk in elems.chunks(ELEMS_PER_MSG) {
            let s = self.set(&name)?;
            for e in chunk {
                s.add_elem(&e.key_bytes()).map_err(|e| e.to_string())?;
            }
            let (t, f) = match add {
                true => (libc::NFT_MSG_NEWSETELEM, F_CREATE),
                false => (libc::NFT_MSG_DELSETELEM, 0),
            };
            self.push_set(slot, &s, t, f);
        }
        Ok(())
    }

    fn push_set(&mut self, slot: Slot, s: &RawSet, msg_type: libc::c_int, flags: u16) {
        let element_msg =
            msg_type == libc::NFT_MSG_NEWSETELEM || msg_type == libc::NFT_MSG_DELSETELEM;
        self.batch.push(slot, 0, 0, |buf, seq| {
            // SAFETY: `buf` has room for the largest nftables message; the set is live and
            // its element list was sized to fit (ELEMS_PER_MSG).
            unsafe {
                let nlh = sys::nftnl_nlmsg_build_hdr(
                    buf.cast(),
                    msg_type as u16,
                    libc::NFPROTO_INET as u16,
                    flags | F_ACK,
                    seq,
                );
                if element_msg {
                    sys::nftnl_set_elems_nlmsg_build_payload(nlh, s.ptr());
                } else {
                    sys::nftnl_set_nlmsg_build_payload(nlh, s.ptr());
                }
            }
        });
    }
}

fn cstring(s: String) -> Result<CString, String> {
    CString::new(s).map_err(|e| format!("name with a NUL byte: {e}"))
}

/// Short text naming an operation, for errors.
pub(super) fn describe(op: &Op) -> String {
    match op {
        Op::AddTable(_) => "add table".into(),
        Op::DelTable(_) => "delete table".into(),
        Op::AddChain(c) => format!("add chain {}", c.name),
        Op::DelChain(c) => format!("delete chain {c}"),
        Op::AddSet(s) => format!("add set {}", s.name),
        Op::DelSet(s) => format!("delete set {s}"),
        Op::AddElems(s, e) => format!("add {} elements to set {s}", e.len()),
        Op::DelElems(s, e) => format!("delete {} elements from set {s}", e.len()),
        Op::AddRule(r, Position::Append) => format!("append rule {} to chain {}", r.id, r.chain),
        Op::AddRule(r, Position::Before(h)) => {
            format!(
                "insert rule {} into chain {} before handle {h}",
                r.id, r.chain
            )
        }
        Op::DelRule { chain, handle } => format!("delete rule {handle} of chain {chain}"),
        Op::DelForeignRule { chain, handle, .. } => {
            format!("delete foreign rule {handle} of chain {chain:?}")
        }
        Op::FlushChain(_, c) => format!("flush chain {c:?}"),
        Op::DelForeignChain(_, c) => format!("delete foreign chain {c:?}"),
        Op::DelForeignSet(_, s) => format!("delete foreign set {s:?}"),
    }
}

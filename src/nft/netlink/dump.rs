//! Reading one of secgroupd's tables (one family) back from the kernel.
//!
//! A table is read with several requests (generation, table, chains, rules, sets, and the
//! elements of each set), and the ruleset may change in between. The generation is read
//! before and after: if it moved, or a dump was flagged `NLM_F_DUMP_INTR` (changed while
//! it ran), the whole read is retried, so what we return is one consistent generation.

use super::family::nfproto;
use super::raw::{RawChain, RawGen, RawRule, RawSet, RawTable, udata_comment};
use super::request::{Request, talk};
use super::socket::{Msg, NlSocket};
use crate::compile::plan::Family;
use crate::nft::{KernelChain, KernelRule, KernelSet, KernelTable, NftError};
use nftnl::nftnl_sys as sys;
use std::ffi::CString;
use std::io;
use std::time::Duration;

/// Attempts at a consistent read before giving up on a ruleset that keeps changing. A read
/// takes a few round trips, so a writer committing back to back (with no pause at all)
/// can keep it from ever succeeding; nothing short of a lock, which nf_tables does not
/// offer to readers, could help that.
const ATTEMPTS: usize = 20;

pub(super) fn dump(
    sock: &mut NlSocket,
    seq: &mut u32,
    table: &str,
    family: Family,
) -> Result<KernelTable, NftError> {
    let name = CString::new(table).map_err(|_| {
        NftError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("table name {table:?} contains a NUL byte"),
        ))
    })?;
    let mut r = Reader {
        sock,
        seq,
        family,
        nfproto: i32::from(nfproto(family)),
    };
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            // Someone else is committing (nft, another daemon): give a burst of commits a
            // moment to pass. About 200 ms in all before we give up.
            std::thread::sleep(Duration::from_millis(attempt as u64));
        }
        let before = r.genid()?;
        let read = r.table(&name);
        if r.genid()? != before {
            continue;
        }
        match read {
            Ok(Some(mut t)) => {
                t.genid = before;
                return Ok(t);
            }
            Ok(None) => continue, // interrupted dump
            Err(e) => return Err(e),
        }
    }
    Err(NftError::Protocol(format!(
        "the ruleset changed during each of {ATTEMPTS} attempts to read table {} {table}",
        family.as_str()
    )))
}

struct Reader<'a> {
    sock: &'a mut NlSocket,
    seq: &'a mut u32,
    family: Family,
    /// The family as requests carry it: dumps are filtered by it, so a bridge table and
    /// an inet table of the same name never mix.
    nfproto: libc::c_int,
}

/// `Ok(None)`: a dump was interrupted by a concurrent change.
type Read<T> = Result<Option<T>, NftError>;

impl Reader<'_> {
    fn talk(
        &mut self,
        msg_type: libc::c_int,
        family: libc::c_int,
        dump: bool,
        build: impl FnOnce(*mut libc::nlmsghdr),
        each: impl FnMut(&Msg<'_>) -> Result<(), NftError>,
    ) -> Result<bool, NftError> {
        let seq = *self.seq;
        *self.seq = seq.wrapping_add(1);
        talk(
            self.sock,
            seq,
            Request {
                msg_type,
                family,
                dump,
            },
            build,
            each,
        )
    }

    fn genid(&mut self) -> Result<u32, NftError> {
        let mut id = None;
        self.talk(
            libc::NFT_MSG_GETGEN,
            libc::AF_UNSPEC,
            false,
            |_| {},
            |m| {
                id = RawGen::parse(m)?.id();
                Ok(())
            },
        )?;
        id.ok_or_else(|| NftError::Protocol("no generation id in the kernel's answer".into()))
    }

    fn table(&mut self, name: &CString) -> Read<KernelTable> {
        let mut t = KernelTable {
            family: self.family,
            genid: 0,
            exists: false,
            chains: vec![],
            sets: vec![],
        };
        let req = RawTable::new()?;
        // SAFETY (for the builders here): live objects, attribute ids of their kind.
        unsafe {
            sys::nftnl_table_set_str(req.ptr(), sys::NFTNL_TABLE_NAME as u16, name.as_ptr());
        }
        let found = self.talk(
            libc::NFT_MSG_GETTABLE,
            self.nfproto,
            false,
            |nlh| unsafe { sys::nftnl_table_nlmsg_build_payload(nlh, req.ptr()) },
            |m| {
                RawTable::parse(m)?;
                Ok(())
            },
        );
        match found {
            Err(NftError::Io(e)) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(Some(t)),
            Err(e) => return Err(e),
            Ok(false) => return Ok(None),
            Ok(true) => t.exists = true,
        }
        let Some(chains) = self.chains(name)? else {
            return Ok(None);
        };
        t.chains = chains;
        if !self.rules(name, &mut t.chains)? {
            return Ok(None);
        }
        let Some(sets) = self.sets(name)? else {
            return Ok(None);
        };
        t.sets = sets;
        Ok(Some(t))
    }

    /// Chains of the table in kernel order. The chain dump cannot be filtered by table.
    fn chains(&mut self, table: &CString) -> Read<Vec<KernelChain>> {
        let mut out = Vec::new();
        let table = table.to_string_lossy();
        let intact = self.talk(
            libc::NFT_MSG_GETCHAIN,
            self.nfproto,
            true,
            |_| {},
            |m| {
                let c = RawChain::parse(m)?;
                if c.str(sys::NFTNL_CHAIN_TABLE).as_deref() != Some(&*table) {
                    return Ok(());
                }
                let name = c.str(sys::NFTNL_CHAIN_NAME).unwrap_or_default();
                let hook = c.u32(sys::NFTNL_CHAIN_HOOKNUM).map(|h| {
                    let prio = c.s32(sys::NFTNL_CHAIN_PRIO).unwrap_or(0);
                    (
                        h,
                        prio,
                        c.u32(sys::NFTNL_CHAIN_POLICY)
                            .unwrap_or(libc::NF_ACCEPT as u32),
                    )
                });
                out.push(KernelChain {
                    name,
                    hook,
                    rules: Vec::new(),
                });
                Ok(())
            },
        )?;
        Ok(intact.then_some(out))
    }

    /// Adds the table's rules to their chains, one dump per chain. The kernel resumes a
    /// rule dump by counting rules from the start of what it dumps, so one dump of a
    /// whole table costs the square of its size (seconds at 100,000 rules); per chain, it
    /// costs the square of a chain's length, which sharding keeps small.
    fn rules(&mut self, table: &CString, chains: &mut [KernelChain]) -> Result<bool, NftError> {
        for chain in chains.iter_mut() {
            let req = RawRule::new()?;
            let cname = CString::new(chain.name.as_str()).map_err(|_| {
                NftError::Protocol(format!("chain name {:?} with a NUL byte", chain.name))
            })?;
            unsafe {
                sys::nftnl_rule_set_str(req.ptr(), sys::NFTNL_RULE_TABLE as u16, table.as_ptr());
                sys::nftnl_rule_set_str(req.ptr(), sys::NFTNL_RULE_CHAIN as u16, cname.as_ptr());
                sys::nftnl_rule_set_u32(
                    req.ptr(),
                    sys::NFTNL_RULE_FAMILY as u16,
                    self.nfproto as u32,
                );
            }
            let rules = &mut chain.rules;
            let name = chain.name.as_str();
            let intact = self.talk(
                libc::NFT_MSG_GETRULE,
                self.nfproto,
                true,
                |nlh| unsafe { sys::nftnl_rule_nlmsg_build_payload(nlh, req.ptr()) },
                |m| {
                    // Only handle and comment matter here: read them straight from the
                    // attributes instead of having libnftnl parse every expression.
                    let (handle, comment) = rule_identity(m.bytes).ok_or_else(|| {
                        NftError::Protocol(format!("rule of {name} without a handle"))
                    })?;
                    rules.push(KernelRule { handle, comment });
                    Ok(())
                },
            );
            match intact {
                Ok(true) => {}
                Ok(false) => return Ok(false),
                // The chain went away between the chain dump and this one.
                Err(NftError::Io(e)) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Named sets of the table, with their elements. Anonymous sets (`{ a, b }` literals of
    /// foreign rules) belong to their rule and go with it, so they are left out.
    fn sets(&mut self, table: &CString) -> Read<Vec<KernelSet>> {
        let req = self.set_req(table, None)?;
        let tname = table.to_string_lossy();
        let mut out = Vec::new();
        // Per set in `out`: whether it is an interval set (where a key may legitimately
        // appear twice, as the end of one range and the start of the next).
        let mut interval = Vec::new();
        let intact = self.talk(
            libc::NFT_MSG_GETSET,
            self.nfproto,
            true,
            |nlh| unsafe { sys::nftnl_set_nlmsg_build_payload(nlh, req.ptr()) },
            |m| {
                let s = RawSet::parse(m)?;
                let flags = s.u32(sys::NFTNL_SET_FLAGS).unwrap_or(0);
                if s.str(sys::NFTNL_SET_TABLE).as_deref() != Some(&*tname)
                    || flags & libc::NFT_SET_ANONYMOUS as u32 != 0
                {
                    return Ok(());
                }
                // A verdict map: NFT_SET_MAP with verdicts as data (a map to data of any
                // other type is no verdict map, and not one of secgroupd's).
                let verdict_map = flags & libc::NFT_SET_MAP as u32 != 0
                    && s.u32(sys::NFTNL_SET_DATA_TYPE) == Some(libc::NFT_DATA_VERDICT);
                interval.push(flags & libc::NFT_SET_INTERVAL as u32 != 0);
                out.push(KernelSet {
                    verdict_map,
                    name: s.str(sys::NFTNL_SET_NAME).unwrap_or_default(),
                    key_type: s.u32(sys::NFTNL_SET_KEY_TYPE).unwrap_or(0),
                    key_len: s.u32(sys::NFTNL_SET_KEY_LEN).unwrap_or(0),
                    elems: Vec::new(),
                });
                Ok(())
            },
        )?;
        if !intact {
            return Ok(None);
        }
        for (set, interval) in out.iter_mut().zip(interval) {
            let req = self.set_req(table, Some(&set.name))?;
            let intact = self.talk(
                libc::NFT_MSG_GETSETELEM,
                self.nfproto,
                true,
                |nlh| unsafe { sys::nftnl_set_elems_nlmsg_build_payload(nlh, req.ptr()) },
                |m| {
                    let s = RawSet::new()?;
                    if unsafe { sys::nftnl_set_elems_nlmsg_parse(m.as_ptr(), s.ptr()) } < 0 {
                        return Err(NftError::Protocol("unparsable set element message".into()));
                    }
                    set.elems.extend(s.elems());
                    Ok(())
                },
            )?;
            if !intact || (!interval && repeats_a_key(&set.elems)) {
                if intact {
                    tracing::debug!(set = %set.name, "set dump repeated elements (hash resize): reading again");
                }
                return Ok(None);
            }
        }
        Ok(Some(out))
    }

    fn set_req(&self, table: &CString, name: Option<&str>) -> Result<RawSet, NftError> {
        let s = RawSet::new()?;
        s.set_str(sys::NFTNL_SET_TABLE, table);
        s.set_u32(sys::NFTNL_SET_FAMILY, self.nfproto as u32);
        if let Some(n) = name {
            let n = CString::new(n).map_err(|e| NftError::Protocol(e.to_string()))?;
            s.set_str(sys::NFTNL_SET_NAME, &n);
        }
        Ok(s)
    }
}

/// Whether a hash set's dump returned some key twice. A set element dump that needs more
/// than one message resumes each part by skipping as many elements as were sent, in hash
/// table order; if the kernel resized the hash table in between (it does so after a burst
/// of adds or deletes, from a work queue, without flagging the dump as interrupted), the
/// order changed and the dump repeats some elements and misses as many others. The count
/// is right either way, so a repeated key is the sign that the read must be done again.
fn repeats_a_key(elems: &[(Vec<u8>, Option<String>)]) -> bool {
    let mut keys: Vec<&[u8]> = elems.iter().map(|(k, _)| k.as_slice()).collect();
    keys.sort_unstable();
    keys.windows(2).any(|w| w[0] == w[1])
}

/// `NFTA_RULE_HANDLE` and `NFTA_RULE_USERDATA`.
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_USERDATA: u16 = 7;

/// The handle and comment of a NEWRULE message (header, `nfgenmsg`, then attributes).
fn rule_identity(msg: &[u8]) -> Option<(u64, Option<String>)> {
    let mut attrs = msg.get(16 + 4..)?; // nlmsghdr (16 bytes), nfgenmsg (4)
    let (mut handle, mut comment) = (None, None);
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
        let value = attrs.get(4..len)?;
        match kind {
            NFTA_RULE_HANDLE => {
                handle = Some(u64::from_be_bytes(value.try_into().ok()?));
            }
            NFTA_RULE_USERDATA => comment = udata_comment(value),
            _ => {}
        }
        attrs = attrs.get(((len + 3) & !3).min(attrs.len())..)?;
    }
    Some((handle?, comment))
}

#[cfg(test)]
mod tests {
    use super::repeats_a_key;

    fn elems(keys: &[&[u8]]) -> Vec<(Vec<u8>, Option<String>)> {
        keys.iter().map(|k| (k.to_vec(), None)).collect()
    }

    #[test]
    fn a_repeated_key_marks_a_dump_torn_by_a_resize() {
        assert!(!repeats_a_key(&elems(&[])));
        assert!(!repeats_a_key(&elems(&[&[10, 0, 0, 1], &[10, 0, 0, 2]])));
        // Out of order, as a hash walk returns them.
        assert!(repeats_a_key(&elems(&[
            &[10, 0, 0, 2],
            &[10, 0, 0, 1],
            &[10, 0, 0, 2]
        ])));
        // Same key, different verdict data: still the same element twice.
        let mut e = elems(&[&[1], &[1]]);
        e[1].1 = Some("inst_1".into());
        assert!(repeats_a_key(&e));
    }
}

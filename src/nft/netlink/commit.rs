//! Sending a batch and reading the kernel's verdict on it.
//!
//! What the kernel (6.18) does with a batch, all inside our `sendto` (observed with a trace
//! of every answer message; the integration tests pin the parts we rely on):
//! - it applies the messages in order, and at the end commits only if none failed, else it
//!   rolls the whole batch back;
//! - on commit it first sends the echoes we asked for with `NLM_F_ECHO` on NEWRULE: one
//!   NEWRULE message per added rule (flags `CREATE|APPEND`) carrying the sequence number
//!   of the request that added it and the new rule's handle, coalesced several to a
//!   datagram. A NEWGEN message may come along too (we ignore it);
//! - then the acks, one datagram each, in message order: 0 for batch-begin and for each
//!   message that worked, the errno for each that failed (messages after a failing one are
//!   still processed and acked), and an ack for batch-end only if the batch committed;
//! - a batch whose generation check fails gets a single `ERESTART`, for batch-begin.
//!
//! So the batch committed iff the batch-end ack arrived and no error did, and an echo's
//! sequence number tells which `AddRule` it answers: `Committed::handles` are in batch order
//! however the echoes are grouped (the tests interleave chains and compare with a dump, so
//! no fallback to a dump is needed).

use super::batch::Slot;
use super::objects::{Encoded, describe, encode};
use super::raw::RawRule;
use super::socket::{NlSocket, messages};
use crate::nft::{Committed, NftError, Op};
use nftnl::nftnl_sys as sys;
use std::io;

/// Receive buffer for a batch's answers, all queued before we read the first: a base, an
/// ack per message (~800 bytes of socket memory each), and twice the batch's size for the
/// echoes (an echoed rule is about as large as the request that added it).
const RCV_BASE: usize = 1 << 20;
const RCV_PER_MSG: usize = 1024;

pub(super) fn commit(
    sock: &mut NlSocket,
    seq: &mut u32,
    table: &str,
    ops: &[Op],
    genid: Option<u32>,
) -> Result<Committed, NftError> {
    let enc = encode(*seq, table, ops, genid)?;
    *seq = seq.wrapping_add(enc.batch.messages() as u32);
    let bytes = enc.batch.bytes();

    sock.drain()?;
    sock.reserve(
        bytes.len() + 64 * 1024,
        RCV_BASE + enc.batch.messages() * RCV_PER_MSG + 2 * bytes.len(),
    )?;
    sock.send(bytes)?;

    let mut st = Answers {
        end_acked: false,
        errors: Vec::new(),
        handles: vec![None; enc.rules],
    };
    // Until the outcome is known, wait for each datagram (with the socket's timeout)...
    while !st.end_acked && st.errors.is_empty() {
        if let Some(n) = sock.recv(true).map_err(lost)? {
            st.take(sock.data(n), &enc)?;
        }
    }
    // ...then take what else is queued: more errors of a refused batch, and nothing (but
    // nothing must be left for the next request either).
    while let Some(n) = sock.recv(false).map_err(lost)? {
        st.take(sock.data(n), &enc)?;
    }
    st.outcome(ops)
}

struct Answers {
    end_acked: bool,
    errors: Vec<(Slot, i32)>,
    handles: Vec<Option<u64>>,
}

impl Answers {
    fn take(&mut self, data: &[u8], enc: &Encoded) -> Result<(), NftError> {
        for msg in messages(data) {
            let msg = msg?;
            let Some(slot) = enc.batch.slot(msg.hdr.nlmsg_seq) else {
                continue; // Not about this batch.
            };
            if libc::c_int::from(msg.hdr.nlmsg_type) == libc::NLMSG_ERROR {
                match msg.errno() {
                    Some(0) => self.end_acked |= slot == Slot::End,
                    Some(e) => self.errors.push((slot, e)),
                    None => {}
                }
            } else if msg.nft_type() == Some(libc::NFT_MSG_NEWRULE as u16)
                && let Slot::Op(i) = slot
                && let Some(k) = enc.rule_index[i]
            {
                self.handles[k] = RawRule::parse(&msg)?.u64(sys::NFTNL_RULE_HANDLE);
            }
        }
        Ok(())
    }

    fn outcome(self, ops: &[Op]) -> Result<Committed, NftError> {
        if self.errors.iter().any(|&(_, e)| e == libc::ERESTART) {
            return Err(NftError::GenerationChanged);
        }
        if let Some(&(slot, errno)) = self.errors.iter().min_by_key(|(s, _)| *s) {
            let source = io::Error::from_raw_os_error(errno);
            return Err(match slot {
                Slot::Op(index) => NftError::Rejected {
                    index,
                    op: describe(&ops[index]),
                    source,
                },
                Slot::Begin | Slot::End => NftError::Io(source),
            });
        }
        let handles = self
            .handles
            .into_iter()
            .enumerate()
            .map(|(k, h)| {
                h.ok_or_else(|| {
                    NftError::Protocol(format!(
                        "the batch committed but the kernel did not echo the handle of its \
                         rule #{k}"
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Committed { handles })
    }
}

/// A receive error after the batch went out: we no longer know whether it committed.
fn lost(e: io::Error) -> NftError {
    if e.raw_os_error() == Some(libc::ENOBUFS) {
        return NftError::Protocol(
            "kernel answers to the batch were lost (receive buffer overrun); \
             whether it committed is unknown"
                .into(),
        );
    }
    NftError::Io(e)
}

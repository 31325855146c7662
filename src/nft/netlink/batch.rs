//! A batch as one contiguous buffer: batch-begin, the messages, batch-end.
//!
//! libnftnl's own `nftnl_batch` is a list of pages meant for `sendmsg` with an iovec per
//! page; we want a single buffer for a single `sendto`, and to know which sequence number
//! belongs to which operation so that acks, errors and echoes can be matched to it.

use nftnl::{MsgType, NlMsg, nft_nlmsg_maxsize};
use std::ffi::c_void;

/// What a sequence number of the batch stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Slot {
    Begin,
    /// A message of `ops[i]` (an operation may take several messages, e.g. many elements).
    Op(usize),
    End,
}

pub(super) struct Batch {
    /// `u64` storage: every message starts at a 4-aligned offset of an 8-aligned buffer, so
    /// libmnl may write `nlmsghdr` through a cast pointer. Zero-filled when grown.
    buf: Vec<u64>,
    /// Bytes written so far.
    used: usize,
    first_seq: u32,
    /// `slots[k]` is what sequence number `first_seq + k` stands for.
    slots: Vec<Slot>,
}

impl Batch {
    /// Starts a batch whose messages get sequence numbers from `first_seq` on, with a
    /// batch-begin that makes the kernel refuse it (`ERESTART`) unless the ruleset
    /// generation is still `genid`.
    pub(super) fn new(first_seq: u32, genid: Option<u32>) -> Self {
        let mut b = Batch {
            buf: Vec::new(),
            used: 0,
            first_seq,
            slots: Vec::new(),
        };
        b.push(Slot::Begin, libc::NLM_F_ACK as u16, 0, |buf, seq| {
            // SAFETY: `push` gives room for the largest message; batch-begin plus one u32
            // attribute is far smaller.
            unsafe {
                let nlh = nftnl::nftnl_sys::nftnl_batch_begin(buf.cast(), seq);
                if let Some(g) = genid {
                    mnl::mnl_sys::mnl_attr_put_u32(
                        nlh.cast(),
                        libc::NFNL_BATCH_GENID as u16,
                        g.to_be(),
                    );
                }
            }
        });
        b
    }

    /// Appends batch-end. The kernel (6.10 and later) acks it only if the batch committed.
    pub(super) fn finish(&mut self) {
        self.push(Slot::End, libc::NLM_F_ACK as u16, 0, |buf, seq| {
            // SAFETY: as in `new`.
            unsafe { nftnl::nftnl_sys::nftnl_batch_end(buf.cast(), seq) };
        });
    }

    /// Appends a message written by an nftnl object, with `set` flags added to and `clear`
    /// flags removed from what it wrote. Returns the message's sequence number.
    pub(super) fn push_msg(
        &mut self,
        slot: Slot,
        msg: &impl NlMsg,
        t: MsgType,
        set: u16,
        clear: u16,
    ) -> u32 {
        // SAFETY: `push` gives `write` room for `nft_nlmsg_maxsize()` bytes, which is what
        // the NlMsg contract asks for.
        self.push(slot, set, clear, |buf, seq| unsafe {
            msg.write(buf, seq, t)
        })
    }

    /// Appends one message written by `write(buf, seq)`, which may use up to
    /// `nft_nlmsg_maxsize()` bytes at `buf` and must start a netlink header there.
    pub(super) fn push(
        &mut self,
        slot: Slot,
        set: u16,
        clear: u16,
        write: impl FnOnce(*mut c_void, u32),
    ) -> u32 {
        let max = nft_nlmsg_maxsize() as usize;
        let need = (self.used + max).div_ceil(8);
        if self.buf.len() < need {
            self.buf.resize(need.max(self.buf.len() * 2), 0);
        }
        let seq = self.first_seq.wrapping_add(self.slots.len() as u32);
        // SAFETY: `used + max` bytes are allocated and initialised (see above).
        let at = unsafe { self.buf.as_mut_ptr().cast::<u8>().add(self.used) };
        write(at.cast(), seq);
        let hdr = at.cast::<libc::nlmsghdr>();
        // SAFETY: `at` is 4-aligned (all lengths are NLMSG_ALIGNed) and `write` put a
        // header there.
        let len = unsafe {
            (*hdr).nlmsg_flags = ((*hdr).nlmsg_flags | set) & !clear;
            (*hdr).nlmsg_len as usize
        };
        // Writing more than the room we gave would already have corrupted memory.
        assert!((16..=max).contains(&len), "netlink message of {len} bytes");
        self.used += len.next_multiple_of(4);
        self.slots.push(slot);
        seq
    }

    /// What sequence number `seq` stands for, if it is one of this batch.
    pub(super) fn slot(&self, seq: u32) -> Option<Slot> {
        self.slots
            .get(seq.wrapping_sub(self.first_seq) as usize)
            .copied()
    }

    /// Number of messages, batch-begin and -end included.
    pub(super) fn messages(&self) -> usize {
        self.slots.len()
    }

    pub(super) fn bytes(&self) -> &[u8] {
        // SAFETY: the first `used` bytes of `buf` are initialised.
        unsafe { std::slice::from_raw_parts(self.buf.as_ptr().cast::<u8>(), self.used) }
    }
}

//! The real backend: nftables over netlink with nftnl and mnl.
//!
//! - [`socket`]: the netlink socket; one `sendto` per batch, receiving with a timeout.
//! - [`batch`]: a batch as one contiguous buffer, sequence numbers mapped to operations.
//! - [`objects`]: `Op`s as nf_tables messages, in the table of their family ([`family`]);
//!   [`sets`]: sets, verdict maps and elements;
//! - [`lower`], [`matches`] and [`expr`]: rules as expressions.
//! - [`commit`]: sending a batch, reading acks, errors and echoed rule handles.
//! - [`dump`]: reading one family's table back, with [`request`]s; [`raw`]: owned libnftnl
//!   objects for building requests and parsing answers.
//!
//! Everything here is synchronous and runs on the reconciler's backend thread.

mod batch;
mod commit;
mod dump;
mod expr;
mod family;
mod lower;
mod matches;
mod objects;
mod raw;
mod request;
mod sets;
mod socket;

use super::{Backend, Committed, KernelTable, NftError, Op};
use crate::compile::plan::Family;
use socket::NlSocket;

/// The kernel backend, for the network namespace of the thread that created it (a netlink
/// socket stays in the namespace it was opened in).
pub struct NetlinkBackend {
    sock: NlSocket,
    /// Sequence number of the next message we send. Answers are matched to requests by it.
    seq: u32,
}

// SAFETY: `mnl::Socket` is `!Send` only because it holds a raw pointer to libmnl's
// `struct mnl_socket`, a heap object holding a file descriptor and an address. Nothing in
// it is tied to the thread that created it, and we never share it: the backend is owned by
// one thread at a time (it is not `Sync`), so moving it is sound.
unsafe impl Send for NetlinkBackend {}

impl NetlinkBackend {
    /// Opens a `NETLINK_NETFILTER` socket in the calling thread's network namespace. Needs
    /// `CAP_NET_ADMIN` for anything beyond opening (and for the socket buffer sizes).
    pub fn new() -> std::io::Result<Self> {
        Ok(NetlinkBackend {
            sock: NlSocket::open()?,
            seq: 1,
        })
    }
}

impl Backend for NetlinkBackend {
    fn dump(&mut self, table: &str, family: Family) -> Result<KernelTable, NftError> {
        dump::dump(&mut self.sock, &mut self.seq, table, family)
    }

    fn commit(
        &mut self,
        table: &str,
        ops: &[Op],
        genid: Option<u32>,
    ) -> Result<Committed, NftError> {
        commit::commit(&mut self.sock, &mut self.seq, table, ops, genid)
    }
}

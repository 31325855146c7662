//! One GET request and its answer: the building block of [`super::dump`].

use super::socket::{Msg, NLMSG_HDRLEN, NlSocket, messages};
use crate::nft::NftError;
use nftnl::nftnl_sys as sys;
use std::io;

/// What to ask for: an `NFT_MSG_GET*` type, the family, and whether it is a dump (answered
/// by a series of messages ending with `NLMSG_DONE`) or a single object (answered by the
/// object and an ack, or an error).
pub(super) struct Request {
    pub(super) msg_type: libc::c_int,
    pub(super) family: libc::c_int,
    pub(super) dump: bool,
}

/// Sends `req` with sequence number `seq` and a payload written by `build`, and feeds each
/// nftables message of the answer to `each`. Returns `false` if a dump was interrupted by a
/// concurrent change (`NLM_F_DUMP_INTR`); a kernel error is `NftError::Io` with its errno.
pub(super) fn talk(
    sock: &mut NlSocket,
    seq: u32,
    req: Request,
    build: impl FnOnce(*mut libc::nlmsghdr),
    mut each: impl FnMut(&Msg<'_>) -> Result<(), NftError>,
) -> Result<bool, NftError> {
    let flags = if req.dump {
        libc::NLM_F_DUMP
    } else {
        libc::NLM_F_ACK
    };
    let bytes = message(seq, &req, flags, build);
    // Leftovers of an earlier request (say, the rest of a dump we stopped reading after an
    // error) would otherwise be read as this one's answer.
    sock.drain()?;
    sock.send(&bytes)?;
    let mut intact = true;
    loop {
        let Some(n) = sock.recv(true)? else {
            continue;
        };
        for msg in messages(sock.data(n)) {
            let msg = msg?;
            if msg.hdr.nlmsg_seq != seq {
                continue;
            }
            if msg.hdr.nlmsg_flags & libc::NLM_F_DUMP_INTR as u16 != 0 {
                intact = false;
            }
            match msg.errno() {
                Some(0) => return Ok(intact),
                Some(e) => return Err(NftError::Io(io::Error::from_raw_os_error(e))),
                None if msg.nft_type().is_some() => each(&msg)?,
                None => {}
            }
        }
    }
}

/// The request message, as bytes to send.
fn message(
    seq: u32,
    req: &Request,
    flags: libc::c_int,
    build: impl FnOnce(*mut libc::nlmsghdr),
) -> Vec<u8> {
    let mut buf = vec![0u64; (nftnl::nft_nlmsg_maxsize() as usize).div_ceil(8)];
    // SAFETY: `buf` has room for the largest nftables message and is aligned; a GET
    // request is a header plus a few name attributes.
    unsafe {
        let nlh = sys::nftnl_nlmsg_build_hdr(
            buf.as_mut_ptr().cast(),
            req.msg_type as u16,
            req.family as u16,
            flags as u16,
            seq,
        );
        build(nlh);
        let len = ((*nlh).nlmsg_len as usize).clamp(NLMSG_HDRLEN, buf.len() * 8);
        std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), len).to_vec()
    }
}

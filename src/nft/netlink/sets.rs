//! Sets, verdict maps and their elements as nf_tables messages, built on libnftnl
//! directly (nftnl's `Set` only knows address keys and creates elements with
//! `NLM_F_EXCL`, which would make re-adding an element an error).
//!
//! What goes into a set declaration, compared with what nft 1.0.6 sends for
//! `set live_pairs4 { type mark . ipv4_addr; }` and `map dispatch_out { type ifname :
//! verdict; }` (`nft --debug=mnl`):
//! - key type as [`SetKeyType::nft_type`] says (a concatenation's type is nft's encoding
//!   of its parts), key length as [`key_len`] says;
//! - a verdict map has the `NFT_SET_MAP` flag, data type `NFT_DATA_VERDICT` and data
//!   length 0, as nft sends them (the kernel knows the length of a verdict);
//! - a concatenated key also declares its field lengths (`NFTA_SET_DESC_CONCAT`; libnftnl
//!   takes one byte per field, the length in bytes), so that the kernel knows the layout
//!   of the key and a dump describes it. nft 1.0.6 sends the description only for
//!   interval sets, not for a hash set like ours; and the kernel (6.18, verified) refuses
//!   a description of more than one field without the `NFT_SET_CONCAT` flag, and the flag
//!   without a description (`EINVAL` both). So concatenations carry both. Neither changes
//!   the set's implementation: the kernel picks one by the flags in `NFT_SET_FEATURES`
//!   (interval, map, timeout, object, eval), which `NFT_SET_CONCAT` is not among, and the
//!   pipapo type that uses the field lengths only serves interval sets; so it is the
//!   same rhash as for nft's declaration. nft lists both the same (tested);
//! - userdata as nft writes it ([`userdata`]): nft lists a set's elements in the byte
//!   order it finds there, and without it prints marks byte-swapped and interface names
//!   as `""` (the listing test compares with the same sets written by hand).

use super::batch::{Batch, Slot};
use super::family::nfproto;
use super::lower::{cstring, same_table};
use super::raw::RawSet;
use crate::compile::plan::{ChainName, Elem, SetKeyType, SetName, SetSpec};
use nftnl::nftnl_sys as sys;
use std::ffi::CStr;

/// `NFT_SET_CONCAT` (linux 5.7), not in the libc crate.
pub(super) const NFT_SET_CONCAT: u32 = 0x80;

/// Elements per element message: 1024 IPv6 keys take ~28 KiB, well under the 64 KiB an
/// attribute nest can hold; verdict map elements (16-byte names, a chain name) as much.
const ELEMS_PER_MSG: usize = 1024;

/// The key length of a set of `t`: the sum of the fields, each padded to 4 bytes in a
/// concatenation (each field takes whole 32-bit registers), the bare field otherwise.
///
/// [`SetKeyType::key_len`] pads single fields too, which makes `inet_proto` 4 bytes; but its
/// elements ([`Elem::key_bytes`]) are 1 byte, as nft declares and writes them, and the
/// kernel refuses elements whose length is not the set's. So the backend declares the
/// length the elements have, and a dump reads back 1 for `inet_proto`.
pub(super) fn key_len(t: SetKeyType) -> u32 {
    match t.field_lens() {
        [one] => *one,
        fields => fields.iter().map(|l| l.div_ceil(4) * 4).sum(),
    }
}

/// nft's byte order names (`enum byteorder`), as it stores them in set userdata.
const BYTEORDER_INVALID: u32 = 0;
const BYTEORDER_HOST: u32 = 1;
const BYTEORDER_BIG: u32 = 2;

/// The set userdata nft 1.0.6 writes for the same declaration (`nft --debug=mnl`): TLVs of
/// a type byte, a length byte and the value, each a host-order u32 here. The key's byte
/// order is that of its datatype: addresses big endian, marks and interface names host
/// order, none for single bytes (`inet_proto`) and concatenations (each field has its
/// datatype's). A verdict map adds the data's byte order (none) and "data is no
/// interval" (0). For concatenations nft also writes a `typeof` hint that it only uses
/// for sets declared with `typeof`; secgroupd's are declared by type, and nft lists them
/// the same without it (tested).
pub(super) fn userdata(spec: &SetSpec) -> Vec<u8> {
    let key_order = match spec.key {
        SetKeyType::Ipv4Addr | SetKeyType::Ipv6Addr => BYTEORDER_BIG,
        SetKeyType::Mark | SetKeyType::IfName => BYTEORDER_HOST,
        SetKeyType::InetProto | SetKeyType::MarkIpv4 | SetKeyType::MarkIpv6 => BYTEORDER_INVALID,
    };
    let mut tlvs = vec![(sys::NFTNL_UDATA_SET_KEYBYTEORDER, key_order)];
    if spec.name.is_verdict_map() {
        tlvs.push((sys::NFTNL_UDATA_SET_DATABYTEORDER, BYTEORDER_INVALID));
        tlvs.push((sys::NFTNL_UDATA_SET_DATA_INTERVAL, 0));
    }
    tlvs.iter()
        .flat_map(|&(t, v)| [&[t as u8, 4][..], &v.to_ne_bytes()[..]].concat())
        .collect()
}

const F_ACK: u16 = libc::NLM_F_ACK as u16;
const F_CREATE: u16 = libc::NLM_F_CREATE as u16;

/// A set object naming a set of `family`'s table, the start of every set message.
pub(super) fn named(
    table: &CStr,
    family: crate::compile::plan::Family,
    name: &str,
) -> Result<RawSet, String> {
    let s = RawSet::new().map_err(|e| e.to_string())?;
    s.set_str(sys::NFTNL_SET_TABLE, table);
    s.set_str(sys::NFTNL_SET_NAME, &cstring(name.to_owned())?);
    s.set_u32(sys::NFTNL_SET_FAMILY, u32::from(nfproto(family)));
    Ok(s)
}

/// NEWSET of `spec` with batch-local id `id`. No `NLM_F_EXCL`: re-adding an identical set
/// is a no-op (a different key type is `EEXIST`).
pub(super) fn add(
    b: &mut Batch,
    slot: Slot,
    table: &CStr,
    spec: &SetSpec,
    id: u32,
) -> Result<(), String> {
    let family = spec.name.family();
    let s = named(table, family, &spec.name.to_string())?;
    s.set_u32(sys::NFTNL_SET_ID, id);
    s.set_u32(sys::NFTNL_SET_KEY_TYPE, spec.key.nft_type());
    s.set_u32(sys::NFTNL_SET_KEY_LEN, key_len(spec.key));
    let mut flags = 0;
    let fields = spec.key.field_lens();
    if fields.len() > 1 {
        let lens = fields
            .iter()
            .map(|l| u8::try_from(*l).map_err(|_| format!("field of {l} bytes")))
            .collect::<Result<Vec<u8>, _>>()?;
        s.set_data(sys::NFTNL_SET_DESC_CONCAT, &lens)
            .map_err(|e| e.to_string())?;
        flags |= NFT_SET_CONCAT;
    }
    if spec.name.is_verdict_map() {
        flags |= libc::NFT_SET_MAP as u32;
        s.set_u32(sys::NFTNL_SET_DATA_TYPE, libc::NFT_DATA_VERDICT);
        s.set_u32(sys::NFTNL_SET_DATA_LEN, 0);
    }
    if flags != 0 {
        s.set_u32(sys::NFTNL_SET_FLAGS, flags);
    }
    s.set_data(sys::NFTNL_SET_USERDATA, &userdata(spec))
        .map_err(|e| e.to_string())?;
    push(b, slot, family, &s, libc::NFT_MSG_NEWSET, F_CREATE);
    Ok(())
}

/// DELSET of a set (or map) of `family`'s table.
pub(super) fn del(
    b: &mut Batch,
    slot: Slot,
    table: &CStr,
    family: crate::compile::plan::Family,
    name: &str,
) -> Result<(), String> {
    let s = named(table, family, name)?;
    push(b, slot, family, &s, libc::NFT_MSG_DELSET, 0);
    Ok(())
}

/// NEWSETELEM (with `add`) or DELSETELEM messages, [`ELEMS_PER_MSG`] elements each; none
/// for an empty list. Adding uses CREATE without EXCL, so adding an element that is there
/// already is not an error (unless its jump differs: `EEXIST`, the kernel does not
/// change an element's data in place). A verdict map's elements must all carry their
/// jump when added, a plain set's none; deleting needs only the keys.
pub(super) fn elems(
    b: &mut Batch,
    slot: Slot,
    table: &CStr,
    set: SetName,
    elems: &[(Elem, Option<ChainName>)],
    add: bool,
) -> Result<(), String> {
    let family = set.family();
    let name = set.to_string();
    let kind = set.key_type();
    for chunk in elems.chunks(ELEMS_PER_MSG) {
        let s = named(table, family, &name)?;
        for (e, to) in chunk {
            let key = e.key_bytes();
            // The round trip fails for an element of another type, even one of the same
            // length (an address in a set of marks).
            if Elem::from_key_bytes(kind, &key) != Some(*e) {
                return Err(format!("{e} is not a {} key of {set}", kind.nft_name()));
            }
            let jump = match (add, set.is_verdict_map(), to) {
                (true, true, Some(c)) => {
                    same_table(*c, family)?;
                    Some(cstring(c.to_string())?)
                }
                (true, true, None) => {
                    return Err(format!("element {e} of map {set} without a jump"));
                }
                (true, false, Some(c)) => {
                    return Err(format!("{set} is a set, not a map: element {e} : jump {c}"));
                }
                _ => None,
            };
            s.add_elem(&key, jump.as_deref())
                .map_err(|e| e.to_string())?;
        }
        let (t, f) = match add {
            true => (libc::NFT_MSG_NEWSETELEM, F_CREATE),
            false => (libc::NFT_MSG_DELSETELEM, 0),
        };
        push(b, slot, family, &s, t, f);
    }
    Ok(())
}

fn push(
    b: &mut Batch,
    slot: Slot,
    family: crate::compile::plan::Family,
    s: &RawSet,
    msg_type: libc::c_int,
    flags: u16,
) {
    let element_msg = msg_type == libc::NFT_MSG_NEWSETELEM || msg_type == libc::NFT_MSG_DELSETELEM;
    b.push(slot, 0, 0, |buf, seq| {
        // SAFETY: `buf` has room for the largest nftables message; the set is live and
        // its element list was sized to fit (ELEMS_PER_MSG).
        unsafe {
            let nlh = sys::nftnl_nlmsg_build_hdr(
                buf.cast(),
                msg_type as u16,
                nfproto(family),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_lengths_are_those_of_the_elements() {
        let all = [
            (SetKeyType::Ipv4Addr, Elem::V4("10.0.0.1".parse().unwrap())),
            (SetKeyType::Ipv6Addr, Elem::V6("fd00::1".parse().unwrap())),
            (SetKeyType::InetProto, Elem::Proto(6)),
            (SetKeyType::Mark, Elem::Mark(9)),
            (
                SetKeyType::IfName,
                Elem::IfName(*b"tap1\0\0\0\0\0\0\0\0\0\0\0\0"),
            ),
            (
                SetKeyType::MarkIpv4,
                Elem::MarkV4(9, "10.0.0.1".parse().unwrap()),
            ),
            (
                SetKeyType::MarkIpv6,
                Elem::MarkV6(9, "fd00::1".parse().unwrap()),
            ),
        ];
        for (t, e) in all {
            assert_eq!(key_len(t) as usize, e.key_bytes().len(), "{e}");
        }
        assert_eq!(key_len(SetKeyType::MarkIpv6), 20);
    }

    /// The bytes `nft --debug=mnl` shows nft 1.0.6 sending (on a little-endian host).
    #[cfg(target_endian = "little")]
    #[test]
    fn userdata_is_nfts() {
        let spec = |name: SetName| SetSpec {
            name,
            key: name.key_type(),
        };
        let ip = crate::compile::plan::IpFamily::V4;
        assert_eq!(userdata(&spec(SetName::Members(ip, 1))), [0, 4, 2, 0, 0, 0]);
        assert_eq!(userdata(&spec(SetName::PairProtos)), [0, 4, 0, 0, 0, 0]);
        assert_eq!(userdata(&spec(SetName::Live)), [0, 4, 1, 0, 0, 0]);
        assert_eq!(userdata(&spec(SetName::LivePairs(ip))), [0, 4, 0, 0, 0, 0]);
        assert_eq!(
            userdata(&spec(SetName::DispatchOut)),
            [0, 4, 1, 0, 0, 0, 1, 4, 0, 0, 0, 0, 6, 4, 0, 0, 0, 0]
        );
    }
}

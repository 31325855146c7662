//! The kernel's numbers for secgroupd's two table families.

use crate::compile::plan::Family;
use nftnl::ProtoFamily;

/// `NFPROTO_INET` or `NFPROTO_BRIDGE`: the family of the table a message is about, in the
/// nfgenmsg header of every message (and the family a dump is filtered by).
pub(super) fn nfproto(f: Family) -> u16 {
    proto_family(f) as u16
}

/// The same, as nftnl's tables take it.
pub(super) fn proto_family(f: Family) -> ProtoFamily {
    match f {
        Family::Inet => ProtoFamily::Inet,
        Family::Bridge => ProtoFamily::Bridge,
    }
}

//! Owned libnftnl objects (table, chain, rule, set, generation) for what nftnl's safe types
//! do not cover: building set, element and GET messages, and parsing what the kernel sends.
//! Each wrapper frees its object on drop; allocation failure is an error, not an abort.

use super::socket::Msg;
use crate::nft::NftError;
use nftnl::nftnl_sys as sys;
use std::ffi::{CStr, c_void};
use std::io;
use std::ptr::NonNull;

macro_rules! raw_object {
    ($name:ident, $ty:ident, $alloc:ident, $free:ident, $parse:ident) => {
        pub(super) struct $name(NonNull<sys::$ty>);

        impl $name {
            pub(super) fn new() -> io::Result<Self> {
                // SAFETY: plain allocation.
                NonNull::new(unsafe { sys::$alloc() })
                    .map($name)
                    .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))
            }

            /// Parses a message the kernel sent (or echoed) about this kind of object.
            pub(super) fn parse(msg: &Msg<'_>) -> Result<Self, NftError> {
                let o = Self::new()?;
                // SAFETY: `msg` is a complete, aligned netlink message.
                if unsafe { sys::$parse(msg.as_ptr(), o.ptr()) } < 0 {
                    return Err(NftError::Protocol(format!(
                        "libnftnl could not parse a {} message: {}",
                        stringify!($ty),
                        io::Error::last_os_error()
                    )));
                }
                Ok(o)
            }

            pub(super) fn ptr(&self) -> *mut sys::$ty {
                self.0.as_ptr()
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                // SAFETY: we own the object.
                unsafe { sys::$free(self.0.as_ptr()) }
            }
        }
    };
}

raw_object!(
    RawTable,
    nftnl_table,
    nftnl_table_alloc,
    nftnl_table_free,
    nftnl_table_nlmsg_parse
);
raw_object!(
    RawChain,
    nftnl_chain,
    nftnl_chain_alloc,
    nftnl_chain_free,
    nftnl_chain_nlmsg_parse
);
raw_object!(
    RawRule,
    nftnl_rule,
    nftnl_rule_alloc,
    nftnl_rule_free,
    nftnl_rule_nlmsg_parse
);
raw_object!(
    RawSet,
    nftnl_set,
    nftnl_set_alloc,
    nftnl_set_free,
    nftnl_set_nlmsg_parse
);
raw_object!(
    RawGen,
    nftnl_gen,
    nftnl_gen_alloc,
    nftnl_gen_free,
    nftnl_gen_nlmsg_parse
);

/// Copies a libnftnl string (NULL when the attribute is unset).
fn owned(p: *const libc::c_char) -> Option<String> {
    // SAFETY: libnftnl returns NULL or a NUL-terminated string owned by the object.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

// SAFETY (for all accessors below): the object is live and the attribute ids are the ones
// of its kind; getters of unset attributes are guarded by `*_is_set`.
impl RawChain {
    pub(super) fn str(&self, attr: u32) -> Option<String> {
        owned(unsafe { sys::nftnl_chain_get_str(self.ptr(), attr as u16) })
    }
    pub(super) fn u32(&self, attr: u32) -> Option<u32> {
        let p = self.ptr();
        unsafe { sys::nftnl_chain_is_set(p, attr as u16) }
            .then(|| unsafe { sys::nftnl_chain_get_u32(p, attr as u16) })
    }
    pub(super) fn s32(&self, attr: u32) -> Option<i32> {
        self.u32(attr).map(|v| v as i32)
    }
}

impl RawRule {
    pub(super) fn u64(&self, attr: u32) -> Option<u64> {
        let p = self.ptr();
        unsafe { sys::nftnl_rule_is_set(p, attr as u16) }
            .then(|| unsafe { sys::nftnl_rule_get_u64(p, attr as u16) })
    }
}

impl RawSet {
    pub(super) fn str(&self, attr: u32) -> Option<String> {
        owned(unsafe { sys::nftnl_set_get_str(self.ptr(), attr as u16) })
    }
    pub(super) fn u32(&self, attr: u32) -> Option<u32> {
        let p = self.ptr();
        unsafe { sys::nftnl_set_is_set(p, attr as u16) }
            .then(|| unsafe { sys::nftnl_set_get_u32(p, attr as u16) })
    }
    pub(super) fn set_str(&self, attr: u32, v: &CStr) {
        unsafe { sys::nftnl_set_set_str(self.ptr(), attr as u16, v.as_ptr()) };
    }
    pub(super) fn set_u32(&self, attr: u32, v: u32) {
        unsafe { sys::nftnl_set_set_u32(self.ptr(), attr as u16, v) };
    }

    pub(super) fn set_data(&self, attr: u32, v: &[u8]) -> io::Result<()> {
        let r = unsafe {
            sys::nftnl_set_set_data(
                self.ptr(),
                attr as u16,
                v.as_ptr().cast::<c_void>(),
                v.len() as u32,
            )
        };
        if r < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("libnftnl refused set attribute {attr} ({} bytes)", v.len()),
            ));
        }
        Ok(())
    }

    /// Adds an element with this key to the set's element list (for element messages);
    /// with `jump`, a verdict map element `key : jump CHAIN`.
    pub(super) fn add_elem(&self, key: &[u8], jump: Option<&CStr>) -> io::Result<()> {
        let e = unsafe { sys::nftnl_set_elem_alloc() };
        if e.is_null() {
            return Err(io::ErrorKind::OutOfMemory.into());
        }
        unsafe {
            sys::nftnl_set_elem_set(
                e,
                sys::NFTNL_SET_ELEM_KEY as u16,
                key.as_ptr().cast::<c_void>(),
                key.len() as u32,
            );
            if let Some(chain) = jump {
                // Becomes NFTA_SET_ELEM_DATA { NFTA_DATA_VERDICT { code, chain } }.
                sys::nftnl_set_elem_set_u32(
                    e,
                    sys::NFTNL_SET_ELEM_VERDICT as u16,
                    libc::NFT_JUMP as u32,
                );
                sys::nftnl_set_elem_set_str(e, sys::NFTNL_SET_ELEM_CHAIN as u16, chain.as_ptr());
            }
            // The set takes ownership of the element.
            sys::nftnl_set_elem_add(self.ptr(), e);
        }
        Ok(())
    }

    /// The elements parsed into this set: each key, with the chain for a map element
    /// whose verdict is a jump.
    pub(super) fn elems(&self) -> Vec<(Vec<u8>, Option<String>)> {
        type Elems = Vec<(Vec<u8>, Option<String>)>;
        extern "C" fn collect(e: *mut sys::nftnl_set_elem, data: *mut c_void) -> libc::c_int {
            let mut len = 0u32;
            // SAFETY: `e` is an element of the set being iterated, `data` the Vec below;
            // getters of unset attributes are guarded by `is_set`.
            unsafe {
                let k = sys::nftnl_set_elem_get(e, sys::NFTNL_SET_ELEM_KEY as u16, &mut len);
                if k.is_null() {
                    return 0;
                }
                let key = std::slice::from_raw_parts(k.cast::<u8>(), len as usize).to_vec();
                let is_set = |a: u32| sys::nftnl_set_elem_is_set(e, a as u16);
                let jump = is_set(sys::NFTNL_SET_ELEM_VERDICT)
                    && sys::nftnl_set_elem_get_u32(e, sys::NFTNL_SET_ELEM_VERDICT as u16)
                        == libc::NFT_JUMP as u32;
                let chain = (jump && is_set(sys::NFTNL_SET_ELEM_CHAIN))
                    .then(|| {
                        owned(sys::nftnl_set_elem_get_str(
                            e,
                            sys::NFTNL_SET_ELEM_CHAIN as u16,
                        ))
                    })
                    .flatten();
                (*data.cast::<Elems>()).push((key, chain));
            }
            0
        }
        let mut out: Elems = Vec::new();
        unsafe { sys::nftnl_set_elem_foreach(self.ptr(), Some(collect), (&raw mut out).cast()) };
        out
    }
}

impl RawGen {
    pub(super) fn id(&self) -> Option<u32> {
        let p = self.ptr();
        unsafe { sys::nftnl_gen_is_set(p, sys::NFTNL_GEN_ID as u16) }
            .then(|| unsafe { sys::nftnl_gen_get_u32(p, sys::NFTNL_GEN_ID as u16) })
    }
}

/// The comment in a rule's userdata: nft's TLV list (type u8, length u8, value), where type
/// 0 is a NUL-terminated comment. Parsed here rather than with `nftnl_udata_parse` because
/// a dozen lines of bounds-checked Rust are easier to trust than a callback across FFI.
pub(super) fn udata_comment(mut b: &[u8]) -> Option<String> {
    while b.len() >= 2 {
        let (t, len) = (b[0], b[1] as usize);
        let v = b.get(2..2 + len)?;
        if t == sys::NFTNL_UDATA_RULE_COMMENT as u8 {
            let v = v.strip_suffix(&[0]).unwrap_or(v);
            return Some(String::from_utf8_lossy(v).into_owned());
        }
        b = &b[2 + len..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::udata_comment;

    #[test]
    fn comment_tlv() {
        assert_eq!(udata_comment(b"\x00\x02x\x00").as_deref(), Some("x"));
        assert_eq!(
            udata_comment(b"\x01\x01z\x00\x03ab\x00").as_deref(),
            Some("ab")
        );
        assert_eq!(udata_comment(b"\x01\x05z"), None);
        assert_eq!(udata_comment(b""), None);
    }
}

//! The handful of nftables expressions secgroupd's rules are made of, as one type that
//! nftnl's `Rule::add_expr` takes.
//!
//! nftnl has wrappers for most of these, but its lookup needs an nftnl `Set` object and its
//! payload offsets are named in bits while taking bytes; one small enum written against
//! libnftnl directly says exactly what goes to the kernel. Every expression that loads or
//! reads data uses register 1, as nft does for single-field matches.

use nftnl::Rule;
use nftnl::expr::Expression;
use nftnl::nftnl_sys as sys;
use std::ffi::{CString, c_void};
use std::ptr::NonNull;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Expr {
    /// `meta load KEY => reg 1`.
    Meta(u32),
    /// `ct load KEY => reg 1`.
    Ct(u32),
    /// `payload load LEN @ BASE + OFFSET => reg 1` (offset and length in bytes).
    Payload {
        base: u32,
        offset: u32,
        len: u32,
    },
    /// `cmp OP reg 1 DATA`.
    Cmp {
        op: u32,
        data: Vec<u8>,
    },
    /// `bitwise reg 1 = (reg 1 & MASK) ^ 0`.
    And(Vec<u8>),
    /// `lookup reg 1 set NAME` (with the batch-local id when the set is created in the same
    /// batch; the kernel finds it by name either way).
    Lookup {
        set: CString,
        id: Option<u32>,
    },
    Counter,
    /// `immediate reg 0 VERDICT [CHAIN]`.
    Verdict {
        code: i32,
        chain: Option<CString>,
    },
}

impl Expression for Expr {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        let name = match self {
            Expr::Meta(_) => c"meta",
            Expr::Ct(_) => c"ct",
            Expr::Payload { .. } => c"payload",
            Expr::Cmp { .. } => c"cmp",
            Expr::And(_) => c"bitwise",
            Expr::Lookup { .. } => c"lookup",
            Expr::Counter => c"counter",
            Expr::Verdict { .. } => c"immediate",
        };
        // SAFETY: a valid expression name.
        let Some(e) = NonNull::new(unsafe { sys::nftnl_expr_alloc(name.as_ptr()) }) else {
            // The trait cannot report failure; an allocation of a few bytes failing is what
            // std also answers with an abort.
            std::process::abort();
        };
        let p = e.as_ptr();
        let reg1 = libc::NFT_REG_1 as u32;
        let u32_ = |attr: u32, v: u32| unsafe { sys::nftnl_expr_set_u32(p, attr as u16, v) };
        let data = |attr: u32, d: &[u8]| unsafe {
            sys::nftnl_expr_set(p, attr as u16, d.as_ptr().cast::<c_void>(), d.len() as u32);
        };
        // SAFETY (for the closures above and the calls below): `p` is a live expression of
        // the kind whose attributes are set; libnftnl copies the data.
        match self {
            Expr::Meta(key) => {
                u32_(sys::NFTNL_EXPR_META_KEY, *key);
                u32_(sys::NFTNL_EXPR_META_DREG, reg1);
            }
            Expr::Ct(key) => {
                u32_(sys::NFTNL_EXPR_CT_KEY, *key);
                u32_(sys::NFTNL_EXPR_CT_DREG, reg1);
            }
            Expr::Payload { base, offset, len } => {
                u32_(sys::NFTNL_EXPR_PAYLOAD_BASE, *base);
                u32_(sys::NFTNL_EXPR_PAYLOAD_OFFSET, *offset);
                u32_(sys::NFTNL_EXPR_PAYLOAD_LEN, *len);
                u32_(sys::NFTNL_EXPR_PAYLOAD_DREG, reg1);
            }
            Expr::Cmp { op, data: d } => {
                u32_(sys::NFTNL_EXPR_CMP_SREG, reg1);
                u32_(sys::NFTNL_EXPR_CMP_OP, *op);
                data(sys::NFTNL_EXPR_CMP_DATA, d);
            }
            Expr::And(mask) => {
                u32_(sys::NFTNL_EXPR_BITWISE_SREG, reg1);
                u32_(sys::NFTNL_EXPR_BITWISE_DREG, reg1);
                u32_(sys::NFTNL_EXPR_BITWISE_LEN, mask.len() as u32);
                data(sys::NFTNL_EXPR_BITWISE_MASK, mask);
                data(sys::NFTNL_EXPR_BITWISE_XOR, &vec![0; mask.len()]);
            }
            Expr::Lookup { set, id } => {
                u32_(sys::NFTNL_EXPR_LOOKUP_SREG, reg1);
                // SAFETY: as above; the string is copied.
                unsafe {
                    sys::nftnl_expr_set_str(p, sys::NFTNL_EXPR_LOOKUP_SET as u16, set.as_ptr())
                };
                if let Some(id) = id {
                    u32_(sys::NFTNL_EXPR_LOOKUP_SET_ID, *id);
                }
            }
            Expr::Counter => {}
            Expr::Verdict { code, chain } => {
                u32_(sys::NFTNL_EXPR_IMM_DREG, libc::NFT_REG_VERDICT as u32);
                u32_(sys::NFTNL_EXPR_IMM_VERDICT, *code as u32);
                if let Some(c) = chain {
                    // SAFETY: as above.
                    unsafe {
                        sys::nftnl_expr_set_str(p, sys::NFTNL_EXPR_IMM_CHAIN as u16, c.as_ptr())
                    };
                }
            }
        }
        e
    }
}

//! The handful of nftables expressions secgroupd's rules are made of, as one type that
//! nftnl's `Rule::add_expr` takes.
//!
//! nftnl has wrappers for most of these, but its lookup needs an nftnl `Set` object and its
//! payload offsets are named in bits while taking bytes; one small enum written against
//! libnftnl directly says exactly what goes to the kernel.
//!
//! Registers: every expression works on register 1 ([`REG1`]), as nft does for
//! single-field matches, except the later fields of a concatenated key, which nft loads
//! into the 32-bit registers that follow the first field ([`concat_reg`]).

use nftnl::Rule;
use nftnl::expr::Expression;
use nftnl::nftnl_sys as sys;
use std::ffi::{CString, c_void};
use std::ptr::NonNull;

/// Register 1 (16 bytes). Its first 4 bytes are the 32-bit register `NFT_REG32_00`: the
/// kernel stores both in the same place, so a concatenation that starts at `NFT_REG32_00`
/// starts at register 1.
pub(super) const REG1: u32 = libc::NFT_REG_1 as u32;

/// The register of a field that starts `offset` 32-bit words into a concatenation
/// starting at `NFT_REG32_00`, numbered as nft sends it (`netlink_put_register`): the
/// 16-byte register starting at the same place when there is one (offset 0 is
/// [`REG1`], offset 4 is register 2), else the 32-bit register (`NFT_REG32_01` = 9 for
/// offset 1). The kernel reads both numberings the same way, and always dumps the first.
pub(super) fn concat_reg(offset: u32) -> u32 {
    if offset.is_multiple_of(4) {
        REG1 + offset / 4
    } else {
        libc::NFT_REG32_00 as u32 + offset
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Expr {
    /// `meta load KEY => reg 1`.
    Meta(u32),
    /// `meta set KEY with reg 1`.
    MetaSet(u32),
    /// `ct load KEY => reg 1`.
    Ct(u32),
    /// `ct set KEY with reg 1`.
    CtSet(u32),
    /// `payload load LEN @ BASE + OFFSET => reg DREG` (offset and length in bytes).
    Payload {
        base: u32,
        offset: u32,
        len: u32,
        dreg: u32,
    },
    /// `cmp OP reg 1 DATA`.
    Cmp {
        op: u32,
        data: Vec<u8>,
    },
    /// `bitwise reg 1 = (reg 1 & MASK) ^ XOR` (as long as the mask).
    Bitwise {
        mask: Vec<u8>,
        xor: Vec<u8>,
    },
    /// `lookup reg 1 set NAME`, with the key starting at register 1 (for a concatenation:
    /// at `NFT_REG32_00`, the same place). With `verdict`, a verdict map lookup whose
    /// result goes to the verdict register (`dreg 0`). `id` is the batch-local id when the
    /// set is created in the same batch; the kernel finds it by name either way.
    Lookup {
        set: CString,
        id: Option<u32>,
        verdict: bool,
    },
    Counter,
    /// `immediate reg 0 VERDICT [CHAIN]`.
    Verdict {
        code: i32,
        chain: Option<CString>,
    },
}

impl Expr {
    /// `bitwise reg 1 = (reg 1 & MASK) ^ 0`.
    pub(super) fn and(mask: Vec<u8>) -> Expr {
        let xor = vec![0; mask.len()];
        Expr::Bitwise { mask, xor }
    }
}

impl Expression for Expr {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        let name = match self {
            Expr::Meta(_) | Expr::MetaSet(_) => c"meta",
            Expr::Ct(_) | Expr::CtSet(_) => c"ct",
            Expr::Payload { .. } => c"payload",
            Expr::Cmp { .. } => c"cmp",
            Expr::Bitwise { .. } => c"bitwise",
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
        let u32_ = |attr: u32, v: u32| unsafe { sys::nftnl_expr_set_u32(p, attr as u16, v) };
        let data = |attr: u32, d: &[u8]| unsafe {
            sys::nftnl_expr_set(p, attr as u16, d.as_ptr().cast::<c_void>(), d.len() as u32);
        };
        let str_ = |attr: u32, s: &CString| unsafe {
            sys::nftnl_expr_set_str(p, attr as u16, s.as_ptr());
        };
        // SAFETY (for the closures above): `p` is a live expression of the kind whose
        // attributes are set; libnftnl copies data and strings.
        match self {
            Expr::Meta(key) => {
                u32_(sys::NFTNL_EXPR_META_KEY, *key);
                u32_(sys::NFTNL_EXPR_META_DREG, REG1);
            }
            Expr::MetaSet(key) => {
                u32_(sys::NFTNL_EXPR_META_KEY, *key);
                u32_(sys::NFTNL_EXPR_META_SREG, REG1);
            }
            Expr::Ct(key) => {
                u32_(sys::NFTNL_EXPR_CT_KEY, *key);
                u32_(sys::NFTNL_EXPR_CT_DREG, REG1);
            }
            Expr::CtSet(key) => {
                u32_(sys::NFTNL_EXPR_CT_KEY, *key);
                u32_(sys::NFTNL_EXPR_CT_SREG, REG1);
            }
            Expr::Payload {
                base,
                offset,
                len,
                dreg,
            } => {
                u32_(sys::NFTNL_EXPR_PAYLOAD_BASE, *base);
                u32_(sys::NFTNL_EXPR_PAYLOAD_OFFSET, *offset);
                u32_(sys::NFTNL_EXPR_PAYLOAD_LEN, *len);
                u32_(sys::NFTNL_EXPR_PAYLOAD_DREG, *dreg);
            }
            Expr::Cmp { op, data: d } => {
                u32_(sys::NFTNL_EXPR_CMP_SREG, REG1);
                u32_(sys::NFTNL_EXPR_CMP_OP, *op);
                data(sys::NFTNL_EXPR_CMP_DATA, d);
            }
            Expr::Bitwise { mask, xor } => {
                u32_(sys::NFTNL_EXPR_BITWISE_SREG, REG1);
                u32_(sys::NFTNL_EXPR_BITWISE_DREG, REG1);
                u32_(sys::NFTNL_EXPR_BITWISE_LEN, mask.len() as u32);
                data(sys::NFTNL_EXPR_BITWISE_MASK, mask);
                data(sys::NFTNL_EXPR_BITWISE_XOR, xor);
            }
            Expr::Lookup { set, id, verdict } => {
                u32_(sys::NFTNL_EXPR_LOOKUP_SREG, REG1);
                str_(sys::NFTNL_EXPR_LOOKUP_SET, set);
                if let Some(id) = id {
                    u32_(sys::NFTNL_EXPR_LOOKUP_SET_ID, *id);
                }
                // The attribute's presence is what makes it a map lookup: set it even
                // though the verdict register is 0.
                if *verdict {
                    u32_(sys::NFTNL_EXPR_LOOKUP_DREG, libc::NFT_REG_VERDICT as u32);
                }
            }
            Expr::Counter => {}
            Expr::Verdict { code, chain } => {
                u32_(sys::NFTNL_EXPR_IMM_DREG, libc::NFT_REG_VERDICT as u32);
                u32_(sys::NFTNL_EXPR_IMM_VERDICT, *code as u32);
                if let Some(c) = chain {
                    str_(sys::NFTNL_EXPR_IMM_CHAIN, c);
                }
            }
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_are_numbered_as_nft_sends_them() {
        assert_eq!(concat_reg(0), libc::NFT_REG_1 as u32);
        assert_eq!(concat_reg(1), libc::NFT_REG32_01 as u32);
        assert_eq!(concat_reg(3), libc::NFT_REG32_03 as u32);
        assert_eq!(concat_reg(4), libc::NFT_REG_2 as u32);
    }
}

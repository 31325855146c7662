//! Lowering of a rule (matches, counter, statements, verdict) to kernel expressions.
//!
//! The sequences are the ones nft 1.0.6 itself generates for the same rule (checked with
//! `nft --debug=netlink`), so that `nft list` shows secgroupd's rules in their idiomatic
//! form (`ip saddr 10.0.0.0/8 tcp dport 80-90 ...`). nft prints an explicit `meta
//! nfproto`/`meta protocol`/`meta l4proto` match that only serves as the dependency of
//! the next header match as part of that match, which is why it does not show in
//! listings. The matches themselves are in [`super::matches`].
//!
//! Everything the kernel would refuse with a bare `EINVAL` (a set of the wrong key type
//! or of the other table, a map where a set belongs, a mark value outside its mask) is
//! refused here with a message that says what is wrong, before anything is sent.

use super::expr::Expr;
use super::matches::lower_match;
use crate::compile::plan::{
    ChainName, Family, RuleSpec, SetKeyType, SetName, Stmt, Verdict, VmapKey,
};
use std::ffi::CString;

/// What the lowering of one rule needs to know besides the rule.
pub(super) struct Cx<'a> {
    /// The family of the rule's table: `NfProto` and every set it names depend on it.
    pub(super) family: Family,
    set_id: &'a dyn Fn(SetName) -> Option<u32>,
}

impl Cx<'_> {
    /// A lookup in `set`, which must be of this rule's table, of one of the key types
    /// `keys`, and a verdict map exactly when `verdict` (the kernel refuses a map lookup
    /// without a destination register, and a set lookup with one).
    pub(super) fn lookup(
        &self,
        set: SetName,
        keys: &[SetKeyType],
        verdict: bool,
    ) -> Result<Expr, String> {
        if set.family() != self.family {
            return Err(format!(
                "set {set} belongs to the {} table, the rule to the {} table",
                set.family().as_str(),
                self.family.as_str()
            ));
        }
        if !keys.contains(&set.key_type()) {
            return Err(format!(
                "set {set} has keys of type {}, the match needs {}",
                set.key_type().nft_name(),
                keys.iter()
                    .map(|k| k.nft_name())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ));
        }
        if set.is_verdict_map() != verdict {
            return Err(match verdict {
                true => format!("{set} is a set, not a verdict map"),
                false => format!("{set} is a verdict map, not a set"),
            });
        }
        Ok(Expr::Lookup {
            set: cstring(set.to_string())?,
            id: (self.set_id)(set),
            verdict,
        })
    }
}

/// The expressions of `rule`, in nft's order: matches, counter, statements, verdict.
/// `set_id` gives the batch-local id of a set created in the same batch. Errors describe
/// a rule the kernel could not express.
pub(super) fn lower(
    rule: &RuleSpec,
    set_id: impl Fn(SetName) -> Option<u32>,
) -> Result<Vec<Expr>, String> {
    let cx = Cx {
        family: rule.chain.family(),
        set_id: &set_id,
    };
    let mut out = Vec::with_capacity(rule.matches.len() * 3 + rule.stmts.len() * 3 + 3);
    for m in &rule.matches {
        lower_match(m, &cx, &mut out)?;
    }
    if rule.counter {
        out.push(Expr::Counter);
    }
    for s in &rule.stmts {
        lower_stmt(s, &mut out)?;
    }
    lower_verdict(rule.verdict, &cx, &mut out)?;
    Ok(out)
}

/// `ct mark set ct mark and ~MASK or VALUE` (likewise `meta mark`): load, `bitwise` with
/// the complement of the mask and the value as xor, store. Bits outside the mask are kept.
fn lower_stmt(s: &Stmt, out: &mut Vec<Expr>) -> Result<(), String> {
    let (load, store, mask, value) = match *s {
        Stmt::SetCtMark { mask, value } => (
            Expr::Ct(libc::NFT_CT_MARK as u32),
            Expr::CtSet(libc::NFT_CT_MARK as u32),
            mask,
            value,
        ),
        Stmt::SetMetaMark { mask, value } => (
            Expr::Meta(libc::NFT_META_MARK as u32),
            Expr::MetaSet(libc::NFT_META_MARK as u32),
            mask,
            value,
        ),
    };
    // An xor bit outside the mask would flip a bit the statement must keep.
    if value & !mask != 0 {
        return Err(format!(
            "mark value {value:#010x} outside its mask {mask:#010x}"
        ));
    }
    out.push(load);
    // Marks are host-order u32 in the registers.
    out.push(Expr::Bitwise {
        mask: (!mask).to_ne_bytes().to_vec(),
        xor: value.to_ne_bytes().to_vec(),
    });
    out.push(store);
    Ok(())
}

fn lower_verdict(v: Verdict, cx: &Cx<'_>, out: &mut Vec<Expr>) -> Result<(), String> {
    let code = |code: libc::c_int, chain: Option<CString>| Expr::Verdict { code, chain };
    match v {
        Verdict::Accept => out.push(code(libc::NF_ACCEPT, None)),
        Verdict::Drop => out.push(code(libc::NF_DROP, None)),
        Verdict::Jump(c) => {
            same_table(c, cx.family)?;
            out.push(code(libc::NFT_JUMP, Some(cstring(c.to_string())?)));
        }
        // `KEY vmap @set`: the key in register 1, then a map lookup into the verdict
        // register; no element found means no verdict, and the next rule runs.
        Verdict::Vmap(key, set) => {
            let want = match key {
                VmapKey::Oifname => {
                    out.push(Expr::Meta(libc::NFT_META_OIFNAME as u32));
                    SetKeyType::IfName
                }
                VmapKey::Iifname => {
                    out.push(Expr::Meta(libc::NFT_META_IIFNAME as u32));
                    SetKeyType::IfName
                }
                VmapKey::MetaMark(mask) => {
                    out.push(Expr::Meta(libc::NFT_META_MARK as u32));
                    out.push(Expr::and(mask.to_ne_bytes().to_vec()));
                    SetKeyType::Mark
                }
            };
            out.push(cx.lookup(set, &[want], true)?);
        }
    }
    Ok(())
}

/// A jump (of a rule or of a map element) can only reach a chain of the same table.
pub(super) fn same_table(target: ChainName, family: Family) -> Result<(), String> {
    if target.family() != family {
        return Err(format!(
            "jump to {target} of the {} table from the {} table",
            target.family().as_str(),
            family.as_str()
        ));
    }
    Ok(())
}

pub(super) fn cstring(s: String) -> Result<CString, String> {
    CString::new(s).map_err(|e| format!("name with a NUL byte: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::plan::{CtDir, IpFamily, Match, RuleId};

    fn rule(chain: ChainName, matches: Vec<Match>, stmts: Vec<Stmt>, verdict: Verdict) -> RuleSpec {
        RuleSpec {
            chain,
            id: RuleId::Head(0),
            matches: matches.into(),
            counter: true,
            stmts: stmts.into(),
            verdict,
            comment: "c".into(),
        }
    }

    fn inet(matches: Vec<Match>, verdict: Verdict) -> RuleSpec {
        rule(ChainName::Group(1), matches, vec![], verdict)
    }

    fn cmp_eq(data: Vec<u8>) -> Expr {
        Expr::Cmp {
            op: libc::NFT_CMP_EQ as u32,
            data,
        }
    }

    #[test]
    fn statements_follow_the_counter_and_keep_bits_outside_the_mask() {
        let r = rule(
            ChainName::Group(1),
            vec![Match::CtDirection(CtDir::Reply)],
            vec![Stmt::SetCtMark {
                mask: 0x00ff_ffff,
                value: 0x2a,
            }],
            Verdict::Accept,
        );
        let e = lower(&r, |_| None).unwrap();
        assert_eq!(e[0], Expr::Ct(libc::NFT_CT_DIRECTION as u32));
        assert_eq!(e[1], cmp_eq(vec![1]));
        assert_eq!(e[2], Expr::Counter);
        assert_eq!(e[3], Expr::Ct(libc::NFT_CT_MARK as u32));
        assert_eq!(
            e[4],
            Expr::Bitwise {
                mask: 0xff00_0000u32.to_ne_bytes().to_vec(),
                xor: 0x2au32.to_ne_bytes().to_vec()
            }
        );
        assert_eq!(e[5], Expr::CtSet(libc::NFT_CT_MARK as u32));
        assert!(matches!(
            e[6],
            Expr::Verdict {
                code: libc::NF_ACCEPT,
                ..
            }
        ));
        assert_eq!(e.len(), 7);
    }

    #[test]
    fn vmaps_look_up_into_the_verdict_register() {
        let r = rule(
            ChainName::Forward,
            vec![],
            vec![],
            Verdict::Vmap(VmapKey::MetaMark(0xff00), SetName::DispatchMark),
        );
        let e = lower(&r, |s| (s == SetName::DispatchMark).then_some(4)).unwrap();
        assert_eq!(e[1], Expr::Meta(libc::NFT_META_MARK as u32));
        assert_eq!(e[2], Expr::and(0xff00u32.to_ne_bytes().to_vec()));
        assert_eq!(
            e[3],
            Expr::Lookup {
                set: c"dispatch_mark".into(),
                id: Some(4),
                verdict: true
            }
        );
        let r = rule(
            ChainName::BridgeForward,
            vec![],
            vec![],
            Verdict::Vmap(VmapKey::Oifname, SetName::BridgePorts),
        );
        let e = lower(&r, |_| None).unwrap();
        assert_eq!(e[1], Expr::Meta(libc::NFT_META_OIFNAME as u32));
        assert!(matches!(&e[2], Expr::Lookup { verdict: true, .. }));
    }

    #[test]
    fn refuses_what_the_kernel_cannot_express() {
        let bad_rules = [
            inet(
                vec![Match::Oifname("a-very-long-name".into())],
                Verdict::Drop,
            ),
            inet(vec![Match::Iifname(String::new())], Verdict::Drop),
            inet(vec![Match::Dport { from: 9, to: 8 }], Verdict::Drop),
            inet(vec![Match::CtState(0)], Verdict::Drop),
            inet(
                vec![Match::Saddr("0.0.0.0/0".parse().unwrap())],
                Verdict::Drop,
            ),
            // A set of the wrong key type, a map used as a set, a set of the other table.
            inet(
                vec![Match::CtMarkIn {
                    mask: 1,
                    set: SetName::PairProtos,
                }],
                Verdict::Drop,
            ),
            inet(
                vec![Match::CtMarkIn {
                    mask: 1,
                    set: SetName::DispatchMark,
                }],
                Verdict::Drop,
            ),
            inet(
                vec![Match::CtMarkAddrIn {
                    mask: 1,
                    family: IpFamily::V6,
                    field: crate::compile::plan::AddrField::Saddr,
                    set: SetName::LivePairs(IpFamily::V4),
                }],
                Verdict::Drop,
            ),
            inet(
                vec![],
                Verdict::Vmap(VmapKey::Oifname, SetName::BridgePorts),
            ),
            inet(
                vec![],
                Verdict::Vmap(VmapKey::Oifname, SetName::DispatchMark),
            ),
            inet(vec![], Verdict::Vmap(VmapKey::Oifname, SetName::Live)),
            inet(vec![], Verdict::Jump(ChainName::BridgeMark(1))),
            rule(
                ChainName::Group(1),
                vec![],
                vec![Stmt::SetMetaMark {
                    mask: 0xff00,
                    value: 0x1_0000,
                }],
                Verdict::Accept,
            ),
        ];
        for r in bad_rules {
            assert!(lower(&r, |_| None).is_err(), "{r:?}");
        }
    }
}

//! Lowering of a rule (`Match`es, counter, verdict) to kernel expressions.
//!
//! The sequences are the ones nft itself generates, so that `nft list` shows secgroupd's
//! rules in their idiomatic form (`ip saddr 10.0.0.0/8 tcp dport 80-90 ...`). nft prints an
//! explicit `meta nfproto`/`meta l4proto` match that only serves as the dependency of the
//! next header match as part of that match, which is why it does not show in listings.

use super::expr::Expr;
use crate::compile::plan::{IpFamily, Match, RuleSpec, Verdict};
use ipnet::IpNet;
use std::ffi::CString;

const IFNAMSIZ: usize = 16;

/// The expressions of `rule`. `set_id` gives the batch-local id of a set created in the
/// same batch. Errors describe a rule the kernel could not express.
pub(super) fn lower(
    rule: &RuleSpec,
    set_id: impl Fn(&str) -> Option<u32>,
) -> Result<Vec<Expr>, String> {
    let mut out = Vec::with_capacity(rule.matches.len() * 3 + 2);
    for m in &rule.matches {
        lower_match(m, &set_id, &mut out)?;
    }
    if rule.counter {
        out.push(Expr::Counter);
    }
    out.push(match rule.verdict {
        Verdict::Accept => verdict(libc::NF_ACCEPT, None),
        Verdict::Drop => verdict(libc::NF_DROP, None),
        Verdict::Jump(c) => verdict(libc::NFT_JUMP, Some(cstring(c.to_string())?)),
        Verdict::Vmap(..) => return Err("verdict maps are not supported yet".into()),
    });
    if !rule.stmts.is_empty() {
        return Err("rule statements are not supported yet".into());
    }
    Ok(out)
}

fn lower_match(
    m: &Match,
    set_id: &impl Fn(&str) -> Option<u32>,
    out: &mut Vec<Expr>,
) -> Result<(), String> {
    let lookup = |name: String| -> Result<Expr, String> {
        let id = set_id(&name);
        Ok(Expr::Lookup {
            set: cstring(name)?,
            id,
        })
    };
    match m {
        Match::NfProto(f) => {
            let p = match f {
                IpFamily::V4 => libc::NFPROTO_IPV4,
                IpFamily::V6 => libc::NFPROTO_IPV6,
            };
            out.push(Expr::Meta(libc::NFT_META_NFPROTO as u32));
            out.push(eq(vec![p as u8]));
        }
        Match::L4Proto(p) => {
            out.push(Expr::Meta(libc::NFT_META_L4PROTO as u32));
            out.push(eq(vec![*p]));
        }
        Match::L4ProtoIn(set) => {
            out.push(Expr::Meta(libc::NFT_META_L4PROTO as u32));
            out.push(lookup(set.to_string())?);
        }
        Match::Saddr(net) => {
            let (fam, addr, full) = match net {
                IpNet::V4(n) => (IpFamily::V4, n.network().octets().to_vec(), 32),
                IpNet::V6(n) => (IpFamily::V6, n.network().octets().to_vec(), 128),
            };
            let prefix = net.prefix_len();
            if prefix == 0 {
                return Err(format!("a /0 source match ({net}) matches every address"));
            }
            out.push(saddr(fam));
            if prefix < full {
                out.push(Expr::And(prefix_mask(prefix, addr.len())));
            }
            out.push(eq(addr));
        }
        Match::SaddrIn(fam, set) => {
            out.push(saddr(*fam));
            out.push(lookup(set.to_string())?);
        }
        Match::Dport { from, to } => {
            if from > to {
                return Err(format!("empty port range {from}-{to}"));
            }
            out.push(transport(2, 2));
            // Ports are compared as big-endian bytes, which order like the numbers.
            if from == to {
                out.push(eq(from.to_be_bytes().to_vec()));
            } else {
                out.push(cmp(libc::NFT_CMP_GTE, from.to_be_bytes().to_vec()));
                out.push(cmp(libc::NFT_CMP_LTE, to.to_be_bytes().to_vec()));
            }
        }
        Match::IcmpType(t) => {
            out.push(transport(0, 1));
            out.push(eq(vec![*t]));
        }
        Match::IcmpCode(c) => {
            out.push(transport(1, 1));
            out.push(eq(vec![*c]));
        }
        Match::Oifname(name) => {
            if name.is_empty() || name.len() >= IFNAMSIZ || name.contains('\0') {
                return Err(format!("invalid interface name {name:?}"));
            }
            let mut d = name.as_bytes().to_vec();
            d.resize(IFNAMSIZ, 0);
            out.push(Expr::Meta(libc::NFT_META_OIFNAME as u32));
            out.push(eq(d));
        }
        Match::CtState(bits) => {
            if *bits == 0 {
                return Err("ct state match without states".into());
            }
            out.push(Expr::Ct(libc::NFT_CT_STATE as u32));
            // ct state is a host-order u32 in the register.
            out.push(Expr::And(bits.to_ne_bytes().to_vec()));
            out.push(cmp(libc::NFT_CMP_NEQ, vec![0; 4]));
        }
        _ => return Err(format!("{m:?} is not supported yet")),
    }
    Ok(())
}

fn saddr(f: IpFamily) -> Expr {
    let (offset, len) = match f {
        IpFamily::V4 => (12, 4),
        IpFamily::V6 => (8, 16),
    };
    Expr::Payload {
        base: libc::NFT_PAYLOAD_NETWORK_HEADER as u32,
        offset,
        len,
    }
}

fn transport(offset: u32, len: u32) -> Expr {
    Expr::Payload {
        base: libc::NFT_PAYLOAD_TRANSPORT_HEADER as u32,
        offset,
        len,
    }
}

fn prefix_mask(prefix: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let bits = (prefix as usize).saturating_sub(i * 8).min(8);
            (0xffu16 << (8 - bits)) as u8
        })
        .collect()
}

fn eq(data: Vec<u8>) -> Expr {
    cmp(libc::NFT_CMP_EQ, data)
}

fn cmp(op: libc::c_int, data: Vec<u8>) -> Expr {
    Expr::Cmp {
        op: op as u32,
        data,
    }
}

fn verdict(code: libc::c_int, chain: Option<CString>) -> Expr {
    Expr::Verdict { code, chain }
}

fn cstring(s: String) -> Result<CString, String> {
    CString::new(s).map_err(|e| format!("name with a NUL byte: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::plan::{ChainName, RuleId, SetName};

    fn rule(matches: Vec<Match>, verdict: Verdict) -> RuleSpec {
        RuleSpec {
            chain: ChainName::Forward,
            id: RuleId::Head(0),
            matches,
            counter: true,
            stmts: vec![],
            verdict,
            comment: "c".into(),
        }
    }

    #[test]
    fn masks() {
        assert_eq!(prefix_mask(8, 4), vec![0xff, 0, 0, 0]);
        assert_eq!(prefix_mask(12, 4), vec![0xff, 0xf0, 0, 0]);
        assert_eq!(prefix_mask(31, 4), vec![0xff, 0xff, 0xff, 0xfe]);
        assert_eq!(prefix_mask(64, 16)[7..9], [0xff, 0]);
    }

    #[test]
    fn saddr_prefix_and_range() {
        let r = rule(
            vec![
                Match::Saddr("10.1.2.3/12".parse().unwrap()),
                Match::Dport { from: 80, to: 90 },
            ],
            Verdict::Jump(ChainName::Group(3)),
        );
        let e = lower(&r, |_| None).unwrap();
        assert_eq!(e[1], Expr::And(vec![0xff, 0xf0, 0, 0]));
        assert_eq!(e[2], eq(vec![10, 0, 0, 0]));
        assert_eq!(e[4], cmp(libc::NFT_CMP_GTE, vec![0, 80]));
        assert_eq!(e[5], cmp(libc::NFT_CMP_LTE, vec![0, 90]));
        assert_eq!(e[6], Expr::Counter);
        assert_eq!(e[7], verdict(libc::NFT_JUMP, Some(c"grp_3".into())));
    }

    #[test]
    fn full_prefix_has_no_mask_and_lookup_gets_id() {
        let r = rule(
            vec![
                Match::Saddr("2001:db8::1/128".parse().unwrap()),
                Match::SaddrIn(IpFamily::V6, SetName::Members(IpFamily::V6, 1)),
            ],
            Verdict::Accept,
        );
        let e = lower(&r, |s| (s == "m6_1").then_some(7)).unwrap();
        assert!(matches!(e[1], Expr::Cmp { .. }));
        assert_eq!(
            e[3],
            Expr::Lookup {
                set: c"m6_1".into(),
                id: Some(7)
            }
        );
    }

    #[test]
    fn refuses_what_the_kernel_cannot_express() {
        for m in [
            Match::Oifname("a-very-long-name".into()),
            Match::Dport { from: 9, to: 8 },
            Match::CtState(0),
            Match::Saddr("0.0.0.0/0".parse().unwrap()),
        ] {
            assert!(lower(&rule(vec![m], Verdict::Drop), |_| None).is_err());
        }
    }
}

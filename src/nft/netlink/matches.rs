//! Each [`Match`] as the expressions nft 1.0.6 generates for it (`nft --debug=netlink`).
//!
//! Byte orders: addresses, ports and the ethertype are compared in network order, as they
//! are in the packet; `ct state`, `ct mark` and `meta mark` are host-order u32 in the
//! registers, `ct direction` one byte.

use super::expr::{Expr, concat_reg};
use super::lower::Cx;
use crate::compile::plan::{AddrField, CtDir, Family, IpFamily, Match, SetKeyType};
use ipnet::IpNet;

const IFNAMSIZ: usize = 16;
/// Ethertypes (`meta protocol`, 2 bytes in network order in the register).
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;

pub(super) fn lower_match(m: &Match, cx: &Cx<'_>, out: &mut Vec<Expr>) -> Result<(), String> {
    match m {
        // An inet table sees IPv4 and IPv6 packets and tells them apart by `meta nfproto`;
        // a bridge table sees frames, and the network protocol is their ethertype.
        Match::NfProto(f) => match cx.family {
            Family::Inet => {
                let p = match f {
                    IpFamily::V4 => libc::NFPROTO_IPV4,
                    IpFamily::V6 => libc::NFPROTO_IPV6,
                };
                out.push(Expr::Meta(libc::NFT_META_NFPROTO as u32));
                out.push(eq(vec![p as u8]));
            }
            Family::Bridge => {
                let ethertype = match f {
                    IpFamily::V4 => ETH_P_IP,
                    IpFamily::V6 => ETH_P_IPV6,
                };
                out.push(Expr::Meta(libc::NFT_META_PROTOCOL as u32));
                out.push(eq(ethertype.to_be_bytes().to_vec()));
            }
        },
        Match::L4Proto(p) => {
            out.push(Expr::Meta(libc::NFT_META_L4PROTO as u32));
            out.push(eq(vec![*p]));
        }
        Match::L4ProtoIn(set) => {
            out.push(Expr::Meta(libc::NFT_META_L4PROTO as u32));
            out.push(cx.lookup(*set, &[SetKeyType::InetProto], false)?);
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
            out.push(addr_payload(fam, AddrField::Saddr, libc::NFT_REG_1 as u32));
            if prefix < full {
                out.push(Expr::and(prefix_mask(prefix, addr.len())));
            }
            out.push(eq(addr));
        }
        Match::SaddrIn(fam, set) => {
            out.push(addr_payload(*fam, AddrField::Saddr, libc::NFT_REG_1 as u32));
            out.push(cx.lookup(*set, &[addr_key(*fam)], false)?);
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
            out.push(Expr::Meta(libc::NFT_META_OIFNAME as u32));
            out.push(eq(ifname(name)?));
        }
        Match::Iifname(name) => {
            out.push(Expr::Meta(libc::NFT_META_IIFNAME as u32));
            out.push(eq(ifname(name)?));
        }
        Match::CtState(bits) => {
            if *bits == 0 {
                return Err("ct state match without states".into());
            }
            out.push(Expr::Ct(libc::NFT_CT_STATE as u32));
            out.push(Expr::and(bits.to_ne_bytes().to_vec()));
            out.push(cmp(libc::NFT_CMP_NEQ, vec![0; 4]));
        }
        Match::CtDirection(d) => {
            out.push(Expr::Ct(libc::NFT_CT_DIRECTION as u32));
            // IP_CT_DIR_ORIGINAL / IP_CT_DIR_REPLY.
            out.push(eq(vec![match d {
                CtDir::Original => 0,
                CtDir::Reply => 1,
            }]));
        }
        Match::CtMark { mask, value } => {
            if value & !mask != 0 {
                return Err(format!(
                    "ct mark value {value:#010x} outside its mask {mask:#010x} never matches"
                ));
            }
            ct_mark(*mask, out);
            out.push(eq(value.to_ne_bytes().to_vec()));
        }
        Match::CtMarkIn { mask, set } => {
            ct_mark(*mask, out);
            out.push(cx.lookup(*set, &[SetKeyType::Mark], false)?);
        }
        // A concatenated key `mark . address`: the masked mark in the first 32-bit
        // register, the address in the registers right after it, one lookup of both.
        Match::CtMarkAddrIn {
            mask,
            family,
            field,
            set,
        } => {
            let key = match family {
                IpFamily::V4 => SetKeyType::MarkIpv4,
                IpFamily::V6 => SetKeyType::MarkIpv6,
            };
            ct_mark(*mask, out);
            let mark_words = key.field_lens()[0].div_ceil(4);
            out.push(addr_payload(*family, *field, concat_reg(mark_words)));
            out.push(cx.lookup(*set, &[key], false)?);
        }
    }
    Ok(())
}

/// `ct mark and MASK` into register 1.
fn ct_mark(mask: u32, out: &mut Vec<Expr>) {
    out.push(Expr::Ct(libc::NFT_CT_MARK as u32));
    out.push(Expr::and(mask.to_ne_bytes().to_vec()));
}

fn addr_key(f: IpFamily) -> SetKeyType {
    match f {
        IpFamily::V4 => SetKeyType::Ipv4Addr,
        IpFamily::V6 => SetKeyType::Ipv6Addr,
    }
}

/// `ip saddr`/`ip daddr`/`ip6 saddr`/`ip6 daddr` into `dreg`. Network header offsets work
/// the same in a bridge table (the kernel finds the network header after the ethernet
/// header).
fn addr_payload(f: IpFamily, field: AddrField, dreg: u32) -> Expr {
    let (offset, len) = match (f, field) {
        (IpFamily::V4, AddrField::Saddr) => (12, 4),
        (IpFamily::V4, AddrField::Daddr) => (16, 4),
        (IpFamily::V6, AddrField::Saddr) => (8, 16),
        (IpFamily::V6, AddrField::Daddr) => (24, 16),
    };
    Expr::Payload {
        base: libc::NFT_PAYLOAD_NETWORK_HEADER as u32,
        offset,
        len,
        dreg,
    }
}

fn transport(offset: u32, len: u32) -> Expr {
    Expr::Payload {
        base: libc::NFT_PAYLOAD_TRANSPORT_HEADER as u32,
        offset,
        len,
        dreg: libc::NFT_REG_1 as u32,
    }
}

/// An interface name as `meta iifname`/`oifname` load it: IFNAMSIZ bytes, NUL padded.
fn ifname(name: &str) -> Result<Vec<u8>, String> {
    if name.is_empty() || name.len() >= IFNAMSIZ || name.contains('\0') {
        return Err(format!("invalid interface name {name:?}"));
    }
    let mut d = name.as_bytes().to_vec();
    d.resize(IFNAMSIZ, 0);
    Ok(d)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::plan::{ChainName, RuleId, RuleSpec, SetName, Verdict};
    use crate::nft::netlink::lower::lower;

    fn rule(chain: ChainName, matches: Vec<Match>) -> RuleSpec {
        RuleSpec {
            chain,
            id: RuleId::Head(0),
            matches: matches.into(),
            counter: false,
            stmts: Box::new([]),
            verdict: Verdict::Accept,
            comment: "c".into(),
        }
    }

    fn exprs(chain: ChainName, matches: Vec<Match>) -> Vec<Expr> {
        let mut e = lower(&rule(chain, matches), |_| None).unwrap();
        e.pop(); // the verdict
        e
    }

    fn payload(offset: u32, len: u32, dreg: u32) -> Expr {
        Expr::Payload {
            base: libc::NFT_PAYLOAD_NETWORK_HEADER as u32,
            offset,
            len,
            dreg,
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
        let e = exprs(
            ChainName::Group(3),
            vec![
                Match::Saddr("10.1.2.3/12".parse().unwrap()),
                Match::Dport { from: 80, to: 90 },
            ],
        );
        assert_eq!(e[0], payload(12, 4, 1));
        assert_eq!(e[1], Expr::and(vec![0xff, 0xf0, 0, 0]));
        assert_eq!(e[2], eq(vec![10, 0, 0, 0]));
        assert_eq!(e[4], cmp(libc::NFT_CMP_GTE, vec![0, 80]));
        assert_eq!(e[5], cmp(libc::NFT_CMP_LTE, vec![0, 90]));
    }

    #[test]
    fn full_prefix_has_no_mask_and_lookup_gets_id() {
        let r = rule(
            ChainName::Group(1),
            vec![
                Match::Saddr("2001:db8::1/128".parse().unwrap()),
                Match::SaddrIn(IpFamily::V6, SetName::Members(IpFamily::V6, 1)),
            ],
        );
        let m6 = SetName::Members(IpFamily::V6, 1);
        let e = lower(&r, |s| (s == m6).then_some(7)).unwrap();
        assert!(matches!(e[1], Expr::Cmp { .. }));
        assert_eq!(
            e[3],
            Expr::Lookup {
                set: c"m6_1".into(),
                id: Some(7),
                verdict: false
            }
        );
    }

    #[test]
    fn nfproto_is_the_ethertype_in_a_bridge_table() {
        let m = vec![Match::NfProto(IpFamily::V6)];
        let inet = exprs(ChainName::Spoof(1), m.clone());
        assert_eq!(inet[0], Expr::Meta(libc::NFT_META_NFPROTO as u32));
        assert_eq!(inet[1], eq(vec![libc::NFPROTO_IPV6 as u8]));
        let bridge = exprs(ChainName::BridgeSpoof(1), m);
        assert_eq!(bridge[0], Expr::Meta(libc::NFT_META_PROTOCOL as u32));
        assert_eq!(bridge[1], eq(vec![0x86, 0xdd]));
    }

    #[test]
    fn ct_marks_are_host_order() {
        let e = exprs(
            ChainName::Forward,
            vec![
                Match::CtMark {
                    mask: 0x00ff_ffff,
                    value: 0,
                },
                Match::CtMarkIn {
                    mask: 0x00ff_ffff,
                    set: SetName::Live,
                },
            ],
        );
        assert_eq!(e[0], Expr::Ct(libc::NFT_CT_MARK as u32));
        assert_eq!(e[1], Expr::and(0x00ff_ffffu32.to_ne_bytes().to_vec()));
        assert_eq!(e[2], eq(vec![0; 4]));
        assert!(
            matches!(&e[5], Expr::Lookup { set, verdict: false, .. } if set.as_bytes() == b"live")
        );
    }

    #[test]
    fn concatenated_lookup_puts_the_address_after_the_mark() {
        for (fam, field, off, len) in [
            (IpFamily::V4, AddrField::Saddr, 12, 4),
            (IpFamily::V4, AddrField::Daddr, 16, 4),
            (IpFamily::V6, AddrField::Saddr, 8, 16),
            (IpFamily::V6, AddrField::Daddr, 24, 16),
        ] {
            let e = exprs(
                ChainName::Forward,
                vec![Match::CtMarkAddrIn {
                    mask: 0xff,
                    family: fam,
                    field,
                    set: SetName::LivePairs(fam),
                }],
            );
            assert_eq!(e[0], Expr::Ct(libc::NFT_CT_MARK as u32));
            assert_eq!(e[2], payload(off, len, libc::NFT_REG32_01 as u32));
            assert!(matches!(&e[3], Expr::Lookup { verdict: false, .. }));
            assert_eq!(e.len(), 4);
        }
    }

    #[test]
    fn interface_names_are_padded() {
        let e = exprs(ChainName::Group(1), vec![Match::Iifname("tap1".into())]);
        assert_eq!(e[0], Expr::Meta(libc::NFT_META_IIFNAME as u32));
        assert_eq!(e[1], eq(b"tap1\0\0\0\0\0\0\0\0\0\0\0\0".to_vec()));
    }
}

//! A group's grants by protocol and port range, so that the overlap report of a revoke
//! looks at the grants that can overlap, not at every grant of a group of 100,000.

use super::GrantId;
use crate::model::{IpPermission, Traffic};
use std::collections::{BTreeMap, BTreeSet};

/// TCP/UDP ranges are indexed by their start in classes of width: a range of the class
/// `w` is narrower than `w`, so those that meet `[f, t]` start after `f - w`.
const CLASSES: [u32; 4] = [16, 256, 4096, 65536];

#[derive(Debug, Clone, Default)]
pub struct PortIndex {
    /// Per width class: `(protocol, from port, grant) → to port`.
    narrow: [BTreeMap<(u8, u16, GrantId), u16>; CLASSES.len()],
    /// ICMP grants and group pairs: always candidates (they are few in practice).
    other: BTreeSet<GrantId>,
}

/// `(class, protocol, from, to)` of a TCP/UDP range.
fn narrow_key(p: &IpPermission) -> Option<(usize, u8, u16, u16)> {
    match p {
        IpPermission::Cidr {
            traffic: t @ (Traffic::Tcp { ports } | Traffic::Udp { ports }),
            ..
        } => {
            let width = u32::from(ports.to() - ports.from()) + 1;
            let class = CLASSES
                .iter()
                .position(|w| width < *w)
                .unwrap_or(CLASSES.len() - 1);
            Some((class, t.protocol().number(), ports.from(), ports.to()))
        }
        _ => None,
    }
}

impl PortIndex {
    pub fn insert(&mut self, id: GrantId, p: &IpPermission) {
        match narrow_key(p) {
            Some((class, proto, from, to)) => {
                self.narrow[class].insert((proto, from, id), to);
            }
            None => {
                self.other.insert(id);
            }
        }
    }

    pub fn remove(&mut self, id: GrantId, p: &IpPermission) {
        match narrow_key(p) {
            Some((class, proto, from, _)) => {
                self.narrow[class].remove(&(proto, from, id));
            }
            None => {
                self.other.remove(&id);
            }
        }
    }

    /// Grants that may overlap `p`: for a TCP/UDP range, the short ranges of the same
    /// protocol that intersect it plus all the others; for anything else, every grant.
    pub fn candidates(&self, p: &IpPermission) -> Vec<GrantId> {
        let mut out: Vec<GrantId> = self.other.iter().copied().collect();
        match p {
            IpPermission::Cidr {
                traffic: t @ (Traffic::Tcp { ports } | Traffic::Udp { ports }),
                ..
            } => {
                let proto = t.protocol().number();
                for (class, width) in self.narrow.iter().zip(CLASSES) {
                    // A range [a, b] narrower than `width` meets [f, t] iff a <= t and
                    // b >= f, so a > f - width.
                    let lo = u32::from(ports.from()).saturating_sub(width) as u16;
                    out.extend(
                        class
                            .range((proto, lo, 0)..=(proto, ports.to(), GrantId::MAX))
                            .filter(|(_, to)| **to >= ports.from())
                            .map(|((_, _, id), _)| *id),
                    );
                }
            }
            _ => out.extend(
                self.narrow
                    .iter()
                    .flat_map(|c| c.keys().map(|(_, _, id)| *id)),
            ),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Cidr, IcmpSpec, PortRange};

    fn tcp(from: u16, to: u16) -> IpPermission {
        IpPermission::Cidr {
            traffic: Traffic::Tcp {
                ports: PortRange::new(from, to).unwrap(),
            },
            cidr: Cidr::parse("c", "0.0.0.0/0").unwrap(),
        }
    }

    #[test]
    fn candidates_are_a_superset_of_the_overlapping_grants() {
        let mut ix = PortIndex::default();
        let grants = [
            (1, tcp(80, 80)),
            (2, tcp(1000, 1200)),
            (3, tcp(0, 65535)),
            (4, tcp(5000, 5000)),
            (
                5,
                IpPermission::Cidr {
                    traffic: Traffic::Icmp {
                        icmp: IcmpSpec::ANY,
                    },
                    cidr: Cidr::parse("c", "0.0.0.0/0").unwrap(),
                },
            ),
        ];
        for (id, p) in &grants {
            ix.insert(*id, p);
        }
        let mut c = ix.candidates(&tcp(80, 80));
        c.sort();
        assert_eq!(c, vec![1, 3, 5]);
        let mut c = ix.candidates(&tcp(1100, 1100));
        c.sort();
        assert_eq!(c, vec![2, 3, 5]);
        let mut c = ix.candidates(&tcp(81, 999));
        c.sort();
        assert_eq!(c, vec![3, 5]);
        ix.remove(2, &grants[1].1);
        assert!(!ix.candidates(&tcp(1100, 1100)).contains(&2));
        assert_eq!(ix.candidates(&grants[4].1).len(), 4);
        // Grants of other ports far away are not even looked at.
        for (i, port) in (20_000..21_000u16).enumerate() {
            ix.insert(100 + i as GrantId, &tcp(port, port));
        }
        assert_eq!(ix.candidates(&tcp(80, 80)).len(), 3);
    }
}

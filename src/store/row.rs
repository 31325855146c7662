//! How an [`IpPermission`] maps to the columns of a `grants` row, both ways.
//!
//! Reading is strict: every value goes through the model's own parser and must be in the
//! canonical spelling the write side produces, so that the UNIQUE index over the textual
//! columns really means "no two grants with the same values".

use crate::model::{
    Cidr, GroupKey, GroupName, IcmpSpec, IpPermission, OwnerId, PortRange, Protocol, Traffic,
};

/// `grants.kind` of a CIDR permission.
pub(super) const KIND_CIDR: &str = "cidr";
/// `grants.kind` of a user/group-pair permission.
pub(super) const KIND_GROUP_PAIR: &str = "group_pair";

/// The value columns of a `grants` row (everything but `id` and `group_num`).
/// Columns that do not apply to the kind are NULL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PermissionRow {
    pub kind: String,
    pub protocol: Option<String>,
    /// TCP/UDP: first port. ICMP: type, -1 for any (EC2's FromPort).
    pub from_port: Option<i64>,
    /// TCP/UDP: last port. ICMP: code, -1 for any (EC2's ToPort).
    pub to_port: Option<i64>,
    pub cidr: Option<String>,
    pub source_owner: Option<String>,
    pub source_name: Option<String>,
}

impl PermissionRow {
    pub fn from_permission(p: &IpPermission) -> Self {
        match p {
            IpPermission::Cidr { traffic, cidr } => {
                let (from, to) = traffic.from_to();
                PermissionRow {
                    kind: KIND_CIDR.to_string(),
                    protocol: Some(traffic.protocol().as_str().to_string()),
                    from_port: Some(i64::from(from)),
                    to_port: Some(i64::from(to)),
                    cidr: Some(cidr.to_string()),
                    source_owner: None,
                    source_name: None,
                }
            }
            IpPermission::GroupPair { source } => PermissionRow {
                kind: KIND_GROUP_PAIR.to_string(),
                protocol: None,
                from_port: None,
                to_port: None,
                cidr: None,
                source_owner: Some(source.owner.as_str().to_string()),
                source_name: Some(source.name.as_str().to_string()),
            },
        }
    }

    /// Parses the row back; the error says which column is wrong and why.
    pub fn to_permission(&self) -> Result<IpPermission, String> {
        match self.kind.as_str() {
            KIND_CIDR => {
                self.must_be_null("source_owner", self.source_owner.is_some())?;
                self.must_be_null("source_name", self.source_name.is_some())?;
                let traffic = self.traffic()?;
                let text = required("cidr", &self.cidr)?;
                let cidr = Cidr::parse("cidr", text).map_err(|e| format!("column cidr: {e}"))?;
                canonical("cidr", text, &cidr.to_string())?;
                Ok(IpPermission::Cidr { traffic, cidr })
            }
            KIND_GROUP_PAIR => {
                self.must_be_null("protocol", self.protocol.is_some())?;
                self.must_be_null("from_port", self.from_port.is_some())?;
                self.must_be_null("to_port", self.to_port.is_some())?;
                self.must_be_null("cidr", self.cidr.is_some())?;
                let owner = required("source_owner", &self.source_owner)?;
                let name = required("source_name", &self.source_name)?;
                Ok(IpPermission::GroupPair {
                    source: GroupKey {
                        owner: OwnerId::parse("source_owner", owner)
                            .map_err(|e| format!("column source_owner: {e}"))?,
                        name: GroupName::parse("source_name", name)
                            .map_err(|e| format!("column source_name: {e}"))?,
                    },
                })
            }
            other => Err(format!(
                "column kind: {other:?} is neither {KIND_CIDR:?} nor {KIND_GROUP_PAIR:?}"
            )),
        }
    }

    fn traffic(&self) -> Result<Traffic, String> {
        let text = required("protocol", &self.protocol)?;
        let protocol = Protocol::parse(text)
            .ok_or_else(|| format!("column protocol: {text:?} is not tcp, udp, icmp or icmpv6"))?;
        canonical("protocol", text, protocol.as_str())?;
        let from = *required("from_port", &self.from_port)?;
        let to = *required("to_port", &self.to_port)?;
        match protocol {
            Protocol::Tcp | Protocol::Udp => {
                let ports = PortRange::new(port(from, "from_port")?, port(to, "to_port")?)
                    .ok_or_else(|| format!("from_port {from} is above to_port {to}"))?;
                Ok(if protocol == Protocol::Tcp {
                    Traffic::Tcp { ports }
                } else {
                    Traffic::Udp { ports }
                })
            }
            Protocol::Icmp | Protocol::Icmpv6 => {
                let icmp = IcmpSpec::new(icmp(from, "from_port")?, icmp(to, "to_port")?)
                    .ok_or_else(|| {
                        format!("ICMP code {to} with a wildcard type (-1) is not allowed")
                    })?;
                Ok(if protocol == Protocol::Icmp {
                    Traffic::Icmp { icmp }
                } else {
                    Traffic::Icmpv6 { icmp }
                })
            }
        }
    }

    fn must_be_null(&self, column: &str, present: bool) -> Result<(), String> {
        if present {
            return Err(format!(
                "column {column} must be NULL for a grant of kind {:?}",
                self.kind
            ));
        }
        Ok(())
    }
}

fn required<'a, T>(column: &str, v: &'a Option<T>) -> Result<&'a T, String> {
    v.as_ref()
        .ok_or_else(|| format!("column {column} is NULL but required"))
}

/// Insists on the spelling the write side produces (see the module doc).
fn canonical(column: &str, stored: &str, canonical: &str) -> Result<(), String> {
    if stored != canonical {
        return Err(format!(
            "column {column}: {stored:?} is not in canonical form (expected {canonical:?})"
        ));
    }
    Ok(())
}

fn port(v: i64, column: &str) -> Result<u16, String> {
    u16::try_from(v).map_err(|_| format!("column {column}: port {v} is not in 0..=65535"))
}

/// EC2's ICMP type/code encoding: -1 is the wildcard, otherwise 0..=255.
fn icmp(v: i64, column: &str) -> Result<Option<u8>, String> {
    if v == -1 {
        return Ok(None);
    }
    u8::try_from(v)
        .map(Some)
        .map_err(|_| format!("column {column}: ICMP value {v} is neither -1 nor in 0..=255"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(traffic: Traffic, c: &str) -> IpPermission {
        IpPermission::Cidr {
            traffic,
            cidr: Cidr::parse("c", c).expect("valid cidr"),
        }
    }

    #[test]
    fn every_kind_round_trips() {
        let perms = [
            cidr(
                Traffic::Tcp {
                    ports: PortRange::new(22, 22).expect("range"),
                },
                "10.0.0.0/8",
            ),
            cidr(
                Traffic::Udp {
                    ports: PortRange::new(0, 65535).expect("range"),
                },
                "2001:db8::/32",
            ),
            cidr(
                Traffic::Icmp {
                    icmp: IcmpSpec::ANY,
                },
                "0.0.0.0/0",
            ),
            cidr(
                Traffic::Icmpv6 {
                    icmp: IcmpSpec::new(Some(128), None).expect("icmp"),
                },
                "::/0",
            ),
            IpPermission::GroupPair {
                source: GroupKey {
                    owner: OwnerId::parse("o", "123456789012").expect("owner"),
                    name: GroupName::parse("n", "web").expect("name"),
                },
            },
        ];
        for p in perms {
            let row = PermissionRow::from_permission(&p);
            assert_eq!(row.to_permission().as_ref(), Ok(&p), "{row:?}");
        }
    }

    #[test]
    fn rejects_non_canonical_and_out_of_range_values() {
        let good = PermissionRow::from_permission(&cidr(
            Traffic::Tcp {
                ports: PortRange::new(80, 90).expect("range"),
            },
            "2001:db8::/32",
        ));
        let bad = |f: &dyn Fn(&mut PermissionRow), needle: &str| {
            let mut row = good.clone();
            f(&mut row);
            let e = row.to_permission().expect_err("must be rejected");
            assert!(e.contains(needle), "{e:?} lacks {needle:?}");
        };
        bad(&|r| r.cidr = Some("2001:DB8::/32".into()), "canonical");
        bad(&|r| r.cidr = Some("10.0.0.1/8".into()), "host bits");
        bad(&|r| r.protocol = Some("TCP".into()), "canonical");
        bad(&|r| r.protocol = Some("sctp".into()), "sctp");
        bad(&|r| r.from_port = Some(70000), "from_port");
        bad(&|r| r.from_port = Some(95), "above");
        bad(&|r| r.to_port = None, "to_port is NULL");
        bad(
            &|r| r.source_name = Some("web".into()),
            "source_name must be NULL",
        );
        bad(&|r| r.kind = "other".into(), "kind");
    }
}

//! The tables the benchmark measures, generated from numbers so that every run builds
//! exactly the same table and every permission is distinct (its own port and its own /32
//! source), as a real table would be: the kernel really holds one rule per permission.

use secgroupd::client::encode_form as form;
use std::net::Ipv4Addr;
use std::ops::Range;

/// The account of every group (the daemon's default owner).
pub const OWNER: &str = "000000000000";

/// Sources of generated permissions: 198.18.0.0/15 (RFC 2544, benchmarking), 131,072
/// addresses, one per permission. No test traffic ever comes from there.
const SOURCE_BASE: u32 = u32::from_be_bytes([198, 18, 0, 0]);
pub const MAX_PERMISSIONS: usize = 1 << 17;

/// One permission, as the EC2 parameters that grant and revoke it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Perm {
    pub group: String,
    pub proto: &'static str,
    pub from: u16,
    pub to: u16,
    pub cidr: String,
}

impl Perm {
    /// Permission number `k` of a table: tcp mostly, every fifth udp, some port ranges,
    /// source `198.18.0.0 + k`/32.
    pub fn generated(k: usize, group: String) -> Perm {
        assert!(k < MAX_PERMISSIONS, "permission {k} has no distinct source");
        let proto = if k % 5 == 4 { "udp" } else { "tcp" };
        let from = 1024 + (k % 60_000) as u16;
        let to = if k % 7 == 3 { from + 9 } else { from };
        let cidr = format!("{}/32", Ipv4Addr::from(SOURCE_BASE + k as u32));
        Perm {
            group,
            proto,
            from,
            to,
            cidr,
        }
    }

    /// The form body of `AuthorizeSecurityGroupIngress` or `RevokeSecurityGroupIngress`.
    pub fn request(&self, action: &str) -> String {
        form(&[
            ("Action", action),
            ("GroupName", &self.group),
            ("IpProtocol", self.proto),
            ("FromPort", &self.from.to_string()),
            ("ToPort", &self.to.to_string()),
            ("CidrIp", &self.cidr),
        ])
    }

    pub fn revoke(&self) -> String {
        self.request("RevokeSecurityGroupIngress")
    }

    pub fn authorize(&self) -> String {
        self.request("AuthorizeSecurityGroupIngress")
    }
}

pub fn create_group(name: &str) -> String {
    form(&[
        ("Action", "CreateSecurityGroup"),
        ("GroupName", name),
        ("GroupDescription", "secgroupd-bench"),
    ])
}

pub fn register_instance(id: &str, interface: &str, address: Ipv4Addr, group: &str) -> String {
    form(&[
        ("Action", "RegisterInstance"),
        ("InstanceId", id),
        ("Interface", interface),
        ("IpAddress.1", &address.to_string()),
        ("GroupName.1", group),
    ])
}

/// A table of `permissions` permissions in groups of `group_size` (`g0`, `g1`, ...), and
/// `members` registered instances, all members of `g0`, the group the latency samples
/// revoke from. The other groups have no local member: in the current layout every
/// group's chain is in the kernel regardless, and the benchmark reports the rule count it
/// finds in the kernel, so a layout that leaves them out would show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    pub permissions: usize,
    pub group_size: usize,
    pub members: usize,
}

impl Table {
    pub fn groups(&self) -> usize {
        self.permissions.div_ceil(self.group_size)
    }

    pub fn group_name(g: usize) -> String {
        format!("g{g}")
    }

    /// Permission numbers of group `g`.
    pub fn group_range(&self, g: usize) -> Range<usize> {
        let start = g * self.group_size;
        start..(start + self.group_size).min(self.permissions)
    }

    pub fn perm(&self, k: usize) -> Perm {
        Perm::generated(k, Self::group_name(k / self.group_size))
    }

    /// Host-side interface of member `i`.
    pub fn member_interface(i: usize) -> String {
        format!("sgbm{i}")
    }

    /// Address of member `i`: 10.64.0.1 onwards.
    pub fn member_address(i: usize) -> Ipv4Addr {
        Ipv4Addr::from(u32::from_be_bytes([10, 64, 0, 1]) + i as u32)
    }

    /// Every request that builds the table, in order.
    pub fn setup_requests(&self) -> impl Iterator<Item = String> + '_ {
        let groups = (0..self.groups()).map(|g| create_group(&Self::group_name(g)));
        let grants = (0..self.permissions).map(|k| self.perm(k).authorize());
        let members = (0..self.members).map(|i| {
            register_instance(
                &format!("i-bench{i:05}"),
                &Self::member_interface(i),
                Self::member_address(i),
                &Self::group_name(0),
            )
        });
        groups.chain(grants).chain(members)
    }

    /// `ip -batch` lines creating the member interfaces: veth pairs whose both ends stay
    /// in the host namespace (veth rather than dummy: kernels built without the dummy
    /// driver, such as this VM's, have veth anyway since namespaces need it).
    pub fn member_interface_commands(&self) -> Vec<String> {
        (0..self.members)
            .flat_map(|i| {
                let name = Self::member_interface(i);
                [
                    format!("link add {name} type veth peer name sgbp{i}"),
                    format!("link set {name} up"),
                    format!("link set sgbp{i} up"),
                ]
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn permissions_are_distinct_and_grouped() {
        let t = Table {
            permissions: 2_500,
            group_size: 1_000,
            members: 2,
        };
        assert_eq!(t.groups(), 3);
        assert_eq!(t.group_range(2), 2_000..2_500);
        let all: HashSet<String> = (0..t.permissions).map(|k| t.perm(k).revoke()).collect();
        assert_eq!(all.len(), t.permissions);
        assert_eq!(t.perm(1_999).group, "g1");
        assert_eq!(t.setup_requests().count(), 3 + 2_500 + 2);
    }

    #[test]
    fn generated_permission_is_valid_ec2() {
        let p = Perm::generated(3, "g0".into());
        assert_eq!(
            p.revoke(),
            "Action=RevokeSecurityGroupIngress&GroupName=g0&IpProtocol=tcp&FromPort=1027\
             &ToPort=1036&CidrIp=198.18.0.3%2F32"
        );
    }
}

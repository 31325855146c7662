//! Answers as people read them: aligned text, ports spelled out, one permission per line.

use super::{ExplanationView, GroupView, OverlapView, PermissionView, StatusView};

/// Ports as people read them: `22`, `80-81`, `type 8 code 0`, `all types`.
pub fn ports_text(protocol: &str, from: i32, to: i32) -> String {
    if protocol.starts_with("icmp") {
        match (from, to) {
            (-1, _) => "all types".to_string(),
            (t, -1) => format!("type {t}"),
            (t, c) => format!("type {t} code {c}"),
        }
    } else if from == to {
        from.to_string()
    } else {
        format!("{from}-{to}")
    }
}

/// One permission on one line: `tcp 80 from 0.0.0.0/0`, `icmp type 8 from ::/0`,
/// `all traffic from group 123456789012/web`.
pub fn permission_text(p: &PermissionView) -> String {
    match p {
        PermissionView::Cidr {
            protocol,
            from,
            to,
            cidr,
        } => format!(
            "{protocol} {} from {cidr}",
            ports_text(protocol, *from, *to)
        ),
        PermissionView::AllFromGroup { owner, group } => {
            format!("all traffic from group {owner}/{group}")
        }
        PermissionView::Pair {
            protocol,
            from,
            to,
            owner,
            group,
        } => format!(
            "{protocol} {} from group {owner}/{group}",
            ports_text(protocol, *from, *to)
        ),
    }
}

/// What `secgroupctl revoke` warns about one overlap:
/// `still admitted fully by web: tcp 0-1023 from 0.0.0.0/0 (instances i-1, i-2)`.
pub fn overlap_text(o: &OverlapView) -> String {
    let how = if o.full { "fully" } else { "partly" };
    let mut line = format!(
        "still admitted {how} by {}: {}",
        o.group,
        permission_text(&o.permission)
    );
    if !o.instances.is_empty() {
        line += &format!(" (instances {})", o.instances.join(", "));
    }
    line
}

/// What `secgroupctl explain` prints: the permission that admits the packet (and any
/// others that would, indented), or that none does.
pub fn explanation_text(e: &ExplanationView) -> String {
    let Some((first, others)) = e.admitted_by.split_first() else {
        return format!(
            "not admitted: no permission of the groups of {} (on {}) admits it\n",
            e.instance, e.interface
        );
    };
    let mut out = format!(
        "admitted by {}: {}\n",
        first.group,
        permission_text(&first.permission)
    );
    for a in others {
        out += &format!(
            "  also admitted by {}: {}\n",
            a.group,
            permission_text(&a.permission)
        );
    }
    out
}

/// GetStatus as aligned `key  value` lines, times in milliseconds.
pub fn status_table(s: &StatusView) -> String {
    let ms = |micros: u64| format!("{}.{:03} ms", micros / 1000, micros % 1000);
    let rows: [(&str, String); 15] = [
        ("generation", s.generation.to_string()),
        ("groups", s.groups.to_string()),
        ("permissions", s.permissions.to_string()),
        ("instances", s.instances.to_string()),
        ("remote members", s.remote_members.to_string()),
        ("rules", s.rules.to_string()),
        ("set elements", s.set_elements.to_string()),
        ("last commit actions", s.last_commit_actions.to_string()),
        ("last commit ops", s.last_commit_ops.to_string()),
        ("last commit", ms(s.last_commit_micros)),
        ("last store write", ms(s.last_store_micros)),
        ("last kernel batch", ms(s.last_kernel_micros)),
        ("table", s.table.clone()),
        ("mode", s.mode.clone()),
        ("established on revoke", s.established_on_revoke.clone()),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<width$}  {v}").trim_end().to_string() + "\n")
        .collect()
}

/// Groups, each followed by its permissions (protocol, ports, source), in aligned columns,
/// as `secgroupctl describe` prints them.
pub fn groups_table(groups: &[GroupView]) -> String {
    if groups.is_empty() {
        return "no security groups\n".to_string();
    }
    let mut group_rows = vec![[
        "GROUP".to_string(),
        "OWNER".to_string(),
        "DESCRIPTION".to_string(),
    ]];
    let mut perm_rows: Vec<Vec<[String; 3]>> = vec![Vec::new()];
    for g in groups {
        group_rows.push([g.name.clone(), g.owner.clone(), g.description.clone()]);
        perm_rows.push(
            g.permissions
                .iter()
                .map(|p| match p {
                    PermissionView::Cidr {
                        protocol,
                        from,
                        to,
                        cidr,
                    } => [
                        protocol.clone(),
                        ports_text(protocol, *from, *to),
                        cidr.clone(),
                    ],
                    PermissionView::AllFromGroup { owner, group } => {
                        ["all".into(), "all".into(), format!("group {owner}/{group}")]
                    }
                    PermissionView::Pair {
                        protocol,
                        from,
                        to,
                        owner,
                        group,
                    } => [
                        protocol.clone(),
                        ports_text(protocol, *from, *to),
                        format!("group {owner}/{group}"),
                    ],
                })
                .collect(),
        );
    }
    let widths = |rows: &mut dyn Iterator<Item = &[String; 3]>| {
        rows.fold([0usize; 3], |mut w, r| {
            for (w, c) in w.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
            w
        })
    };
    let gw = widths(&mut group_rows.iter());
    let pw = widths(&mut perm_rows.iter().flatten());
    let line = |indent: &str, w: &[usize; 3], r: &[String; 3]| {
        format!(
            "{indent}{:<w0$}  {:<w1$}  {}",
            r[0],
            r[1],
            r[2],
            w0 = w[0],
            w1 = w[1]
        )
        .trim_end()
        .to_string()
            + "\n"
    };
    let mut out = String::new();
    for (g, perms) in group_rows.iter().zip(&perm_rows) {
        out += &line("", &gw, g);
        for p in perms {
            out += &line("    ", &pw, p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_read_naturally() {
        assert_eq!(ports_text("tcp", 22, 22), "22");
        assert_eq!(ports_text("udp", 0, 65535), "0-65535");
        assert_eq!(ports_text("icmp", -1, -1), "all types");
        assert_eq!(ports_text("icmp", 8, -1), "type 8");
        assert_eq!(ports_text("icmpv6", 128, 0), "type 128 code 0");
    }

    #[test]
    fn describe_table_is_aligned() {
        let groups = vec![
            GroupView {
                owner: "123456789012".into(),
                name: "web".into(),
                description: "Web servers".into(),
                permissions: vec![
                    PermissionView::Cidr {
                        protocol: "tcp".into(),
                        from: 80,
                        to: 81,
                        cidr: "0.0.0.0/0".into(),
                    },
                    PermissionView::AllFromGroup {
                        owner: "123456789012".into(),
                        group: "lb".into(),
                    },
                ],
            },
            GroupView {
                owner: "123456789012".into(),
                name: "database".into(),
                description: "".into(),
                permissions: vec![],
            },
        ];
        assert_eq!(
            groups_table(&groups),
            "GROUP     OWNER         DESCRIPTION\n\
             web       123456789012  Web servers\n    \
             tcp  80-81  0.0.0.0/0\n    \
             all  all    group 123456789012/lb\n\
             database  123456789012\n"
        );
        assert_eq!(groups_table(&[]), "no security groups\n");
    }

    fn cidr(protocol: &str, from: i32, to: i32, cidr: &str) -> PermissionView {
        PermissionView::Cidr {
            protocol: protocol.into(),
            from,
            to,
            cidr: cidr.into(),
        }
    }

    #[test]
    fn permissions_read_as_one_line() {
        assert_eq!(
            permission_text(&cidr("tcp", 80, 80, "0.0.0.0/0")),
            "tcp 80 from 0.0.0.0/0"
        );
        assert_eq!(
            permission_text(&cidr("icmp", 8, -1, "::/0")),
            "icmp type 8 from ::/0"
        );
        assert_eq!(
            permission_text(&PermissionView::AllFromGroup {
                owner: "123456789012".into(),
                group: "lb".into()
            }),
            "all traffic from group 123456789012/lb"
        );
        assert_eq!(
            permission_text(&PermissionView::Pair {
                protocol: "udp".into(),
                from: 0,
                to: 65535,
                owner: "123456789012".into(),
                group: "lb".into()
            }),
            "udp 0-65535 from group 123456789012/lb"
        );
    }

    #[test]
    fn overlaps_say_how_much_and_where() {
        let mut o = OverlapView {
            owner: "123456789012".into(),
            group: "web".into(),
            full: true,
            permission: cidr("tcp", 0, 1023, "0.0.0.0/0"),
            instances: vec!["i-1".into(), "i-2".into()],
        };
        assert_eq!(
            overlap_text(&o),
            "still admitted fully by web: tcp 0-1023 from 0.0.0.0/0 (instances i-1, i-2)"
        );
        o.full = false;
        o.instances.clear();
        assert_eq!(
            overlap_text(&o),
            "still admitted partly by web: tcp 0-1023 from 0.0.0.0/0"
        );
    }

    #[test]
    fn explanations_name_the_accepting_permission_first() {
        use crate::client::AdmitView;
        let admit = |group: &str, permission| AdmitView {
            owner: "123456789012".into(),
            group: group.into(),
            permission,
        };
        let mut e = ExplanationView {
            instance: "i-1".into(),
            interface: "tap1".into(),
            admitted: true,
            admitted_by: vec![
                admit("web", cidr("tcp", 80, 80, "0.0.0.0/0")),
                admit("db", cidr("tcp", 0, 65535, "10.0.0.0/8")),
            ],
        };
        assert_eq!(
            explanation_text(&e),
            "admitted by web: tcp 80 from 0.0.0.0/0\n  \
             also admitted by db: tcp 0-65535 from 10.0.0.0/8\n"
        );
        e.admitted = false;
        e.admitted_by.clear();
        assert_eq!(
            explanation_text(&e),
            "not admitted: no permission of the groups of i-1 (on tap1) admits it\n"
        );
    }

    #[test]
    fn status_is_aligned() {
        let s = StatusView {
            generation: 42,
            groups: 3,
            permissions: 7,
            instances: 2,
            remote_members: 5,
            rules: 31,
            set_elements: 9,
            last_commit_actions: 4,
            last_commit_ops: 12,
            last_commit_micros: 2500,
            last_store_micros: 1800,
            last_kernel_micros: 65,
            table: "secgroupd".into(),
            mode: "forward".into(),
            established_on_revoke: "flush".into(),
        };
        assert_eq!(
            status_table(&s),
            "generation             42\n\
             groups                 3\n\
             permissions            7\n\
             instances              2\n\
             remote members         5\n\
             rules                  31\n\
             set elements           9\n\
             last commit actions    4\n\
             last commit ops        12\n\
             last commit            2.500 ms\n\
             last store write       1.800 ms\n\
             last kernel batch      0.065 ms\n\
             table                  secgroupd\n\
             mode                   forward\n\
             established on revoke  flush\n"
        );
    }
}

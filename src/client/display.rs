//! Describe results as people read them: aligned text, ports spelled out.

use super::{GroupView, PermissionView};

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
}

//! One permission element (`ipPermissions/item` of Describe, `ipPermission` of overlaps
//! and explanations) read back into [`PermissionView`]s.

use super::response::PermissionView;
use super::xml::Element;

/// Every permission an element carries: one per `groups/item` and per `ipRanges/item`,
/// with the element's protocol and ports. Describe's group-pair triples come back as three
/// [`PermissionView::Pair`]s (the caller folds them).
pub(crate) fn entries(item: &Element) -> Result<Vec<PermissionView>, String> {
    let protocol = item.child_text("ipProtocol").unwrap_or("").to_string();
    let port = |name: &str| {
        let s = item.child_text(name).unwrap_or("");
        s.parse::<i32>()
            .map_err(|_| format!("{name} {s:?} is not an integer"))
    };
    let (from, to) = (port("fromPort")?, port("toPort")?);
    let mut out = Vec::new();
    for g in item.items("groups") {
        out.push(PermissionView::Pair {
            protocol: protocol.clone(),
            from,
            to,
            owner: g.child_text("userId").unwrap_or("").to_string(),
            group: g.child_text("groupName").unwrap_or("").to_string(),
        });
    }
    for r in item.items("ipRanges") {
        out.push(PermissionView::Cidr {
            protocol: protocol.clone(),
            from,
            to,
            cidr: r.child_text("cidrIp").unwrap_or("").to_string(),
        });
    }
    Ok(out)
}

/// The one permission of an `ipPermission` element. A group pair is written there as
/// protocol `all` (one element, not Describe's three), read as
/// [`PermissionView::AllFromGroup`].
pub(crate) fn single(el: &Element) -> Result<PermissionView, String> {
    let mut found = entries(el)?;
    if found.len() != 1 {
        return Err(format!(
            "<{}> holds {} permissions, not one",
            el.name,
            found.len()
        ));
    }
    Ok(match found.remove(0) {
        PermissionView::Pair {
            protocol,
            owner,
            group,
            ..
        } if protocol == "all" => PermissionView::AllFromGroup { owner, group },
        other => other,
    })
}

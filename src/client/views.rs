//! The answers of RevokeSecurityGroupIngress (overlaps), GetStatus and ExplainPacket, read
//! back from XML into plain data. Parsing is strict about what the server always writes
//! (a missing figure or a malformed boolean is an error, never a silent zero), and ignores
//! elements it does not know, so that a newer daemon can add some.

use super::permission;
use super::response::PermissionView;
use super::xml::Element;

/// A permission that still admits some of the traffic of a revoked one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlapView {
    pub owner: String,
    pub group: String,
    /// Whether it admits all of the revoked permission's traffic, or only part of it.
    pub full: bool,
    pub permission: PermissionView,
    /// Instances of the revoked group that are members of `group` too.
    pub instances: Vec<String>,
}

/// The daemon's figures, as GetStatus reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusView {
    pub generation: u64,
    pub groups: u64,
    pub permissions: u64,
    pub instances: u64,
    pub remote_members: u64,
    pub rules: u64,
    pub set_elements: u64,
    pub last_commit_actions: u64,
    pub last_commit_ops: u64,
    pub last_commit_micros: u64,
    pub last_store_micros: u64,
    pub last_kernel_micros: u64,
    pub table: String,
    pub mode: String,
    pub established_on_revoke: String,
}

/// Which permissions admit a probe packet, as ExplainPacket reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplanationView {
    pub instance: String,
    pub interface: String,
    pub admitted: bool,
    /// In the kernel's order: the first one accepts the packet.
    pub admitted_by: Vec<AdmitView>,
}

/// A permission of one of the instance's groups that admits the probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmitView {
    pub owner: String,
    pub group: String,
    pub permission: PermissionView,
}

/// `overlappingPermissions` of a revoke answer (empty if absent).
pub(crate) fn overlaps(root: &Element) -> Result<Vec<OverlapView>, String> {
    root.items("overlappingPermissions")
        .map(|item| {
            Ok(OverlapView {
                owner: required(item, "ownerId")?.to_string(),
                group: required(item, "groupName")?.to_string(),
                full: boolean(item, "full")?,
                permission: ip_permission(item)?,
                instances: item
                    .items("instancesSet")
                    .map(|i| required(i, "instanceId").map(str::to_string))
                    .collect::<Result<_, _>>()?,
            })
        })
        .collect()
}

/// A GetStatus answer.
pub(crate) fn status(root: &Element) -> Result<StatusView, String> {
    let n = |name: &str| -> Result<u64, String> {
        let s = required(root, name)?;
        s.parse()
            .map_err(|_| format!("<{name}> {s:?} is not a count"))
    };
    let t = |name: &str| required(root, name).map(str::to_string);
    Ok(StatusView {
        generation: n("generation")?,
        groups: n("groups")?,
        permissions: n("permissions")?,
        instances: n("instances")?,
        remote_members: n("remoteMembers")?,
        rules: n("rules")?,
        set_elements: n("setElements")?,
        last_commit_actions: n("lastCommitActions")?,
        last_commit_ops: n("lastCommitOps")?,
        last_commit_micros: n("lastCommitMicros")?,
        last_store_micros: n("lastStoreMicros")?,
        last_kernel_micros: n("lastKernelMicros")?,
        table: t("table")?,
        mode: t("mode")?,
        established_on_revoke: t("establishedOnRevoke")?,
    })
}

/// An ExplainPacket answer.
pub(crate) fn explanation(root: &Element) -> Result<ExplanationView, String> {
    let admitted_by: Vec<AdmitView> = root
        .items("admittedBy")
        .map(|item| {
            Ok(AdmitView {
                owner: required(item, "ownerId")?.to_string(),
                group: required(item, "groupName")?.to_string(),
                permission: ip_permission(item)?,
            })
        })
        .collect::<Result<_, String>>()?;
    let admitted = boolean(root, "admitted")?;
    if admitted == admitted_by.is_empty() {
        return Err(format!(
            "<admitted>{admitted}</admitted> with {} admitting permissions",
            admitted_by.len()
        ));
    }
    Ok(ExplanationView {
        instance: required(root, "instanceId")?.to_string(),
        interface: required(root, "interface")?.to_string(),
        admitted,
        admitted_by,
    })
}

fn ip_permission(item: &Element) -> Result<PermissionView, String> {
    let el = item
        .child("ipPermission")
        .ok_or("an item without <ipPermission>")?;
    permission::single(el)
}

fn required<'a>(el: &'a Element, name: &str) -> Result<&'a str, String> {
    el.child_text(name)
        .ok_or_else(|| format!("<{}> has no <{name}>", el.name))
}

fn boolean(el: &Element, name: &str) -> Result<bool, String> {
    match required(el, name)? {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!("<{name}> {other:?} is neither true nor false")),
    }
}

#[cfg(test)]
mod tests;

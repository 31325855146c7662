//! Configuration reload (SIGHUP): re-read the file, validate it, apply what can change
//! while running, and say what needs a restart.
//!
//! Live: `socket_group`, `socket_mode` (applied to the socket file at once), `admin_group`,
//! `reader_group` (applied to every request decided from then on, on open connections
//! too). Everything else shapes state that was built at start (the table and its layout,
//! the store, the listening socket, the reconciler's window, the server's default owner)
//! and needs a restart; a reload that changes it is logged and otherwise ignored. A file
//! that does not validate changes nothing.

use crate::config::{Config, ConfigError};
use crate::control::{Access, AccessPolicy, apply_socket_permissions};
use std::path::{Path, PathBuf};

/// Why a reload or the initial access set-up failed.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("key `{key}`: {message}")]
    Group { key: &'static str, message: String },
    #[error("control socket permissions: {0}")]
    Socket(#[from] std::io::Error),
}

/// Applies the access keys of `config`: the socket file's group and mode, and the policy.
/// The socket is changed first, so a failure leaves the policy as it was.
pub fn apply_access(config: &Config, access: &Access) -> Result<(), ReloadError> {
    let ids = config
        .group_ids()
        .map_err(|(key, message)| ReloadError::Group { key, message })?;
    apply_socket_permissions(&config.socket, ids.socket, config.socket_mode.0)?;
    access.set(AccessPolicy::with_groups(ids.admin, ids.reader));
    Ok(())
}

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Keys whose new value is in force.
    pub applied: Vec<&'static str>,
    /// Keys whose new value waits for a restart.
    pub needs_restart: Vec<&'static str>,
}

/// The configuration in force, and what a reload changes.
pub struct LiveConfig {
    path: PathBuf,
    current: Config,
    access: Access,
}

impl LiveConfig {
    /// `current` must already be applied (see [`apply_access`]).
    pub fn new(path: &Path, current: Config, access: Access) -> Self {
        LiveConfig {
            path: path.to_owned(),
            current,
            access,
        }
    }

    pub fn current(&self) -> &Config {
        &self.current
    }

    /// Re-reads the file. On error nothing changed and the old configuration stays.
    pub fn reload(&mut self) -> Result<ReloadReport, ReloadError> {
        let new = Config::load(&self.path)?;
        let report = diff(&self.current, &new);
        if !report.applied.is_empty() {
            let mut next = self.current.clone();
            next.socket_group = new.socket_group.clone();
            next.socket_mode = new.socket_mode;
            next.admin_group = new.admin_group.clone();
            next.reader_group = new.reader_group.clone();
            apply_access(&next, &self.access)?;
            self.current = next;
        }
        Ok(report)
    }
}

/// Which keys differ, split into live and restart-only.
pub fn diff(old: &Config, new: &Config) -> ReloadReport {
    let mut r = ReloadReport::default();
    let mut check = |key, changed: bool, live: bool| {
        if changed {
            if live {
                r.applied.push(key);
            } else {
                r.needs_restart.push(key);
            }
        }
    };
    check("socket_group", old.socket_group != new.socket_group, true);
    check("socket_mode", old.socket_mode != new.socket_mode, true);
    check("admin_group", old.admin_group != new.admin_group, true);
    check("reader_group", old.reader_group != new.reader_group, true);
    check("socket", old.socket != new.socket, false);
    check("state_dir", old.state_dir != new.state_dir, false);
    check("table", old.table != new.table, false);
    check("owner_id", old.owner_id != new.owner_id, false);
    check(
        "propagation_delay_ms",
        old.propagation_delay_ms != new.propagation_delay_ms,
        false,
    );
    check("mode", old.mode != new.mode, false);
    check(
        "established_on_revoke",
        old.established_on_revoke != new.established_on_revoke,
        false,
    );
    check("ct_mark_mask", old.ct_mark_mask != new.ct_mark_mask, false);
    check(
        "packet_mark_mask",
        old.packet_mark_mask != new.packet_mark_mask,
        false,
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SocketMode;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn diff_splits_live_and_restart_keys() {
        let old = Config::default();
        let mut new = old.clone();
        new.socket_mode = SocketMode(0o660);
        new.reader_group = Some("root".into());
        new.table = "other".into();
        new.propagation_delay_ms = 50;
        let r = diff(&old, &new);
        assert_eq!(r.applied, ["socket_mode", "reader_group"]);
        assert_eq!(r.needs_restart, ["table", "propagation_delay_ms"]);
        assert_eq!(diff(&old, &old), ReloadReport::default());
    }

    #[tokio::test]
    async fn reload_applies_live_keys_and_keeps_the_old_config_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("c.sock");
        let _l = crate::control::bind_control_socket(&sock).unwrap();
        let file = dir.path().join("c.toml");
        let base = format!("socket = {:?}\n", sock.to_str().unwrap());
        std::fs::write(&file, &base).unwrap();
        let cfg = Config::load(&file).unwrap();
        let access = Access::default();
        apply_access(&cfg, &access).unwrap();
        let mut live = LiveConfig::new(&file, cfg, access.clone());
        let mode = || std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(), 0o600);

        std::fs::write(
            &file,
            format!("{base}socket_mode = \"0660\"\nadmin_group = \"root\"\ntable = \"t2\"\n"),
        )
        .unwrap();
        let r = live.reload().unwrap();
        assert_eq!(r.applied, ["socket_mode", "admin_group"]);
        assert_eq!(r.needs_restart, ["table"]);
        assert_eq!(mode(), 0o660);
        assert_eq!(access.get().admin_gid, Some(0));
        assert_eq!(
            live.current().table,
            "secgroupd",
            "restart-only keys keep their value"
        );

        std::fs::write(&file, format!("{base}socket_mode = \"0666\"\nbogus = 1\n")).unwrap();
        let e = live.reload().unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
        assert_eq!(mode(), 0o660);
        assert_eq!(live.current().socket_mode, SocketMode(0o660));
    }
}

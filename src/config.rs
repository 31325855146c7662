//! The daemon's configuration file (TOML). Unknown keys and bad values are errors that
//! name the key, so a typo never silently falls back to a default.

use crate::model::OwnerId;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Everything in `secgroupd.toml`. See `config/secgroupd.toml` for the documented example.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Control socket path.
    pub socket: PathBuf,
    /// Directory of the durable state store.
    pub state_dir: PathBuf,
    /// Name of secgroupd's own nftables table (family inet).
    pub table: String,
    /// Account id used when a request names none.
    pub owner_id: OwnerId,
    /// Coalescing window for kernel updates, in milliseconds.
    pub propagation_delay_ms: u64,
    /// How instance interfaces are attached: routed taps/veths, or ports of a bridge.
    pub mode: Mode,
    /// What happens to established connections when the permission that admitted them
    /// goes away.
    pub established_on_revoke: EstablishedOnRevoke,
    /// Bits of the conntrack mark secgroupd may use to tag connections with the grant
    /// that admitted them (`cut` mode). A contiguous run of bits; other software keeps
    /// the rest.
    pub ct_mark_mask: Mask,
    /// Bits of the packet mark secgroupd may use in bridged mode to tell the inet chains
    /// which bridge port a packet leaves by. A contiguous run of bits.
    pub packet_mark_mask: Mask,
    /// Group of the control socket file (unset: root's group).
    pub socket_group: Option<String>,
    /// Mode of the control socket file, an octal string such as `"0660"`.
    pub socket_mode: SocketMode,
    /// Members may perform every action (unset: root only).
    pub admin_group: Option<String>,
    /// Members may describe, get the status, explain packets and read metrics (unset:
    /// root only).
    pub reader_group: Option<String>,
}

/// A file mode written as an octal string, e.g. `"0660"`; permission bits only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct SocketMode(pub u32);

impl TryFrom<String> for SocketMode {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let bad =
            || format!("{s:?} is not an octal mode from \"0000\" to \"0777\" such as \"0660\"");
        if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return Err(bad());
        }
        let m = u32::from_str_radix(&s, 8).map_err(|_| bad())?;
        if m > 0o777 {
            return Err(bad());
        }
        Ok(SocketMode(m))
    }
}

/// `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Each instance interface is a routed tap or veth of the host.
    Routed,
    /// Instance interfaces are ports of a Linux bridge (br_netfilter must be on).
    Bridged,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Routed => "routed",
            Mode::Bridged => "bridged",
        }
    }
}

/// `established_on_revoke`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EstablishedOnRevoke {
    /// Connections admitted only by a revoked permission stop at once, both ways.
    Cut,
    /// AWS's tracked-connection semantics: existing connections continue.
    Keep,
}

impl EstablishedOnRevoke {
    pub fn as_str(self) -> &'static str {
        match self {
            EstablishedOnRevoke::Cut => "cut",
            EstablishedOnRevoke::Keep => "keep",
        }
    }
}

/// A bit mask written as a hexadecimal string, e.g. `"0x00ffffff"`: a contiguous run of
/// at least 8 set bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Mask(pub u32);

impl Mask {
    /// Number of the lowest set bit.
    pub fn shift(self) -> u32 {
        self.0.trailing_zeros()
    }
    /// Largest value that fits (values are shifted into place).
    pub fn max_value(self) -> u32 {
        self.0 >> self.shift()
    }
}

impl TryFrom<String> for Mask {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let hex = s
            .strip_prefix("0x")
            .ok_or_else(|| format!("{s:?} is not a hexadecimal mask such as \"0x00ffffff\""))?;
        let m = u32::from_str_radix(hex, 16)
            .map_err(|_| format!("{s:?} is not a hexadecimal mask such as \"0x00ffffff\""))?;
        let shifted = m.checked_shr(m.trailing_zeros()).unwrap_or(0);
        if m == 0 || (shifted & shifted.wrapping_add(1)) != 0 {
            return Err(format!("{s:?} is not a contiguous run of bits"));
        }
        if m.count_ones() < 8 {
            return Err(format!("{s:?} has fewer than 8 bits"));
        }
        Ok(Mask(m))
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            socket: PathBuf::from("/run/secgroupd/control.sock"),
            state_dir: PathBuf::from("/var/lib/secgroupd"),
            table: "secgroupd".to_string(),
            owner_id: OwnerId::parse("owner_id", "000000000000").expect("valid default"),
            propagation_delay_ms: 10,
            mode: Mode::Routed,
            established_on_revoke: EstablishedOnRevoke::Cut,
            ct_mark_mask: Mask(0x00ff_ffff),
            packet_mark_mask: Mask(0x0fff_0000),
            socket_group: None,
            socket_mode: SocketMode(0o600),
            admin_group: None,
            reader_group: None,
        }
    }
}

/// A configuration problem, with the key it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
}

/// Longest path that fits `sockaddr_un.sun_path` with its NUL.
const MAX_SOCKET_PATH: usize = 107;
/// Longest coalescing window accepted: beyond this a revoke would wait noticeably.
pub const MAX_PROPAGATION_DELAY_MS: u64 = 1000;

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(path, &text)
    }

    /// Parses and validates configuration text; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            message,
        };
        let sock = self.socket.as_os_str().len();
        if !self.socket.is_absolute() || sock > MAX_SOCKET_PATH {
            return Err(invalid(
                "socket",
                format!("must be an absolute path of at most {MAX_SOCKET_PATH} bytes"),
            ));
        }
        if !self.state_dir.is_absolute() {
            return Err(invalid("state_dir", "must be an absolute path".into()));
        }
        if !valid_table_name(&self.table) {
            return Err(invalid(
                "table",
                format!(
                    "{:?} is not a table name: 1 to 64 characters, a letter first, then \
                     letters, digits, '_' or '-'",
                    self.table
                ),
            ));
        }
        if self.propagation_delay_ms > MAX_PROPAGATION_DELAY_MS {
            return Err(invalid(
                "propagation_delay_ms",
                format!("must be at most {MAX_PROPAGATION_DELAY_MS}"),
            ));
        }
        for (key, name) in [
            ("socket_group", &self.socket_group),
            ("admin_group", &self.admin_group),
            ("reader_group", &self.reader_group),
        ] {
            if let Some(name) = name {
                resolve_group(name).map_err(|m| invalid(key, m))?;
            }
        }
        Ok(())
    }

    /// The gids of `socket_group`, `admin_group` and `reader_group` (None where unset),
    /// looked up now: group ids can change between loading and use.
    pub fn group_ids(&self) -> Result<GroupIds, (&'static str, String)> {
        let get = |key, name: &Option<String>| match name {
            None => Ok(None),
            Some(n) => resolve_group(n).map(Some).map_err(|m| (key, m)),
        };
        Ok(GroupIds {
            socket: get("socket_group", &self.socket_group)?,
            admin: get("admin_group", &self.admin_group)?,
            reader: get("reader_group", &self.reader_group)?,
        })
    }
}

/// Resolved group ids of the access keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupIds {
    pub socket: Option<u32>,
    pub admin: Option<u32>,
    pub reader: Option<u32>,
}

/// A group name to its gid, or why not.
fn resolve_group(name: &str) -> Result<u32, String> {
    match crate::control::access::lookup_group(name) {
        Ok(Some(gid)) => Ok(gid),
        Ok(None) => Err(format!("there is no group named {name:?}")),
        Err(e) => Err(format!("cannot look up the group {name:?}: {e}")),
    }
}

/// Table names that nft can list and re-read without quoting.
fn valid_table_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && s.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("test.toml"), text)
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn shipped_example_is_valid_and_matches_defaults() {
        let text = include_str!("../config/secgroupd.toml");
        assert_eq!(parse(text).unwrap(), Config::default());
    }

    #[test]
    fn all_keys() {
        let c = parse(
            r#"
            socket = "/tmp/s.sock"
            state_dir = "/tmp/state"
            table = "sg_test"
            owner_id = "123456789012"
            propagation_delay_ms = 0
            mode = "bridged"
            established_on_revoke = "keep"
            ct_mark_mask = "0xffff0000"
            packet_mark_mask = "0x000fff00"
            socket_group = "root"
            socket_mode = "0660"
            admin_group = "root"
            reader_group = "root"
            "#,
        )
        .unwrap();
        assert_eq!(c.table, "sg_test");
        assert_eq!(c.owner_id.as_str(), "123456789012");
        assert_eq!(c.propagation_delay_ms, 0);
        assert_eq!(c.mode, Mode::Bridged);
        assert_eq!(c.established_on_revoke, EstablishedOnRevoke::Keep);
        assert_eq!(
            (c.ct_mark_mask.shift(), c.ct_mark_mask.max_value()),
            (16, 0xffff)
        );
        assert_eq!(c.packet_mark_mask.0, 0x000f_ff00);
        assert_eq!(c.socket_mode, SocketMode(0o660));
        let ids = c.group_ids().unwrap();
        assert_eq!(
            (ids.socket, ids.admin, ids.reader),
            (Some(0), Some(0), Some(0))
        );
        assert_eq!(parse("").unwrap().socket_mode, SocketMode(0o600));
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("sockett = \"/x\"", "sockett"),
            ("owner_id = \"12\"", "owner_id"),
            ("propagation_delay_ms = -1", "propagation_delay_ms"),
            ("propagation_delay_ms = 5000", "propagation_delay_ms"),
            ("propagation_delay_ms = \"10\"", "propagation_delay_ms"),
            ("table = \"my table\"", "table"),
            ("table = \"\"", "table"),
            ("socket = \"relative.sock\"", "socket"),
            ("state_dir = \"rel\"", "state_dir"),
            ("socket = 3", "socket"),
            ("mode = \"switched\"", "mode"),
            ("established_on_revoke = \"drop\"", "established_on_revoke"),
            ("ct_mark_mask = \"0xf0f0f0f0\"", "ct_mark_mask"),
            ("ct_mark_mask = \"0x0f\"", "ct_mark_mask"),
            ("ct_mark_mask = \"ffff\"", "ct_mark_mask"),
            ("packet_mark_mask = \"0x0\"", "packet_mark_mask"),
            ("socket_mode = \"0999\"", "socket_mode"),
            ("socket_mode = \"1777\"", "socket_mode"),
            ("socket_mode = \"\"", "socket_mode"),
            ("socket_mode = 660", "socket_mode"),
            ("socket_group = \"no-such-group-sgd\"", "socket_group"),
            ("admin_group = \"no-such-group-sgd\"", "admin_group"),
            ("reader_group = \"no-such-group-sgd\"", "reader_group"),
            ("admin_group = 4", "admin_group"),
        ];
        for (text, key) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn broken_toml_is_an_error() {
        assert!(parse("socket = ").is_err());
        assert!(parse("[section]\nx=1").is_err());
    }
}

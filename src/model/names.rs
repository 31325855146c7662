//! Newtypes for the names a request carries. Each is validated once, at the boundary,
//! so nothing unchecked reaches the store or the kernel.

use super::error::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};
use std::fmt;

/// True for the printable ASCII characters `' '..='~'`.
fn printable_ascii(s: &str) -> bool {
    s.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// Rejects values with leading or trailing whitespace: they are almost always a client bug.
fn no_stray_whitespace(param: &str, s: &str) -> Result<(), ApiError> {
    if s.trim() != s {
        return Err(ApiError::invalid(
            param,
            "leading or trailing whitespace is not allowed",
        ));
    }
    Ok(())
}

/// A 12-digit AWS account id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OwnerId(String);

impl OwnerId {
    pub fn parse(param: &str, s: &str) -> Result<Self, ApiError> {
        if s.len() != 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::invalid(
                param,
                format!("{s:?} is not a 12-digit account id"),
            ));
        }
        Ok(OwnerId(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OwnerId {
    type Error = ApiError;
    fn try_from(s: String) -> Result<Self, ApiError> {
        OwnerId::parse("OwnerId", &s)
    }
}
impl From<OwnerId> for String {
    fn from(o: OwnerId) -> String {
        o.0
    }
}
impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A security group name: 1–255 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GroupName(String);

impl GroupName {
    pub fn parse(param: &str, s: &str) -> Result<Self, ApiError> {
        if s.is_empty() || s.len() > 255 {
            return Err(ApiError::invalid(
                param,
                format!(
                    "a group name has 1 to 255 characters, this one has {}",
                    s.len()
                ),
            ));
        }
        if !printable_ascii(s) {
            return Err(ApiError::invalid(
                param,
                "a group name has printable ASCII characters only",
            ));
        }
        no_stray_whitespace(param, s)?;
        Ok(GroupName(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for GroupName {
    type Error = ApiError;
    fn try_from(s: String) -> Result<Self, ApiError> {
        GroupName::parse("GroupName", &s)
    }
}
impl From<GroupName> for String {
    fn from(o: GroupName) -> String {
        o.0
    }
}
impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A group description: up to 255 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GroupDescription(String);

impl GroupDescription {
    pub fn parse(param: &str, s: &str) -> Result<Self, ApiError> {
        if s.chars().count() > 255 {
            return Err(ApiError::invalid(
                param,
                "a description has at most 255 characters",
            ));
        }
        if s.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                param,
                "control characters are not allowed in a description",
            ));
        }
        Ok(GroupDescription(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for GroupDescription {
    type Error = ApiError;
    fn try_from(s: String) -> Result<Self, ApiError> {
        GroupDescription::parse("GroupDescription", &s)
    }
}
impl From<GroupDescription> for String {
    fn from(o: GroupDescription) -> String {
        o.0
    }
}

/// Groups are keyed by owner and name: two accounts may both have a group "web".
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupKey {
    pub owner: OwnerId,
    pub name: GroupName,
}

impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// An instance id: 1–255 printable ASCII characters (no whitespace at either end).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstanceId(String);

impl InstanceId {
    pub fn parse(param: &str, s: &str) -> Result<Self, ApiError> {
        let malformed = |why: &str| {
            ApiError::new(
                ErrorCode::InstanceMalformed,
                format!("Invalid id for parameter {param}: {why}"),
            )
        };
        if s.is_empty() || s.len() > 255 {
            return Err(malformed("an instance id has 1 to 255 characters"));
        }
        if !printable_ascii(s) {
            return Err(malformed(
                "an instance id has printable ASCII characters only",
            ));
        }
        if s.trim() != s {
            return Err(malformed("leading or trailing whitespace is not allowed"));
        }
        Ok(InstanceId(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for InstanceId {
    type Error = ApiError;
    fn try_from(s: String) -> Result<Self, ApiError> {
        InstanceId::parse("InstanceId", &s)
    }
}
impl From<InstanceId> for String {
    fn from(o: InstanceId) -> String {
        o.0
    }
}
impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Linux interface name as the kernel accepts it: 1–15 bytes, no `/`, `:` or whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InterfaceName(String);

impl InterfaceName {
    /// IFNAMSIZ is 16 including the terminating NUL.
    pub const MAX_LEN: usize = 15;

    pub fn parse(param: &str, s: &str) -> Result<Self, ApiError> {
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return Err(ApiError::invalid(
                param,
                format!(
                    "an interface name has 1 to {} bytes, this one has {}",
                    Self::MAX_LEN,
                    s.len()
                ),
            ));
        }
        if s == "." || s == ".." {
            return Err(ApiError::invalid(
                param,
                format!("{s:?} is not an interface name"),
            ));
        }
        if let Some(c) = s
            .chars()
            .find(|c| *c == '/' || *c == ':' || c.is_whitespace() || !c.is_ascii_graphic())
        {
            return Err(ApiError::invalid(
                param,
                format!("{c:?} is not allowed in an interface name"),
            ));
        }
        Ok(InterfaceName(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for InterfaceName {
    type Error = ApiError;
    fn try_from(s: String) -> Result<Self, ApiError> {
        InterfaceName::parse("Interface", &s)
    }
}
impl From<InterfaceName> for String {
    fn from(o: InterfaceName) -> String {
        o.0
    }
}
impl fmt::Display for InterfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_id_is_twelve_digits() {
        assert!(OwnerId::parse("OwnerId", "123456789012").is_ok());
        for bad in [
            "12345678901",
            "1234567890123",
            "12345678901a",
            "",
            " 23456789012",
        ] {
            let e = OwnerId::parse("OwnerId", bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidParameterValue, "{bad:?}");
            assert!(e.message.contains("OwnerId"));
        }
    }

    #[test]
    fn group_name_bounds() {
        assert!(GroupName::parse("GroupName", "web").is_ok());
        assert!(GroupName::parse("GroupName", &"a".repeat(255)).is_ok());
        assert!(GroupName::parse("GroupName", &"a".repeat(256)).is_err());
        assert!(GroupName::parse("GroupName", "").is_err());
        assert!(GroupName::parse("GroupName", "caf\u{e9}").is_err());
        assert!(GroupName::parse("GroupName", "tab\there").is_err());
        assert!(GroupName::parse("GroupName", " web").is_err());
        assert!(GroupName::parse("GroupName", "my web").is_ok());
    }

    #[test]
    fn instance_id_errors_are_malformed() {
        assert!(InstanceId::parse("InstanceId", "i-1234abcd").is_ok());
        for bad in ["", "i-\u{1}", "\u{e9}", " i-1"] {
            let e = InstanceId::parse("InstanceId", bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InstanceMalformed, "{bad:?}");
        }
        assert!(InstanceId::parse("InstanceId", &"i".repeat(256)).is_err());
    }

    #[test]
    fn interface_names_follow_the_kernel() {
        for good in ["tap0", "vnet12", "veth-abc.1", "a", "123456789012345"] {
            assert!(InterfaceName::parse("Interface", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1234567890123456",
            "a/b",
            "a:b",
            "a b",
            "tap\t",
            ".",
            "..",
            "t\u{e9}",
        ] {
            assert!(InterfaceName::parse("Interface", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn description_rejects_control_characters() {
        assert!(GroupDescription::parse("GroupDescription", "Web servers").is_ok());
        assert!(GroupDescription::parse("GroupDescription", "").is_ok());
        assert!(GroupDescription::parse("GroupDescription", "a\nb").is_err());
        assert!(GroupDescription::parse("GroupDescription", &"x".repeat(256)).is_err());
    }
}

//! EC2 error codes and the error value every layer hands back to the caller.

use std::fmt;

/// The EC2 error codes secgroupd answers with. The string form is the public contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    /// A required parameter is absent (or a tuple is incomplete).
    MissingParameter,
    /// A parameter is present but its value is not acceptable.
    InvalidParameterValue,
    /// The action does not know a parameter of this name.
    UnknownParameter,
    /// Parameters of the CIDR kind and of the user/group-pair kind were mixed.
    InvalidParameterCombination,
    /// The `Action` parameter names no action secgroupd implements.
    InvalidAction,
    /// The named security group does not exist.
    GroupNotFound,
    /// A security group with that owner and name already exists.
    GroupDuplicate,
    /// The group cannot be deleted while instances or permissions use it.
    GroupInUse,
    /// Authorize of a permission that is already granted.
    PermissionDuplicate,
    /// Revoke of a permission that was never granted with exactly these values.
    PermissionNotFound,
    /// No registered instance has that id.
    InstanceNotFound,
    /// The instance id is not 1–255 printable ASCII characters.
    InstanceMalformed,
    /// The instance id is registered already with other values.
    InstanceDuplicate,
    /// The caller is not allowed to perform the action.
    UnauthorizedOperation,
    /// The request is too large, too slow, or the daemon is at its connection cap.
    RequestLimitExceeded,
    /// Our fault: the store or the kernel refused a change.
    InternalError,
}

impl ErrorCode {
    /// The EC2 code string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MissingParameter => "MissingParameter",
            ErrorCode::InvalidParameterValue => "InvalidParameterValue",
            ErrorCode::UnknownParameter => "UnknownParameter",
            ErrorCode::InvalidParameterCombination => "InvalidParameterCombination",
            ErrorCode::InvalidAction => "InvalidAction",
            ErrorCode::GroupNotFound => "InvalidGroup.NotFound",
            ErrorCode::GroupDuplicate => "InvalidGroup.Duplicate",
            ErrorCode::GroupInUse => "InvalidGroup.InUse",
            ErrorCode::PermissionDuplicate => "InvalidPermission.Duplicate",
            ErrorCode::PermissionNotFound => "InvalidPermission.NotFound",
            ErrorCode::InstanceNotFound => "InvalidInstanceID.NotFound",
            ErrorCode::InstanceMalformed => "InvalidInstanceID.Malformed",
            ErrorCode::InstanceDuplicate => "InvalidInstanceID.Duplicate",
            ErrorCode::UnauthorizedOperation => "UnauthorizedOperation",
            ErrorCode::RequestLimitExceeded => "RequestLimitExceeded",
            ErrorCode::InternalError => "InternalError",
        }
    }

    /// HTTP status: 400 for the caller's mistakes, 403 for refusals, 500 for ours.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::UnauthorizedOperation => 403,
            ErrorCode::RequestLimitExceeded => 503,
            ErrorCode::InternalError => 500,
            _ => 400,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One EC2 error: a code and a message that says which parameter and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }
    pub fn missing(param: &str) -> Self {
        Self::new(
            ErrorCode::MissingParameter,
            format!("The request must contain the parameter {param}"),
        )
    }
    pub fn invalid(param: &str, why: impl fmt::Display) -> Self {
        Self::new(
            ErrorCode::InvalidParameterValue,
            format!("Invalid value for parameter {param}: {why}"),
        )
    }
    pub fn internal(why: impl fmt::Display) -> Self {
        Self::new(ErrorCode::InternalError, format!("internal error: {why}"))
    }
}

/// All the errors found in one request; never empty. EC2 answers with every one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiErrors(pub Vec<ApiError>);

impl ApiErrors {
    /// The HTTP status of the response: the most severe of its errors.
    pub fn http_status(&self) -> u16 {
        self.0
            .iter()
            .map(|e| e.code.http_status())
            .max()
            .unwrap_or(400)
    }
    /// Codes only, handy in tests.
    pub fn codes(&self) -> Vec<ErrorCode> {
        self.0.iter().map(|e| e.code).collect()
    }
}

impl From<ApiError> for ApiErrors {
    fn from(e: ApiError) -> Self {
        ApiErrors(vec![e])
    }
}

impl fmt::Display for ApiErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiErrors {}

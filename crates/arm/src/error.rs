//! The ARM error envelope: `{"error":{"code","message","target","details"}}`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use recoverite_store::StoreError;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<ErrorBody>,
}

/// An error as ARM reports it: an HTTP status plus the envelope, and any extra
/// headers (401s carry `WWW-Authenticate`). Boxed so `Result`s stay small.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmError(Box<ArmErrorInner>);

#[derive(Debug, Clone, PartialEq)]
pub struct ArmErrorInner {
    pub status: u16,
    pub body: ErrorBody,
    pub headers: Vec<(String, String)>,
}

impl std::ops::Deref for ArmError {
    type Target = ArmErrorInner;
    fn deref(&self) -> &ArmErrorInner {
        &self.0
    }
}

impl std::ops::DerefMut for ArmError {
    fn deref_mut(&mut self) -> &mut ArmErrorInner {
        &mut self.0
    }
}

impl std::fmt::Display for ArmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.status, self.body.code, self.body.message
        )
    }
}

impl std::error::Error for ArmError {}

impl ArmError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> ArmError {
        ArmError::from_body(
            status,
            ErrorBody {
                code: code.to_string(),
                message: message.into(),
                target: None,
                details: Vec::new(),
            },
        )
    }

    pub fn from_body(status: u16, body: ErrorBody) -> ArmError {
        ArmError(Box::new(ArmErrorInner {
            status,
            body,
            headers: Vec::new(),
        }))
    }

    pub fn with_target(mut self, target: impl Into<String>) -> ArmError {
        self.body.target = Some(target.into());
        self
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> ArmError {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn code(&self) -> &str {
        &self.body.code
    }

    pub fn to_json(&self) -> Value {
        json!({ "error": self.body })
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> ArmError {
        ArmError::new(400, code, message)
    }

    pub fn conflict(code: &str, message: impl Into<String>) -> ArmError {
        ArmError::new(409, code, message)
    }

    pub fn internal(message: impl Into<String>) -> ArmError {
        ArmError::new(500, "InternalServerError", message)
    }

    /// 404 for a tracked resource, worded as ARM words it.
    pub fn resource_not_found(
        resource_type: &str,
        name: &str,
        resource_group: Option<&str>,
    ) -> ArmError {
        let msg = match resource_group {
            Some(rg) => format!(
                "The Resource '{resource_type}/{name}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
            ),
            None => format!("The Resource '{resource_type}/{name}' was not found."),
        };
        ArmError::new(404, "ResourceNotFound", msg)
    }

    pub fn resource_group_not_found(rg: &str) -> ArmError {
        ArmError::new(
            404,
            "ResourceGroupNotFound",
            format!("Resource group '{rg}' could not be found."),
        )
    }

    /// The body could not be read as the operation's JSON.
    pub fn invalid_content(detail: impl std::fmt::Display) -> ArmError {
        ArmError::bad_request(
            "InvalidRequestContent",
            format!("The request content was invalid and could not be deserialized: {detail}"),
        )
    }

    pub fn invalid_parameter(target: &str, message: impl Into<String>) -> ArmError {
        ArmError::bad_request("InvalidParameter", message).with_target(target)
    }

    pub fn method_not_allowed(method: &str) -> ArmError {
        ArmError::new(
            405,
            "MethodNotAllowed",
            format!("The requested resource does not support http method '{method}'."),
        )
    }
}

impl From<StoreError> for ArmError {
    fn from(e: StoreError) -> Self {
        tracing::error!("store failure: {e}");
        ArmError::internal(format!(
            "The request failed inside recoverite's state store: {e}"
        ))
    }
}

pub type ArmResult<T> = Result<T, ArmError>;

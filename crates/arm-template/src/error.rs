//! Errors of the template language, each knowing the ARM code it is
//! reported under.

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum TemplateError {
    /// The template itself is wrong: ARM's `InvalidTemplate`.
    #[error("{0}")]
    Invalid(String),
    /// A language expression could not be evaluated.
    #[error("{0}")]
    Expression(String),
    /// A runtime function (`reference`, `list*`) failed: carries the ARM
    /// error of the call it made.
    #[error("{message}")]
    Runtime {
        status: u16,
        code: String,
        message: String,
    },
}

impl TemplateError {
    pub fn invalid(msg: impl Into<String>) -> TemplateError {
        TemplateError::Invalid(msg.into())
    }

    pub fn expr(msg: impl Into<String>) -> TemplateError {
        TemplateError::Expression(msg.into())
    }

    /// The ARM error code this is reported with.
    pub fn code(&self) -> &str {
        match self {
            TemplateError::Invalid(_) | TemplateError::Expression(_) => "InvalidTemplate",
            TemplateError::Runtime { code, .. } => code,
        }
    }
}

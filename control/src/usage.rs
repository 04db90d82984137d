//! Bad input from the user: reported in one line and exit status 2.

/// A user's input was wrong; the message names the field and the value.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl UsageError {
    /// A usage error from anything printable.
    pub fn new(msg: impl std::fmt::Display) -> UsageError {
        UsageError(msg.to_string())
    }
}

/// Converts any displayable error into a [`UsageError`] inside an `anyhow::Error`.
pub fn bad(msg: impl std::fmt::Display) -> anyhow::Error {
    anyhow::Error::new(UsageError::new(msg))
}

//! The edge server's error type: every refusal carries an HTTP status, a short
//! machine-readable code, a JSON pointer to the request field at fault (RFC 6901;
//! empty for the whole body) and a message naming what was wrong.

use serde::Serialize;

/// `POINTER: MESSAGE`, or just the message when the pointer is empty.
fn at(pointer: &str, message: &str) -> String {
    if pointer.is_empty() {
        message.to_string()
    } else {
        format!("{pointer}: {message}")
    }
}

/// What a spent budget had used when a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Spent {
    /// Bytes charged today (UTC).
    pub bytes: u64,
    /// Requests charged today (UTC).
    pub requests: u64,
    /// The daily byte budget (`null`: unlimited).
    pub budget_bytes: Option<u64>,
    /// The daily request budget (`null`: unlimited).
    pub budget_requests: Option<u64>,
    /// Seconds until the budgets reset (next UTC midnight).
    pub resets_in_s: u64,
}

/// Errors from the edge server and its clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EdgeError {
    /// The request body or a field in it is malformed (400).
    #[error("{}", at(pointer, message))]
    BadRequest {
        /// JSON pointer to the field.
        pointer: String,
        /// What is wrong.
        message: String,
    },
    /// Missing or wrong bearer token (401).
    #[error("authorization: a valid `Authorization: Bearer TOKEN` header is required")]
    Unauthorized,
    /// A host off the allowlist or a path outside the data root (403).
    #[error("{}", at(pointer, message))]
    Forbidden {
        /// JSON pointer to the field.
        pointer: String,
        /// What was refused.
        message: String,
    },
    /// The data or route does not exist (404).
    #[error("{}", at(pointer, message))]
    NotFound {
        /// JSON pointer to the field (empty for a route).
        pointer: String,
        /// What was not found.
        message: String,
    },
    /// The route exists but not with this method (405).
    #[error("method: {0}")]
    MethodNotAllowed(String),
    /// More instructions or bytes than the server allows per request (413).
    #[error("{}", at(pointer, message))]
    TooLarge {
        /// JSON pointer to the field.
        pointer: String,
        /// The limit that was exceeded.
        message: String,
    },
    /// A range past the end of the data (416 in origin mode).
    #[error("range: {message}")]
    RangeNotSatisfiable {
        /// The object size, for `Content-Range: bytes */SIZE`.
        size: u64,
        /// What was asked.
        message: String,
    },
    /// An instruction runs past the end of the data (422).
    #[error("{}", at(pointer, message))]
    PastEnd {
        /// JSON pointer to the instruction.
        pointer: String,
        /// Which bytes were asked and how long the data is.
        message: String,
    },
    /// The request is well-formed but cannot be done (422): an object byte no
    /// palette BREF expresses (with its offset), a blob identity out of range.
    #[error("{}", at(pointer, message))]
    Unprocessable {
        /// JSON pointer to the field.
        pointer: String,
        /// What cannot be done.
        message: String,
        /// The first unmatchable byte offset, for `POST /objects/from-palette`.
        offset: Option<u64>,
    },
    /// A daily budget is spent (429).
    #[error("budget: {message}")]
    Budget {
        /// Which budget and how it was spent.
        message: String,
        /// What was spent.
        spent: Spent,
    },
    /// The origin answered wrongly: no Range support, a short body, an error
    /// status, a redirect (502).
    #[error("origin {origin}: {message}")]
    BadGateway {
        /// Scheme, host and port of the origin.
        origin: String,
        /// What it did.
        message: String,
    },
    /// The origin was too slow (504).
    #[error("origin {origin}: {message}")]
    GatewayTimeout {
        /// Scheme, host and port of the origin.
        origin: String,
        /// Which timeout expired.
        message: String,
    },
    /// Anything else (500): a bug or a resource failure.
    #[error("internal: {0}")]
    Internal(String),
}

impl EdgeError {
    /// A 400 at `pointer`.
    pub fn bad(pointer: impl Into<String>, message: impl Into<String>) -> EdgeError {
        EdgeError::BadRequest {
            pointer: pointer.into(),
            message: message.into(),
        }
    }

    /// A 403 at `pointer`.
    pub fn forbidden(pointer: impl Into<String>, message: impl Into<String>) -> EdgeError {
        EdgeError::Forbidden {
            pointer: pointer.into(),
            message: message.into(),
        }
    }

    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            EdgeError::BadRequest { .. } => 400,
            EdgeError::Unauthorized => 401,
            EdgeError::Forbidden { .. } => 403,
            EdgeError::NotFound { .. } => 404,
            EdgeError::MethodNotAllowed(_) => 405,
            EdgeError::TooLarge { .. } => 413,
            EdgeError::RangeNotSatisfiable { .. } => 416,
            EdgeError::PastEnd { .. } => 422,
            EdgeError::Unprocessable { .. } => 422,
            EdgeError::Budget { .. } => 429,
            EdgeError::BadGateway { .. } => 502,
            EdgeError::GatewayTimeout { .. } => 504,
            EdgeError::Internal(_) => 500,
        }
    }

    /// The machine-readable code (`specs/edge-api.md` §5).
    pub fn code(&self) -> &'static str {
        match self {
            EdgeError::BadRequest { .. } => "bad_request",
            EdgeError::Unauthorized => "unauthorized",
            EdgeError::Forbidden { .. } => "forbidden",
            EdgeError::NotFound { .. } => "not_found",
            EdgeError::MethodNotAllowed(_) => "method_not_allowed",
            EdgeError::TooLarge { .. } => "too_large",
            EdgeError::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            EdgeError::PastEnd { .. } => "past_end",
            EdgeError::Unprocessable {
                offset: Some(_), ..
            } => "unmatchable",
            EdgeError::Unprocessable { .. } => "unprocessable",
            EdgeError::Budget { .. } => "budget_spent",
            EdgeError::BadGateway { .. } => "bad_gateway",
            EdgeError::GatewayTimeout { .. } => "gateway_timeout",
            EdgeError::Internal(_) => "internal",
        }
    }

    /// The JSON pointer to the field at fault ("" for the whole request).
    pub fn pointer(&self) -> &str {
        match self {
            EdgeError::BadRequest { pointer, .. }
            | EdgeError::Forbidden { pointer, .. }
            | EdgeError::NotFound { pointer, .. }
            | EdgeError::TooLarge { pointer, .. }
            | EdgeError::PastEnd { pointer, .. }
            | EdgeError::Unprocessable { pointer, .. } => pointer,
            EdgeError::BadGateway { .. } | EdgeError::GatewayTimeout { .. } => "/data_url",
            EdgeError::Budget { .. } | EdgeError::Unauthorized => "",
            EdgeError::MethodNotAllowed(_) => "",
            EdgeError::RangeNotSatisfiable { .. } | EdgeError::Internal(_) => "",
        }
    }

    /// The JSON error body: `{"error": {status, code, pointer, message[, spent]
    /// [, origin]}}`.
    pub fn body(&self) -> serde_json::Value {
        let mut e = serde_json::json!({
            "status": self.status(),
            "code": self.code(),
            "pointer": self.pointer(),
            "message": self.to_string(),
        });
        match self {
            EdgeError::Budget { spent, .. } => {
                e["spent"] = serde_json::to_value(spent).unwrap_or_default();
            }
            EdgeError::BadGateway { origin, .. } | EdgeError::GatewayTimeout { origin, .. } => {
                e["origin"] = serde_json::Value::String(origin.clone());
            }
            EdgeError::Unprocessable {
                offset: Some(o), ..
            } => {
                e["offset"] = serde_json::Value::from(*o);
            }
            _ => {}
        }
        serde_json::json!({ "error": e })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_names_status_code_and_pointer() {
        let e = EdgeError::bad("/instructions/2/op", "unknown op \"mul\"");
        let b = e.body();
        assert_eq!(b["error"]["status"], 400);
        assert_eq!(b["error"]["code"], "bad_request");
        assert_eq!(b["error"]["pointer"], "/instructions/2/op");
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("unknown op")
        );
        let e = EdgeError::BadGateway {
            origin: "http://127.0.0.1:9".into(),
            message: "x".into(),
        };
        assert_eq!(e.status(), 502);
        assert_eq!(e.body()["error"]["origin"], "http://127.0.0.1:9");
    }
}

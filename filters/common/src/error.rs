//! Anthropic-shaped error bodies: `{"type":"error","error":{"type":…,"message":…}}`.

use serde::Serialize;

/// The error types the gateway answers with, each with the status the Claude API uses for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    Authentication,
    Permission,
    NotFound,
    RequestTooLarge,
    RateLimit,
    Api,
}

impl ErrorKind {
    pub fn status(self) -> u32 {
        match self {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::Authentication => 401,
            ErrorKind::Permission => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::RequestTooLarge => 413,
            ErrorKind::RateLimit => 429,
            ErrorKind::Api => 500,
        }
    }

    pub fn type_name(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::Permission => "permission_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::RequestTooLarge => "request_too_large",
            ErrorKind::RateLimit => "rate_limit_error",
            ErrorKind::Api => "api_error",
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}

/// The JSON body of an error reply. The message must never carry a secret.
pub fn error_body(kind: ErrorKind, message: &str) -> Vec<u8> {
    let body = Body {
        kind: "error",
        error: Inner {
            kind: kind.type_name(),
            message,
        },
    };
    // Serializing two string fields cannot fail; fall back to a fixed body rather than panic.
    serde_json::to_vec(&body).unwrap_or_else(|_| {
        br#"{"type":"error","error":{"type":"api_error","message":"internal error"}}"#.to_vec()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_anthropic_shaped_and_escaped() {
        let body = error_body(ErrorKind::Permission, "rule \"x\" matched");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "permission_error");
        assert_eq!(v["error"]["message"], "rule \"x\" matched");
    }

    #[test]
    fn statuses_match_the_claude_api() {
        let all = [
            (ErrorKind::InvalidRequest, 400),
            (ErrorKind::Authentication, 401),
            (ErrorKind::Permission, 403),
            (ErrorKind::NotFound, 404),
            (ErrorKind::RequestTooLarge, 413),
            (ErrorKind::RateLimit, 429),
            (ErrorKind::Api, 500),
        ];
        for (kind, status) in all {
            assert_eq!(kind.status(), status, "{kind:?}");
        }
    }
}

//! What an API error means, decided here once. Callers ask by class
//! (`is_not_found`, `is_conflict`, ...) and retry by class; no system compares
//! status codes inline.
//!
//! The classes follow the API server's `StatusReason`s
//! (`k8s.io/apimachinery/pkg/api/errors`): 404 NotFound, 409 with reason
//! `AlreadyExists` (a create found the name taken) or `Conflict` (a write carried a
//! stale resourceVersion, or a precondition failed), 403 Forbidden, 422 Invalid,
//! 429 TooManyRequests; 5xx, timeouts and connection errors are transient.

use std::time::Duration;

/// The class of an API error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// 404: the object (or its namespace, or its API) does not exist.
    NotFound,
    /// 409 `AlreadyExists`: a create found the name taken.
    AlreadyExists,
    /// 409 `Conflict`: a stale resourceVersion or a failed precondition.
    Conflict,
    /// 403.
    Forbidden,
    /// 400 or 422: the request itself is wrong; retrying cannot help.
    Invalid,
    /// 429: the server asks to retry later (eviction: a PodDisruptionBudget refuses).
    TooManyRequests,
    /// 5xx, a timeout, a connection or transport failure: worth retrying.
    Transient,
    /// Anything else (401, an unreadable answer, ...): not worth retrying.
    Other,
}

impl Class {
    /// A short label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::Conflict => "conflict",
            Self::Forbidden => "forbidden",
            Self::Invalid => "invalid",
            Self::TooManyRequests => "too_many_requests",
            Self::Transient => "transient",
            Self::Other => "other",
        }
    }
}

/// Classifies an error of a kube call. Pure.
pub fn class(e: &kube::Error) -> Class {
    match e {
        kube::Error::Api(s) => match s.code {
            404 => Class::NotFound,
            409 if s.reason == "AlreadyExists" => Class::AlreadyExists,
            409 => Class::Conflict,
            403 => Class::Forbidden,
            400 | 422 => Class::Invalid,
            429 => Class::TooManyRequests,
            c if c >= 500 => Class::Transient,
            _ => Class::Other,
        },
        kube::Error::HyperError(_)
        | kube::Error::Service(_)
        | kube::Error::HttpError(_)
        | kube::Error::ReadEvents(_) => Class::Transient,
        _ => Class::Other,
    }
}

/// 404.
pub fn is_not_found(e: &kube::Error) -> bool {
    class(e) == Class::NotFound
}

/// 409 Conflict (a stale write; read again and retry).
pub fn is_conflict(e: &kube::Error) -> bool {
    class(e) == Class::Conflict
}

/// 409 AlreadyExists (a create lost a race; read what is there).
pub fn is_already_exists(e: &kube::Error) -> bool {
    class(e) == Class::AlreadyExists
}

/// Worth retrying as it is: 5xx, timeouts, connection failures, 429.
pub fn is_transient(e: &kube::Error) -> bool {
    matches!(class(e), Class::Transient | Class::TooManyRequests)
}

/// The server's `retryAfterSeconds`, if it gave one.
pub fn retry_after(e: &kube::Error) -> Option<Duration> {
    let kube::Error::Api(s) = e else {
        return None;
    };
    let secs = s.details.as_ref().map_or(0, |d| d.retry_after_seconds);
    (secs > 0).then(|| Duration::from_secs(secs.into()))
}

/// `Ok(None)` for a 404, the value otherwise: for deletes and reads where a
/// missing object is an answer, not a failure.
pub fn ok_if_not_found<T>(r: kube::Result<T>) -> kube::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use kube::core::Status;

    use super::*;

    fn api(code: u16, reason: &str) -> kube::Error {
        let mut s = Status::failure("m", reason);
        s.code = code;
        kube::Error::Api(s.boxed())
    }

    #[test]
    fn classes() {
        let table = [
            (api(404, "NotFound"), Class::NotFound),
            (api(409, "AlreadyExists"), Class::AlreadyExists),
            (api(409, "Conflict"), Class::Conflict),
            (api(409, ""), Class::Conflict),
            (api(403, "Forbidden"), Class::Forbidden),
            (api(422, "Invalid"), Class::Invalid),
            (api(400, "BadRequest"), Class::Invalid),
            (api(429, "TooManyRequests"), Class::TooManyRequests),
            (api(500, "InternalError"), Class::Transient),
            (api(503, "ServiceUnavailable"), Class::Transient),
            (api(504, "Timeout"), Class::Transient),
            (api(401, "Unauthorized"), Class::Other),
            (kube::Error::LinesCodecMaxLineLengthExceeded, Class::Other),
        ];
        for (e, want) in table {
            assert_eq!(class(&e), want, "{e:?}");
        }
        assert!(is_not_found(&api(404, "")) && !is_not_found(&api(409, "")));
        assert!(is_conflict(&api(409, "Conflict")) && !is_conflict(&api(409, "AlreadyExists")));
        assert!(is_already_exists(&api(409, "AlreadyExists")));
        assert!(is_transient(&api(503, "")) && is_transient(&api(429, "")));
        assert!(!is_transient(&api(403, "")));
    }

    #[test]
    fn not_found_is_an_answer() {
        assert_eq!(ok_if_not_found(Ok(1)).unwrap(), Some(1));
        assert_eq!(ok_if_not_found::<i32>(Err(api(404, ""))).unwrap(), None);
        assert!(ok_if_not_found::<i32>(Err(api(500, ""))).is_err());
    }

    #[test]
    fn retry_after_from_details() {
        let mut s = Status::failure("m", "TooManyRequests");
        s.code = 429;
        s.details = serde_json::from_value(serde_json::json!({ "retryAfterSeconds": 7 })).unwrap();
        assert_eq!(
            retry_after(&kube::Error::Api(s.boxed())),
            Some(Duration::from_secs(7))
        );
        assert_eq!(retry_after(&api(429, "")), None);
    }
}

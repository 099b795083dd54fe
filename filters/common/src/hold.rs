//! Whether a stream's `Pause` from the request headers holds them for the body.
//!
//! With Envoy's `allow_on_headers_stop_iteration`, a filter may pause the request headers and
//! still receive the body: the headers go on when the body callback continues. A `Pause` from
//! the headers therefore means one of two things — "answered locally" or "held until the body
//! is judged" — and the bundle, which runs several policies as one filter, must know which:
//! a held request's body goes to the holder, an answered one's goes nowhere.

/// Implemented by every policy's HTTP context that runs inside the bundle.
pub trait RequestHold {
    /// True when the last request-headers callback paused to judge the body (not to answer).
    fn holds_request_headers(&self) -> bool;
}

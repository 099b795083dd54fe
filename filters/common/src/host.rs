//! The one byte-safe seam between tollgate's filters and the proxy-wasm host.
//!
//! The Rust SDK's `hostcalls` panic on any host status they do not expect and convert header
//! values with `String::from_utf8(..).unwrap()`: one client header such as `x-note: caf\xe9`
//! traps the VM, and a trapped VM fails every later request. Every call here goes straight to
//! the ABI, returns values as bytes and every non-Ok status as a [`HostError`]; nothing here
//! can panic. The panicking SDK calls are forbidden by clippy (`clippy.toml`,
//! `disallowed-methods`).
//!
//! Metrics, ticks, callouts and shared data still go through the SDK: their arguments are the
//! filter's own constants and state, never request bytes, and Envoy answers them with the
//! statuses the SDK expects.

use std::fmt;
use std::ptr::null_mut;

use crate::wire::{decode_map, encode_map, encode_path, Pair};

/// A header or trailer map of the current stream, or of a callout's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Map {
    RequestHeaders = 0,
    RequestTrailers = 1,
    ResponseHeaders = 2,
    ResponseTrailers = 3,
    CallResponseHeaders = 6,
}

/// A body buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Buffer {
    RequestBody = 0,
    ResponseBody = 1,
    CallResponseBody = 4,
    PluginConfiguration = 7,
}

/// A host call that did not succeed: which call, and the ABI status the host returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostError {
    pub call: &'static str,
    pub status: u32,
}

impl HostError {
    fn status_name(&self) -> &'static str {
        match self.status {
            1 => "NotFound",
            2 => "BadArgument",
            3 => "SerializationFailure",
            4 => "ParseFailure",
            6 => "Empty",
            7 => "CasMismatch",
            10 => "InternalFailure",
            12 => "Unimplemented",
            _ => "unknown status",
        }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed: {} ({})",
            self.call,
            self.status_name(),
            self.status
        )
    }
}

impl std::error::Error for HostError {}

const OK: u32 = 0;
const NOT_FOUND: u32 = 1;

fn check(call: &'static str, status: u32) -> Result<(), HostError> {
    match status {
        OK => Ok(()),
        status => Err(HostError { call, status }),
    }
}

/// The first value of header `name`, as bytes; `None` when absent.
pub fn header(map: Map, name: &str) -> Result<Option<Vec<u8>>, HostError> {
    abi::get_header(map as u32, name.as_bytes())
}

/// Every header of `map` in order, values as bytes.
pub fn headers(map: Map) -> Result<Vec<Pair>, HostError> {
    let raw = abi::get_header_pairs(map as u32)?;
    decode_map(&raw).map_err(|_| HostError {
        call: "proxy_get_header_map_pairs",
        status: 3,
    })
}

/// Sets header `name` to `value` (replacing every value; inserting when missing).
pub fn set_header(map: Map, name: &str, value: &[u8]) -> Result<(), HostError> {
    abi::replace_header(map as u32, name.as_bytes(), value)
}

/// Removes every value of header `name`; removing a missing header is fine.
pub fn remove_header(map: Map, name: &str) -> Result<(), HostError> {
    abi::remove_header(map as u32, name.as_bytes())
}

/// `size` bytes of `buffer` from `start` (clamped by the host); empty when there is none.
pub fn body(buffer: Buffer, start: usize, size: usize) -> Result<Vec<u8>, HostError> {
    abi::get_buffer(buffer as u32, start, size)
}

/// Replaces `size` bytes of `buffer` from `start` with `bytes` (Envoy supports replacing from
/// 0 and appending at the end).
pub fn set_body(buffer: Buffer, start: usize, size: usize, bytes: &[u8]) -> Result<(), HostError> {
    abi::set_buffer(buffer as u32, start, size, bytes)
}

/// A property such as `["tollgate.subject"]`; `None` when absent.
pub fn property(path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
    abi::get_property(&encode_path(path))
}

/// Sets a property (in Envoy: filter state `wasm.<path>`).
pub fn set_property(path: &[&str], value: &[u8]) -> Result<(), HostError> {
    abi::set_property(&encode_path(path), value)
}

/// Answers the stream locally with `status`, `headers` and `body`; applied by the host after
/// the current callback returns.
pub fn send_response(status: u32, headers: &[(&str, &[u8])], body: &[u8]) -> Result<(), HostError> {
    abi::send_local_response(status, &encode_map(headers), body)
}

/// Continues the request of the current (effective) context that a callback paused.
pub fn resume_request() -> Result<(), HostError> {
    abi::continue_stream(0)
}

/// The raw ABI imports. The only `unsafe` in tollgate's filters: each function passes
/// borrowed slices to the host and takes ownership of what the host allocated through the
/// SDK's exported `proxy_on_memory_allocate` (a boxed `[u8]` of exactly `size` bytes).
#[allow(unsafe_code)]
mod abi {
    use super::*;

    #[link(wasm_import_module = "env")]
    extern "C" {
        fn proxy_get_header_map_value(
            map_type: u32,
            key_data: *const u8,
            key_size: usize,
            return_value_data: *mut *mut u8,
            return_value_size: *mut usize,
        ) -> u32;
        fn proxy_get_header_map_pairs(
            map_type: u32,
            return_map_data: *mut *mut u8,
            return_map_size: *mut usize,
        ) -> u32;
        fn proxy_replace_header_map_value(
            map_type: u32,
            key_data: *const u8,
            key_size: usize,
            value_data: *const u8,
            value_size: usize,
        ) -> u32;
        fn proxy_remove_header_map_value(
            map_type: u32,
            key_data: *const u8,
            key_size: usize,
        ) -> u32;
        fn proxy_get_buffer_bytes(
            buffer_type: u32,
            start: usize,
            max_size: usize,
            return_buffer_data: *mut *mut u8,
            return_buffer_size: *mut usize,
        ) -> u32;
        fn proxy_set_buffer_bytes(
            buffer_type: u32,
            start: usize,
            size: usize,
            buffer_data: *const u8,
            buffer_size: usize,
        ) -> u32;
        fn proxy_get_property(
            path_data: *const u8,
            path_size: usize,
            return_value_data: *mut *mut u8,
            return_value_size: *mut usize,
        ) -> u32;
        fn proxy_set_property(
            path_data: *const u8,
            path_size: usize,
            value_data: *const u8,
            value_size: usize,
        ) -> u32;
        fn proxy_send_local_response(
            status_code: u32,
            status_code_details_data: *const u8,
            status_code_details_size: usize,
            body_data: *const u8,
            body_size: usize,
            headers_data: *const u8,
            headers_size: usize,
            grpc_status: i32,
        ) -> u32;
        fn proxy_continue_stream(stream_type: u32) -> u32;
    }

    /// Takes ownership of host-allocated bytes; a null pointer is no bytes.
    fn owned(data: *mut u8, size: usize) -> Vec<u8> {
        if data.is_null() {
            return Vec::new();
        }
        // SAFETY: the host returned `data` from `proxy_on_memory_allocate(size)`, which leaks a
        // `Box<[u8]>` of exactly `size` bytes; we are its only owner from here on.
        unsafe { Vec::from_raw_parts(data, size, size) }
    }

    /// A host call that returns bytes: `Ok(None)` for NotFound.
    fn returned(
        call: &'static str,
        f: impl FnOnce(*mut *mut u8, *mut usize) -> u32,
    ) -> Result<Option<Vec<u8>>, HostError> {
        let mut data: *mut u8 = null_mut();
        let mut size: usize = 0;
        match f(&mut data, &mut size) {
            OK => Ok(Some(owned(data, size))),
            NOT_FOUND => Ok(None),
            status => Err(HostError { call, status }),
        }
    }

    pub fn get_header(map: u32, key: &[u8]) -> Result<Option<Vec<u8>>, HostError> {
        returned("proxy_get_header_map_value", |data, size| {
            // SAFETY: `key` outlives the call; `data`/`size` are valid out-pointers.
            unsafe { proxy_get_header_map_value(map, key.as_ptr(), key.len(), data, size) }
        })
    }

    pub fn get_header_pairs(map: u32) -> Result<Vec<u8>, HostError> {
        returned("proxy_get_header_map_pairs", |data, size| {
            // SAFETY: `data`/`size` are valid out-pointers.
            unsafe { proxy_get_header_map_pairs(map, data, size) }
        })
        .map(Option::unwrap_or_default)
    }

    pub fn replace_header(map: u32, key: &[u8], value: &[u8]) -> Result<(), HostError> {
        // SAFETY: both slices outlive the call.
        let status = unsafe {
            proxy_replace_header_map_value(
                map,
                key.as_ptr(),
                key.len(),
                value.as_ptr(),
                value.len(),
            )
        };
        check("proxy_replace_header_map_value", status)
    }

    pub fn remove_header(map: u32, key: &[u8]) -> Result<(), HostError> {
        // SAFETY: `key` outlives the call.
        let status = unsafe { proxy_remove_header_map_value(map, key.as_ptr(), key.len()) };
        match status {
            OK | NOT_FOUND => Ok(()),
            status => check("proxy_remove_header_map_value", status),
        }
    }

    pub fn get_buffer(buffer: u32, start: usize, max: usize) -> Result<Vec<u8>, HostError> {
        returned("proxy_get_buffer_bytes", |data, size| {
            // SAFETY: `data`/`size` are valid out-pointers.
            unsafe { proxy_get_buffer_bytes(buffer, start, max, data, size) }
        })
        .map(Option::unwrap_or_default)
    }

    pub fn set_buffer(
        buffer: u32,
        start: usize,
        size: usize,
        bytes: &[u8],
    ) -> Result<(), HostError> {
        // SAFETY: `bytes` outlives the call.
        let status =
            unsafe { proxy_set_buffer_bytes(buffer, start, size, bytes.as_ptr(), bytes.len()) };
        check("proxy_set_buffer_bytes", status)
    }

    pub fn get_property(path: &[u8]) -> Result<Option<Vec<u8>>, HostError> {
        returned("proxy_get_property", |data, size| {
            // SAFETY: `path` outlives the call; `data`/`size` are valid out-pointers.
            unsafe { proxy_get_property(path.as_ptr(), path.len(), data, size) }
        })
    }

    pub fn set_property(path: &[u8], value: &[u8]) -> Result<(), HostError> {
        // SAFETY: both slices outlive the call.
        let status =
            unsafe { proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len()) };
        check("proxy_set_property", status)
    }

    pub fn send_local_response(status: u32, headers: &[u8], body: &[u8]) -> Result<(), HostError> {
        // SAFETY: every slice outlives the call; no details string (as the SDK sends).
        let result = unsafe {
            proxy_send_local_response(
                status,
                std::ptr::null(),
                0,
                body.as_ptr(),
                body.len(),
                headers.as_ptr(),
                headers.len(),
                -1,
            )
        };
        check("proxy_send_local_response", result)
    }

    pub fn continue_stream(stream: u32) -> Result<(), HostError> {
        // SAFETY: no pointers.
        let status = unsafe { proxy_continue_stream(stream) };
        check("proxy_continue_stream", status)
    }
}

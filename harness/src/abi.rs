//! The proxy-wasm ABI 0.2.1 imports (`env.proxy_*`), one small function each, with Envoy's
//! semantics and return codes. Guest memory is bounds-checked; memory handed to the guest
//! comes from its own `proxy_on_memory_allocate`.

use std::time::Duration;

use wasmtime::{Caller, Extern, Linker};

use crate::headers::{deserialize_pairs, HeaderMap};
use crate::scenario::{Callout, CalloutReply, LogEntry, LogLevel};
use crate::vm::{Direction, LocalReplyRequest, Phase, VmState};
use crate::world::{MetricKind, PendingCallout, SharedQueue};

/// proxy-wasm status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub(crate) enum Status {
    Ok = 0,
    NotFound = 1,
    BadArgument = 2,
    InvalidMemoryAccess = 6,
    Empty = 7,
    CasMismatch = 8,
    InternalFailure = 10,
}

type Ret = wasmtime::Result<i32>;
type Cx<'a> = Caller<'a, VmState>;

fn done(result: Result<(), Status>) -> Ret {
    Ok(match result {
        Ok(()) => Status::Ok as i32,
        Err(status) => status as i32,
    })
}

// ---- guest memory -------------------------------------------------------------------------

/// The guest's memory, looked up once per VM.
fn memory(cx: &mut Cx<'_>) -> Result<wasmtime::Memory, Status> {
    if let Some(memory) = cx.data().memory {
        return Ok(memory);
    }
    match cx.get_export("memory") {
        Some(Extern::Memory(m)) => {
            cx.data_mut().memory = Some(m);
            Ok(m)
        }
        _ => Err(Status::InternalFailure),
    }
}

fn read(cx: &mut Cx<'_>, ptr: i32, len: i32) -> Result<Vec<u8>, Status> {
    let mem = memory(cx)?;
    let (start, len) = (ptr as u32 as usize, len as u32 as usize);
    let end = start.checked_add(len).ok_or(Status::InvalidMemoryAccess)?;
    mem.data(&*cx)
        .get(start..end)
        .map(<[u8]>::to_vec)
        .ok_or(Status::InvalidMemoryAccess)
}

fn read_str(cx: &mut Cx<'_>, ptr: i32, len: i32) -> Result<String, Status> {
    String::from_utf8(read(cx, ptr, len)?).map_err(|_| Status::BadArgument)
}

fn write_bytes(cx: &mut Cx<'_>, ptr: u32, bytes: &[u8]) -> Result<(), Status> {
    let mem = memory(cx)?;
    let start = ptr as usize;
    let end = start
        .checked_add(bytes.len())
        .ok_or(Status::InvalidMemoryAccess)?;
    mem.data_mut(&mut *cx)
        .get_mut(start..end)
        .ok_or(Status::InvalidMemoryAccess)?
        .copy_from_slice(bytes);
    Ok(())
}

fn write_u32(cx: &mut Cx<'_>, ptr: i32, value: u32) -> Result<(), Status> {
    write_bytes(cx, ptr as u32, &value.to_le_bytes())
}

fn write_u64(cx: &mut Cx<'_>, ptr: i32, value: u64) -> Result<(), Status> {
    write_bytes(cx, ptr as u32, &value.to_le_bytes())
}

/// Copies `data` into memory the guest allocates, and writes its address and size.
fn hand_over(cx: &mut Cx<'_>, data: &[u8], ret_ptr: i32, ret_size: i32) -> Result<(), Status> {
    let alloc = match cx.data().allocate.clone() {
        Some(alloc) => alloc,
        None => {
            let alloc = match cx.get_export("proxy_on_memory_allocate") {
                Some(Extern::Func(f)) => f
                    .typed::<u32, u32>(&*cx)
                    .map_err(|_| Status::InternalFailure)?,
                _ => return Err(Status::InternalFailure),
            };
            cx.data_mut().allocate = Some(alloc.clone());
            alloc
        }
    };
    let size = u32::try_from(data.len()).map_err(|_| Status::BadArgument)?;
    let addr = alloc
        .call(&mut *cx, size)
        .map_err(|_| Status::InternalFailure)?;
    if addr == 0 && size != 0 {
        return Err(Status::InternalFailure);
    }
    write_bytes(cx, addr, data)?;
    write_u32(cx, ret_ptr, addr)?;
    write_u32(cx, ret_size, size)
}

// ---- header maps and buffers --------------------------------------------------------------

/// Map types of the ABI.
const REQUEST_HEADERS: i32 = 0;
const REQUEST_TRAILERS: i32 = 1;
const RESPONSE_HEADERS: i32 = 2;
const RESPONSE_TRAILERS: i32 = 3;
const CALL_RESPONSE_HEADERS: i32 = 6;
const CALL_RESPONSE_TRAILERS: i32 = 7;

/// Buffer types of the ABI.
const REQUEST_BODY: i32 = 0;
const RESPONSE_BODY: i32 = 1;
const CALL_RESPONSE_BODY: i32 = 4;
const VM_CONFIGURATION: i32 = 6;
const PLUGIN_CONFIGURATION: i32 = 7;

/// Runs `f` on the header map `map_type` of the current stream (or callout answer).
/// A map that does not exist now is BadArgument, as in Envoy.
fn with_map<R>(
    cx: &mut Cx<'_>,
    map_type: i32,
    f: impl FnOnce(&mut HeaderMap) -> R,
) -> Result<R, Status> {
    let state = cx.data_mut();
    match map_type {
        CALL_RESPONSE_HEADERS | CALL_RESPONSE_TRAILERS => {
            let (headers, _, trailers) = state
                .call
                .call_response
                .as_mut()
                .ok_or(Status::BadArgument)?;
            Ok(f(if map_type == CALL_RESPONSE_HEADERS {
                headers
            } else {
                trailers
            }))
        }
        REQUEST_HEADERS | REQUEST_TRAILERS | RESPONSE_HEADERS | RESPONSE_TRAILERS => {
            let stream = state.current_stream().ok_or(Status::BadArgument)?;
            let mut world = state.world();
            let data = world.streams.get_mut(&stream).ok_or(Status::BadArgument)?;
            let map = match map_type {
                REQUEST_HEADERS => data.request_headers.as_mut(),
                REQUEST_TRAILERS => data.request_trailers.as_mut(),
                RESPONSE_HEADERS => data.response_headers.as_mut(),
                _ => data.response_trailers.as_mut(),
            };
            map.map(f).ok_or(Status::BadArgument)
        }
        _ => Err(Status::BadArgument),
    }
}

fn get_header_map_pairs(mut cx: Cx<'_>, map_type: i32, ret_ptr: i32, ret_size: i32) -> Ret {
    let result = with_map(&mut cx, map_type, |m| m.serialize())
        .and_then(|bytes| hand_over(&mut cx, &bytes, ret_ptr, ret_size));
    done(result)
}

fn set_header_map_pairs(mut cx: Cx<'_>, map_type: i32, ptr: i32, len: i32) -> Ret {
    let result = read(&mut cx, ptr, len).and_then(|bytes| {
        let new_map = HeaderMap::deserialize(&bytes).ok_or(Status::BadArgument)?;
        with_map(&mut cx, map_type, |m| *m = new_map)
    });
    done(result)
}

fn get_header_map_value(
    mut cx: Cx<'_>,
    map_type: i32,
    key_ptr: i32,
    key_len: i32,
    ret_ptr: i32,
    ret_size: i32,
) -> Ret {
    let result = read_str(&mut cx, key_ptr, key_len).and_then(|key| {
        let value = with_map(&mut cx, map_type, |m| m.get(&key).map(<[u8]>::to_vec))?
            .ok_or(Status::NotFound)?;
        hand_over(&mut cx, &value, ret_ptr, ret_size)
    });
    done(result)
}

fn edit_header(
    mut cx: Cx<'_>,
    map_type: i32,
    key: (i32, i32),
    value: Option<(i32, i32)>,
    edit: fn(&mut HeaderMap, &str, &[u8]),
) -> Ret {
    let result = (|| {
        let key = read_str(&mut cx, key.0, key.1)?;
        let value = match value {
            Some((ptr, len)) => read(&mut cx, ptr, len)?,
            None => Vec::new(),
        };
        note_late_header_edit(&mut cx, map_type, &key);
        with_map(&mut cx, map_type, |m| edit(m, &key, &value))
    })();
    done(result)
}

/// Envoy accepts edits of headers that already left, and they have no effect. Say so in the
/// log, where a filter author will look for why an edit did nothing.
fn note_late_header_edit(cx: &mut Cx<'_>, map_type: i32, key: &str) {
    let state = cx.data();
    let Some(stream) = state.current_stream() else {
        return;
    };
    let mut world = state.world();
    let late = world.streams.get(&stream).is_some_and(|s| {
        (map_type == REQUEST_HEADERS && s.request_headers_sent)
            || (map_type == RESPONSE_HEADERS && s.response_headers_sent)
    });
    if late {
        world.logs.push(LogEntry {
            filter: state.name.clone(),
            level: LogLevel::Warn,
            message: format!(
                "harness: header `{key}` edited after the headers were forwarded; the edit has no effect"
            ),
        });
    }
}

fn with_body<R>(
    cx: &mut Cx<'_>,
    buffer_type: i32,
    f: impl FnOnce(&mut Vec<u8>) -> R,
) -> Result<R, Status> {
    let state = cx.data_mut();
    match buffer_type {
        CALL_RESPONSE_BODY => {
            let (_, body, _) = state.call.call_response.as_mut().ok_or(Status::NotFound)?;
            Ok(f(body))
        }
        REQUEST_BODY | RESPONSE_BODY => {
            let stream = state.current_stream().ok_or(Status::NotFound)?;
            let filter = state.index;
            let mut world = state.world();
            let data = world.streams.get_mut(&stream).ok_or(Status::NotFound)?;
            let body = if buffer_type == REQUEST_BODY {
                match data.request_body.as_mut() {
                    Some(body) => Some(body),
                    // Outside a body callback: the body this filter buffers, if any.
                    None => data.parked_request_bodies.get_mut(&filter),
                }
            } else {
                match data.response_body.as_mut() {
                    Some(body) => Some(body),
                    None => data.parked_response_bodies.get_mut(&filter),
                }
            };
            body.map(f).ok_or(Status::NotFound)
        }
        VM_CONFIGURATION if state.call.phase == Phase::VmStart => {
            let mut copy = state.vm_config.clone();
            Ok(f(&mut copy))
        }
        PLUGIN_CONFIGURATION if state.call.phase == Phase::Configure => {
            let mut copy = state.plugin_config.clone();
            Ok(f(&mut copy))
        }
        VM_CONFIGURATION | PLUGIN_CONFIGURATION => Err(Status::NotFound),
        _ => Err(Status::BadArgument),
    }
}

fn get_buffer_bytes(
    mut cx: Cx<'_>,
    buffer_type: i32,
    start: i32,
    max_size: i32,
    ret_ptr: i32,
    ret_size: i32,
) -> Ret {
    let (start, max) = (start as u32 as usize, max_size as u32 as usize);
    let result = with_body(&mut cx, buffer_type, |body| {
        // Reads are clamped to the buffer, as in Envoy.
        let from = start.min(body.len());
        let to = from.saturating_add(max).min(body.len());
        body[from..to].to_vec()
    })
    .and_then(|bytes| {
        if bytes.is_empty() {
            // Envoy answers an empty read with Ok and no data; the SDK maps that to `None`.
            write_u32(&mut cx, ret_ptr, 0)?;
            write_u32(&mut cx, ret_size, 0)
        } else {
            hand_over(&mut cx, &bytes, ret_ptr, ret_size)
        }
    });
    done(result)
}

fn set_buffer_bytes(
    mut cx: Cx<'_>,
    buffer_type: i32,
    start: i32,
    size: i32,
    ptr: i32,
    len: i32,
) -> Ret {
    if !matches!(buffer_type, REQUEST_BODY | RESPONSE_BODY) {
        return done(Err(Status::BadArgument));
    }
    let (start, size) = (start as u32 as usize, size as u32 as usize);
    let result = read(&mut cx, ptr, len).and_then(|data| {
        with_body(&mut cx, buffer_type, |body| {
            // Envoy: replace `size` bytes at the front, or append at/after the end; nothing else.
            if start == 0 {
                body.drain(..size.min(body.len()));
                body.splice(0..0, data);
                Ok(())
            } else if start >= body.len() {
                body.extend_from_slice(&data);
                Ok(())
            } else {
                Err(Status::BadArgument)
            }
        })?
    });
    done(result)
}

// ---- properties -----------------------------------------------------------------------------

fn get_property(mut cx: Cx<'_>, path_ptr: i32, path_len: i32, ret_ptr: i32, ret_size: i32) -> Ret {
    let result = read(&mut cx, path_ptr, path_len).and_then(|raw| {
        let value = property_value(cx.data(), &raw).ok_or(Status::NotFound)?;
        hand_over(&mut cx, &value, ret_ptr, ret_size)
    });
    done(result)
}

/// Splits a NUL-separated property path.
fn path_parts(raw: &[u8]) -> Vec<String> {
    raw.split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect()
}

fn property_value(state: &VmState, raw: &[u8]) -> Option<Vec<u8>> {
    let parts = path_parts(raw);
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    match parts.as_slice() {
        ["plugin_name"] | ["plugin_root_id"] => return Some(state.name.as_bytes().to_vec()),
        ["plugin_vm_id"] => return Some(state.vm_id.as_bytes().to_vec()),
        _ => {}
    }
    let stream = state.current_stream()?;
    let world = state.world();
    let data = world.streams.get(&stream)?;
    let request_header = |name: &str| data.request_headers.as_ref()?.get(name).map(<[u8]>::to_vec);
    match parts.as_slice() {
        ["request", "path"] => request_header(":path"),
        ["request", "url_path"] => request_header(":path").map(|p| {
            let end = p.iter().position(|b| *b == b'?').unwrap_or(p.len());
            p[..end].to_vec()
        }),
        ["request", "method"] => request_header(":method"),
        ["request", "host"] => request_header(":authority"),
        ["request", "scheme"] => request_header(":scheme"),
        ["request", "headers", name] => request_header(name),
        ["response", "code"] => {
            let status = data.response_headers.as_ref()?.get_str(":status")?;
            let code: i64 = status.parse().ok()?;
            Some(code.to_le_bytes().to_vec())
        }
        ["xds", "cluster_name"] => world.route_cluster.as_ref().map(|c| c.as_bytes().to_vec()),
        ["response", "headers", name] => data
            .response_headers
            .as_ref()?
            .get(name)
            .map(<[u8]>::to_vec),
        [key] => data.filter_state.get(*key).cloned(),
        _ => None,
    }
}

fn set_property(
    mut cx: Cx<'_>,
    path_ptr: i32,
    path_len: i32,
    value_ptr: i32,
    value_len: i32,
) -> Ret {
    let result = (|| {
        let path = path_parts(&read(&mut cx, path_ptr, path_len)?).join(".");
        let value = read(&mut cx, value_ptr, value_len)?;
        let state = cx.data();
        // Envoy writes filter state of the stream: there is none outside an HTTP context.
        let stream = state.current_stream().ok_or(Status::NotFound)?;
        let mut world = state.world();
        let data = world.streams.get_mut(&stream).ok_or(Status::NotFound)?;
        data.filter_state.insert(path, value);
        Ok(())
    })();
    done(result)
}

// ---- the stream ------------------------------------------------------------------------------

fn continue_stream(mut cx: Cx<'_>, stream_type: i32) -> Ret {
    let state = cx.data_mut();
    let context = state.call.effective_context;
    let direction = match stream_type {
        0 => Direction::Request,
        1 => Direction::Response,
        _ => return done(Err(Status::BadArgument)),
    };
    if !state.contexts.contains_key(&context) {
        return done(Err(Status::NotFound));
    }
    state.call.resumes.push((context, direction));
    done(Ok(()))
}

fn close_stream(mut cx: Cx<'_>, stream_type: i32) -> Ret {
    let state = cx.data_mut();
    let context = state.call.effective_context;
    if !(0..=1).contains(&stream_type) {
        return done(Err(Status::BadArgument));
    }
    if !state.contexts.contains_key(&context) {
        return done(Err(Status::NotFound));
    }
    state.call.resets.push(context);
    done(Ok(()))
}

#[allow(clippy::too_many_arguments)]
fn send_local_response(
    mut cx: Cx<'_>,
    status: i32,
    _details_ptr: i32,
    _details_len: i32,
    body_ptr: i32,
    body_len: i32,
    headers_ptr: i32,
    headers_len: i32,
    _grpc_status: i32,
) -> Ret {
    let result = (|| {
        let body = read(&mut cx, body_ptr, body_len)?;
        let raw = read(&mut cx, headers_ptr, headers_len)?;
        let pairs = deserialize_pairs(&raw).ok_or(Status::BadArgument)?;
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.add(&String::from_utf8_lossy(&k), &v);
        }
        let state = cx.data_mut();
        let context_id = state.call.effective_context;
        if !state.contexts.contains_key(&context_id) {
            return Err(Status::NotFound);
        }
        state
            .call
            .local_replies
            .retain(|r| r.context_id != context_id);
        state.call.local_replies.push(LocalReplyRequest {
            context_id,
            status: status as u32,
            body,
            headers,
        });
        Ok(())
    })();
    done(result)
}

fn set_effective_context(mut cx: Cx<'_>, context_id: i32) -> Ret {
    let state = cx.data_mut();
    let id = context_id as u32;
    if id != state.root_context_id && !state.contexts.contains_key(&id) {
        return done(Err(Status::BadArgument));
    }
    state.call.effective_context = id;
    done(Ok(()))
}

// ---- callouts --------------------------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
fn http_call(
    mut cx: Cx<'_>,
    upstream_ptr: i32,
    upstream_len: i32,
    headers_ptr: i32,
    headers_len: i32,
    body_ptr: i32,
    body_len: i32,
    _trailers_ptr: i32,
    _trailers_len: i32,
    timeout_ms: i32,
    ret_token: i32,
) -> Ret {
    let result = (|| {
        let cluster = read_str(&mut cx, upstream_ptr, upstream_len)?;
        let headers = HeaderMap::deserialize(&read(&mut cx, headers_ptr, headers_len)?)
            .ok_or(Status::BadArgument)?;
        let body = read(&mut cx, body_ptr, body_len)?;
        // Envoy refuses unknown clusters and requests without the three pseudo-headers.
        if [":method", ":path", ":authority"]
            .iter()
            .any(|h| headers.get(h).is_none_or(<[u8]>::is_empty))
        {
            return Err(Status::BadArgument);
        }
        let timeout = Duration::from_millis(timeout_ms as u32 as u64);
        let state = cx.data_mut();
        let context_id = state.call.effective_context;
        let token = state.next_token;
        state.next_token = state.next_token.wrapping_add(1).max(1);
        let (vm, filter) = (state.index, state.name.clone());
        let mut world = state.world();
        if !world.clusters.contains(&cluster) {
            return Err(Status::BadArgument);
        }
        let reply = world
            .callout_scripts
            .get_mut(&cluster)
            .and_then(|queue| queue.pop_front());
        let (due_nanos, reply) = match reply {
            Some(CalloutReply::Response { delay, .. })
                if delay >= timeout && !timeout.is_zero() =>
            {
                (world.due(timeout), None)
            }
            Some(r @ CalloutReply::Response { delay, .. }) => (world.due(delay), Some(r)),
            Some(CalloutReply::Fail) => (world.now_nanos, None),
            Some(CalloutReply::Timeout) | None => (world.due(timeout), None),
        };
        world.callouts.push(Callout {
            filter,
            cluster,
            headers,
            body,
            timeout,
        });
        world.pending_callouts.push(PendingCallout {
            vm,
            context_id,
            token,
            due_nanos,
            reply,
        });
        drop(world);
        write_u32(&mut cx, ret_token, token)
    })();
    done(result)
}

// ---- shared data and queues ------------------------------------------------------------------

fn get_shared_data(
    mut cx: Cx<'_>,
    key_ptr: i32,
    key_len: i32,
    ret_ptr: i32,
    ret_size: i32,
    ret_cas: i32,
) -> Ret {
    let result = read_str(&mut cx, key_ptr, key_len).and_then(|key| {
        let state = cx.data();
        let found = state
            .world()
            .shared_data
            .get(&state.vm_id)
            .and_then(|m| m.get(&key))
            .cloned();
        let (value, cas) = found.ok_or(Status::NotFound)?;
        hand_over(&mut cx, &value, ret_ptr, ret_size)?;
        write_u32(&mut cx, ret_cas, cas)
    });
    done(result)
}

fn set_shared_data(
    mut cx: Cx<'_>,
    key_ptr: i32,
    key_len: i32,
    value_ptr: i32,
    value_len: i32,
    cas: i32,
) -> Ret {
    let result = (|| {
        let key = read_str(&mut cx, key_ptr, key_len)?;
        let value = read(&mut cx, value_ptr, value_len)?;
        let state = cx.data();
        let vm_id = state.vm_id.clone();
        let mut world = state.world();
        let next = world.next_cas();
        let map = world.shared_data.entry(vm_id).or_default();
        match map.get_mut(&key) {
            // cas 0 always wins; otherwise it must match the current version.
            Some(entry) if cas != 0 && entry.1 != cas as u32 => Err(Status::CasMismatch),
            Some(entry) => {
                *entry = (value, next);
                Ok(())
            }
            None => {
                map.insert(key, (value, next));
                Ok(())
            }
        }
    })();
    done(result)
}

fn register_shared_queue(mut cx: Cx<'_>, name_ptr: i32, name_len: i32, ret_id: i32) -> Ret {
    let result = read_str(&mut cx, name_ptr, name_len).and_then(|name| {
        let state = cx.data();
        let (vm_id, vm, owner) = (
            state.vm_id.clone(),
            state.index,
            state.call.effective_context,
        );
        let mut world = state.world();
        let id = match world
            .queues
            .iter()
            .position(|q| q.vm_id == vm_id && q.name == name)
        {
            Some(id) => {
                world.queues[id].owner_vm = vm;
                world.queues[id].owner_context = owner;
                id
            }
            None => {
                world.queues.push(SharedQueue {
                    vm_id,
                    name,
                    owner_vm: vm,
                    owner_context: owner,
                    items: Default::default(),
                });
                world.queues.len() - 1
            }
        };
        drop(world);
        write_u32(&mut cx, ret_id, id as u32 + 1)
    });
    done(result)
}

fn resolve_shared_queue(
    mut cx: Cx<'_>,
    vm_ptr: i32,
    vm_len: i32,
    name_ptr: i32,
    name_len: i32,
    ret_id: i32,
) -> Ret {
    let result = (|| {
        let vm_id = read_str(&mut cx, vm_ptr, vm_len)?;
        let name = read_str(&mut cx, name_ptr, name_len)?;
        let id = cx
            .data()
            .world()
            .queues
            .iter()
            .position(|q| q.vm_id == vm_id && q.name == name)
            .ok_or(Status::NotFound)?;
        write_u32(&mut cx, ret_id, id as u32 + 1)
    })();
    done(result)
}

fn dequeue_shared_queue(mut cx: Cx<'_>, queue_id: i32, ret_ptr: i32, ret_size: i32) -> Ret {
    let result = (|| {
        let item = {
            let state = cx.data();
            let mut world = state.world();
            let queue = (queue_id as u32 as usize)
                .checked_sub(1)
                .and_then(|i| world.queues.get_mut(i))
                .ok_or(Status::NotFound)?;
            queue.items.pop_front().ok_or(Status::Empty)?
        };
        hand_over(&mut cx, &item, ret_ptr, ret_size)
    })();
    done(result)
}

fn enqueue_shared_queue(mut cx: Cx<'_>, queue_id: i32, value_ptr: i32, value_len: i32) -> Ret {
    let result = read(&mut cx, value_ptr, value_len).and_then(|value| {
        let state = cx.data();
        let mut world = state.world();
        let index = (queue_id as u32 as usize)
            .checked_sub(1)
            .filter(|i| *i < world.queues.len())
            .ok_or(Status::NotFound)?;
        let queue = &mut world.queues[index];
        queue.items.push_back(value);
        let ready = crate::world::Deferred::QueueReady {
            vm: queue.owner_vm,
            context_id: queue.owner_context,
            queue_id: queue_id as u32,
        };
        world.deferred.push_back(ready);
        Ok(())
    });
    done(result)
}

// ---- metrics ---------------------------------------------------------------------------------

fn define_metric(mut cx: Cx<'_>, kind: i32, name_ptr: i32, name_len: i32, ret_id: i32) -> Ret {
    let result = read_str(&mut cx, name_ptr, name_len).and_then(|name| {
        let kind = match kind {
            0 => MetricKind::Counter,
            1 => MetricKind::Gauge,
            2 => MetricKind::Histogram,
            _ => return Err(Status::BadArgument),
        };
        let id = {
            let state = cx.data();
            let mut world = state.world();
            // Defining the same metric again yields the same id, so defining per request
            // does not grow the host.
            match world
                .metrics
                .iter()
                .position(|m| m.name == name && m.kind == kind)
            {
                Some(id) => id,
                None => {
                    world.metric_values.entry(name.clone()).or_default();
                    world.metrics.push(crate::world::Metric { name, kind });
                    world.metrics.len() - 1
                }
            }
        };
        write_u32(&mut cx, ret_id, id as u32)
    });
    done(result)
}

fn get_metric(mut cx: Cx<'_>, id: i32, ret_value: i32) -> Ret {
    let result = (|| {
        let value = {
            let state = cx.data();
            let world = state.world();
            let (kind, name) = world.metric_kind(id as u32).ok_or(Status::NotFound)?;
            if kind == MetricKind::Histogram {
                return Err(Status::BadArgument);
            }
            world.metric_values.get(&name).map_or(0, |v| v.value)
        };
        write_u64(&mut cx, ret_value, value)
    })();
    done(result)
}

/// Applies `update` to metric `id`'s value (NotFound for an unknown id).
fn update_metric(
    cx: Cx<'_>,
    id: i32,
    update: impl FnOnce(MetricKind, &mut crate::world::MetricValue) -> Result<(), Status>,
) -> Ret {
    let state = cx.data();
    let mut world = state.world();
    let Some((kind, name)) = world.metric_kind(id as u32) else {
        return done(Err(Status::NotFound));
    };
    done(update(kind, world.metric_values.entry(name).or_default()))
}

fn record_metric(cx: Cx<'_>, id: i32, value: i64) -> Ret {
    update_metric(cx, id, |kind, entry| {
        match kind {
            MetricKind::Counter => entry.value = entry.value.wrapping_add(value as u64),
            MetricKind::Gauge => entry.value = value as u64,
            MetricKind::Histogram => entry.samples.push(value as u64),
        }
        Ok(())
    })
}

fn increment_metric(cx: Cx<'_>, id: i32, offset: i64) -> Ret {
    update_metric(cx, id, |kind, entry| {
        match kind {
            // Counters only go up.
            MetricKind::Counter if offset > 0 => {
                entry.value = entry.value.wrapping_add(offset as u64)
            }
            MetricKind::Gauge => entry.value = (entry.value as i64).wrapping_add(offset) as u64,
            _ => return Err(Status::BadArgument),
        }
        Ok(())
    })
}

// ---- logging, time, ticks ------------------------------------------------------------------

fn log(mut cx: Cx<'_>, level: i32, ptr: i32, len: i32) -> Ret {
    let Some(level) = LogLevel::from_abi(level) else {
        return done(Err(Status::BadArgument));
    };
    let result = read(&mut cx, ptr, len).map(|bytes| {
        let state = cx.data();
        let filter = state.name.clone();
        state.world().logs.push(LogEntry {
            filter,
            level,
            message: String::from_utf8_lossy(&bytes).into_owned(),
        });
    });
    done(result)
}

fn get_log_level(mut cx: Cx<'_>, ret: i32) -> Ret {
    let level = cx.data().world().log_level as u32;
    done(write_u32(&mut cx, ret, level))
}

fn get_current_time(mut cx: Cx<'_>, ret: i32) -> Ret {
    let now = cx.data().world().now_nanos;
    done(write_u64(&mut cx, ret, now))
}

fn set_tick_period(mut cx: Cx<'_>, period_ms: i32) -> Ret {
    cx.data_mut().tick_period_ms = period_ms as u32;
    done(Ok(()))
}

// ---- registration ----------------------------------------------------------------------------

/// Registers every `env.proxy_*` import the Rust SDK 0.2.x declares, plus WASI preview 1.
pub(crate) fn link(linker: &mut Linker<VmState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p1::add_to_linker_sync(linker, |s: &mut VmState| &mut s.wasi)?;
    let m = "env";
    linker.func_wrap(m, "proxy_log", log)?;
    linker.func_wrap(m, "proxy_get_log_level", get_log_level)?;
    linker.func_wrap(m, "proxy_get_current_time_nanoseconds", get_current_time)?;
    linker.func_wrap(m, "proxy_set_tick_period_milliseconds", set_tick_period)?;
    linker.func_wrap(m, "proxy_get_buffer_bytes", get_buffer_bytes)?;
    linker.func_wrap(m, "proxy_set_buffer_bytes", set_buffer_bytes)?;
    linker.func_wrap(m, "proxy_get_header_map_pairs", get_header_map_pairs)?;
    linker.func_wrap(m, "proxy_set_header_map_pairs", set_header_map_pairs)?;
    linker.func_wrap(m, "proxy_get_header_map_value", get_header_map_value)?;
    linker.func_wrap(
        m,
        "proxy_remove_header_map_value",
        |cx: Cx<'_>, t: i32, kp: i32, kl: i32| {
            edit_header(cx, t, (kp, kl), None, |m, k, _| m.remove(k))
        },
    )?;
    linker.func_wrap(
        m,
        "proxy_replace_header_map_value",
        |cx: Cx<'_>, t: i32, kp: i32, kl: i32, vp: i32, vl: i32| {
            edit_header(cx, t, (kp, kl), Some((vp, vl)), HeaderMap::replace)
        },
    )?;
    linker.func_wrap(
        m,
        "proxy_add_header_map_value",
        |cx: Cx<'_>, t: i32, kp: i32, kl: i32, vp: i32, vl: i32| {
            edit_header(cx, t, (kp, kl), Some((vp, vl)), HeaderMap::add)
        },
    )?;
    linker.func_wrap(m, "proxy_get_property", get_property)?;
    linker.func_wrap(m, "proxy_set_property", set_property)?;
    linker.func_wrap(m, "proxy_get_shared_data", get_shared_data)?;
    linker.func_wrap(m, "proxy_set_shared_data", set_shared_data)?;
    linker.func_wrap(m, "proxy_register_shared_queue", register_shared_queue)?;
    linker.func_wrap(m, "proxy_resolve_shared_queue", resolve_shared_queue)?;
    linker.func_wrap(m, "proxy_dequeue_shared_queue", dequeue_shared_queue)?;
    linker.func_wrap(m, "proxy_enqueue_shared_queue", enqueue_shared_queue)?;
    linker.func_wrap(m, "proxy_continue_stream", continue_stream)?;
    linker.func_wrap(m, "proxy_close_stream", close_stream)?;
    linker.func_wrap(m, "proxy_send_local_response", send_local_response)?;
    linker.func_wrap(m, "proxy_http_call", http_call)?;
    linker.func_wrap(m, "proxy_set_effective_context", set_effective_context)?;
    linker.func_wrap(m, "proxy_define_metric", define_metric)?;
    linker.func_wrap(m, "proxy_get_metric", get_metric)?;
    linker.func_wrap(m, "proxy_record_metric", record_metric)?;
    linker.func_wrap(m, "proxy_increment_metric", increment_metric)?;
    linker.func_wrap(m, "proxy_done", |_cx: Cx<'_>| done(Ok(())))?;
    // gRPC and foreign functions are not reproduced: the SDK maps these codes to errors.
    linker.func_wrap(
        m,
        "proxy_grpc_call",
        |_: Cx<'_>,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32| { done(Err(Status::InternalFailure)) },
    )?;
    linker.func_wrap(
        m,
        "proxy_grpc_stream",
        |_: Cx<'_>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| {
            done(Err(Status::InternalFailure))
        },
    )?;
    linker.func_wrap(
        m,
        "proxy_grpc_send",
        |_: Cx<'_>, _: i32, _: i32, _: i32, _: i32| done(Err(Status::NotFound)),
    )?;
    linker.func_wrap(m, "proxy_grpc_cancel", |_: Cx<'_>, _: i32| {
        done(Err(Status::NotFound))
    })?;
    linker.func_wrap(m, "proxy_grpc_close", |_: Cx<'_>, _: i32| {
        done(Err(Status::NotFound))
    })?;
    linker.func_wrap(
        m,
        "proxy_get_status",
        |_: Cx<'_>, _: i32, _: i32, _: i32| done(Err(Status::NotFound)),
    )?;
    linker.func_wrap(
        m,
        "proxy_call_foreign_function",
        |_: Cx<'_>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| done(Err(Status::NotFound)),
    )?;
    Ok(())
}

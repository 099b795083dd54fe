//! One filter's VM: a wasmtime store holding the guest instance and its host state, and
//! typed calls into the guest's proxy-wasm exports with trap handling and a fuel budget.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use wasmtime::{Instance, Store, StoreLimits, TypedFunc};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use crate::headers::HeaderMap;
use crate::world::{StreamId, World};

/// Which part of the lifecycle the guest is in: decides which buffers and maps exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Idle,
    VmStart,
    Configure,
    Root,
    Http,
    CallResponse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Request,
    Response,
}

/// A local reply requested with `proxy_send_local_response`.
#[derive(Debug, Clone)]
pub(crate) struct LocalReplyRequest {
    pub context_id: u32,
    pub status: u32,
    pub body: Vec<u8>,
    pub headers: HeaderMap,
}

/// Per-callback state, reset before every call into the guest.
#[derive(Debug)]
pub(crate) struct CallState {
    pub phase: Phase,
    pub effective_context: u32,
    /// Local replies asked for, at most one per context (a callback may answer several
    /// streams it made effective, e.g. waiters woken by a callout answer).
    pub local_replies: Vec<LocalReplyRequest>,
    /// `proxy_continue_stream` calls, applied after the callback returns.
    pub resumes: Vec<(u32, Direction)>,
    /// `proxy_close_stream` calls (reset), applied after the callback returns.
    pub resets: Vec<u32>,
    /// Headers, body and trailers of the callout answer being delivered.
    pub call_response: Option<(HeaderMap, Vec<u8>, HeaderMap)>,
}

impl Default for CallState {
    fn default() -> Self {
        CallState {
            phase: Phase::Idle,
            effective_context: 0,
            local_replies: Vec::new(),
            resumes: Vec::new(),
            resets: Vec::new(),
            call_response: None,
        }
    }
}

/// The store data of one VM.
pub(crate) struct VmState {
    pub wasi: WasiP1Ctx,
    pub limits: StoreLimits,
    pub world: Arc<Mutex<World>>,
    pub index: usize,
    pub name: String,
    pub vm_id: String,
    pub plugin_config: Vec<u8>,
    pub vm_config: Vec<u8>,
    pub root_context_id: u32,
    /// HTTP context id → the stream it belongs to.
    pub contexts: HashMap<u32, StreamId>,
    pub call: CallState,
    pub tick_period_ms: u32,
    pub next_token: u32,
    pub stdout: MemoryOutputPipe,
    pub stderr: MemoryOutputPipe,
    pub stdout_read: usize,
    pub stderr_read: usize,
    /// The guest's memory and allocator, cached on first use.
    pub memory: Option<wasmtime::Memory>,
    pub allocate: Option<TypedFunc<u32, u32>>,
}

impl VmState {
    /// The shared world; a poisoned lock (a panic in another test thread holding it) is still
    /// usable: the data is plain.
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The stream the effective context belongs to, if it is an HTTP context.
    pub fn current_stream(&self) -> Option<StreamId> {
        self.contexts.get(&self.call.effective_context).copied()
    }
}

/// `proxy_on_http_call_response(context, token, headers, body size, trailers)`.
type CallResponseFn = TypedFunc<(u32, u32, u32, u32, u32), ()>;

/// Typed handles on the guest's exports; optional ones are `None` when not exported.
pub(crate) struct Exports {
    pub on_context_create: TypedFunc<(u32, u32), ()>,
    pub on_vm_start: Option<TypedFunc<(u32, u32), u32>>,
    pub on_configure: Option<TypedFunc<(u32, u32), u32>>,
    pub on_tick: Option<TypedFunc<u32, ()>>,
    pub on_queue_ready: Option<TypedFunc<(u32, u32), ()>>,
    pub on_request_headers: Option<TypedFunc<(u32, u32, u32), u32>>,
    pub on_request_body: Option<TypedFunc<(u32, u32, u32), u32>>,
    pub on_request_trailers: Option<TypedFunc<(u32, u32), u32>>,
    pub on_response_headers: Option<TypedFunc<(u32, u32, u32), u32>>,
    pub on_response_body: Option<TypedFunc<(u32, u32, u32), u32>>,
    pub on_response_trailers: Option<TypedFunc<(u32, u32), u32>>,
    pub on_http_call_response: Option<CallResponseFn>,
    pub on_done: Option<TypedFunc<u32, u32>>,
    pub on_log: Option<TypedFunc<u32, ()>>,
    pub on_delete: Option<TypedFunc<u32, ()>>,
}

impl Exports {
    pub fn find(store: &mut Store<VmState>, instance: &Instance) -> Result<Exports, String> {
        instance
            .get_memory(&mut *store, "memory")
            .ok_or("the module exports no `memory`")?;
        let on_context_create = instance
            .get_typed_func(&mut *store, "proxy_on_context_create")
            .map_err(|e| format!("`proxy_on_context_create`: {e}"))?;
        macro_rules! optional {
            ($name:literal) => {
                instance.get_typed_func(&mut *store, $name).ok()
            };
        }
        Ok(Exports {
            on_context_create,
            on_vm_start: optional!("proxy_on_vm_start"),
            on_configure: optional!("proxy_on_configure"),
            on_tick: optional!("proxy_on_tick"),
            on_queue_ready: optional!("proxy_on_queue_ready"),
            on_request_headers: optional!("proxy_on_request_headers"),
            on_request_body: optional!("proxy_on_request_body"),
            on_request_trailers: optional!("proxy_on_request_trailers"),
            on_response_headers: optional!("proxy_on_response_headers"),
            on_response_body: optional!("proxy_on_response_body"),
            on_response_trailers: optional!("proxy_on_response_trailers"),
            on_http_call_response: optional!("proxy_on_http_call_response"),
            on_done: optional!("proxy_on_done"),
            on_log: optional!("proxy_on_log"),
            on_delete: optional!("proxy_on_delete"),
        })
    }
}

/// A running filter VM.
pub(crate) struct Vm {
    pub store: Store<VmState>,
    pub exports: Exports,
    /// `None` on an unmetered host (benchmarks).
    pub fuel_per_call: Option<u64>,
    /// Set when the VM trapped: Envoy marks the plugin failed and fails every later stream.
    pub failed: Option<String>,
}

impl Vm {
    pub fn state(&self) -> &VmState {
        self.store.data()
    }

    pub fn state_mut(&mut self) -> &mut VmState {
        self.store.data_mut()
    }

    /// Calls into the guest with a fresh fuel budget and per-call state. A trap marks the VM
    /// failed and is returned as text.
    pub fn call<R>(
        &mut self,
        phase: Phase,
        context_id: u32,
        f: impl FnOnce(&mut Store<VmState>, &Exports) -> wasmtime::Result<R>,
    ) -> Result<R, String> {
        if let Some(reason) = &self.failed {
            return Err(reason.clone());
        }
        let state = self.store.data_mut();
        state.call = CallState {
            phase,
            effective_context: context_id,
            ..CallState::default()
        };
        if let Some(fuel) = self.fuel_per_call {
            if let Err(e) = self.store.set_fuel(fuel) {
                return Err(format!("cannot set fuel: {e}"));
            }
        }
        let result = f(&mut self.store, &self.exports);
        self.drain_output();
        result.map_err(|e| {
            let reason = describe_trap(&e);
            self.failed = Some(reason.clone());
            reason
        })
    }

    /// Moves what the guest wrote to stdout/stderr since the last call into the log.
    pub fn drain_output(&mut self) {
        let state = self.store.data_mut();
        let streams = [
            (
                crate::LogLevel::Info,
                state.stdout.contents(),
                &mut state.stdout_read,
            ),
            (
                crate::LogLevel::Error,
                state.stderr.contents(),
                &mut state.stderr_read,
            ),
        ];
        let mut fresh = Vec::new();
        for (level, bytes, read) in streams {
            if bytes.len() > *read {
                fresh.push((level, String::from_utf8_lossy(&bytes[*read..]).into_owned()));
                *read = bytes.len();
            }
        }
        if fresh.is_empty() {
            return;
        }
        let name = state.name.clone();
        let mut world = state.world();
        for (level, text) in fresh {
            for line in text.lines() {
                world.logs.push(crate::LogEntry {
                    filter: name.clone(),
                    level,
                    message: line.to_string(),
                });
            }
        }
    }
}

fn describe_trap(e: &wasmtime::Error) -> String {
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
        match trap {
            wasmtime::Trap::OutOfFuel => {
                "the filter ran out of fuel (an endless loop or far too much work per callback)"
                    .to_string()
            }
            wasmtime::Trap::UnreachableCodeReached => {
                "the filter panicked (wasm `unreachable`)".to_string()
            }
            other => format!("the filter trapped: {other}"),
        }
    } else {
        format!("the filter failed: {e:#}")
    }
}

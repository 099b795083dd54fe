//! A chain of filters on streams, scheduled the way Envoy's filter manager does it.
//!
//! Each filter is its own VM. Request frames (headers, body chunks, trailers) go through the
//! filters in order, response frames in reverse. A filter's "leg" (its side of one direction)
//! stops on Pause. From headers: with `allow_on_headers_stop_iteration` (the default here, as
//! tollgate's Envoy configuration sets it) the headers are held while the body still reaches
//! the filter, and go on when a body or trailers callback continues (Envoy's StopIteration);
//! without it everything stops (later body is held by the host and handed over in one
//! callback on resume, as Envoy's StopAllIteration does). From a body callback it buffers
//! (later chunks are appended and the callback fires again with the cumulative size, Envoy's
//! StopIterationAndBuffer); the buffered request body stays readable and writable from the
//! filter's other callbacks (a callout answer, a tick), as Envoy's decoding buffer is. Local replies, resumes and resets a filter requests are
//! applied after its callback returns; callout answers and queue notifications are delivered
//! after the current callback too, never re-entrantly.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasmtime::{ResourceLimiter, Store, StoreLimitsBuilder};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtxBuilder};

use crate::error::HarnessError;
use crate::headers::HeaderMap;
use crate::host::Host;
use crate::scenario::{
    CalloutReply, ClientResponse, LogEntry, Outcome, Request, Upstream, UpstreamRequest,
};
use crate::vm::{Direction, Exports, LocalReplyRequest, Phase, Vm, VmState};
use crate::world::{Deferred, StreamData, StreamId, World};

/// Envoy's default per-connection buffer limit (1 MiB).
pub const DEFAULT_BUFFER_LIMIT: usize = 1 << 20;
/// Fuel per callback: far above what a real filter needs, low enough to stop a loop in a second.
pub const DEFAULT_FUEL: u64 = 2_000_000_000;
/// How long (on the controlled clock) `run` waits for a paused stream before calling it
/// stalled; Envoy's default stream idle timeout.
pub const STALL_AFTER: Duration = Duration::from_secs(300);
/// Linear memory a VM may grow to.
pub const DEFAULT_MEMORY_LIMIT: usize = 256 << 20;

/// One filter of a chain: its module, plugin name, configuration and environment.
#[derive(Debug, Clone)]
pub struct FilterSpec {
    pub path: PathBuf,
    pub name: String,
    pub config: Vec<u8>,
    pub vm_config: Vec<u8>,
    pub vm_id: Option<String>,
    pub env: Vec<(String, String)>,
    pub fuel: u64,
    pub memory_limit: usize,
    /// Envoy's `allow_on_headers_stop_iteration` (see the module docs).
    pub stop_iteration: bool,
}

impl FilterSpec {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        FilterSpec {
            path,
            name,
            config: Vec::new(),
            vm_config: Vec::new(),
            vm_id: None,
            env: Vec::new(),
            fuel: DEFAULT_FUEL,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            stop_iteration: true,
        }
    }

    /// Envoy's `allow_on_headers_stop_iteration` (default true, as tollgate ships it); false
    /// emulates Envoy's default, where a Pause from headers stops the body from arriving too.
    pub fn allow_on_headers_stop_iteration(mut self, allow: bool) -> Self {
        self.stop_iteration = allow;
        self
    }

    /// The plugin name (Envoy's `name`/`root_id`); defaults to the file stem.
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// The plugin configuration, readable during `on_configure`.
    pub fn config(mut self, config: impl Into<Vec<u8>>) -> Self {
        self.config = config.into();
        self
    }

    /// The VM configuration, readable during `on_vm_start`.
    pub fn vm_config(mut self, config: impl Into<Vec<u8>>) -> Self {
        self.vm_config = config.into();
        self
    }

    /// The VM id that scopes shared data and queues; defaults to the plugin name.
    pub fn vm_id(mut self, vm_id: &str) -> Self {
        self.vm_id = Some(vm_id.to_string());
        self
    }

    /// An environment variable of the VM (Envoy: `environment_variables.host_env_keys`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Fuel per callback (instructions, roughly).
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.fuel = fuel;
        self
    }

    /// Maximum linear memory in bytes.
    pub fn memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = bytes;
        self
    }
}

/// Builds a [`Gateway`].
pub struct GatewayBuilder {
    host: Host,
    filters: Vec<FilterSpec>,
    clusters: Vec<String>,
    route_cluster: Option<String>,
    buffer_limit: usize,
    start: SystemTime,
}

impl GatewayBuilder {
    /// Adds a filter; request callbacks run in the order filters are added.
    pub fn filter(mut self, spec: FilterSpec) -> Self {
        self.filters.push(spec);
        self
    }

    /// Declares a cluster `dispatch_http_call` may use (others are BadArgument, as in Envoy).
    pub fn cluster(mut self, name: &str) -> Self {
        self.clusters.push(name.to_string());
        self
    }

    /// The cluster the route sends requests to, readable as the `xds.cluster_name` property
    /// (unset by default: a filter must cope with a host that does not tell).
    pub fn route_cluster(mut self, name: &str) -> Self {
        self.route_cluster = Some(name.to_string());
        self
    }

    /// The per-stream body buffer limit (Envoy: 413 for requests, 500 for responses).
    pub fn buffer_limit(mut self, bytes: usize) -> Self {
        self.buffer_limit = bytes;
        self
    }

    /// The controlled clock's start (default: the real time when building).
    pub fn start_time(mut self, at: SystemTime) -> Self {
        self.start = at;
        self
    }

    /// Starts every VM: `_initialize`, root context, `on_vm_start`, `on_configure`.
    pub fn build(self) -> Result<Gateway, HarnessError> {
        let start = self
            .start
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let world = Arc::new(Mutex::new(World::new(start)));
        {
            let mut w = lock(&world);
            w.clusters = self.clusters;
            w.route_cluster = self.route_cluster;
        }
        let mut gateway = Gateway {
            world,
            vms: Vec::new(),
            ticks: Vec::new(),
            buffer_limit: self.buffer_limit,
            stop_iteration: Vec::new(),
            next_context_id: 1,
            next_stream_id: 1,
            streams: HashMap::new(),
            finished: HashMap::new(),
        };
        for spec in self.filters {
            gateway.start_vm(&self.host, spec)?;
        }
        gateway.settle();
        Ok(gateway)
    }
}

fn lock(world: &Mutex<World>) -> MutexGuard<'_, World> {
    world.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// WASI clocks read the controlled clock.
struct WorldClock(Arc<Mutex<World>>);

impl HostWallClock for WorldClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }
    fn now(&self) -> Duration {
        Duration::from_nanos(lock(&self.0).now_nanos)
    }
}

impl HostMonotonicClock for WorldClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        lock(&self.0).now_nanos
    }
}

/// The state of one filter on one direction of one stream.
#[derive(Debug, Default)]
struct Leg {
    queue: VecDeque<Frame>,
    stopped: Stop,
    buffer: Vec<u8>,
    buffered_end: bool,
    headers_end: bool,
    /// Headers paused with StopIteration: held while body frames still reach the filter.
    headers_held: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Stop {
    #[default]
    No,
    Headers,
    Body,
    Trailers,
}

#[derive(Debug, Clone)]
enum Frame {
    Headers { end: bool },
    Data { bytes: Vec<u8>, end: bool },
    Trailers,
}

/// One stream in flight.
struct StreamRun {
    contexts: Vec<Option<u32>>,
    request: Vec<Leg>,
    response: Vec<Leg>,
    upstream_script: Upstream,
    upstream: Option<UpstreamRequest>,
    client: ClientResponse,
    request_stopped: bool,
    complete: bool,
    failure: Option<String>,
    logs_from: usize,
    callouts_from: usize,
}

impl StreamRun {
    /// One filter's leg of one direction.
    fn leg(&mut self, direction: Direction, filter: usize) -> &mut Leg {
        match direction {
            Direction::Request => &mut self.request[filter],
            Direction::Response => &mut self.response[filter],
        }
    }
}

/// What a callback asked for besides its return value.
struct Effects {
    vm: usize,
    local_replies: Vec<LocalReplyRequest>,
    resumes: Vec<(u32, Direction)>,
    resets: Vec<u32>,
}

impl Effects {
    fn none(vm: usize) -> Self {
        Effects {
            vm,
            local_replies: Vec::new(),
            resumes: Vec::new(),
            resets: Vec::new(),
        }
    }
}

/// A handle on a stream started with [`Gateway::start`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamHandle(StreamId);

/// A chain of filters and the host state they share.
pub struct Gateway {
    world: Arc<Mutex<World>>,
    vms: Vec<Vm>,
    /// Next tick per VM (nanos), when a period is set.
    ticks: Vec<Option<u64>>,
    buffer_limit: usize,
    /// Per VM: `allow_on_headers_stop_iteration`.
    stop_iteration: Vec<bool>,
    next_context_id: u32,
    next_stream_id: StreamId,
    streams: HashMap<StreamId, StreamRun>,
    finished: HashMap<StreamId, Outcome>,
}

impl Gateway {
    pub fn builder(host: &Host) -> GatewayBuilder {
        GatewayBuilder {
            host: host.clone(),
            filters: Vec::new(),
            clusters: Vec::new(),
            route_cluster: None,
            buffer_limit: DEFAULT_BUFFER_LIMIT,
            start: SystemTime::now(),
        }
    }

    /// A gateway with these filters and the defaults.
    pub fn new(host: &Host, filters: Vec<FilterSpec>) -> Result<Gateway, HarnessError> {
        filters
            .into_iter()
            .fold(Gateway::builder(host), GatewayBuilder::filter)
            .build()
    }

    fn world(&self) -> MutexGuard<'_, World> {
        lock(&self.world)
    }

    fn alloc_context(&mut self) -> u32 {
        let id = self.next_context_id;
        self.next_context_id += 1;
        id
    }

    fn start_vm(&mut self, host: &Host, spec: FilterSpec) -> Result<(), HarnessError> {
        let pre = host.load(&spec.path)?;
        self.stop_iteration.push(spec.stop_iteration);
        let instantiate = |message: String| HarnessError::Instantiate {
            filter: spec.name.clone(),
            message,
        };
        let stdout = MemoryOutputPipe::new(usize::MAX);
        let stderr = MemoryOutputPipe::new(usize::MAX);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(stdout.clone())
            .stderr(stderr.clone())
            .wall_clock(WorldClock(self.world.clone()))
            .monotonic_clock(WorldClock(self.world.clone()));
        for (k, v) in &spec.env {
            wasi.env(k, v);
        }
        let index = self.vms.len();
        let root_context_id = self.alloc_context();
        let state = VmState {
            wasi: wasi.build_p1(),
            limits: StoreLimitsBuilder::new()
                .memory_size(spec.memory_limit)
                .build(),
            world: self.world.clone(),
            index,
            name: spec.name.clone(),
            vm_id: spec.vm_id.clone().unwrap_or_else(|| spec.name.clone()),
            plugin_config: spec.config.clone(),
            vm_config: spec.vm_config.clone(),
            root_context_id,
            contexts: HashMap::new(),
            call: Default::default(),
            tick_period_ms: 0,
            next_token: 1,
            stdout,
            stderr,
            stdout_read: 0,
            stderr_read: 0,
            memory: None,
            allocate: None,
        };
        let mut store = Store::new(host.engine(), state);
        store.limiter(|s| &mut s.limits as &mut dyn ResourceLimiter);
        let fuel_per_call = host.metered().then_some(spec.fuel);
        if let Some(fuel) = fuel_per_call {
            store
                .set_fuel(fuel)
                .map_err(|e| instantiate(e.to_string()))?;
        }
        let instance = pre
            .instantiate(&mut store)
            .map_err(|e| instantiate(format!("{e:#}")))?;
        let exports = Exports::find(&mut store, &instance).map_err(instantiate)?;
        let initialize = instance
            .get_typed_func::<(), ()>(&mut store, "_initialize")
            .or_else(|_| instance.get_typed_func::<(), ()>(&mut store, "_start"));
        let mut vm = Vm {
            store,
            exports,
            fuel_per_call,
            failed: None,
        };
        let trap = |message: String| HarnessError::Trap {
            filter: spec.name.clone(),
            message,
        };
        if let Ok(init) = initialize {
            vm.call(Phase::Root, 0, |s, _| init.call(s, ()))
                .map_err(trap)?;
        }
        let logs_from = self.world().logs.len();
        let (vm_config_len, config_len) = (spec.vm_config.len() as u32, spec.config.len() as u32);
        vm.call(Phase::Root, root_context_id, |s, e| {
            e.on_context_create.call(s, (root_context_id, 0))
        })
        .map_err(trap)?;
        let started = vm
            .call(Phase::VmStart, root_context_id, |s, e| {
                match &e.on_vm_start {
                    Some(f) => f.call(s, (root_context_id, vm_config_len)),
                    None => Ok(1),
                }
            })
            .map_err(trap)?;
        let logs_since = |gw: &Gateway| gw.world().logs[logs_from..].to_vec();
        if started == 0 {
            return Err(HarnessError::VmStart {
                filter: spec.name,
                logs: logs_since(self),
            });
        }
        let configured = vm
            .call(Phase::Configure, root_context_id, |s, e| {
                match &e.on_configure {
                    Some(f) => f.call(s, (root_context_id, config_len)),
                    None => Ok(1),
                }
            })
            .map_err(trap)?;
        if configured == 0 {
            return Err(HarnessError::Configure {
                filter: spec.name,
                logs: logs_since(self),
            });
        }
        let effects = take_effects(&mut vm);
        self.vms.push(vm);
        self.ticks.push(None);
        self.after_call(effects);
        self.update_tick(index);
        Ok(())
    }

    fn update_tick(&mut self, vm: usize) {
        let period = self.vms[vm].state().tick_period_ms;
        let now = self.world().now_nanos;
        self.ticks[vm] = match (period, self.ticks[vm]) {
            (0, _) => None,
            (_, Some(next)) => Some(next),
            (p, None) => Some(now + u64::from(p) * 1_000_000),
        };
    }

    // ---- public API ---------------------------------------------------------------------------

    /// Scripts the answer to the next `dispatch_http_call` on `cluster` (FIFO per cluster).
    /// An unscripted call is answered by nothing: it fails when its timeout elapses.
    pub fn script_callout(&mut self, cluster: &str, reply: CalloutReply) {
        self.world()
            .callout_scripts
            .entry(cluster.to_string())
            .or_default()
            .push_back(reply);
    }

    /// Runs one stream to completion: sends `request` through the chain; if it reaches the
    /// upstream, answers with `upstream`. Delayed callout answers and ticks in between move the
    /// controlled clock forward as needed.
    pub fn run(&mut self, request: Request, upstream: Upstream) -> Outcome {
        let handle = self.start(request, upstream);
        self.drive(&[handle]);
        self.take_outcome(handle)
    }

    /// Runs several streams side by side: all start before any callout answer is delivered,
    /// as concurrent requests do on one Envoy worker.
    pub fn run_concurrently(&mut self, streams: Vec<(Request, Upstream)>) -> Vec<Outcome> {
        let handles: Vec<StreamHandle> = streams
            .into_iter()
            .map(|(req, up)| self.start(req, up))
            .collect();
        self.drive(&handles);
        handles.into_iter().map(|h| self.take_outcome(h)).collect()
    }

    /// Starts a stream and runs it as far as it goes without moving the clock.
    pub fn start(&mut self, request: Request, upstream: Upstream) -> StreamHandle {
        let id = self.next_stream_id;
        self.next_stream_id += 1;
        let n = self.vms.len();
        let has_trailers = request.trailers.is_some();
        let (logs_from, callouts_from) = {
            let mut world = self.world();
            world.streams.insert(
                id,
                StreamData {
                    request_headers: Some(request.headers),
                    request_trailers: request.trailers,
                    ..StreamData::default()
                },
            );
            (world.logs.len(), world.callouts.len())
        };
        let run = StreamRun {
            contexts: vec![None; n],
            request: (0..n).map(|_| Leg::default()).collect(),
            response: (0..n).map(|_| Leg::default()).collect(),
            upstream_script: upstream,
            upstream: None,
            client: ClientResponse::default(),
            request_stopped: false,
            complete: false,
            failure: None,
            logs_from,
            callouts_from,
        };
        let frames = frames(request.chunks, has_trailers);
        self.streams.insert(id, run);
        self.with_run(id, |gw, run| {
            if n == 0 {
                for frame in frames {
                    gw.send_upstream(run, id, frame);
                }
            } else {
                run.request[0].queue.extend(frames);
            }
        });
        self.pump(id);
        self.settle();
        StreamHandle(id)
    }

    /// Moves the controlled clock, firing ticks and delivering callout answers that fall due.
    pub fn advance(&mut self, by: Duration) {
        let target = self.world().now_nanos.saturating_add(by.as_nanos() as u64);
        loop {
            let next = self.next_timer();
            match next {
                Some(at) if at <= target => {
                    let now = self.world().now_nanos;
                    self.world().now_nanos = at.max(now);
                    self.fire_timers();
                }
                _ => break,
            }
        }
        self.world().now_nanos = target;
        self.settle();
    }

    /// The outcome of a stream started with [`Gateway::start`], once it is complete.
    pub fn outcome(&mut self, handle: StreamHandle) -> Option<Outcome> {
        self.finished.remove(&handle.0)
    }

    /// A counter or gauge by name (`None` if never defined).
    pub fn metric(&self, name: &str) -> Option<u64> {
        self.world().metric_values.get(name).map(|v| v.value)
    }

    /// The values recorded in a histogram.
    pub fn histogram(&self, name: &str) -> Option<Vec<u64>> {
        self.world()
            .metric_values
            .get(name)
            .map(|v| v.samples.clone())
    }

    /// Every metric name and value (counters and gauges).
    pub fn metrics(&self) -> Vec<(String, u64)> {
        self.world()
            .metric_values
            .iter()
            .map(|(k, v)| (k.clone(), v.value))
            .collect()
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<LogEntry> {
        self.world().logs.clone()
    }

    /// A shared-data value of `vm_id` with its CAS.
    pub fn shared_data(&self, vm_id: &str, key: &str) -> Option<(Vec<u8>, u32)> {
        self.world().shared_data.get(vm_id)?.get(key).cloned()
    }

    /// The controlled clock (nanoseconds since the Unix epoch).
    pub fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.world().now_nanos)
    }

    /// The failure of a filter's VM, if it trapped (it then fails every stream).
    pub fn vm_failure(&self, filter: &str) -> Option<String> {
        self.vms
            .iter()
            .find(|vm| vm.state().name == filter)
            .and_then(|vm| vm.failed.clone())
    }

    // ---- driving ------------------------------------------------------------------------------

    /// Drives until the given streams complete, moving the clock to the next timer when
    /// nothing else can happen. A stream still paused after [`STALL_AFTER`] completes with a
    /// failure, as a paused request that nobody resumes would time out in Envoy.
    fn drive(&mut self, handles: &[StreamHandle]) {
        let deadline = self
            .world()
            .now_nanos
            .saturating_add(STALL_AFTER.as_nanos() as u64);
        loop {
            if handles.iter().all(|h| self.finished.contains_key(&h.0)) {
                return;
            }
            match self.next_timer() {
                Some(at) if at <= deadline => {
                    let now = self.world().now_nanos;
                    self.world().now_nanos = at.max(now);
                    self.fire_timers();
                    self.settle();
                }
                _ => {
                    for h in handles {
                        if let Some(mut run) = self.streams.remove(&h.0) {
                            run.failure = Some(
                                "stream stalled: a filter paused it and nothing resumed it"
                                    .to_string(),
                            );
                            self.finish(h.0, run);
                        }
                    }
                    return;
                }
            }
        }
    }

    fn take_outcome(&mut self, handle: StreamHandle) -> Outcome {
        self.finished.remove(&handle.0).unwrap_or_default()
    }

    /// The earliest pending callout answer or tick.
    fn next_timer(&self) -> Option<u64> {
        let callouts = self
            .world()
            .pending_callouts
            .iter()
            .map(|c| c.due_nanos)
            .min();
        let ticks = self.ticks.iter().flatten().copied().min();
        callouts.into_iter().chain(ticks).min()
    }

    /// Fires the ticks and delivers the callout answers that are due now.
    fn fire_timers(&mut self) {
        let now = self.world().now_nanos;
        for vm in 0..self.vms.len() {
            if self.ticks[vm].is_some_and(|at| at <= now) {
                let period = u64::from(self.vms[vm].state().tick_period_ms) * 1_000_000;
                self.ticks[vm] = (period > 0).then_some(now + period);
                let root = self.vms[vm].state().root_context_id;
                let _ = self.vms[vm].call(Phase::Root, root, |s, e| match &e.on_tick {
                    Some(f) => f.call(s, root),
                    None => Ok(()),
                });
                let effects = take_effects(&mut self.vms[vm]);
                self.after_call(effects);
                self.update_tick(vm);
            }
        }
        self.settle();
    }

    /// Delivers everything due now (callout answers, queue notifications) until quiet.
    fn settle(&mut self) {
        loop {
            let now = self.world().now_nanos;
            let due = {
                let mut world = self.world();
                world
                    .pending_callouts
                    .iter()
                    .position(|c| c.due_nanos <= now)
                    .map(|i| world.pending_callouts.remove(i))
            };
            if let Some(callout) = due {
                self.deliver_callout(callout);
                continue;
            }
            let deferred = self.world().deferred.pop_front();
            match deferred {
                Some(Deferred::QueueReady {
                    vm,
                    context_id,
                    queue_id,
                }) => {
                    if let Some(target) = self.vms.get_mut(vm) {
                        let _ =
                            target.call(Phase::Root, context_id, |s, e| match &e.on_queue_ready {
                                Some(f) => f.call(s, (context_id, queue_id)),
                                None => Ok(()),
                            });
                        let effects = take_effects(target);
                        self.after_call(effects);
                    }
                }
                None => return,
            }
        }
    }

    fn deliver_callout(&mut self, callout: crate::world::PendingCallout) {
        let vm = callout.vm;
        let Some(target) = self.vms.get_mut(vm) else {
            return;
        };
        let ctx = callout.context_id;
        // Envoy cancels the callouts of a context that is gone.
        if ctx != target.state().root_context_id && !target.state().contexts.contains_key(&ctx) {
            return;
        }
        let (headers, body) = match callout.reply {
            Some(CalloutReply::Response { headers, body, .. }) => {
                (HeaderMap::from_pairs(headers), body)
            }
            _ => (HeaderMap::new(), Vec::new()),
        };
        let (n_headers, body_len) = (headers.len() as u32, body.len() as u32);
        let token = callout.token;
        let result = target.call(Phase::CallResponse, ctx, |s, e| {
            s.data_mut().call.call_response = Some((headers, body, HeaderMap::new()));
            match &e.on_http_call_response {
                Some(f) => f.call(s, (ctx, token, n_headers, body_len, 0)),
                None => Ok(()),
            }
        });
        let effects = take_effects(target);
        if let Err(reason) = result {
            self.fail_streams_of(vm, &reason);
        }
        self.after_call(effects);
    }

    /// Applies what a callback asked for: local replies, resumes, resets.
    fn after_call(&mut self, effects: Effects) {
        let vm = effects.vm;
        for reply in effects.local_replies {
            if let Some((sid, _)) = self.locate(vm, reply.context_id) {
                self.local_reply(sid, reply.status, reply.body, reply.headers);
            }
        }
        for ctx in effects.resets {
            if let Some((sid, _)) = self.locate(vm, ctx) {
                self.reset(sid);
            }
        }
        for (ctx, direction) in effects.resumes {
            if let Some((sid, filter)) = self.locate(vm, ctx) {
                self.resume(sid, filter, direction);
            }
        }
    }

    /// The stream and chain position of a VM's HTTP context.
    fn locate(&self, vm: usize, ctx: u32) -> Option<(StreamId, usize)> {
        let sid = *self.vms.get(vm)?.state().contexts.get(&ctx)?;
        Some((sid, vm))
    }

    fn with_run<R>(
        &mut self,
        sid: StreamId,
        f: impl FnOnce(&mut Gateway, &mut StreamRun) -> R,
    ) -> Option<R> {
        let mut run = self.streams.remove(&sid)?;
        let result = f(self, &mut run);
        if run.complete {
            self.finish(sid, run);
        } else {
            self.streams.insert(sid, run);
        }
        Some(result)
    }

    fn resume(&mut self, sid: StreamId, filter: usize, direction: Direction) {
        self.with_run(sid, |gw, run| gw.unstop(run, sid, filter, direction));
        self.pump(sid);
    }

    /// Continues a stopped leg: what it held goes on to the next filter.
    fn unstop(&mut self, run: &mut StreamRun, sid: StreamId, filter: usize, direction: Direction) {
        self.unpark_body(run, sid, direction, filter);
        let leg = run.leg(direction, filter);
        if std::mem::take(&mut leg.headers_held) {
            let end = leg.headers_end;
            self.forward(run, sid, direction, filter, Frame::Headers { end });
        }
        let leg = run.leg(direction, filter);
        match std::mem::take(&mut leg.stopped) {
            Stop::No => {}
            Stop::Headers => {
                // Envoy hands the body held while headers were stopped over in one callback.
                let mut held = Vec::new();
                let mut held_end = false;
                while let Some(Frame::Data { bytes, end }) = leg.queue.front() {
                    held.extend_from_slice(bytes);
                    held_end = *end;
                    leg.queue.pop_front();
                }
                if !held.is_empty() || held_end {
                    leg.queue.push_front(Frame::Data {
                        bytes: held,
                        end: held_end,
                    });
                }
                let end = leg.headers_end;
                self.forward(run, sid, direction, filter, Frame::Headers { end });
            }
            Stop::Body => {
                let bytes = std::mem::take(&mut leg.buffer);
                let end = leg.buffered_end;
                self.forward(run, sid, direction, filter, Frame::Data { bytes, end });
            }
            Stop::Trailers => {
                let bytes = std::mem::take(&mut leg.buffer);
                if !bytes.is_empty() {
                    self.forward(
                        run,
                        sid,
                        direction,
                        filter,
                        Frame::Data { bytes, end: false },
                    );
                }
                self.forward(run, sid, direction, filter, Frame::Trailers);
            }
        }
    }

    /// Processes every leg of a stream until nothing moves.
    fn pump(&mut self, sid: StreamId) {
        loop {
            let moved = self
                .with_run(sid, |gw, run| {
                    let mut moved = false;
                    for i in 0..run.request.len() {
                        moved |= gw.process_leg(run, sid, Direction::Request, i);
                    }
                    for i in (0..run.response.len()).rev() {
                        moved |= gw.process_leg(run, sid, Direction::Response, i);
                    }
                    moved
                })
                .unwrap_or(false);
            if !moved {
                return;
            }
        }
    }

    /// Runs the callbacks of one filter for the next frame waiting on one direction; false when
    /// nothing could move. One frame per call: the pump passes each frame through the whole
    /// chain before the next, as Envoy's filter manager iterates the request headers through
    /// every filter before any body data.
    fn process_leg(
        &mut self,
        run: &mut StreamRun,
        sid: StreamId,
        direction: Direction,
        i: usize,
    ) -> bool {
        if run.complete {
            return false;
        }
        let leg = run.leg(direction, i);
        if matches!(leg.stopped, Stop::Headers | Stop::Trailers) {
            return false;
        }
        let Some(mut frame) = leg.queue.pop_front() else {
            return false;
        };
        self.unpark_body(run, sid, direction, i);
        if direction == Direction::Request && run.contexts[i].is_none() {
            if let Err(reason) = self.create_context(run, sid, i) {
                self.fail_stream(run, sid, reason);
                return true;
            }
        }
        let Some(ctx) = run.contexts[i] else {
            // A filter that never saw the request (a local reply came first) lets it pass.
            self.forward(run, sid, direction, i, frame);
            return true;
        };
        let (action, body_end) = match &mut frame {
            Frame::Headers { end } => {
                let count = self.map_len(sid, direction, false);
                let end_flag = u32::from(*end);
                let result = self.vms[i].call(Phase::Http, ctx, |s, e| {
                    let f = match direction {
                        Direction::Request => &e.on_request_headers,
                        Direction::Response => &e.on_response_headers,
                    };
                    match f {
                        Some(f) => f.call(s, (ctx, count, end_flag)),
                        None => Ok(0),
                    }
                });
                (result, *end)
            }
            Frame::Data { bytes, end } => {
                let leg = run.leg(direction, i);
                if leg.stopped == Stop::Body {
                    leg.buffer.extend_from_slice(bytes);
                } else {
                    leg.buffer = std::mem::take(bytes);
                }
                let size = leg.buffer.len() as u32;
                self.set_body(sid, direction, Some(std::mem::take(&mut leg.buffer)));
                let end_flag = u32::from(*end);
                let result = self.vms[i].call(Phase::Http, ctx, |s, e| {
                    let f = match direction {
                        Direction::Request => &e.on_request_body,
                        Direction::Response => &e.on_response_body,
                    };
                    match f {
                        Some(f) => f.call(s, (ctx, size, end_flag)),
                        None => Ok(0),
                    }
                });
                let body = self.set_body(sid, direction, None).unwrap_or_default();
                let leg = run.leg(direction, i);
                leg.buffer = body;
                (result, *end)
            }
            Frame::Trailers => {
                let count = self.map_len(sid, direction, true);
                // The body the filter buffered is readable and writable with the trailers.
                let leg = run.leg(direction, i);
                self.set_body(sid, direction, Some(std::mem::take(&mut leg.buffer)));
                let result = self.vms[i].call(Phase::Http, ctx, |s, e| {
                    let f = match direction {
                        Direction::Request => &e.on_request_trailers,
                        Direction::Response => &e.on_response_trailers,
                    };
                    match f {
                        Some(f) => f.call(s, (ctx, count)),
                        None => Ok(0),
                    }
                });
                run.leg(direction, i).buffer =
                    self.set_body(sid, direction, None).unwrap_or_default();
                (result, true)
            }
        };
        let effects = take_effects(&mut self.vms[i]);
        let action = match action {
            Ok(action) => action,
            Err(reason) => {
                self.fail_stream(run, sid, reason.clone());
                self.fail_other_streams(i, sid, &reason);
                return true;
            }
        };
        // Effects on this stream apply to `run` directly; others go through the gateway.
        let (mut mine, others) = split_effects(effects, |ctx| {
            self.locate(i, ctx).map(|(s, _)| s) == Some(sid)
        });
        self.after_call(others);
        if let Some(reply) = mine.local_replies.pop() {
            self.apply_local_reply(run, sid, reply.status, reply.body, reply.headers);
            return true;
        }
        if !mine.resets.is_empty() {
            self.apply_reset(run, sid);
            return true;
        }
        let leg = run.leg(direction, i);
        let paused = action == 1;
        match (frame, paused) {
            (Frame::Headers { end }, false) => {
                self.forward(run, sid, direction, i, Frame::Headers { end })
            }
            (Frame::Headers { end }, true) => {
                if self.stop_iteration[i] {
                    leg.headers_held = true;
                } else {
                    leg.stopped = Stop::Headers;
                }
                leg.headers_end = end;
            }
            (Frame::Data { .. }, false) => {
                leg.stopped = Stop::No;
                let bytes = std::mem::take(&mut leg.buffer);
                self.release_held_headers(run, sid, direction, i);
                self.forward(
                    run,
                    sid,
                    direction,
                    i,
                    Frame::Data {
                        bytes,
                        end: body_end,
                    },
                );
            }
            (Frame::Data { .. }, true) => {
                leg.stopped = Stop::Body;
                leg.buffered_end = body_end;
                if leg.buffer.len() > self.buffer_limit {
                    self.buffer_overflow(run, sid, direction);
                    return true;
                }
                self.park_body(run, sid, direction, i);
            }
            (Frame::Trailers, false) => {
                let bytes = std::mem::take(&mut leg.buffer);
                leg.stopped = Stop::No;
                self.release_held_headers(run, sid, direction, i);
                if !bytes.is_empty() {
                    self.forward(run, sid, direction, i, Frame::Data { bytes, end: false });
                }
                self.forward(run, sid, direction, i, Frame::Trailers);
            }
            (Frame::Trailers, true) => leg.stopped = Stop::Trailers,
        }
        for (_, dir) in mine.resumes {
            self.unstop(run, sid, i, dir);
        }
        true
    }

    /// Headers held by StopIteration go on when a body or trailers callback continues.
    fn release_held_headers(
        &mut self,
        run: &mut StreamRun,
        sid: StreamId,
        direction: Direction,
        i: usize,
    ) {
        let leg = run.leg(direction, i);
        if std::mem::take(&mut leg.headers_held) {
            let end = leg.headers_end;
            self.forward(run, sid, direction, i, Frame::Headers { end });
        }
    }

    /// A body a filter buffers waits in the world, where the filter's other callbacks (a
    /// callout answer, trailers) can read and rewrite it (Envoy's decoding and encoding
    /// buffers); [`Self::unpark_body`] takes it back.
    fn park_body(&mut self, run: &mut StreamRun, sid: StreamId, direction: Direction, i: usize) {
        let bytes = std::mem::take(&mut run.leg(direction, i).buffer);
        if let Some(data) = self.world().streams.get_mut(&sid) {
            data.parked_bodies(direction).insert(i, bytes);
        }
    }

    fn unpark_body(&mut self, run: &mut StreamRun, sid: StreamId, direction: Direction, i: usize) {
        let parked = self
            .world()
            .streams
            .get_mut(&sid)
            .and_then(|data| data.parked_bodies(direction).remove(&i));
        if let Some(bytes) = parked {
            run.leg(direction, i).buffer = bytes;
        }
    }

    /// How many headers (or trailers) a callback is told about.
    fn map_len(&self, sid: StreamId, direction: Direction, trailers: bool) -> u32 {
        let world = self.world();
        let Some(data) = world.streams.get(&sid) else {
            return 0;
        };
        let map = match (direction, trailers) {
            (Direction::Request, false) => data.request_headers.as_ref(),
            (Direction::Request, true) => data.request_trailers.as_ref(),
            (Direction::Response, false) => data.response_headers.as_ref(),
            (Direction::Response, true) => data.response_trailers.as_ref(),
        };
        map.map_or(0, HeaderMap::len) as u32
    }

    fn set_body(
        &self,
        sid: StreamId,
        direction: Direction,
        body: Option<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        let mut world = self.world();
        let data = world.streams.get_mut(&sid)?;
        let slot = match direction {
            Direction::Request => &mut data.request_body,
            Direction::Response => &mut data.response_body,
        };
        std::mem::replace(slot, body)
    }

    fn create_context(
        &mut self,
        run: &mut StreamRun,
        sid: StreamId,
        i: usize,
    ) -> Result<(), String> {
        let ctx = self.alloc_context();
        let vm = &mut self.vms[i];
        if let Some(reason) = &vm.failed {
            return Err(reason.clone());
        }
        let root = vm.state().root_context_id;
        vm.state_mut().contexts.insert(ctx, sid);
        run.contexts[i] = Some(ctx);
        vm.call(Phase::Http, ctx, |s, e| {
            e.on_context_create.call(s, (ctx, root))
        })
    }

    /// Sends a frame on from filter `i`: to the next filter, the upstream or the client.
    fn forward(
        &mut self,
        run: &mut StreamRun,
        sid: StreamId,
        direction: Direction,
        i: usize,
        frame: Frame,
    ) {
        match direction {
            Direction::Request if i + 1 < run.request.len() => {
                run.request[i + 1].queue.push_back(frame)
            }
            Direction::Request => self.send_upstream(run, sid, frame),
            Direction::Response if i > 0 => run.response[i - 1].queue.push_back(frame),
            Direction::Response => self.send_client(run, sid, frame),
        }
    }

    fn send_upstream(&mut self, run: &mut StreamRun, sid: StreamId, frame: Frame) {
        if run.request_stopped {
            return;
        }
        let end = match frame {
            Frame::Headers { end } => {
                let headers = {
                    let mut world = self.world();
                    let data = world.streams.get_mut(&sid);
                    data.map(|d| {
                        d.request_headers_sent = true;
                        d.request_headers.clone().unwrap_or_default()
                    })
                    .unwrap_or_default()
                };
                run.upstream = Some(UpstreamRequest {
                    headers,
                    ..UpstreamRequest::default()
                });
                end
            }
            Frame::Data { bytes, end } => {
                if let Some(up) = run.upstream.as_mut() {
                    up.body.extend_from_slice(&bytes);
                }
                end
            }
            Frame::Trailers => {
                let trailers = self
                    .world()
                    .streams
                    .get(&sid)
                    .and_then(|d| d.request_trailers.clone());
                if let Some(up) = run.upstream.as_mut() {
                    up.trailers = trailers;
                }
                true
            }
        };
        if end {
            if let Some(up) = run.upstream.as_mut() {
                up.complete = true;
            }
            run.request_stopped = true;
            self.upstream_responds(run, sid);
        }
    }

    fn upstream_responds(&mut self, run: &mut StreamRun, sid: StreamId) {
        // The upstream answers once: its script is used up here.
        let script = std::mem::replace(&mut run.upstream_script, Upstream::new(200));
        let trailers = script.trailers.is_some();
        {
            let mut world = self.world();
            if let Some(data) = world.streams.get_mut(&sid) {
                data.response_headers = Some(script.headers);
                data.response_trailers = script.trailers;
            }
        }
        let frames = frames(script.chunks, trailers);
        self.send_response(run, sid, frames);
    }

    /// Queues response frames at the last filter (the response path runs in reverse).
    fn send_response(&mut self, run: &mut StreamRun, sid: StreamId, frames: Vec<Frame>) {
        match run.response.len() {
            0 => {
                for frame in frames {
                    self.send_client(run, sid, frame);
                }
            }
            n => run.response[n - 1].queue.extend(frames),
        }
    }

    fn send_client(&mut self, run: &mut StreamRun, sid: StreamId, frame: Frame) {
        match frame {
            Frame::Headers { end } => {
                let headers = {
                    let mut world = self.world();
                    let data = world.streams.get_mut(&sid);
                    data.map(|d| {
                        d.response_headers_sent = true;
                        d.response_headers.clone().unwrap_or_default()
                    })
                    .unwrap_or_default()
                };
                run.client.status = headers
                    .get_str(":status")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                run.client.headers = headers;
                run.complete |= end;
            }
            Frame::Data { bytes, end } => {
                if !bytes.is_empty() {
                    run.client.body.extend_from_slice(&bytes);
                    run.client.chunks.push(bytes);
                }
                run.complete |= end;
            }
            Frame::Trailers => {
                run.client.trailers = self
                    .world()
                    .streams
                    .get(&sid)
                    .and_then(|d| d.response_trailers.clone());
                run.complete = true;
            }
        }
    }

    // ---- local replies, failures, resets --------------------------------------------------------

    fn local_reply(&mut self, sid: StreamId, status: u32, body: Vec<u8>, headers: HeaderMap) {
        self.with_run(sid, |gw, run| {
            gw.apply_local_reply(run, sid, status, body, headers)
        });
        self.pump(sid);
    }

    /// Envoy's `sendLocalReply`: before any response exists it runs through the response
    /// callbacks of the filters that saw the request; once the upstream's response headers
    /// exist but have not gone downstream it replaces them directly; after that it resets.
    fn apply_local_reply(
        &mut self,
        run: &mut StreamRun,
        sid: StreamId,
        status: u32,
        body: Vec<u8>,
        extra: HeaderMap,
    ) {
        run.request_stopped = true;
        for leg in &mut run.request {
            leg.queue.clear();
            leg.stopped = Stop::No;
        }
        let (response_started, response_sent) = {
            let world = self.world();
            let data = world.streams.get(&sid);
            (
                data.is_some_and(|d| d.response_headers.is_some()),
                data.is_some_and(|d| d.response_headers_sent),
            )
        };
        if response_sent {
            self.apply_reset(run, sid);
            return;
        }
        let mut headers = HeaderMap::new();
        headers.add(":status", status.to_string().as_bytes());
        for (k, v) in extra.iter() {
            headers.add(k, v);
        }
        headers.replace("content-length", body.len().to_string().as_bytes());
        if !body.is_empty() && headers.get("content-type").is_none() {
            headers.add("content-type", b"text/plain");
        }
        {
            let mut world = self.world();
            if let Some(data) = world.streams.get_mut(&sid) {
                data.response_headers = Some(headers);
                data.response_trailers = None;
            }
        }
        run.client.local_reply = true;
        for leg in &mut run.response {
            leg.queue.clear();
            leg.stopped = Stop::No;
            leg.buffer.clear();
        }
        let end = body.is_empty();
        let mut frames = vec![Frame::Headers { end }];
        if !end {
            frames.push(Frame::Data {
                bytes: body,
                end: true,
            });
        }
        if response_started {
            for frame in frames {
                self.send_client(run, sid, frame);
            }
        } else {
            self.send_response(run, sid, frames);
        }
    }

    fn buffer_overflow(&mut self, run: &mut StreamRun, sid: StreamId, direction: Direction) {
        match direction {
            Direction::Request => self.apply_local_reply(
                run,
                sid,
                413,
                b"Payload Too Large".to_vec(),
                HeaderMap::new(),
            ),
            Direction::Response => self.apply_local_reply(
                run,
                sid,
                500,
                b"Internal Server Error".to_vec(),
                HeaderMap::new(),
            ),
        }
    }

    /// A filter trapped: with `FAIL_CLOSED`, Envoy answers 503 (or resets a started response).
    fn fail_stream(&mut self, run: &mut StreamRun, sid: StreamId, reason: String) {
        run.failure.get_or_insert(reason);
        self.apply_local_reply(run, sid, 503, Vec::new(), HeaderMap::new());
    }

    fn fail_other_streams(&mut self, vm: usize, except: StreamId, reason: &str) {
        let others: Vec<StreamId> = self.vms[vm]
            .state()
            .contexts
            .values()
            .copied()
            .filter(|s| *s != except)
            .collect();
        for sid in others {
            self.with_run(sid, |gw, run| gw.fail_stream(run, sid, reason.to_string()));
            self.pump(sid);
        }
    }

    fn fail_streams_of(&mut self, vm: usize, reason: &str) {
        self.fail_other_streams(vm, 0, reason);
    }

    fn reset(&mut self, sid: StreamId) {
        self.with_run(sid, |gw, run| gw.apply_reset(run, sid));
    }

    fn apply_reset(&mut self, run: &mut StreamRun, _sid: StreamId) {
        run.request_stopped = true;
        run.client.reset = true;
        run.complete = true;
    }

    /// Ends a stream: `on_done`, `on_log`, `on_delete` for every context, then the outcome.
    fn finish(&mut self, sid: StreamId, run: StreamRun) {
        for (i, ctx) in run.contexts.iter().enumerate() {
            let Some(ctx) = *ctx else { continue };
            let vm = &mut self.vms[i];
            let _ = vm.call(Phase::Http, ctx, |s, e| {
                if let Some(f) = &e.on_done {
                    f.call(&mut *s, ctx)?;
                }
                if let Some(f) = &e.on_log {
                    f.call(&mut *s, ctx)?;
                }
                if let Some(f) = &e.on_delete {
                    f.call(&mut *s, ctx)?;
                }
                Ok(())
            });
            vm.state_mut().contexts.remove(&ctx);
        }
        let mut world = self.world();
        let data = world.streams.remove(&sid).unwrap_or_default();
        let outcome = Outcome {
            client: run.client,
            upstream: run.upstream,
            callouts: world
                .callouts
                .get(run.callouts_from..)
                .unwrap_or_default()
                .to_vec(),
            filter_state: data.filter_state,
            logs: world.logs.get(run.logs_from..).unwrap_or_default().to_vec(),
            failure: run.failure,
        };
        drop(world);
        self.finished.insert(sid, outcome);
    }
}

/// The frames of a message as Envoy's HTTP/1 codec delivers them: headers, each chunk without
/// end of stream, then an empty chunk that ends the stream (or trailers). A message without a
/// body ends at its headers.
fn frames(chunks: Vec<Vec<u8>>, trailers: bool) -> Vec<Frame> {
    let empty = chunks.iter().all(Vec::is_empty);
    let mut frames = vec![Frame::Headers {
        end: empty && !trailers,
    }];
    for chunk in chunks.into_iter().filter(|c| !c.is_empty()) {
        frames.push(Frame::Data {
            bytes: chunk,
            end: false,
        });
    }
    if trailers {
        frames.push(Frame::Trailers);
    } else if !empty {
        frames.push(Frame::Data {
            bytes: Vec::new(),
            end: true,
        });
    }
    frames
}

fn take_effects(vm: &mut Vm) -> Effects {
    let index = vm.state().index;
    let call = &mut vm.state_mut().call;
    Effects {
        vm: index,
        local_replies: std::mem::take(&mut call.local_replies),
        resumes: std::mem::take(&mut call.resumes),
        resets: std::mem::take(&mut call.resets),
    }
}

/// Splits effects into those on contexts `is_mine` accepts and the rest.
fn split_effects(effects: Effects, is_mine: impl Fn(u32) -> bool) -> (Effects, Effects) {
    let vm = effects.vm;
    let (mut mine, mut others) = (Effects::none(vm), Effects::none(vm));
    for reply in effects.local_replies {
        if is_mine(reply.context_id) {
            mine.local_replies.push(reply);
        } else {
            others.local_replies.push(reply);
        }
    }
    for (ctx, dir) in effects.resumes {
        if is_mine(ctx) {
            mine.resumes.push((ctx, dir));
        } else {
            others.resumes.push((ctx, dir));
        }
    }
    for ctx in effects.resets {
        if is_mine(ctx) {
            mine.resets.push(ctx);
        } else {
            others.resets.push(ctx);
        }
    }
    (mine, others)
}

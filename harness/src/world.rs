//! The host state every VM of a gateway shares, as Envoy shares it across filters: the clock,
//! streams (headers, bodies, filter state), metrics, shared data and queues, callouts and logs.
//!
//! One `World` per [`crate::Gateway`]; VMs reach it through an `Arc<Mutex<_>>` in their store.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use crate::headers::HeaderMap;
use crate::scenario::{Callout, CalloutReply, LogEntry, LogLevel};
use crate::vm::Direction;

pub(crate) type StreamId = u64;

/// What one stream exposes to the filters: Envoy keeps one header map per direction for the
/// whole chain, and shows each filter the body buffer of its current callback.
#[derive(Debug, Default)]
pub(crate) struct StreamData {
    pub request_headers: Option<HeaderMap>,
    pub request_trailers: Option<HeaderMap>,
    pub response_headers: Option<HeaderMap>,
    pub response_trailers: Option<HeaderMap>,
    /// The body buffer visible in the current body callback (request or response).
    pub request_body: Option<Vec<u8>>,
    pub response_body: Option<Vec<u8>>,
    /// Bodies filters buffer (Pause from a body callback), by filter index: readable and
    /// writable from the filter's other callbacks, as Envoy's decoding/encoding buffers are.
    pub parked_request_bodies: HashMap<usize, Vec<u8>>,
    pub parked_response_bodies: HashMap<usize, Vec<u8>>,
    /// Filter state written with `set_property`, shared by every filter on the stream.
    pub filter_state: BTreeMap<String, Vec<u8>>,
    /// Request headers have left the chain (reached the upstream): later edits are lost.
    pub request_headers_sent: bool,
    /// Response headers have reached the client.
    pub response_headers_sent: bool,
}

impl StreamData {
    /// The parked bodies of one direction.
    pub fn parked_bodies(&mut self, direction: Direction) -> &mut HashMap<usize, Vec<u8>> {
        match direction {
            Direction::Request => &mut self.parked_request_bodies,
            Direction::Response => &mut self.parked_response_bodies,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Debug)]
pub(crate) struct Metric {
    pub name: String,
    pub kind: MetricKind,
}

#[derive(Debug, Default)]
pub(crate) struct MetricValue {
    pub value: u64,
    pub samples: Vec<u64>,
}

#[derive(Debug)]
pub(crate) struct SharedQueue {
    pub vm_id: String,
    pub name: String,
    pub owner_vm: usize,
    pub owner_context: u32,
    pub items: VecDeque<Vec<u8>>,
}

/// A callout whose answer is waiting to be delivered.
#[derive(Debug)]
pub(crate) struct PendingCallout {
    pub vm: usize,
    pub context_id: u32,
    pub token: u32,
    pub due_nanos: u64,
    /// `None` delivers a failure (timeout, reset).
    pub reply: Option<CalloutReply>,
}

/// Something to deliver to a VM after the current callback returns.
#[derive(Debug)]
pub(crate) enum Deferred {
    QueueReady {
        vm: usize,
        context_id: u32,
        queue_id: u32,
    },
}

#[derive(Debug, Default)]
pub(crate) struct World {
    pub now_nanos: u64,
    pub streams: HashMap<StreamId, StreamData>,
    pub metrics: Vec<Metric>,
    pub metric_values: BTreeMap<String, MetricValue>,
    pub shared_data: HashMap<String, HashMap<String, (Vec<u8>, u32)>>,
    pub next_cas: u32,
    pub queues: Vec<SharedQueue>,
    pub clusters: Vec<String>,
    /// The cluster the route picks for every stream (`xds.cluster_name`).
    pub route_cluster: Option<String>,
    pub callout_scripts: HashMap<String, VecDeque<CalloutReply>>,
    pub pending_callouts: Vec<PendingCallout>,
    pub callouts: Vec<Callout>,
    pub deferred: VecDeque<Deferred>,
    pub logs: Vec<LogEntry>,
    pub log_level: LogLevel,
}

impl World {
    pub fn new(start_nanos: u64) -> Self {
        World {
            now_nanos: start_nanos,
            next_cas: 1,
            log_level: LogLevel::Trace,
            ..World::default()
        }
    }

    pub fn next_cas(&mut self) -> u32 {
        let cas = self.next_cas;
        self.next_cas = self.next_cas.wrapping_add(1).max(1);
        cas
    }

    pub fn metric_kind(&self, id: u32) -> Option<(MetricKind, String)> {
        self.metrics
            .get(id as usize)
            .map(|m| (m.kind, m.name.clone()))
    }

    pub fn due(&self, delay: Duration) -> u64 {
        self.now_nanos.saturating_add(delay.as_nanos() as u64)
    }
}

//! Service-graph edges (Tempo's `service-graphs` processor): a CLIENT (or PRODUCER) span and
//! its SERVER (or CONSUMER) child span make one request from the client's service to the
//! server's.
//!
//! The two halves may arrive in any order and in different requests: the first one waits in an
//! in-memory store keyed by (trace id, client span id) for at most `wait`; the store holds at
//! most `max_items` halves (more are dropped and counted). An expired half is counted as an
//! expired edge, except for Tempo's virtual nodes (with `virtual_nodes` on): a client span with
//! `peer.service` becomes an edge to that peer when it expires unpaired; a client span with
//! `db.system` / `db.system.name` is an edge to its database at once (server = `db.name` /
//! `db.namespace`, else the system; `connection_type="database"`), and a SERVER span without a
//! parent is an edge from `user` at once (`connection_type="virtual_node"`). PRODUCER/CONSUMER
//! pairs have `connection_type="messaging_system"`; plain pairs have none.
//!
//! Output series: `traces_service_graph_request_total`, `…_request_failed_total` (either half
//! has status ERROR), and the classic histograms `…_request_server_seconds` (the server span's
//! duration) and `…_request_client_seconds` (the client span's), labelled `client`, `server`,
//! `connection_type`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use sextant_storage::traces::{AttrsRef, BatchRef, SpanKind, StatusCode, TraceId, ValueRef};

use super::{series_labels, Collected, Ex, Hist, Table};

/// Tempo's default service-graph latency buckets (seconds).
pub fn default_graph_buckets() -> Vec<f64> {
    vec![0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8]
}

/// Service-graph settings (Tempo's defaults).
#[derive(Clone, Debug)]
pub struct ServiceGraphOptions {
    pub enabled: bool,
    /// How long a half edge waits for its other half.
    pub wait: Duration,
    /// Most half edges waiting at once.
    pub max_items: usize,
    /// Latency buckets in seconds, ascending.
    pub buckets: Vec<f64>,
    /// Database, `peer.service` and `user` virtual nodes.
    pub virtual_nodes: bool,
}

impl Default for ServiceGraphOptions {
    fn default() -> Self {
        ServiceGraphOptions {
            enabled: true,
            wait: Duration::from_secs(10),
            max_items: 10_000,
            buckets: default_graph_buckets(),
            virtual_nodes: true,
        }
    }
}

type EdgeKey = (TraceId, [u8; 8]);

/// One half of an edge.
#[derive(Debug)]
struct Side {
    /// Shared by the spans of one batch.
    service: Arc<str>,
    secs: f64,
    failed: bool,
    ex: Ex,
    /// `peer.service` of a client span (its virtual server on expiry).
    peer: Option<String>,
}

#[derive(Debug)]
struct Pending {
    client: Option<Side>,
    server: Option<Side>,
    connection_type: &'static str,
    deadline: i64,
}

#[derive(Debug)]
struct EdgeStats {
    total: u64,
    failed: u64,
    total_ex: Option<Ex>,
    server: Hist,
    client: Hist,
}

/// What one batch did to the graph.
#[derive(Default, Debug)]
pub(crate) struct GraphOutcome {
    /// Completed edges not counted because the series limit was reached.
    pub series_dropped: u64,
    /// Halves not stored because the edge store was full.
    pub store_full: u64,
}

/// Edge keys (trace id, span id) hash with the trace store's seeded fast hasher: SipHash over
/// every span's key was ~2% of ingest.
type EdgeHashState = sextant_storage::traces::FastState;

pub(crate) struct Graph {
    options: ServiceGraphOptions,
    pending: HashMap<EdgeKey, Pending, EdgeHashState>,
    queue: VecDeque<(i64, EdgeKey)>,
    edges: Table<EdgeStats>,
    key: Vec<String>,
}

/// A non-empty string value.
fn non_empty(v: Option<ValueRef<'_>>) -> Option<&str> {
    match v {
        Some(ValueRef::Str(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// The attributes a client span's edge needs, found in one walk of its attribute list:
/// `db.system`, `db.system.name`, `db.name`, `db.namespace`, `peer.service`.
fn client_attrs<'a>(attrs: &AttrsRef<'a>) -> [Option<&'a str>; 5] {
    attrs
        .get_many([
            "db.system",
            "db.system.name",
            "db.name",
            "db.namespace",
            "peer.service",
        ])
        .map(non_empty)
}

/// A completed (or virtual) edge waiting to be counted.
struct Done<'a> {
    client: &'a str,
    server: &'a str,
    connection_type: &'a str,
    failed: bool,
    client_secs: Option<f64>,
    server_secs: Option<f64>,
    ex: Ex,
}

impl Graph {
    pub(crate) fn new(options: ServiceGraphOptions) -> Graph {
        Graph {
            options,
            pending: HashMap::default(),
            queue: VecDeque::new(),
            edges: Table::default(),
            key: vec![String::new(); 3],
        }
    }

    /// Edge tuples held (each is several output series).
    pub(crate) fn series(&self) -> usize {
        self.edges.len()
    }

    /// Half edges waiting for their other half.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    fn count(&mut self, d: Done<'_>, now: i64, room: bool) -> bool {
        self.key[0].clear();
        self.key[0].push_str(d.client);
        self.key[1].clear();
        self.key[1].push_str(d.server);
        self.key[2].clear();
        self.key[2].push_str(d.connection_type);
        let buckets = &self.options.buckets;
        let Some(e) = self
            .edges
            .get_or_insert(&self.key, now, room, || EdgeStats {
                total: 0,
                failed: 0,
                total_ex: None,
                server: Hist::new(buckets),
                client: Hist::new(buckets),
            })
        else {
            return false;
        };
        e.total += 1;
        if d.failed {
            e.failed += 1;
        }
        e.total_ex = Some(Ex { value: 1.0, ..d.ex });
        if let Some(s) = d.server_secs {
            e.server.observe(buckets, s, Ex { value: s, ..d.ex });
        }
        if let Some(s) = d.client_secs {
            e.client.observe(buckets, s, Ex { value: s, ..d.ex });
        }
        true
    }

    /// Pairs the spans of `batch`; `room` is how many more edge tuples may be created.
    pub(crate) fn observe(&mut self, batch: &BatchRef<'_>, now: i64, room: usize) -> GraphOutcome {
        let mut out = GraphOutcome::default();
        let service = batch.service_name().unwrap_or("");
        let mut shared: Option<Arc<str>> = None;
        let virtual_nodes = self.options.virtual_nodes;
        for span in &batch.spans {
            let (is_client, connection_type) = match span.kind {
                SpanKind::Client => (true, ""),
                SpanKind::Producer => (true, "messaging_system"),
                SpanKind::Server => (false, ""),
                SpanKind::Consumer => (false, "messaging_system"),
                _ => continue,
            };
            let secs = span.duration_nanos() as f64 / 1e9;
            let failed = span.status_code == StatusCode::Error;
            let ex = Ex {
                trace_id: span.trace_id,
                span_id: span.span_id,
                value: secs,
            };
            let has_room = self.edges.len() < room;
            let [db_system, db_system_name, db_name, db_namespace, peer_service] = if is_client {
                client_attrs(&span.attributes)
            } else {
                [None; 5]
            };
            if is_client && span.kind == SpanKind::Client && virtual_nodes {
                if let Some(system) = db_system.or(db_system_name) {
                    let server = db_name.or(db_namespace).unwrap_or(system);
                    let done = Done {
                        client: service,
                        server,
                        connection_type: "database",
                        failed,
                        client_secs: Some(secs),
                        server_secs: None,
                        ex,
                    };
                    if !self.count(done, now, has_room) {
                        out.series_dropped += 1;
                    }
                    continue;
                }
            }
            let key = if is_client {
                (span.trace_id, span.span_id)
            } else {
                match span.parent_span_id {
                    Some(p) => (span.trace_id, p),
                    None => {
                        if virtual_nodes && span.kind == SpanKind::Server {
                            let done = Done {
                                client: "user",
                                server: service,
                                connection_type: "virtual_node",
                                failed,
                                client_secs: None,
                                server_secs: Some(secs),
                                ex,
                            };
                            if !self.count(done, now, has_room) {
                                out.series_dropped += 1;
                            }
                        }
                        continue;
                    }
                }
            };
            let side = Side {
                service: shared.get_or_insert_with(|| Arc::from(service)).clone(),
                secs,
                failed,
                ex,
                peer: peer_service.map(str::to_string),
            };
            match self.pending.get_mut(&key) {
                Some(p) => {
                    let slot = if is_client {
                        &mut p.client
                    } else {
                        &mut p.server
                    };
                    *slot = Some(side);
                    if p.client.is_some() && p.server.is_some() {
                        if let Some(p) = self.pending.remove(&key) {
                            if !self.complete(p, now, has_room) {
                                out.series_dropped += 1;
                            }
                        }
                    }
                }
                None => {
                    if self.pending.len() >= self.options.max_items {
                        out.store_full += 1;
                        continue;
                    }
                    let deadline = now.saturating_add(self.options.wait.as_millis() as i64);
                    let (client, server) = if is_client {
                        (Some(side), None)
                    } else {
                        (None, Some(side))
                    };
                    self.pending.insert(
                        key,
                        Pending {
                            client,
                            server,
                            connection_type,
                            deadline,
                        },
                    );
                    self.queue.push_back((deadline, key));
                }
            }
        }
        out
    }

    /// Counts a paired edge.
    fn complete(&mut self, p: Pending, now: i64, room: bool) -> bool {
        let (Some(c), Some(s)) = (p.client, p.server) else {
            return true;
        };
        self.count(
            Done {
                client: &c.service,
                server: &s.service,
                connection_type: p.connection_type,
                failed: c.failed || s.failed,
                client_secs: Some(c.secs),
                server_secs: Some(s.secs),
                ex: s.ex,
            },
            now,
            room,
        )
    }

    /// Drops halves whose wait is over (all of them with `all`), turning `peer.service` clients
    /// into virtual edges; returns how many expired unpaired.
    pub(crate) fn expire(&mut self, now: i64, all: bool) -> u64 {
        let mut expired = 0;
        while let Some(&(deadline, key)) = self.queue.front() {
            if deadline > now && !all {
                break;
            }
            self.queue.pop_front();
            let due = self
                .pending
                .get(&key)
                .is_some_and(|p| p.deadline == deadline);
            if !due {
                continue;
            }
            let Some(p) = self.pending.remove(&key) else {
                continue;
            };
            let peer = match (&p.client, &p.server, self.options.virtual_nodes) {
                (Some(c), None, true) => c.peer.as_ref().map(|peer| (c, peer)),
                _ => None,
            };
            match peer {
                Some((c, peer)) => {
                    let done = Done {
                        client: &c.service,
                        server: peer,
                        connection_type: "virtual_node",
                        failed: c.failed,
                        client_secs: Some(c.secs),
                        server_secs: None,
                        ex: c.ex,
                    };
                    // Virtual edges on expiry are few and bounded by `max_items`.
                    self.count(done, now, true);
                }
                None => expired += 1,
            }
        }
        expired
    }

    /// Appends the graph's series at `t`, forgetting edges idle since `cutoff`.
    pub(crate) fn collect(&mut self, t: i64, cutoff: i64, out: &mut Collected) {
        self.edges.expire(cutoff);
        let buckets = self.options.buckets.clone();
        for e in &mut self.edges.entries {
            let first = e.new.then_some(t - 1);
            e.new = false;
            let base = [
                ("client", e.key[0].as_str()),
                ("server", e.key[1].as_str()),
                ("connection_type", e.key[2].as_str()),
            ];
            let total = series_labels("traces_service_graph_request_total", &base, None);
            if let Some(ex) = e.value.total_ex.take() {
                out.exemplars.push((total.clone(), vec![ex.to_exemplar(t)]));
            }
            out.push(total, first, t, e.value.total as f64);
            out.push(
                series_labels("traces_service_graph_request_failed_total", &base, None),
                first,
                t,
                e.value.failed as f64,
            );
            e.value.server.emit(
                "traces_service_graph_request_server_seconds",
                &base,
                &buckets,
                out,
                first,
                t,
            );
            e.value.client.emit(
                "traces_service_graph_request_client_seconds",
                &base,
                &buckets,
                out,
                first,
                t,
            );
        }
    }
}

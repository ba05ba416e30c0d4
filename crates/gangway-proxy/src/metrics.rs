//! Counters, gauges and histograms for `/metrics`, in the Prometheus text format 0.0.4.
//!
//! Every series a request touches is allocated when the configuration is compiled (one
//! [`RouteMetrics`] per route, one [`ListenerMetrics`] per listener), so serving only adds
//! to atomics: no lock, no map lookup, no allocation per request. Rendering walks them
//! under a read lock that only a reload's swap writes.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http::StatusCode;

use crate::runtime::{ListenerRuntime, RouteAction, UpstreamRuntime};
use crate::threads::WorkerLoad;
use crate::tunnels::TunnelRegistry;

/// Upper bounds (seconds) of the latency histogram buckets; `+Inf` is implied.
const BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A latency histogram with fixed buckets; each bucket counts its own observations and
/// rendering makes them cumulative.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub(crate) fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(bucket) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// The series of one route (or of the requests no route matched).
#[derive(Debug)]
pub(crate) struct RouteMetrics {
    pub(crate) name: Arc<str>,
    upstream: Option<Arc<str>>,
    /// Responses by status class, 1xx to 5xx.
    responses: [AtomicU64; 5],
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    request_seconds: Histogram,
    upstream_seconds: Histogram,
    tunnels_open: AtomicU64,
    tunnels_total: AtomicU64,
    tunnel_bytes_in: AtomicU64,
    tunnel_bytes_out: AtomicU64,
}

impl RouteMetrics {
    pub(crate) fn new(name: Arc<str>, upstream: Option<Arc<str>>) -> Self {
        Self {
            name,
            upstream,
            responses: Default::default(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            request_seconds: Histogram::default(),
            upstream_seconds: Histogram::default(),
            tunnels_open: AtomicU64::new(0),
            tunnels_total: AtomicU64::new(0),
            tunnel_bytes_in: AtomicU64::new(0),
            tunnel_bytes_out: AtomicU64::new(0),
        }
    }

    /// A response has ended (or was abandoned): its status, body bytes both ways and the
    /// time since the request head arrived.
    pub(crate) fn request_finished(
        &self,
        status: StatusCode,
        bytes_in: u64,
        bytes_out: u64,
        elapsed: Duration,
    ) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.responses[class].fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
        self.request_seconds.observe(elapsed);
    }

    /// An upstream answered with a response head `elapsed` after the try was sent.
    pub(crate) fn upstream_answered(&self, elapsed: Duration) {
        self.upstream_seconds.observe(elapsed);
    }

    pub(crate) fn tunnel_opened(&self) {
        self.tunnels_open.fetch_add(1, Ordering::Relaxed);
        self.tunnels_total.fetch_add(1, Ordering::Relaxed);
    }

    /// A tunnel has ended after carrying `from_client` and `to_client` bytes.
    pub(crate) fn tunnel_closed(&self, from_client: u64, to_client: u64) {
        self.tunnels_open.fetch_sub(1, Ordering::Relaxed);
        self.tunnel_bytes_in
            .fetch_add(from_client, Ordering::Relaxed);
        self.tunnel_bytes_out
            .fetch_add(to_client, Ordering::Relaxed);
    }
}

/// The series of one listener: its routes, connections and TLS handshakes.
#[derive(Debug)]
pub(crate) struct ListenerMetrics {
    pub(crate) name: Arc<str>,
    /// In the order of the listener's routes.
    pub(crate) routes: Vec<Arc<RouteMetrics>>,
    /// Requests answered before a route was found (no route, bad target, 421...).
    pub(crate) unrouted: Arc<RouteMetrics>,
    connections_open: AtomicU64,
    connections_total: AtomicU64,
    /// Completed and failed TLS handshakes (a timeout is a failure).
    handshakes: [AtomicU64; 2],
    /// Client-certificate verify results: SUCCESS, FAILED, NONE.
    client_verify: [AtomicU64; 3],
}

/// Held while a client connection is open.
#[derive(Debug)]
pub(crate) struct OpenConnection(Arc<ListenerMetrics>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ListenerMetrics {
    pub(crate) fn new(name: Arc<str>, routes: Vec<Arc<RouteMetrics>>) -> Self {
        Self {
            name,
            routes,
            unrouted: Arc::new(RouteMetrics::new("-".into(), None)),
            connections_open: AtomicU64::new(0),
            connections_total: AtomicU64::new(0),
            handshakes: Default::default(),
            client_verify: Default::default(),
        }
    }

    /// Counts a client connection as open until the guard is dropped.
    pub(crate) fn connection_opened(self: &Arc<Self>) -> OpenConnection {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self.clone())
    }

    /// A TLS handshake completed (`true`) or failed or timed out (`false`); a completed
    /// one also counts the client certificate's verify result.
    pub(crate) fn handshake(&self, verify: Option<&gangway_tls::VerifyStatus>) {
        let Some(verify) = verify else {
            self.handshakes[1].fetch_add(1, Ordering::Relaxed);
            return;
        };
        self.handshakes[0].fetch_add(1, Ordering::Relaxed);
        let index = match verify {
            gangway_tls::VerifyStatus::Success => 0,
            gangway_tls::VerifyStatus::Failed(_) => 1,
            gangway_tls::VerifyStatus::None => 2,
        };
        self.client_verify[index].fetch_add(1, Ordering::Relaxed);
    }

    /// The series of the route at `index`, or of unrouted requests.
    pub(crate) fn route(&self, index: Option<usize>) -> &Arc<RouteMetrics> {
        index
            .and_then(|index| self.routes.get(index))
            .unwrap_or(&self.unrouted)
    }
}

/// What `/metrics`, `/readyz` and the tunnel calls read: process-wide counters, the
/// compiled listeners' series and the open tunnels.
#[derive(Debug, Default)]
pub(crate) struct Observer {
    /// The series of the configuration being served; a reload swaps them in with
    /// [`Observer::publish`].
    serving: RwLock<Serving>,
    /// Whole-configuration reloads: applied, refused.
    reloads: [AtomicU64; 2],
    /// TLS material reloads per listener: applied, kept the old material.
    tls_reloads: [AtomicU64; 2],
    /// Listeners bound, configuration loaded, not draining.
    ready: AtomicBool,
    pub(crate) tunnels: Arc<TunnelRegistry>,
    /// What each worker thread was given; empty when connections are served on the thread
    /// that accepts them.
    workers: RwLock<Arc<[WorkerLoad]>>,
}

#[derive(Debug, Default)]
struct Serving {
    listeners: Vec<Arc<ListenerMetrics>>,
    upstreams: Vec<Arc<UpstreamRuntime>>,
}

impl Observer {
    /// Shows these listeners' series, and the peers of the upstreams their routes use,
    /// from now on (at start, and after a reload has compiled a new configuration).
    pub(crate) fn publish<'a>(&self, listeners: impl IntoIterator<Item = &'a ListenerRuntime>) {
        let listeners: Vec<&ListenerRuntime> = listeners.into_iter().collect();
        let mut upstreams: Vec<Arc<UpstreamRuntime>> = Vec::new();
        let used = listeners
            .iter()
            .flat_map(|listener| &listener.route_list)
            .filter_map(|route| match &route.action {
                RouteAction::Proxy { upstream, .. } => Some(upstream),
                _ => None,
            });
        for upstream in used {
            if !upstreams.iter().any(|seen| Arc::ptr_eq(seen, upstream)) {
                upstreams.push(upstream.clone());
            }
        }
        let serving = Serving {
            listeners: listeners
                .iter()
                .map(|listener| listener.metrics.clone())
                .collect(),
            upstreams,
        };
        // A poisoned lock only means a panic elsewhere while swapping; the data is whole.
        *self
            .serving
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = serving;
    }

    /// Shows these listeners' series, without upstreams.
    #[cfg(test)]
    pub(crate) fn publish_metrics(&self, listeners: Vec<Arc<ListenerMetrics>>) {
        let serving = Serving {
            listeners,
            upstreams: Vec::new(),
        };
        *self
            .serving
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = serving;
    }

    /// Shows these workers' series from now on.
    pub(crate) fn show_workers(&self, loads: Arc<[WorkerLoad]>) {
        *self
            .workers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = loads;
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub(crate) fn reloaded(&self, ok: bool) {
        self.reloads[usize::from(!ok)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn tls_reloaded(&self, ok: bool) {
        self.tls_reloads[usize::from(!ok)].fetch_add(1, Ordering::Relaxed);
    }

    /// Every series in the Prometheus text format 0.0.4.
    pub(crate) fn render(&self) -> String {
        let serving = self
            .serving
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = Exposition::default();
        let listeners = &serving.listeners;
        let routes = || {
            listeners.iter().flat_map(|listener| {
                listener
                    .routes
                    .iter()
                    .chain(std::iter::once(&listener.unrouted))
                    .map(move |route| (listener.name.as_ref(), route.as_ref()))
            })
        };

        out.family(
            "gangway_requests_total",
            "counter",
            "Responses sent, by listener, route and status class.",
        );
        for (listener, route) in routes() {
            for (class, count) in route.responses.iter().enumerate() {
                let class = format!("{}xx", class + 1);
                out.sample(
                    "gangway_requests_total",
                    &[
                        ("listener", listener),
                        ("route", &route.name),
                        ("class", &class),
                    ],
                    load(count),
                );
            }
        }
        out.histograms(
            "gangway_request_duration_seconds",
            "Time from a request head's arrival to the end of its response.",
            routes().map(|(listener, route)| {
                let labels = vec![("listener", listener), ("route", route.name.as_ref())];
                (labels, &route.request_seconds)
            }),
        );
        out.histograms(
            "gangway_upstream_response_seconds",
            "Time from sending a request upstream to its response head, per try answered.",
            routes().filter_map(|(listener, route)| {
                let upstream = route.upstream.as_deref()?;
                let labels = vec![
                    ("listener", listener),
                    ("route", route.name.as_ref()),
                    ("upstream", upstream),
                ];
                Some((labels, &route.upstream_seconds))
            }),
        );
        let per_route = [
            (
                "gangway_request_body_bytes_total",
                "Request body bytes received from clients.",
                (|route: &RouteMetrics| &route.bytes_in) as fn(&RouteMetrics) -> &AtomicU64,
            ),
            (
                "gangway_response_body_bytes_total",
                "Response body bytes sent to clients.",
                |route| &route.bytes_out,
            ),
            (
                "gangway_tunnel_received_bytes_total",
                "Bytes received from clients in closed WebSocket tunnels and relay sessions.",
                |route| &route.tunnel_bytes_in,
            ),
            (
                "gangway_tunnel_sent_bytes_total",
                "Bytes sent to clients in closed WebSocket tunnels and relay sessions.",
                |route| &route.tunnel_bytes_out,
            ),
            (
                "gangway_tunnels_total",
                "WebSocket tunnels and relay sessions opened.",
                |route| &route.tunnels_total,
            ),
        ];
        for (name, help, field) in per_route {
            out.family(name, "counter", help);
            for (listener, route) in routes() {
                let labels = [("listener", listener), ("route", route.name.as_ref())];
                out.sample(name, &labels, load(field(route)));
            }
        }
        out.family(
            "gangway_open_tunnels",
            "gauge",
            "WebSocket tunnels and relay sessions open now.",
        );
        for (listener, route) in routes() {
            let labels = [("listener", listener), ("route", route.name.as_ref())];
            out.sample("gangway_open_tunnels", &labels, load(&route.tunnels_open));
        }

        out.family(
            "gangway_open_connections",
            "gauge",
            "Client connections open now.",
        );
        for listener in listeners {
            let labels = [("listener", listener.name.as_ref())];
            out.sample(
                "gangway_open_connections",
                &labels,
                load(&listener.connections_open),
            );
        }
        out.family(
            "gangway_connections_total",
            "counter",
            "Client connections accepted.",
        );
        for listener in listeners {
            let labels = [("listener", listener.name.as_ref())];
            out.sample(
                "gangway_connections_total",
                &labels,
                load(&listener.connections_total),
            );
        }
        out.family(
            "gangway_tls_handshakes_total",
            "counter",
            "TLS handshakes on TLS listeners, completed (ok) or failed or timed out (failed).",
        );
        for listener in listeners {
            for (result, count) in ["ok", "failed"].iter().zip(&listener.handshakes) {
                let labels = [("listener", listener.name.as_ref()), ("result", result)];
                out.sample("gangway_tls_handshakes_total", &labels, load(count));
            }
        }
        out.family(
            "gangway_client_certificate_verify_total",
            "counter",
            "Client-certificate verify results of completed TLS handshakes ($ssl_client_verify).",
        );
        for listener in listeners {
            let results = ["SUCCESS", "FAILED", "NONE"];
            for (result, count) in results.iter().zip(&listener.client_verify) {
                let labels = [("listener", listener.name.as_ref()), ("result", result)];
                out.sample(
                    "gangway_client_certificate_verify_total",
                    &labels,
                    load(count),
                );
            }
        }

        let peers = || {
            serving.upstreams.iter().flat_map(|upstream| {
                let pool = &upstream.pool;
                pool.peers().iter().enumerate().map(move |(index, peer)| {
                    (upstream.name.as_ref(), peer.authority(), pool.status(index))
                })
            })
        };
        out.family(
            "gangway_peer_up",
            "gauge",
            "1 when a peer can be chosen now (not down, healthy, not out for failures), else 0.",
        );
        for (upstream, peer, status) in peers() {
            let labels = [("upstream", upstream), ("peer", peer)];
            out.sample("gangway_peer_up", &labels, u64::from(status.available));
        }
        out.family(
            "gangway_peer_in_flight",
            "gauge",
            "Requests and WebSocket tunnels in flight to a peer.",
        );
        for (upstream, peer, status) in peers() {
            let labels = [("upstream", upstream), ("peer", peer)];
            out.sample("gangway_peer_in_flight", &labels, status.in_flight as u64);
        }

        for (name, help, counts) in [
            (
                "gangway_reloads_total",
                "Configuration reloads, applied (ok) or refused (failed).",
                &self.reloads,
            ),
            (
                "gangway_tls_reloads_total",
                "TLS material reloads per listener, applied (ok) or kept the old (failed).",
                &self.tls_reloads,
            ),
        ] {
            out.family(name, "counter", help);
            for (result, count) in ["ok", "failed"].iter().zip(counts) {
                out.sample(name, &[("result", result)], load(count));
            }
        }
        let workers = Arc::clone(
            &self
                .workers
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        // No series without worker threads: the accepting thread serves.
        let families: [(&str, &str, &str, WorkerValue); 2] = [
            (
                "gangway_worker_connections_total",
                "counter",
                "Client connections handed to each worker thread.",
                |load| load.connections.load(Ordering::Relaxed),
            ),
            (
                "gangway_worker_open_connections",
                "gauge",
                "Client connections each worker thread serves now.",
                |load| u64::try_from(load.open.load(Ordering::Relaxed)).unwrap_or(u64::MAX),
            ),
        ];
        for (name, kind, help, value) in families.into_iter().filter(|_| !workers.is_empty()) {
            out.family(name, kind, help);
            for (index, load) in workers.iter().enumerate() {
                out.sample(name, &[("worker", &index.to_string())], value(load));
            }
        }
        out.family(
            "gangway_ready",
            "gauge",
            "1 once listeners are bound and the configuration loaded, 0 while draining.",
        );
        out.sample("gangway_ready", &[], u64::from(self.is_ready()));
        out.text
    }
}

/// One worker's value of a per-worker series.
type WorkerValue = fn(&WorkerLoad) -> u64;

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// The text being written.
#[derive(Debug, Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (index, (label, value)) in labels.iter().enumerate() {
                if index > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{label}=\"");
                escape_label(&mut self.text, value);
                self.text.push('"');
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    fn histograms<'a>(
        &mut self,
        name: &str,
        help: &str,
        series: impl Iterator<Item = (Vec<(&'a str, &'a str)>, &'a Histogram)>,
    ) {
        self.family(name, "histogram", help);
        let (bucket, sum, count) = (
            format!("{name}_bucket"),
            format!("{name}_sum"),
            format!("{name}_count"),
        );
        for (labels, histogram) in series {
            // Read the total first: buckets observed after it may only make `+Inf` look
            // smaller than the last bucket, which the format forbids, so clamp to it.
            let total = load(&histogram.count);
            let mut cumulative = 0;
            let bounds = BUCKETS.iter().map(f64::to_string);
            let counts = histogram.buckets.iter().map(load);
            for (le, observed) in bounds.zip(counts) {
                cumulative = (cumulative + observed).min(total);
                let mut with_le = labels.clone();
                with_le.push(("le", &le));
                self.sample(&bucket, &with_le, cumulative);
            }
            let mut with_le = labels.clone();
            with_le.push(("le", "+Inf"));
            self.sample(&bucket, &with_le, total);
            let seconds = load(&histogram.sum_micros) as f64 / 1e6;
            self.sample(&sum, &labels, seconds);
            self.sample(&count, &labels, total);
        }
    }
}

/// Label values escape `\`, `"` and newlines (text format 0.0.4).
fn escape_label(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// The engine's counters as `/metrics` shows them, for embedders: [`Metrics::render`]
/// gives the exposition without an admin listener. Reloads through a
/// [`ReloadHandle`](crate::ReloadHandle) are counted already; code that refuses a
/// configuration before handing it on counts that with [`Metrics::reload_failed`].
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub(crate) observer: Arc<Observer>,
}

impl Metrics {
    /// Counts a configuration reload that was applied (`gangway_reloads_total{result="ok"}`).
    pub fn reload_succeeded(&self) {
        self.observer.reloaded(true);
    }

    /// Counts a configuration reload that was refused, the running one kept
    /// (`gangway_reloads_total{result="failed"}`).
    pub fn reload_failed(&self) {
        self.observer.reloaded(false);
    }

    /// Every series in the Prometheus text format 0.0.4, as `/metrics` answers.
    pub fn render(&self) -> String {
        self.observer.render()
    }
}

//! The access log: one line per request, written when its response ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use http::{Method, StatusCode};

use crate::body::RequestBodyFacts;

/// What the access-log line says about one request; written by [`AccessRecord::log`].
#[derive(Debug)]
pub(crate) struct AccessRecord {
    pub(crate) client: SocketAddr,
    pub(crate) listener: Arc<str>,
    pub(crate) method: Method,
    pub(crate) uri: String,
    pub(crate) status: StatusCode,
    pub(crate) route: Option<Arc<str>>,
    pub(crate) upstream: Option<Arc<str>>,
    pub(crate) peer: Option<String>,
    pub(crate) request_body: Option<Arc<RequestBodyFacts>>,
    pub(crate) started: Instant,
    pub(crate) failure: Option<String>,
}

impl AccessRecord {
    /// Notes that the response was cut short, and why.
    pub(crate) fn fail(&mut self, why: String) {
        self.failure.get_or_insert(why);
    }

    /// Writes the line: client, method, path, status, bytes in and out, upstream peer,
    /// duration, and why the response was cut if it was.
    pub(crate) fn log(&self, bytes_out: u64) {
        let bytes_in = self
            .request_body
            .as_ref()
            .map_or(0, |facts| facts.bytes.load(Ordering::Relaxed));
        let millis = self.started.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(
            target: "gangway::access",
            listener = %self.listener,
            client = %self.client,
            method = %self.method,
            uri = %self.uri,
            status = self.status.as_u16(),
            bytes_in,
            bytes_out,
            route = self.route.as_deref().unwrap_or("-"),
            upstream = self.upstream.as_deref().unwrap_or("-"),
            peer = self.peer.as_deref().unwrap_or("-"),
            duration_ms = format_args!("{millis:.1}"),
            cut = self.failure.as_deref().unwrap_or("-"),
        );
    }
}

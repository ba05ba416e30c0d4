//! Active health checks: an HTTP request to each peer on an interval.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HOST, HeaderValue, USER_AGENT};
use http::uri::{Authority, PathAndQuery};
use http::{Method, Request, Uri};
use http_body_util::Empty;
use tokio::task::{JoinHandle, JoinSet};

use crate::Error;
use crate::client::{ClientSettings, UpstreamClient, UpstreamScheme};
use crate::peer::Shared;
use crate::pool::Pool;

/// What an active health check asks each peer, and how often.
///
/// The defaults: every 5 s, a `GET` of the path with a 2 s timeout, a status from 200 to
/// 399 is healthy, one failure takes a peer out (`fall = 1`) and two consecutive successes
/// bring it back (`rise = 2`). Peers start healthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    path: String,
    host: Option<String>,
    interval: Duration,
    timeout: Duration,
    expect: RangeInclusive<u16>,
    rise: u32,
    fall: u32,
}

impl HealthCheck {
    /// A check of `path` (path and query, starting with `/`).
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            host: None,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            expect: 200..=399,
            rise: 2,
            fall: 1,
        }
    }

    /// The `Host` header to send (the default is the peer's `host:port`).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Time between rounds.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// A check that has no response head within this time fails.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The statuses that count as healthy.
    pub fn expect_status(mut self, expect: RangeInclusive<u16>) -> Self {
        self.expect = expect;
        self
    }

    /// Consecutive successes that bring an unhealthy peer back (at least 1).
    pub fn rise(mut self, rise: u32) -> Self {
        self.rise = rise;
        self
    }

    /// Consecutive failures that take a healthy peer out (at least 1).
    pub fn fall(mut self, fall: u32) -> Self {
        self.fall = fall;
        self
    }

    /// The path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The interval.
    pub fn interval_duration(&self) -> Duration {
        self.interval
    }
}

/// Runs a [`HealthCheck`] against every peer of a [`Pool`] (backup peers too; peers
/// configured down are skipped). Unhealthy peers leave the rotation of every selection at
/// once and come back after `rise` consecutive successes, with their failure count cleared.
///
/// Each check opens a fresh connection (no keep-alive), so a peer that went away and came
/// back is seen as it is now.
#[derive(Debug)]
pub struct HealthChecker {
    shared: Arc<Shared>,
    check: Arc<HealthCheck>,
    client: Arc<UpstreamClient<Empty<Bytes>>>,
}

impl HealthChecker {
    /// A checker for `pool`'s peers, reached by `scheme` (the same as the pool's
    /// [`UpstreamClient`]).
    pub fn new(
        pool: &Pool,
        check: HealthCheck,
        scheme: UpstreamScheme,
        connect_timeout: Duration,
    ) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::HealthCheck {
            path: check.path.clone(),
            reason: reason.to_owned(),
        };
        if !check.path.starts_with('/') || check.path.parse::<PathAndQuery>().is_err() {
            return Err(invalid("expected a path and query starting with `/`"));
        }
        if let Some(host) = &check.host {
            if HeaderValue::from_str(host).is_err() {
                return Err(invalid("the host is not a valid header value"));
            }
        }
        if check.interval.is_zero() || check.timeout.is_zero() {
            return Err(invalid("interval and timeout must be longer than zero"));
        }
        let settings = ClientSettings {
            connect_timeout,
            max_idle_per_peer: 0,
            idle_timeout: Duration::from_secs(1),
        };
        Ok(Self {
            shared: pool.shared().clone(),
            check: Arc::new(check),
            client: Arc::new(UpstreamClient::new(scheme, settings)),
        })
    }

    /// Checks every peer once, concurrently, and updates their health. Returns how many
    /// peers are healthy afterwards.
    pub async fn check_once(&self) -> usize {
        let mut checks = JoinSet::new();
        for index in 0..self.shared.len() {
            let peer = &self.shared.peers[index];
            if peer.is_down() {
                continue;
            }
            let (client, check) = (self.client.clone(), self.check.clone());
            let authority = peer.uri_authority().cloned();
            checks.spawn(async move {
                let ok = match authority {
                    Some(authority) => probe(&client, &check, &authority).await,
                    // A host that cannot be a URI authority cannot be reached either.
                    None => false,
                };
                (index, ok)
            });
        }
        while let Some(result) = checks.join_next().await {
            let Ok((index, ok)) = result else { continue };
            let (rise, fall) = (self.check.rise, self.check.fall);
            if let Some(healthy) = self.shared.record_check(index, ok, rise, fall) {
                let peer = self.shared.peers[index].authority();
                if healthy {
                    tracing::info!(peer, "upstream peer healthy again; back in the rotation");
                } else {
                    tracing::warn!(
                        peer,
                        path = %self.check.path,
                        "upstream peer failed its health check; out of the rotation"
                    );
                }
            }
        }
        (0..self.shared.len())
            .filter(|&index| self.shared.status(index, 0).healthy)
            .count()
    }

    /// Runs [`check_once`](Self::check_once) every interval (the first round at once) on
    /// the current Tokio runtime, until the returned task is dropped.
    pub fn spawn(self) -> HealthTask {
        let interval = self.check.interval;
        HealthTask(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                self.check_once().await;
            }
        }))
    }
}

/// One check of one peer: whether it answered in time with an expected status.
async fn probe(
    client: &UpstreamClient<Empty<Bytes>>,
    check: &HealthCheck,
    authority: &Authority,
) -> bool {
    let Ok(uri) = check.path.parse::<Uri>() else {
        return false;
    };
    let host = check.host.as_deref().unwrap_or(authority.as_str());
    let Ok(host) = HeaderValue::from_str(host) else {
        return false;
    };
    let mut request = Request::new(Empty::new());
    *request.method_mut() = Method::GET;
    *request.uri_mut() = uri;
    request.headers_mut().insert(HOST, host);
    request
        .headers_mut()
        .insert(USER_AGENT, HeaderValue::from_static("gangway-health-check"));
    match tokio::time::timeout(check.timeout, client.send(authority, request)).await {
        Ok(Ok(response)) => check.expect.contains(&response.status().as_u16()),
        Ok(Err(_)) | Err(_) => false,
    }
}

/// The task of [`HealthChecker::spawn`]; dropping it stops the checks.
#[derive(Debug)]
pub struct HealthTask(JoinHandle<()>);

impl Drop for HealthTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

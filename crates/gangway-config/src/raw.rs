//! The file as serde reads it: every key that the format knows, with its span, and nothing
//! checked beyond TOML types. Unknown keys are rejected here; everything else is checked by
//! [`crate::validate`] so that all problems are reported together.

use std::fmt;

use crate::headers::{RawHeaderOps, RawLocationRewrite};
use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, MapAccess, Unexpected, Visitor};
use serde_spanned::Spanned;

use crate::values::{DURATION_EXPECTED, SIZE_EXPECTED};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) server: Option<Spanned<RawServer>>,
    #[serde(default)]
    pub(crate) upstream: Vec<Spanned<RawUpstream>>,
    #[serde(default)]
    pub(crate) listener: Vec<Spanned<RawListener>>,
    pub(crate) admin: Option<Spanned<RawAdmin>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub(crate) drain_timeout: Option<Spanned<RawDuration>>,
    pub(crate) certificate_watch_interval: Option<Spanned<RawDuration>>,
    pub(crate) access_log: Option<Spanned<RawAccessLog>>,
}

/// The `[server] access_log` table (checked in `access_log.rs`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAccessLog {
    pub(crate) format: Option<Spanned<String>>,
    pub(crate) path: Option<Spanned<String>>,
}

/// The `[admin]` table (checked in `admin.rs`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub(crate) address: Option<Spanned<String>>,
    pub(crate) allow_remote: Option<Spanned<bool>>,
    pub(crate) token_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstream {
    pub(crate) name: Option<Spanned<String>>,
    pub(crate) peers: Option<Spanned<Vec<Spanned<RawPeer>>>>,
    pub(crate) ca: Option<Spanned<String>>,
    pub(crate) server_name: Option<Spanned<String>>,
    pub(crate) pin_sha256: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) insecure_skip_verify: Option<Spanned<bool>>,
    pub(crate) tls_versions: Option<Spanned<Vec<String>>>,
    pub(crate) client_certificate: Option<Spanned<String>>,
    pub(crate) client_private_key: Option<Spanned<String>>,
    pub(crate) connect_timeout: Option<Spanned<RawDuration>>,
    pub(crate) response_header_timeout: Option<Spanned<RawDuration>>,
    pub(crate) keepalive: Option<Spanned<i64>>,
    pub(crate) keepalive_timeout: Option<Spanned<RawDuration>>,
    pub(crate) request_headers: Option<Spanned<RawHeaderOps>>,
    pub(crate) response_headers: Option<Spanned<RawHeaderOps>>,
    // Balancing, sticky sessions, retries and health checks (checked in `pools.rs`).
    pub(crate) balance: Option<Spanned<String>>,
    pub(crate) hash_key: Option<Spanned<String>>,
    pub(crate) sticky: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) sticky_scolon_path_delim: Option<Spanned<bool>>,
    pub(crate) sticky_failover: Option<Spanned<bool>>,
    pub(crate) retry: Option<Spanned<RawRetry>>,
    pub(crate) health_check: Option<Spanned<RawHealthCheck>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListener {
    pub(crate) name: Option<Spanned<String>>,
    pub(crate) address: Option<Spanned<String>>,
    pub(crate) certificate: Option<Spanned<String>>,
    pub(crate) private_key: Option<Spanned<String>>,
    pub(crate) certificates: Option<Spanned<Vec<Spanned<RawCertificate>>>>,
    pub(crate) unknown_sni: Option<Spanned<String>>,
    pub(crate) header_read_timeout: Option<Spanned<RawDuration>>,
    pub(crate) max_header_size: Option<Spanned<RawSize>>,
    pub(crate) keepalive_timeout: Option<Spanned<RawDuration>>,
    pub(crate) send_timeout: Option<Spanned<RawDuration>>,
    pub(crate) match_mode: Option<Spanned<String>>,
    pub(crate) merge_slashes: Option<Spanned<bool>>,
    pub(crate) tls_versions: Option<Spanned<Vec<String>>>,
    pub(crate) client_certificates: Option<Spanned<String>>,
    pub(crate) client_ca: Option<Spanned<String>>,
    pub(crate) client_crls: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) proxy_protocol: Option<Spanned<RawProxyProtocol>>,
    pub(crate) max_connections: Option<Spanned<i64>>,
    pub(crate) max_connections_per_client: Option<Spanned<i64>>,
    pub(crate) trusted_proxies: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) forwarded_headers: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) request_headers: Option<Spanned<RawHeaderOps>>,
    pub(crate) response_headers: Option<Spanned<RawHeaderOps>>,
    #[serde(default)]
    pub(crate) route: Vec<Spanned<RawRoute>>,
}

/// A listener's `proxy_protocol` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProxyProtocol {
    pub(crate) trusted: Option<Spanned<Vec<Spanned<String>>>>,
}

/// A route's `relay` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRelay {
    pub(crate) pairing_timeout: Option<Spanned<RawDuration>>,
    pub(crate) ticket_secret_file: Option<Spanned<String>>,
    pub(crate) require_verified_device: Option<Spanned<bool>>,
    pub(crate) max_message_size: Option<Spanned<RawSize>>,
}

/// One entry of a listener's `certificates` list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCertificate {
    pub(crate) certificate: Option<Spanned<String>>,
    pub(crate) private_key: Option<Spanned<String>>,
    pub(crate) names: Option<Spanned<Vec<Spanned<String>>>>,
    pub(crate) default: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub(crate) path: Option<Spanned<String>>,
    pub(crate) host: Option<Spanned<String>>,
    pub(crate) methods: Option<Spanned<Vec<String>>>,
    pub(crate) proxy: Option<Spanned<String>>,
    pub(crate) redirect: Option<Spanned<RawRedirect>>,
    pub(crate) respond: Option<Spanned<RawRespond>>,
    pub(crate) relay: Option<Spanned<RawRelay>>,
    pub(crate) websocket_test_page: Option<Spanned<String>>,
    pub(crate) rewrite_prefix: Option<Spanned<String>>,
    pub(crate) rewrite: Option<Spanned<String>>,
    pub(crate) max_body: Option<Spanned<RawSize>>,
    pub(crate) body_idle_timeout: Option<Spanned<RawDuration>>,
    pub(crate) websocket: Option<Spanned<bool>>,
    pub(crate) websocket_idle_timeout: Option<Spanned<RawDuration>>,
    pub(crate) request_headers: Option<Spanned<RawHeaderOps>>,
    pub(crate) response_headers: Option<Spanned<RawHeaderOps>>,
    pub(crate) location_rewrite: Option<Spanned<RawLocationRewrite>>,
    pub(crate) min_tls_version: Option<Spanned<String>>,
    pub(crate) cookie_domain: Option<Spanned<Vec<(String, String)>>>,
    pub(crate) cookie_path: Option<Spanned<Vec<(String, String)>>>,
    pub(crate) peer: Option<Spanned<String>>,
}

/// `respond = { status = 200, body = "ok" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRespond {
    pub(crate) status: Spanned<i64>,
    #[serde(default)]
    pub(crate) body: String,
}

/// `"https://…"` or `{ url = "https://…", weight = 2 }`.
#[derive(Debug)]
pub(crate) enum RawPeer {
    Url(String),
    // Boxed: the table is ten times the size of a URL string.
    Table(Box<RawPeerTable>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPeerTable {
    pub(crate) url: Spanned<String>,
    pub(crate) weight: Option<Spanned<i64>>,
    pub(crate) route: Option<Spanned<String>>,
    pub(crate) max_fails: Option<Spanned<i64>>,
    pub(crate) fail_timeout: Option<Spanned<RawDuration>>,
    pub(crate) backup: Option<Spanned<bool>>,
    pub(crate) down: Option<Spanned<bool>>,
}

/// `retry = { tries = 3, timeout = "10s", idempotent = true }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetry {
    pub(crate) tries: Option<Spanned<i64>>,
    pub(crate) timeout: Option<Spanned<RawDuration>>,
    pub(crate) idempotent: Option<Spanned<bool>>,
}

/// `health_check = { path = "/health", interval = "5s", ... }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealthCheck {
    pub(crate) path: Option<Spanned<String>>,
    pub(crate) host: Option<Spanned<String>>,
    pub(crate) interval: Option<Spanned<RawDuration>>,
    pub(crate) timeout: Option<Spanned<RawDuration>>,
    pub(crate) expect_status: Option<Spanned<RawStatusRange>>,
    pub(crate) rise: Option<Spanned<i64>>,
    pub(crate) fall: Option<Spanned<i64>>,
}

/// `"301 https://$host$request_uri"` or `{ status = 301, to = "https://$host$request_uri" }`.
#[derive(Debug)]
pub(crate) enum RawRedirect {
    Text(String),
    Table(RawRedirectTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRedirectTable {
    pub(crate) status: Spanned<i64>,
    pub(crate) to: Spanned<String>,
}

/// An integer or a string, read before its meaning is checked.
#[derive(Debug)]
pub(crate) enum IntOrString {
    Int(i64),
    String(String),
}

/// A size, unchecked.
#[derive(Debug)]
pub(crate) struct RawSize(pub(crate) IntOrString);

/// A duration, unchecked.
#[derive(Debug)]
pub(crate) struct RawDuration(pub(crate) IntOrString);

/// A status (`200`) or a range of statuses (`"200-399"`), unchecked.
#[derive(Debug)]
pub(crate) struct RawStatusRange(pub(crate) IntOrString);

/// What `expect_status` accepts, for messages.
pub(crate) const STATUS_RANGE_EXPECTED: &str =
    "a status such as 200, or a range such as \"200-399\", from 100 to 599";

struct IntOrStringVisitor {
    expecting: &'static str,
}

impl<'de> Visitor<'de> for IntOrStringVisitor {
    type Value = IntOrString;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(IntOrString::Int(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        i64::try_from(value)
            .map(IntOrString::Int)
            .map_err(|_| E::invalid_value(Unexpected::Unsigned(value), &self))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(IntOrString::String(value.to_owned()))
    }
}

impl<'de> Deserialize<'de> for RawSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(IntOrStringVisitor {
                expecting: SIZE_EXPECTED,
            })
            .map(Self)
    }
}

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(IntOrStringVisitor {
                expecting: DURATION_EXPECTED,
            })
            .map(Self)
    }
}

impl<'de> Deserialize<'de> for RawStatusRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(IntOrStringVisitor {
                expecting: STATUS_RANGE_EXPECTED,
            })
            .map(Self)
    }
}

struct PeerVisitor;

impl<'de> Visitor<'de> for PeerVisitor {
    type Value = RawPeer;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a peer: a URL string such as \"http://127.0.0.1:9000\", or a table such as { url = \"http://127.0.0.1:9000\", weight = 2 }")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(RawPeer::Url(value.to_owned()))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        RawPeerTable::deserialize(MapAccessDeserializer::new(map))
            .map(|table| RawPeer::Table(Box::new(table)))
    }
}

impl<'de> Deserialize<'de> for RawPeer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PeerVisitor)
    }
}

struct RedirectVisitor;

impl<'de> Visitor<'de> for RedirectVisitor {
    type Value = RawRedirect;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a redirect: a string \"STATUS TARGET\" such as \"301 https://$host$request_uri\", or a table such as { status = 301, to = \"https://$host$request_uri\" }")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(RawRedirect::Text(value.to_owned()))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        RawRedirectTable::deserialize(MapAccessDeserializer::new(map)).map(RawRedirect::Table)
    }
}

impl<'de> Deserialize<'de> for RawRedirect {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RedirectVisitor)
    }
}

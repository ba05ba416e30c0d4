//! The access log: one line per request, written when its response ends, in the configured
//! format ([`AccessLogFormat`]); where it goes is `access_log.rs`'s business.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gangway_config::AccessLogFormat;
use http::header::{REFERER, USER_AGENT};
use http::{HeaderValue, Method, Request, StatusCode, Uri, Version};

use crate::body::RequestBodyFacts;

/// What the access-log line says about one request; written by [`AccessRecord::log`].
#[derive(Debug)]
pub(crate) struct AccessRecord {
    pub(crate) client: SocketAddr,
    pub(crate) listener: Arc<str>,
    pub(crate) method: Method,
    /// The request target as the client sent it (origin form, absolute form, authority).
    pub(crate) uri: Uri,
    pub(crate) version: Version,
    pub(crate) referer: Option<HeaderValue>,
    pub(crate) user_agent: Option<HeaderValue>,
    pub(crate) status: StatusCode,
    pub(crate) route: Option<Arc<str>>,
    pub(crate) upstream: Option<Arc<str>>,
    pub(crate) peer: Option<Arc<str>>,
    pub(crate) request_body: Option<Arc<RequestBodyFacts>>,
    pub(crate) started: Instant,
    pub(crate) failure: Option<String>,
}

impl AccessRecord {
    /// What the request itself says; the outcome is filled in as it is served.
    pub(crate) fn new<B>(
        client: SocketAddr,
        listener: Arc<str>,
        request: &Request<B>,
        started: Instant,
    ) -> Self {
        Self {
            client,
            listener,
            method: request.method().clone(),
            uri: request.uri().clone(),
            version: request.version(),
            referer: request.headers().get(REFERER).cloned(),
            user_agent: request.headers().get(USER_AGENT).cloned(),
            status: StatusCode::OK,
            route: None,
            upstream: None,
            peer: None,
            request_body: None,
            started,
            failure: None,
        }
    }

    /// Notes that the response was cut short, and why.
    pub(crate) fn fail(&mut self, why: String) {
        self.failure.get_or_insert(why);
    }

    /// Writes the line: to the installed access log in its format, or else as a `tracing`
    /// event on target `gangway::access` (the default line on standard error).
    pub(crate) fn log(&self, bytes_in: u64, bytes_out: u64, elapsed: Duration) {
        let written = crate::access_log::write(|format| {
            self.line(format, bytes_in, bytes_out, elapsed, SystemTime::now())
        });
        if written {
            return;
        }
        tracing::info!(
            target: "gangway::access",
            listener = %self.listener,
            client = %self.client,
            method = %self.method,
            uri = %self.path_and_query(),
            status = self.status.as_u16(),
            bytes_in,
            bytes_out,
            route = self.route.as_deref().unwrap_or("-"),
            upstream = self.upstream.as_deref().unwrap_or("-"),
            peer = self.peer.as_deref().unwrap_or("-"),
            duration_ms = format_args!("{:.1}", millis(elapsed)),
            cut = self.failure.as_deref().unwrap_or("-"),
        );
    }

    /// One line in `format`, ending in a newline.
    pub(crate) fn line(
        &self,
        format: AccessLogFormat,
        bytes_in: u64,
        bytes_out: u64,
        elapsed: Duration,
        now: SystemTime,
    ) -> String {
        match format {
            AccessLogFormat::Default => self.default_line(bytes_in, bytes_out, elapsed, now),
            AccessLogFormat::Json => self.json_line(bytes_in, bytes_out, elapsed, now),
            AccessLogFormat::Combined => self.combined_line(bytes_out, now),
        }
    }

    fn path_and_query(&self) -> &str {
        self.uri.path_and_query().map_or("/", |path| path.as_str())
    }

    /// The line `tracing`'s formatter writes for the event in [`log`](Self::log): time,
    /// level, target, then the fields, strings quoted.
    fn default_line(
        &self,
        bytes_in: u64,
        bytes_out: u64,
        elapsed: Duration,
        now: SystemTime,
    ) -> String {
        let dash = |value: Option<&str>| format!("{:?}", value.unwrap_or("-"));
        format!(
            "{}  INFO gangway::access: listener={} client={} method={} uri={} status={} \
             bytes_in={bytes_in} bytes_out={bytes_out} route={} upstream={} peer={} \
             duration_ms={:.1} cut={}\n",
            Utc::from(now).rfc3339_micros(),
            self.listener,
            self.client,
            self.method,
            self.path_and_query(),
            self.status.as_u16(),
            dash(self.route.as_deref()),
            dash(self.upstream.as_deref()),
            dash(self.peer.as_deref()),
            millis(elapsed),
            dash(self.failure.as_deref()),
        )
    }

    /// The fields of the default line plus the time, protocol, `Referer` and `User-Agent`;
    /// what is unknown is `null`.
    fn json_line(
        &self,
        bytes_in: u64,
        bytes_out: u64,
        elapsed: Duration,
        now: SystemTime,
    ) -> String {
        let header = |value: &Option<HeaderValue>| {
            value
                .as_ref()
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        };
        let line = JsonLine {
            time: Utc::from(now).rfc3339_millis(),
            listener: &self.listener,
            client: self.client.to_string(),
            method: self.method.as_str(),
            uri: self.path_and_query(),
            protocol: protocol(self.version),
            status: self.status.as_u16(),
            bytes_in,
            bytes_out,
            route: self.route.as_deref(),
            upstream: self.upstream.as_deref(),
            peer: self.peer.as_deref(),
            duration_ms: (millis(elapsed) * 1000.0).round() / 1000.0,
            cut: self.failure.as_deref(),
            referer: header(&self.referer),
            user_agent: header(&self.user_agent),
        };
        // Serialising strings and numbers into a String cannot fail.
        let mut text = serde_json::to_string(&line).unwrap_or_default();
        text.push('\n');
        text
    }

    /// nginx's `combined` format, escaped as nginx escapes variables (`"`, `\`, control
    /// and non-ASCII bytes as `\xHH`); a header that was not sent is `-`.
    fn combined_line(&self, bytes_out: u64, now: SystemTime) -> String {
        let mut line = String::with_capacity(160);
        let _ = write!(
            line,
            "{} - - [{}] \"",
            self.client.ip(),
            Utc::from(now).nginx_local()
        );
        escape_into(&mut line, self.method.as_str().as_bytes());
        line.push(' ');
        escape_into(&mut line, self.request_target().as_bytes());
        line.push(' ');
        line.push_str(protocol(self.version));
        let _ = write!(line, "\" {} {bytes_out} \"", self.status.as_u16());
        header_into(&mut line, self.referer.as_ref());
        line.push_str("\" \"");
        header_into(&mut line, self.user_agent.as_ref());
        line.push_str("\"\n");
        line
    }

    /// The target of the request line as the client sent it: HTTP/2 has no request line,
    /// so there (as nginx does) it is the `:path`, or the authority of a CONNECT.
    fn request_target(&self) -> String {
        match (self.version, self.uri.path_and_query()) {
            (Version::HTTP_2 | Version::HTTP_3, Some(path)) => path.as_str().to_owned(),
            (_, None) => self
                .uri
                .authority()
                .map_or_else(|| "/".to_owned(), ToString::to_string),
            _ => self.uri.to_string(),
        }
    }
}

/// What a JSON line holds, in this order.
#[derive(serde::Serialize)]
struct JsonLine<'a> {
    time: String,
    listener: &'a str,
    client: String,
    method: &'a str,
    uri: &'a str,
    protocol: &'static str,
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    route: Option<&'a str>,
    upstream: Option<&'a str>,
    peer: Option<&'a str>,
    duration_ms: f64,
    cut: Option<&'a str>,
    referer: Option<String>,
    user_agent: Option<String>,
}

fn millis(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64() * 1000.0
}

/// nginx's `$server_protocol`.
fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

fn header_into(line: &mut String, value: Option<&HeaderValue>) {
    match value {
        Some(value) => escape_into(line, value.as_bytes()),
        None => line.push('-'),
    }
}

/// nginx's `ngx_http_log_escape`: bytes below 0x20, `"`, `\`, 0x7f and above become `\xHH`.
fn escape_into(line: &mut String, bytes: &[u8]) {
    for &byte in bytes {
        if !(0x20..0x7f).contains(&byte) || byte == b'"' || byte == b'\\' {
            let _ = write!(line, "\\x{byte:02X}");
        } else {
            line.push(char::from(byte));
        }
    }
}

/// A UTC calendar time, enough for log timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Utc {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    micros: u32,
}

impl From<SystemTime> for Utc {
    fn from(time: SystemTime) -> Self {
        let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let seconds = since.as_secs();
        let days = i64::try_from(seconds / 86_400).unwrap_or(0);
        let of_day = u32::try_from(seconds % 86_400).unwrap_or(0);
        // Howard Hinnant's civil_from_days, for days since 1970-01-01.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Self {
            year,
            month: u32::try_from(month).unwrap_or(1),
            day: u32::try_from(day).unwrap_or(1),
            hour: of_day / 3600,
            minute: of_day / 60 % 60,
            second: of_day % 60,
            micros: since.subsec_micros(),
        }
    }
}

impl Utc {
    fn rfc3339_seconds(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `2026-11-24T23:59:59.123456Z`, as `tracing-subscriber` writes it.
    pub(crate) fn rfc3339_micros(&self) -> String {
        format!("{}.{:06}Z", self.rfc3339_seconds(), self.micros)
    }

    /// `2026-11-24T23:59:59.123Z`.
    pub(crate) fn rfc3339_millis(&self) -> String {
        format!("{}.{:03}Z", self.rfc3339_seconds(), self.micros / 1000)
    }

    /// nginx's `$time_local` in UTC: `24/Nov/2026:23:59:59 +0000`.
    pub(crate) fn nginx_local(&self) -> String {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let month = MONTHS
            .get(self.month.saturating_sub(1) as usize)
            .unwrap_or(&"Jan");
        format!(
            "{:02}/{month}/{:04}:{:02}:{:02}:{:02} +0000",
            self.day, self.year, self.hour, self.minute, self.second
        )
    }
}

//! The value formats of the file: sizes, durations, addresses, URLs and host names, read and
//! written. Readers return the problem as a phrase that follows the value in a message
//! (`"16 kib": unknown unit "kib"`); the matching `*_EXPECTED` text says the accepted form.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::model::Scheme;

pub(crate) const SIZE_EXPECTED: &str = "a size: an integer number of bytes, or a string such as \
     \"16KiB\" with unit B, KB, MB, GB (powers of 1000), KiB, MiB or GiB (powers of 1024), \
     greater than 0";

pub(crate) const DURATION_EXPECTED: &str = "a duration: an integer number of seconds, or a \
     string such as \"500ms\", \"30s\", \"5m\", \"1h\" or \"1h30m\", greater than 0";

pub(crate) const ADDRESS_EXPECTED: &str =
    "\"IP:PORT\" with an IP literal, such as \"0.0.0.0:443\", \"[::]:443\" or \"localhost:8080\"";

pub(crate) const URL_EXPECTED: &str = "a URL \"http://HOST:PORT\" or \"https://HOST:PORT\" with \
     nothing after the port but an optional \"/\", such as \"http://127.0.0.1:9000\"";

pub(crate) const HOST_EXPECTED: &str =
    "a DNS name or IP address without a port, such as \"example.com\"";

/// Units of a size: decimal, then binary, each smallest first.
const SIZE_UNITS: [(&str, u64); 7] = [
    ("B", 1),
    ("KB", 1000),
    ("MB", 1000 * 1000),
    ("GB", 1000 * 1000 * 1000),
    ("KiB", 1024),
    ("MiB", 1024 * 1024),
    ("GiB", 1024 * 1024 * 1024),
];

/// Reads a size written with a unit, such as `16KiB` (a space before the unit is allowed).
/// The error says what is wrong with the text (`has unknown unit "KiBs"`), for a message
/// that names the key and what was expected.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err("does not start with a number".to_owned());
    }
    let number: u64 = text[..digits]
        .parse()
        .map_err(|_| "is too large".to_owned())?;
    let unit = text[digits..].strip_prefix(' ').unwrap_or(&text[digits..]);
    if unit.is_empty() {
        return Err("has no unit".to_owned());
    }
    let Some(&(_, factor)) = SIZE_UNITS.iter().find(|(name, _)| *name == unit) else {
        return Err(format!("has unknown unit {}", quote(unit)));
    };
    let bytes = number
        .checked_mul(factor)
        .ok_or_else(|| "is too large".to_owned())?;
    if bytes == 0 {
        return Err("is zero".to_owned());
    }
    Ok(bytes)
}

/// Writes a size as TOML: a unit string when the size is a whole number of a unit (binary
/// units first), otherwise an integer number of bytes.
pub(crate) fn size_to_toml(bytes: u64) -> String {
    for (name, factor) in SIZE_UNITS.iter().rev() {
        if *factor > 1 && bytes >= *factor && bytes % factor == 0 {
            return format!("\"{}{name}\"", bytes / factor);
        }
    }
    bytes.to_string()
}

/// Reads a duration string: number-unit pairs with units `h`, `m`, `s`, `ms`, each at most
/// once and largest first, e.g. `1h30m` or `1500ms`. The error says what is wrong with
/// the text.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text.is_empty() {
        return Err("is empty".to_owned());
    }
    let mut rest = text;
    let mut total = Duration::ZERO;
    let mut previous_rank = None;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("has {} where a number was expected", quote(rest)));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| "is too large".to_owned())?;
        rest = &rest[digits..];
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..letters];
        rest = &rest[letters..];
        let (rank, part) = match unit {
            "h" => (0, number.checked_mul(3600).map(Duration::from_secs)),
            "m" => (1, number.checked_mul(60).map(Duration::from_secs)),
            "s" => (2, Some(Duration::from_secs(number))),
            "ms" => (3, Some(Duration::from_millis(number))),
            "" => return Err(format!("has no unit after {number}")),
            other => return Err(format!("has unknown unit {}", quote(other))),
        };
        if previous_rank.is_some_and(|previous| previous >= rank) {
            return Err(format!("has unit {} out of order", quote(unit)));
        }
        previous_rank = Some(rank);
        total = part
            .and_then(|part| total.checked_add(part))
            .ok_or_else(|| "is too large".to_owned())?;
    }
    if total.is_zero() {
        return Err("is zero".to_owned());
    }
    Ok(total)
}

/// Writes a duration as TOML: `"1500ms"` when it has a fraction of a second (rounded up to
/// whole milliseconds), otherwise hours, minutes and seconds such as `"1h30m"`.
pub fn duration_to_toml(duration: Duration) -> String {
    if duration.subsec_nanos() != 0 {
        return format!("\"{}ms\"", duration.as_nanos().div_ceil(1_000_000));
    }
    let seconds = duration.as_secs();
    if seconds == 0 {
        return "\"0s\"".to_owned();
    }
    let mut out = String::from("\"");
    for (amount, unit) in [
        (seconds / 3600, "h"),
        (seconds / 60 % 60, "m"),
        (seconds % 60, "s"),
    ] {
        if amount > 0 {
            out.push_str(&format!("{amount}{unit}"));
        }
    }
    out.push('"');
    out
}

/// Reads a listen address: an IP literal with port, or `localhost:PORT` (as 127.0.0.1).
pub(crate) fn parse_address(text: &str) -> Result<SocketAddr, String> {
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err("has no port".to_owned());
    };
    let Ok(port) = port.parse::<u16>() else {
        return Err(format!(
            "has port {}, not a number from 0 to 65535",
            quote(port)
        ));
    };
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    if host.parse::<Ipv6Addr>().is_ok() {
        return Err("has an IPv6 address without brackets".to_owned());
    }
    Err(format!(
        "has host {}, which is not an IP address or localhost",
        quote(host)
    ))
}

/// A peer URL, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PeerUrl {
    pub(crate) scheme: Scheme,
    /// Lower-cased name, or IP address (IPv6 without brackets).
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// Reads `scheme://host[:port][/]`.
pub(crate) fn parse_peer_url(text: &str) -> Result<PeerUrl, String> {
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err("has no scheme".to_owned());
    };
    let scheme = if scheme.eq_ignore_ascii_case("http") {
        Scheme::Http
    } else if scheme.eq_ignore_ascii_case("https") {
        Scheme::Https
    } else {
        return Err(format!("has scheme {}, not http or https", quote(scheme)));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    for (character, what) in [
        ('@', "user info"),
        ('/', "a path"),
        ('?', "a query"),
        ('#', "a fragment"),
    ] {
        if authority.contains(character) {
            return Err(format!("has {what}"));
        }
    }
    if authority.is_empty() {
        return Err("has no host".to_owned());
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((inside, after)) = bracketed.split_once(']') else {
            return Err("has `[` without `]`".to_owned());
        };
        let Ok(ip) = inside.parse::<Ipv6Addr>() else {
            return Err(format!(
                "has {} in brackets, not an IPv6 address",
                quote(inside)
            ));
        };
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return Err(format!("has {} after the address", quote(after))),
            },
        };
        (ip.to_string(), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if port.is_some_and(|port| port.contains(':')) {
            return Err("has an IPv6 address without brackets".to_owned());
        }
        (
            host_name(host).ok_or_else(|| {
                format!(
                    "has host {}, which is not a DNS name or IP address",
                    quote(host)
                )
            })?,
            port,
        )
    };
    let port = match port {
        None => match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        },
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => {
                return Err(format!(
                    "has port {}, not a number from 1 to 65535",
                    quote(port)
                ));
            }
        },
    };
    Ok(PeerUrl { scheme, host, port })
}

/// Writes a peer URL with its port, IPv6 in brackets.
pub(crate) fn peer_url(scheme: Scheme, host: &str, port: u16) -> String {
    let scheme = match scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    };
    if host.parse::<Ipv6Addr>().is_ok() {
        format!("{scheme}://[{host}]:{port}")
    } else {
        format!("{scheme}://{host}:{port}")
    }
}

/// Normalises an upstream TLS server name: lower case, no trailing dot, IP addresses in
/// canonical form without brackets.
pub(crate) fn server_name(text: &str) -> Result<String, String> {
    let unbracketed = text
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(text);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    if text.contains(':') {
        return Err("has a port".to_owned());
    }
    host_name(text).ok_or_else(|| "is not a DNS name or IP address".to_owned())
}

/// An IPv4 address in canonical form, or a DNS name lower-cased without its trailing dot.
fn host_name(text: &str) -> Option<String> {
    if let Ok(ip) = text.parse::<Ipv4Addr>() {
        return Some(ip.to_string());
    }
    let name = text.strip_suffix('.').unwrap_or(text);
    let valid_label = |label: &str| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
    };
    (!name.is_empty() && name.len() <= 253 && name.split('.').all(valid_label))
        .then(|| name.to_ascii_lowercase())
}

/// A TOML basic string with the quotes, escaped as needed.
pub(crate) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            control if control.is_control() => {
                out.push_str(&format!("\\u{:04X}", u32::from(control)));
            }
            other => out.push(other),
        }
    }
    out.push('"');
    out
}

//! Relay tickets (HMAC-SHA256 per RFC 2104) and session pinning across relay instances.

use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::relay::RelayRole;

/// SHA-256 works on 64-byte blocks (RFC 2104 calls it B).
const BLOCK: usize = 64;

/// HMAC-SHA256 of `message` under `key` (RFC 2104).
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|byte| byte ^ 0x36));
    inner.update(message);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(block.map(|byte| byte ^ 0x5c));
    outer.update(inner);
    outer.finalize().into()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    out
}

/// Compares without an early exit, so the time taken does not tell how much matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn signature(secret: &[u8], session_id: &str, role: RelayRole, expires: u64) -> String {
    let message = format!(
        "gangway-relay-v1\n{session_id}\n{}\n{expires}",
        role.as_str()
    );
    hex(&hmac_sha256(secret, message.as_bytes()))
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

/// Issues a relay ticket: `<expires>.<signature>`, where `expires` is the Unix time in
/// seconds after which the ticket is refused and `signature` is the lowercase hex
/// HMAC-SHA256, under `secret`, of
/// `"gangway-relay-v1\n" + session_id + "\n" + role + "\n" + expires`.
///
/// The service that hands out session ids calls this once per peer; the relay checks it
/// with the same secret (see [`RelayConfig::ticket_secret`](crate::RelayConfig)).
pub fn sign_ticket(
    secret: &[u8],
    session_id: &str,
    role: RelayRole,
    expires: SystemTime,
) -> String {
    let expires = unix_seconds(expires);
    format!("{expires}.{}", signature(secret, session_id, role, expires))
}

/// Why a ticket was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TicketProblem {
    Malformed,
    Signature,
    Expired,
}

pub(crate) fn check_ticket(
    secret: &[u8],
    ticket: &str,
    session_id: &str,
    role: RelayRole,
    now: SystemTime,
) -> Result<(), TicketProblem> {
    let (expires, given) = ticket.split_once('.').ok_or(TicketProblem::Malformed)?;
    if expires.is_empty() || !expires.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(TicketProblem::Malformed);
    }
    let expires: u64 = expires.parse().map_err(|_| TicketProblem::Malformed)?;
    let expected = signature(secret, session_id, role, expires);
    if !constant_time_eq(expected.as_bytes(), given.as_bytes()) {
        return Err(TicketProblem::Signature);
    }
    if unix_seconds(now) >= expires {
        return Err(TicketProblem::Expired);
    }
    Ok(())
}

/// Picks the relay instance that owns `session_id`, so that both peers of a session reach
/// the same instance when several run side by side (rendezvous hashing: each instance
/// scores SHA-256 of `instance + "\n" + session_id`, the highest score wins). Adding or
/// removing an instance only moves the sessions that it wins or won. `None` when
/// `instances` is empty.
///
/// ```
/// let instances = ["relay-a.example:443", "relay-b.example:443", "relay-c.example:443"];
/// let owner = gangway_tunnel::pick_relay_instance("Zq3v0gYb1qkR8m2xT5uW9A", &instances);
/// assert!(owner.is_some());
/// assert_eq!(owner, gangway_tunnel::pick_relay_instance("Zq3v0gYb1qkR8m2xT5uW9A", &instances));
/// ```
pub fn pick_relay_instance<'a, T: AsRef<str>>(
    session_id: &str,
    instances: &'a [T],
) -> Option<&'a T> {
    instances.iter().max_by_key(|instance| {
        let mut hash = Sha256::new();
        hash.update(instance.as_ref().as_bytes());
        hash.update(b"\n");
        hash.update(session_id.as_bytes());
        let digest: [u8; 32] = hash.finalize().into();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first)
    })
}

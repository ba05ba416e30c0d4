//! The hash functions nginx's balancers use: its `ip_hash` step, CRC-32 for `hash`, and the
//! ketama-style ring of `hash ... consistent`.

use std::net::IpAddr;

/// The bytes of a client address that nginx's `ip_hash` uses: the first three octets of an
/// IPv4 address, all sixteen of an IPv6 one. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`,
/// as a dual-stack socket reports IPv4 clients) counts as the IPv4 address, which is what
/// nginx sees on its usual IPv4 listener.
pub(crate) fn ip_hash_bytes(addr: IpAddr) -> ([u8; 16], usize) {
    let mut bytes = [0; 16];
    match addr.to_canonical() {
        IpAddr::V4(v4) => {
            bytes[..3].copy_from_slice(&v4.octets()[..3]);
            (bytes, 3)
        }
        IpAddr::V6(v6) => {
            bytes = v6.octets();
            (bytes, 16)
        }
    }
}

/// One round of nginx's `ip_hash` over the address bytes.
pub(crate) fn ip_hash_round(mut hash: u32, bytes: &[u8]) -> u32 {
    for &byte in bytes {
        hash = (hash * 113 + u32::from(byte)) % 6271;
    }
    hash
}

/// nginx's starting value.
pub(crate) const IP_HASH_SEED: u32 = 89;

/// CRC-32 (IEEE 802.3, reflected, as zlib and nginx's `ngx_crc32_*`), fed in pieces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Crc32(u32);

const CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[n] = c;
        n += 1;
    }
    table
}

impl Crc32 {
    pub(crate) fn new() -> Self {
        Self(0xFFFF_FFFF)
    }

    pub(crate) fn update(mut self, data: &[u8]) -> Self {
        for &byte in data {
            self.0 = CRC_TABLE[((self.0 ^ u32::from(byte)) & 0xFF) as usize] ^ (self.0 >> 8);
        }
        self
    }

    pub(crate) fn finish(self) -> u32 {
        self.0 ^ 0xFFFF_FFFF
    }
}

pub(crate) fn crc32(data: &[u8]) -> u32 {
    Crc32::new().update(data).finish()
}

/// nginx `hash KEY`: the `rehash`-th hash step, `(crc32([rehash] key) >> 16) & 0x7fff`,
/// with the decimal rehash count omitted the first time.
pub(crate) fn rehash_step(key: &[u8], rehash: u32) -> u32 {
    let mut crc = Crc32::new();
    if rehash > 0 {
        let mut digits = [0u8; 10];
        let mut at = digits.len();
        let mut n = rehash;
        while n > 0 {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        crc = crc.update(&digits[at..]);
    }
    (crc.update(key).finish() >> 16) & 0x7fff
}

/// The points of `hash ... consistent`: 160 per unit of weight for each peer, each the
/// CRC-32 of `host \0 port` followed by the previous point's value (little-endian), sorted,
/// duplicates dropped. Each point names the index of its peer.
pub(crate) fn ketama_ring(peers: &[(&str, u32)]) -> Vec<(u32, usize)> {
    let mut points = Vec::new();
    for (index, &(authority, weight)) in peers.iter().enumerate() {
        let (host, port) = split_server(authority);
        let base = Crc32::new().update(host).update(&[0]).update(port);
        let mut previous = 0u32;
        for _ in 0..u64::from(weight) * 160 {
            let point = base.update(&previous.to_le_bytes()).finish();
            points.push((point, index));
            previous = point;
        }
    }
    points.sort_by_key(|&(point, _)| point);
    points.dedup_by_key(|&mut (point, _)| point);
    points
}

/// nginx's split of a `server` address: the port is the run of digits after the last `:`,
/// if there is one; otherwise it is all host.
fn split_server(server: &str) -> (&[u8], &[u8]) {
    let bytes = server.as_bytes();
    let digits = bytes
        .iter()
        .rev()
        .take_while(|byte| byte.is_ascii_digit())
        .count();
    let colon = bytes.len() - digits;
    if colon > 0 && bytes[colon - 1] == b':' {
        (&bytes[..colon - 1], &bytes[colon..])
    } else {
        (bytes, &[])
    }
}

/// The index of the first point at or after `hash` (may be one past the end; the caller
/// takes it modulo the ring size).
pub(crate) fn ring_position(ring: &[(u32, usize)], hash: u32) -> usize {
    ring.partition_point(|&(point, _)| point < hash)
}

//! IP networks in CIDR notation, for the trusted proxies of the forwarding policy.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::Error;

/// An IP network: `10.0.0.0/8`, `2001:db8::/32`, or one address (`192.0.2.1` is
/// `192.0.2.1/32`). Bits after the prefix are ignored (`10.1.2.3/8` is `10.0.0.0/8`), as
/// nginx's `set_real_ip_from` does.
///
/// An IPv4 client seen as an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, from a dual-stack
/// socket) is in the IPv4 networks that contain it, and the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Network {
    addr: IpAddr,
    prefix_len: u8,
}

impl Network {
    /// The network of `addr` with `prefix_len` leading bits; host bits are cleared.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Result<Self, Error> {
        let max = max_len(addr);
        if prefix_len > max {
            return Err(Error::InvalidNetwork {
                input: format!("{addr}/{prefix_len}"),
                column: addr.to_string().len() + 2,
                expected: if max == 32 {
                    "a prefix length from 0 to 32"
                } else {
                    "a prefix length from 0 to 128"
                },
            });
        }
        Ok(Self {
            addr: mask(addr, prefix_len),
            prefix_len,
        })
    }

    /// Parses `address` or `address/prefix-length`.
    pub fn parse(input: &str) -> Result<Self, Error> {
        let (addr_text, len_text) = match input.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (input, None),
        };
        let addr: IpAddr = addr_text.parse().map_err(|_| Error::InvalidNetwork {
            input: input.to_owned(),
            column: 1,
            expected: "an IPv4 or IPv6 address, optionally followed by `/` and a prefix length",
        })?;
        let max = max_len(addr);
        let prefix_len = match len_text {
            None => max,
            Some(text) => {
                let column = addr_text.chars().count() + 2;
                let expected = if max == 32 {
                    "a prefix length from 0 to 32"
                } else {
                    "a prefix length from 0 to 128"
                };
                let invalid = || Error::InvalidNetwork {
                    input: input.to_owned(),
                    column,
                    expected,
                };
                // Digits only: `u8::from_str` would also take a leading `+`.
                if text.is_empty() || text.len() > 3 || !text.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid());
                }
                let len: u8 = text.parse().map_err(|_| invalid())?;
                if len > max {
                    return Err(invalid());
                }
                len
            }
        };
        Self::new(addr, prefix_len)
    }

    /// The network address (host bits cleared).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            (IpAddr::V6(_), IpAddr::V4(v4)) => IpAddr::V6(v4.to_ipv6_mapped()),
            _ => ip,
        };
        mask(ip, self.prefix_len) == self.addr
    }
}

fn max_len(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn mask(addr: IpAddr, prefix_len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix_len))
                .unwrap_or(0);
            IpAddr::V4((bits & mask).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix_len))
                .unwrap_or(0);
            IpAddr::V6((bits & mask).into())
        }
    }
}

impl FromStr for Network {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        Self::parse(input)
    }
}

/// `address/prefix-length`, which [`Network::parse`] reads back.
impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

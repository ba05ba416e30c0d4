//! Validation of the `[admin]` table: the listener for metrics, health and tunnel calls.
//!
//! It closes tunnels and shows client identities, so it binds a loopback address unless
//! the file says `allow_remote = true`, and then the tunnel calls need a bearer token.

use std::net::SocketAddr;

use serde_spanned::Spanned;

use crate::error::Error;
use crate::model::Admin;
use crate::raw::RawAdmin;
use crate::validate::Checker;
use crate::values::{self, quote};

const LOOPBACK_EXPECTED: &str = "a loopback address such as \"127.0.0.1:9901\" or \"[::1]:9901\", \
     or `allow_remote = true` with a `token_file`";

impl Checker<'_> {
    /// The `[admin]` table; `listeners` are the listener addresses seen so far (with their
    /// lines), which the admin listener may not share.
    pub(crate) fn admin(
        &mut self,
        admin: &Spanned<RawAdmin>,
        listeners: &[(SocketAddr, usize)],
    ) -> Option<Admin> {
        let raw = admin.get_ref();
        let allow_remote = raw
            .allow_remote
            .as_ref()
            .is_some_and(|value| *value.get_ref());
        let address = match &raw.address {
            None => {
                self.missing(
                    &admin.span(),
                    "admin.address".to_owned(),
                    "an address and port such as \"127.0.0.1:9901\"",
                );
                None
            }
            Some(address) => match values::parse_address(address.get_ref()) {
                Err(problem) => {
                    self.invalid(
                        &address.span(),
                        "admin.address",
                        quote(address.get_ref()),
                        problem,
                        values::ADDRESS_EXPECTED,
                    );
                    None
                }
                Ok(parsed) if !allow_remote && !parsed.ip().is_loopback() => {
                    self.invalid(
                        &address.span(),
                        "admin.address",
                        quote(address.get_ref()),
                        "is not a loopback address, and the admin listener can close tunnels"
                            .to_owned(),
                        LOOPBACK_EXPECTED,
                    );
                    None
                }
                Ok(parsed) => {
                    let taken = listeners
                        .iter()
                        .find(|(listener, _)| parsed.port() != 0 && *listener == parsed);
                    if let Some((_, first_line)) = taken {
                        let at = self.at(&address.span());
                        self.errors.push(Error::DuplicateAddress {
                            at,
                            key: "admin.address".to_owned(),
                            address: parsed,
                            first_line: *first_line,
                        });
                        None
                    } else {
                        Some(parsed)
                    }
                }
            },
        };
        let token_file = match &raw.token_file {
            None if allow_remote => {
                self.missing(
                    &admin.span(),
                    "admin.token_file".to_owned(),
                    "a file holding the bearer token that tunnel calls must present when the \
                     admin listener is reachable from other hosts (`allow_remote = true`)",
                );
                return None;
            }
            None => None,
            Some(file) => Some(self.file("admin.token_file", file)?),
        };
        Some(Admin {
            address: address?,
            allow_remote,
            token_file,
        })
    }
}

//! Header operations for a reverse proxy, with no I/O.
//!
//! This crate is for what a proxy does to headers between the client and the upstream:
//!
//! - [`Template`]: a value such as `https://$host$request_uri`, parsed and checked once at
//!   configuration load (an unknown variable is an error with its position) and rendered per
//!   request from a [`Variables`] lookup that the engine implements.
//! - [`strip_hop_by_hop`]: removes the hop-by-hop headers of
//!   [RFC 9110 §7.6.1](https://www.rfc-editor.org/rfc/rfc9110#section-7.6.1), including
//!   every header that `Connection` names.
//! - [`set_forwarding`]: the identity and forwarding headers a proxy sets
//!   (`X-Forwarded-For` appended, `X-Real-IP` and `X-Forwarded-Proto` set), after removing
//!   whatever the client sent under those names.
//!
//! It is not for matching requests (that is `gangway-route`) or for anything that touches
//! a socket.
//!
//! ```
//! use gangway_headers::{Template, Variable, Variables};
//!
//! struct Request;
//! impl Variables for Request {
//!     fn write(&self, variable: &Variable, out: &mut String) -> bool {
//!         match variable {
//!             Variable::Host => out.push_str("ums.example.com"),
//!             Variable::RequestUri => out.push_str("/wums-app/?a=1"),
//!             _ => return false,
//!         }
//!         true
//!     }
//! }
//!
//! let target = Template::parse("https://$host$request_uri")?;
//! assert_eq!(target.render(&Request), "https://ums.example.com/wums-app/?a=1");
//! # Ok::<(), gangway_headers::Error>(())
//! ```

mod error;
mod forwarding;
mod hop_by_hop;
mod template;
#[cfg(test)]
mod tests;

pub use error::Error;
pub use forwarding::{ForwardedProto, set_forwarding};
pub use hop_by_hop::strip_hop_by_hop;
pub use template::{Template, Variable, Variables};

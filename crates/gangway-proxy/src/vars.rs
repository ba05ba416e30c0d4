//! The engine's answers to template variables, for one request.

use std::fmt::Write;
use std::net::SocketAddr;

use gangway_headers::{Variable, Variables};
use http::request::Parts;

/// The facts of one request that templates may use.
#[derive(Debug)]
pub(crate) struct RequestFacts<'a> {
    pub(crate) parts: &'a Parts,
    pub(crate) client: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) tls: bool,
    pub(crate) server_name: Option<&'a str>,
    pub(crate) host: Option<&'a str>,
}

impl Variables for RequestFacts<'_> {
    fn write(&self, variable: &Variable, out: &mut String) -> bool {
        let uri = &self.parts.uri;
        match variable {
            Variable::RemoteAddr => write!(out, "{}", self.client.ip()).is_ok(),
            Variable::RemotePort => write!(out, "{}", self.client.port()).is_ok(),
            Variable::ServerAddr => write!(out, "{}", self.local.ip()).is_ok(),
            Variable::ServerPort => write!(out, "{}", self.local.port()).is_ok(),
            Variable::ServerName => match self.server_name.or(self.host) {
                Some(name) => {
                    out.push_str(name);
                    true
                }
                None => false,
            },
            Variable::Host => match self.host.or(self.server_name) {
                Some(host) => {
                    out.push_str(host);
                    true
                }
                None => write!(out, "{}", self.local.ip()).is_ok(),
            },
            Variable::Scheme => {
                out.push_str(if self.tls { "https" } else { "http" });
                true
            }
            Variable::RequestUri => {
                out.push_str(uri.path_and_query().map_or("/", |target| target.as_str()));
                true
            }
            Variable::Uri => {
                out.push_str(uri.path());
                true
            }
            Variable::Args => {
                out.push_str(uri.query().unwrap_or(""));
                true
            }
            Variable::RequestMethod => {
                out.push_str(self.parts.method.as_str());
                true
            }
            Variable::ProxyAddXForwardedFor => {
                for value in self.parts.headers.get_all("x-forwarded-for") {
                    if let Ok(value) = value.to_str() {
                        out.push_str(value);
                        out.push_str(", ");
                    }
                }
                write!(out, "{}", self.client.ip()).is_ok()
            }
            Variable::Header(name) => {
                let mut values = self
                    .parts
                    .headers
                    .get_all(name)
                    .iter()
                    .filter_map(|v| v.to_str().ok());
                let Some(first) = values.next() else {
                    return false;
                };
                out.push_str(first);
                for value in values {
                    out.push_str(", ");
                    out.push_str(value);
                }
                true
            }
            _ => false,
        }
    }
}

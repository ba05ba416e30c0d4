//! `gangway-powerfolder`: the front of a PowerFolder server cluster, as the PowerFolder
//! guide's Apache (`mod_proxy_balancer`) and nginx configurations set it up.

use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;
use serde_spanned::Spanned;

use crate::error::Errors;
use crate::run::Profile;
use crate::values::{Check, FILE, HOST, IntOrText, Key, URL, quote};

/// The PowerFolder profile file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerFolder {
    server_name: Key<String>,
    certificate: Key<String>,
    private_key: Key<String>,
    http_listen: Key<String>,
    https_listen: Key<String>,
    max_body: Key<IntOrText>,
    balance: Key<String>,
    sticky: Key<Vec<String>>,
    keepalive: Key<i64>,
    #[serde(default)]
    node: Vec<Spanned<Node>>,
}

/// One `[[node]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Node {
    id: Key<String>,
    address: Key<String>,
}

const BALANCE: &str = "\"ip_hash\" (nginx, the default) or \"bybusyness\" (Apache)";
const STICKY: &str = "cookie or URL parameter names such as [\"rpcid\", \"JSESSIONID\", \
     \"jsessionid\"], or [] for none";

impl Profile for PowerFolder {
    const NAME: &'static str = "powerfolder";

    fn expand(&self, file: &Path, text: &str) -> Result<String, Errors> {
        let mut check = Check::new(file, text);
        let top = 0..0;
        let server_name = check
            .required(top.clone(), "server_name", &self.server_name, HOST)
            .map(|name| check.host("server_name", name))
            .unwrap_or_default();
        let certificate = check
            .required(top.clone(), "certificate", &self.certificate, FILE)
            .map(|path| check.file("certificate", path))
            .unwrap_or_default();
        let private_key = check
            .required(top.clone(), "private_key", &self.private_key, FILE)
            .map(|path| check.file("private_key", path))
            .unwrap_or_default();
        let http_listen = check.address("http_listen", &self.http_listen, "0.0.0.0:80");
        let https_listen = check.address("https_listen", &self.https_listen, "0.0.0.0:443");
        let max_body = check.size("max_body", &self.max_body, 2 * 1024 * 1024 * 1024);
        let balance = match &self.balance {
            None => "ip_hash".to_owned(),
            Some(balance) if ["ip_hash", "bybusyness"].contains(&balance.get_ref().as_str()) => {
                balance.get_ref().clone()
            }
            Some(balance) => {
                let value = quote(balance.get_ref());
                check.invalid(balance.span(), "balance", value, "is not a method", BALANCE);
                String::new()
            }
        };
        let sticky = match &self.sticky {
            None => vec![
                "rpcid".to_owned(),
                "JSESSIONID".to_owned(),
                "jsessionid".to_owned(),
            ],
            Some(names) => {
                let ok = names.get_ref().iter().all(|name| {
                    !name.is_empty()
                        && name
                            .bytes()
                            .all(|byte| byte.is_ascii_alphanumeric() || b"_-.".contains(&byte))
                });
                if !ok {
                    let value = format!("{:?}", names.get_ref());
                    check.invalid(names.span(), "sticky", value, "has an invalid name", STICKY);
                }
                names.get_ref().clone()
            }
        };
        // The guide's `keepalive 100;` in the nginx upstream block.
        let keepalive = match &self.keepalive {
            None => 100,
            Some(keepalive) => u32::try_from(*keepalive.get_ref()).unwrap_or_else(|_| {
                let value = keepalive.get_ref().to_string();
                check.invalid(
                    keepalive.span(),
                    "keepalive",
                    value,
                    "is negative or too large",
                    "idle connections kept per node, 0 or more",
                );
                0
            }),
        };
        if self.node.is_empty() {
            check.missing(
                top,
                "node",
                "at least one [[node]] table with id and address",
            );
        }
        let mut peers = Vec::new();
        for (index, node) in self.node.iter().enumerate() {
            let n = index + 1;
            let span = node.span();
            let node = node.get_ref();
            let id_key = format!("node[{n}].id");
            let id = check
                .required(
                    span.clone(),
                    &id_key,
                    &node.id,
                    "the node's id, such as \"nodeID1\"",
                )
                .map(|id| {
                    let text = id.get_ref();
                    if text.is_empty() || text.contains(|c: char| c.is_whitespace() || c == '/') {
                        check.invalid(
                            id.span(),
                            &id_key,
                            quote(text),
                            "is empty or has white space or '/'",
                            "the node's id, such as \"nodeID1\"",
                        );
                    }
                    text.clone()
                })
                .unwrap_or_default();
            let address_key = format!("node[{n}].address");
            let url = check
                .required(span, &address_key, &node.address, URL)
                .map(|address| {
                    // `"10.0.0.1:8080"` is shorthand for `"http://10.0.0.1:8080"`.
                    if address.get_ref().contains("://") {
                        check.url(&address_key, address, false)
                    } else {
                        let full = format!("http://{}", address.get_ref());
                        check.url(&address_key, &Spanned::new(address.span(), full), false)
                    }
                })
                .unwrap_or_default();
            peers.push(format!(
                "{{ url = {}, route = {} }}",
                quote(&url),
                quote(&id)
            ));
        }

        let mut out = check.header(Self::NAME);
        let _ = writeln!(
            out,
            "\n[[upstream]]\nname = \"cluster\"\npeers = [{}]\nbalance = {}\nkeepalive = {keepalive}",
            peers.join(", "),
            quote(&balance)
        );
        if !sticky.is_empty() {
            let names: Vec<String> = sticky.iter().map(|name| quote(name)).collect();
            let _ = writeln!(
                out,
                "sticky = [{}]\nsticky_scolon_path_delim = true",
                names.join(", ")
            );
        }
        let _ = writeln!(
            out,
            "\n[[listener]]\nname = \"http\"\naddress = {}\n\n[[listener.route]]\npath = \"/\"\n\
             redirect = {{ status = 301, to = {} }}",
            quote(&http_listen),
            quote(&format!("https://{server_name}$request_uri"))
        );
        let _ = writeln!(
            out,
            "\n[[listener]]\nname = \"https\"\naddress = {}\ncertificate = {}\nprivate_key = {}\n\n\
             # /websocket/<nodeID> goes to that node's /websocket (Apache `route=nodeID`).\n\
             [[listener.route]]\npath = \"~ ^/websocket/(?<node>[^/]+)(/.*)?$\"\nproxy = \"cluster\"\n\
             rewrite = \"/websocket$2\"\npeer = \"${{node}}\"\nwebsocket = true\n\n\
             [[listener.route]]\npath = \"/websocket\"\nproxy = \"cluster\"\nwebsocket = true\n\n\
             [[listener.route]]\npath = \"/\"\nproxy = \"cluster\"\nmax_body = {max_body}\n\
             location_rewrite = \"default\"",
            quote(&https_listen),
            quote(&certificate),
            quote(&private_key)
        );
        check.finish(out)
    }
}

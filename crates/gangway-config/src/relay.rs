//! Validation of the tunnel route actions: a `relay` table (secure-shadowing rendezvous)
//! and a `websocket_test_page`.

use gangway_route::PathMatch;
use serde_spanned::Spanned;

use crate::model::{Action, RelaySettings, defaults};
use crate::raw::RawRelay;
use crate::validate::Checker;
use crate::values::quote;

impl Checker<'_> {
    /// A `relay` action; its route must be a prefix route, whose prefix is followed by the
    /// session id.
    pub(crate) fn relay(
        &mut self,
        key: &str,
        relay: &Spanned<RawRelay>,
        path: Option<&Spanned<String>>,
    ) -> Option<Action> {
        let raw = relay.get_ref();
        let prefix_ok = match path {
            // A missing or unparsable path is reported by the route itself.
            None => false,
            Some(path) => match PathMatch::parse(path.get_ref()) {
                Ok(PathMatch::Prefix(_) | PathMatch::PreferredPrefix(_)) => true,
                Ok(_) => {
                    self.invalid(
                        &path.span(),
                        &format!("{}.path", key.trim_end_matches(".relay")),
                        quote(path.get_ref()),
                        "is not a prefix path; a relay takes the session id after its prefix"
                            .to_owned(),
                        "a prefix path such as \"/relay/\"",
                    );
                    false
                }
                Err(_) => false,
            },
        };
        let pairing_timeout = self.duration(
            &format!("{key}.pairing_timeout"),
            raw.pairing_timeout.as_ref(),
            defaults::RELAY_PAIRING_TIMEOUT,
        );
        let ticket_secret_file = match &raw.ticket_secret_file {
            None => Some(None),
            Some(file) => self
                .file(&format!("{key}.ticket_secret_file"), file)
                .map(Some),
        };
        let max_message_bytes = self.size(
            &format!("{key}.max_message_size"),
            raw.max_message_size.as_ref(),
            defaults::RELAY_MAX_MESSAGE_BYTES as u64,
        );
        let settings = RelaySettings {
            pairing_timeout,
            ticket_secret_file: ticket_secret_file?,
            require_verified_device: raw
                .require_verified_device
                .as_ref()
                .is_some_and(|value| *value.get_ref()),
            max_message_bytes: usize::try_from(max_message_bytes).unwrap_or(usize::MAX),
        };
        prefix_ok.then_some(Action::Relay(settings))
    }
}

/// Characters a test page target may hold: a URL's, without quotes, backslashes or angle
/// brackets, so it can sit in the page's script as it is.
fn is_page_target_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&()*+,;=%".contains(&byte)
}

impl Checker<'_> {
    /// A `websocket_test_page` action: the WebSocket path or URL the page checks.
    pub(crate) fn websocket_test_page(
        &mut self,
        key: &str,
        target: &Spanned<String>,
    ) -> Option<Action> {
        let text = target.get_ref();
        let problem = if !(text.starts_with('/')
            || text.starts_with("ws://")
            || text.starts_with("wss://"))
        {
            Some("is neither a path nor a ws:// or wss:// URL")
        } else if !text.bytes().all(is_page_target_byte) {
            Some("has a character a URL does not hold (quote, space, backslash or angle bracket)")
        } else {
            None
        };
        match problem {
            None => Some(Action::WebSocketTestPage {
                target: text.clone(),
            }),
            Some(problem) => {
                self.invalid(
                    &target.span(),
                    key,
                    quote(text),
                    problem.to_owned(),
                    "the WebSocket to check: a path such as \"/ws\" or a URL such as \
                     \"wss://host/ws\"",
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::tests::{TempDir, errors};
    use crate::{Action, RelaySettings, parse, to_toml};

    #[test]
    fn a_relay_route_with_its_settings_round_trips() {
        let dir = TempDir::new();
        dir.write("secret", "0123456789abcdef");
        let source = "[[listener]]\naddress = \"127.0.0.1:80\"\n[[listener.route]]\npath = \"/relay/\"\n\
             relay = { pairing_timeout = \"5s\", ticket_secret_file = \"secret\", \
             require_verified_device = true, max_message_size = \"1MiB\" }\n\
             [[listener.route]]\npath = \"^~ /shadow/\"\nrelay = {}\n";
        let config = parse(source, &dir.path("gangway.toml")).unwrap();
        let routes = &config.listeners[0].routes;
        assert_eq!(
            routes[0].action,
            Action::Relay(RelaySettings {
                pairing_timeout: Duration::from_secs(5),
                ticket_secret_file: Some(dir.path("secret")),
                require_verified_device: true,
                max_message_bytes: 1024 * 1024,
            })
        );
        assert_eq!(
            routes[1].action,
            Action::Relay(RelaySettings {
                pairing_timeout: Duration::from_secs(30),
                ticket_secret_file: None,
                require_verified_device: false,
                max_message_bytes: 16 * 1024 * 1024,
            })
        );
        let written = to_toml(&config);
        assert_eq!(
            parse(&written, Path::new("/elsewhere.toml")).unwrap(),
            config
        );
    }

    #[test]
    fn a_websocket_test_page_names_a_path_or_url() {
        let config = parse(
            "[[listener]]\naddress = \"127.0.0.1:80\"\n[[listener.route]]\npath = \"= /check\"\n\
             websocket_test_page = \"/ws?x=1\"\n[[listener.route]]\npath = \"/\"\n\
             websocket_test_page = \"wss://device.example/ws\"\n",
            Path::new("/x/gangway.toml"),
        )
        .unwrap();
        let routes = &config.listeners[0].routes;
        assert_eq!(
            routes[0].action,
            Action::WebSocketTestPage {
                target: "/ws?x=1".to_owned()
            }
        );
        let written = to_toml(&config);
        assert_eq!(
            parse(&written, Path::new("/elsewhere.toml")).unwrap(),
            config
        );
        let error = errors(
            "[[listener]]\naddress = \"127.0.0.1:80\"\n[[listener.route]]\npath = \"/a\"\n\
             websocket_test_page = \"http://x/ws\"\n[[listener.route]]\npath = \"/b\"\n\
             websocket_test_page = \"/ws\\\"</script>\"\n",
        );
        assert!(
            error.contains(
                ":5:23: listener[1].route[1].websocket_test_page = \"http://x/ws\": is neither"
            ),
            "{error}"
        );
        assert!(
            error.contains(":8:23: listener[1].route[2].websocket_test_page = \"/ws\\\"</script>\": has a character"),
            "{error}"
        );
    }

    #[test]
    fn a_relay_needs_a_prefix_path_a_secret_file_and_no_proxy_keys() {
        let error = errors(
            "[[listener]]\naddress = \"127.0.0.1:80\"\n\
             [[listener.route]]\npath = \"= /relay\"\nrelay = {}\n\
             [[listener.route]]\npath = \"~ ^/r/\"\nrelay = { ticket_secret_file = \"nowhere\" }\n\
             [[listener.route]]\npath = \"/x/\"\nrelay = {}\nwebsocket = true\nproxy = \"a\"\n",
        );
        for expected in [
            ":4:8: listener[1].route[1].path = \"= /relay\": is not a prefix path",
            ":7:8: listener[1].route[2].path = \"~ ^/r/\": is not a prefix path",
            ":8:32: listener[1].route[2].relay.ticket_secret_file: no file at /x/nowhere",
            ":13:9: listener[1].route[3]: the route has both `relay` and `proxy`",
        ] {
            assert!(
                error.contains(expected),
                "missing {expected:?} in:\n{error}"
            );
        }
    }
}

//! Validation of the listener keys for life behind an L4 balancer: the PROXY protocol and
//! connection limits.

use gangway_headers::Network;
use serde_spanned::Spanned;

use crate::model::ProxyProtocol;
use crate::raw::{RawListener, RawProxyProtocol};
use crate::validate::Checker;
use crate::values::quote;

const TRUSTED_EXPECTED: &str = "a list of the balancers' networks, such as [\"10.0.0.0/24\"]";

impl Checker<'_> {
    /// The `proxy_protocol` table: `trusted` is required and not empty, so that turning
    /// the header on never trusts the whole world by accident.
    pub(crate) fn proxy_protocol(
        &mut self,
        key: &str,
        raw: Option<&Spanned<RawProxyProtocol>>,
    ) -> Option<Option<ProxyProtocol>> {
        let Some(table) = raw else {
            return Some(None);
        };
        let key = format!("{key}.proxy_protocol");
        let Some(list) = &table.get_ref().trusted else {
            self.missing(&table.span(), format!("{key}.trusted"), TRUSTED_EXPECTED);
            return None;
        };
        if list.get_ref().is_empty() {
            self.invalid(
                &list.span(),
                &format!("{key}.trusted"),
                "[]".to_owned(),
                "is empty: no balancer could connect".to_owned(),
                TRUSTED_EXPECTED,
            );
            return None;
        }
        let mut trusted = Vec::new();
        let mut ok = true;
        for network in list.get_ref() {
            match network.get_ref().parse::<Network>() {
                Ok(parsed) => trusted.push(parsed),
                Err(error) => {
                    self.invalid(
                        &network.span(),
                        &format!("{key}.trusted"),
                        quote(network.get_ref()),
                        error.to_string(),
                        TRUSTED_EXPECTED,
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(Some(ProxyProtocol { trusted }))
    }

    /// `max_connections` and `max_connections_per_client`: each at least 1 when set.
    pub(crate) fn connection_limits(
        &mut self,
        key: &str,
        raw: &RawListener,
    ) -> (Option<usize>, Option<usize>) {
        let mut limit = |name: &str, value: Option<&Spanned<i64>>| {
            let value = value?;
            match usize::try_from(*value.get_ref()) {
                Ok(limit @ 1..) => Some(limit),
                _ => {
                    self.invalid(
                        &value.span(),
                        &format!("{key}.{name}"),
                        value.get_ref().to_string(),
                        "is out of range".to_owned(),
                        "a number of connections, 1 or more",
                    );
                    None
                }
            }
        };
        (
            limit("max_connections", raw.max_connections.as_ref()),
            limit(
                "max_connections_per_client",
                raw.max_connections_per_client.as_ref(),
            ),
        )
    }
}

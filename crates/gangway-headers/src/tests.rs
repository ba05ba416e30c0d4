use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;

use super::*;

struct Facts;

impl Variables for Facts {
    fn write(&self, variable: &Variable, out: &mut String) -> bool {
        let value = match variable {
            Variable::Host => "example.com",
            Variable::RequestUri => "/a%20b?x=1",
            Variable::Scheme => "https",
            Variable::Header(name) if name == "user-agent" => "curl/8",
            _ => return false,
        };
        out.push_str(value);
        true
    }
}

/// Answers from a table; variables not in it have no value.
#[derive(Default)]
struct Table(HashMap<Variable, String>);

impl Table {
    fn with(mut self, variable: Variable, value: &str) -> Self {
        self.0.insert(variable, value.to_owned());
        self
    }
}

impl Variables for Table {
    fn write(&self, variable: &Variable, out: &mut String) -> bool {
        match self.0.get(variable) {
            Some(value) => {
                out.push_str(value);
                true
            }
            None => false,
        }
    }
}

fn name(name: &'static str) -> HeaderName {
    HeaderName::from_static(name)
}

fn template(source: &str) -> Template {
    Template::parse(source).unwrap()
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(*name, HeaderValue::from_static(value));
    }
    headers
}

fn values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

// ---------------------------------------------------------------------------------------
// Templates and variables

#[test]
fn renders_plain_braced_and_literal_dollar() {
    let template =
        Template::parse("$scheme://${host}$request_uri costs $$5 by $http_user_agent").unwrap();
    assert_eq!(
        template.render(&Facts),
        "https://example.com/a%20b?x=1 costs $5 by curl/8"
    );
}

#[test]
fn unknown_variable_renders_nothing_at_runtime_only_if_known() {
    let template = Template::parse("[$remote_port]").unwrap();
    assert_eq!(template.render(&Facts), "[]");
}

#[test]
fn literal_only_template_keeps_text() {
    let template = Template::parse("max-age=63072000").unwrap();
    assert_eq!(template.render(&Facts), "max-age=63072000");
    assert_eq!(template.variables().count(), 0);
    assert!(template.is_literal());
}

#[test]
fn parse_errors_name_the_column() {
    assert_eq!(
        Template::parse("https://$hots/x"),
        Err(Error::UnknownVariable {
            name: "hots".into(),
            column: 9
        })
    );
    assert_eq!(Template::parse("a$"), Err(Error::MissingName { column: 2 }));
    assert_eq!(
        Template::parse("a$-b"),
        Err(Error::MissingName { column: 2 })
    );
    assert_eq!(
        Template::parse("é${host"),
        Err(Error::UnclosedBrace { column: 2 })
    );
    assert_eq!(
        Template::parse("${}"),
        Err(Error::MissingName { column: 1 })
    );
    assert_eq!(
        Template::parse("x ${10}"),
        Err(Error::UnknownVariable {
            name: "10".into(),
            column: 3
        })
    );
}

#[test]
fn variable_names_resolve_as_nginx_names_them() {
    assert_eq!(
        Variable::from_name("request_uri"),
        Some(Variable::RequestUri)
    );
    assert_eq!(
        Variable::from_name("http_x_forwarded_for"),
        Some(Variable::Header(http::HeaderName::from_static(
            "x-forwarded-for"
        )))
    );
    assert_eq!(Variable::from_name("query_string"), Some(Variable::Args));
    assert_eq!(Variable::from_name("7"), Some(Variable::Capture(7)));
    assert_eq!(Variable::from_name("http_"), None);
    assert_eq!(
        Variable::from_name("cookie_JSESSIONID"),
        Some(Variable::Cookie("JSESSIONID".into()))
    );
    assert_eq!(
        Variable::from_name("arg_page"),
        Some(Variable::Arg("page".into()))
    );
    assert_eq!(Variable::from_name("cookie_"), None);
    assert_eq!(Variable::from_name("arg_"), None);
    for name in ["cookie_JSESSIONID", "arg_page", "http_x_a"] {
        let variable = Variable::from_name(name).expect(name);
        assert_eq!(variable.to_string(), name);
    }
    assert_eq!(Variable::from_name("nope"), None);
    assert_eq!(Variable::from_name("12"), None);
}

/// Every built-in name, as documented in docs/headers.md.
const BUILT_INS: [&str; 26] = [
    "remote_addr",
    "remote_port",
    "server_addr",
    "server_port",
    "server_name",
    "host",
    "scheme",
    "request_uri",
    "uri",
    "args",
    "is_args",
    "request_method",
    "proxy_add_x_forwarded_for",
    "connection_upgrade",
    "http_x_custom_header",
    "ssl_client_escaped_cert",
    "ssl_client_cert",
    "ssl_client_s_dn",
    "ssl_client_i_dn",
    "ssl_client_serial",
    "ssl_client_fingerprint",
    "ssl_client_verify",
    "ssl_protocol",
    "ssl_server_name",
    "0",
    "9",
];

#[test]
fn every_built_in_variable_resolves_displays_and_renders_what_the_engine_writes() {
    let mut facts = Table::default();
    let mut source = String::new();
    let mut expected = String::new();
    for (i, name) in BUILT_INS.iter().enumerate() {
        let variable = Variable::from_name(name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(variable.to_string(), *name, "display of {variable:?}");
        let value = format!("<{i}>");
        facts = facts.with(variable, &value);
        source.push_str(&format!("${{{name}}}|"));
        expected.push_str(&value);
        expected.push('|');
    }
    let template = template(&source);
    assert_eq!(template.variables().count(), BUILT_INS.len());
    assert_eq!(template.render(&facts), expected);
}

#[test]
fn tls_identity_variables_are_their_own_variants() {
    let cases = [
        ("ssl_client_escaped_cert", Variable::SslClientEscapedCert),
        ("ssl_client_cert", Variable::SslClientCert),
        ("ssl_client_s_dn", Variable::SslClientSDn),
        ("ssl_client_i_dn", Variable::SslClientIDn),
        ("ssl_client_serial", Variable::SslClientSerial),
        ("ssl_client_fingerprint", Variable::SslClientFingerprint),
        ("ssl_client_verify", Variable::SslClientVerify),
        ("ssl_protocol", Variable::SslProtocol),
        ("ssl_server_name", Variable::SslServerName),
    ];
    for (name, variable) in cases {
        assert_eq!(Variable::from_name(name), Some(variable));
    }
}

#[test]
fn numbered_captures_are_one_digit_as_in_nginx() {
    let t = template("/$1/${2}/$0/$10");
    let captures: Vec<_> = t.captures().cloned().collect();
    assert_eq!(
        captures,
        [
            Variable::Capture(1),
            Variable::Capture(2),
            Variable::Capture(0),
            Variable::Capture(1)
        ]
    );
    let facts = Table::default()
        .with(Variable::Capture(0), "all")
        .with(Variable::Capture(1), "one")
        .with(Variable::Capture(2), "two");
    assert_eq!(t.render(&facts), "/one/two/all/one0");
    assert_eq!(template("$host$request_uri").captures().count(), 0);
}

#[test]
fn named_captures_need_the_route_s_names() {
    assert_eq!(
        Template::parse("https://$device.example.com"),
        Err(Error::UnknownVariable {
            name: "device".into(),
            column: 9
        })
    );
    let t =
        Template::parse_with_captures("https://$device.example.com/${id}x$host", &["device", "id"])
            .unwrap();
    let captures: Vec<_> = t.captures().cloned().collect();
    assert_eq!(
        captures,
        [
            Variable::NamedCapture("device".into()),
            Variable::NamedCapture("id".into())
        ]
    );
    let facts = Table::default()
        .with(Variable::NamedCapture("device".into()), "dev-42")
        .with(Variable::NamedCapture("id".into()), "7")
        .with(Variable::Host, "h");
    assert_eq!(t.render(&facts), "https://dev-42.example.com/7xh");
    let names = vec!["device".to_owned()];
    assert!(Template::parse_with_captures("$device", &names).is_ok());
    assert_eq!(
        Template::parse_with_captures("$other", &names),
        Err(Error::UnknownVariable {
            name: "other".into(),
            column: 1
        })
    );
}

#[test]
fn a_capture_named_like_a_built_in_is_refused() {
    for name in ["host", "http_x_a", "remote_addr"] {
        assert_eq!(
            Template::parse_with_captures("x", &[name]),
            Err(Error::CaptureShadowsVariable { name: name.into() })
        );
    }
}

#[test]
fn connection_upgrade_is_derived_from_http_upgrade_unless_the_engine_answers() {
    let t = template("$connection_upgrade");
    let upgrade = Variable::Header(http::header::UPGRADE);
    let websocket = Table::default().with(upgrade.clone(), "websocket");
    assert_eq!(t.render(&websocket), "upgrade");
    assert_eq!(t.render(&Table::default()), "close");
    assert_eq!(t.render(&Table::default().with(upgrade, "")), "close");
    let engine = Table::default().with(Variable::ConnectionUpgrade, "keep-alive");
    assert_eq!(t.render(&engine), "keep-alive");
}

#[test]
fn is_args_is_derived_from_args() {
    let t = template("$uri$is_args$args");
    let with = Table::default()
        .with(Variable::Uri, "/p")
        .with(Variable::Args, "a=1");
    assert_eq!(t.render(&with), "/p?a=1");
    let without = Table::default()
        .with(Variable::Uri, "/p")
        .with(Variable::Args, "");
    assert_eq!(t.render(&without), "/p");
}

/// An engine that breaks the contract: writes, then says "no value".
struct Sloppy;

impl Variables for Sloppy {
    fn write(&self, _: &Variable, out: &mut String) -> bool {
        out.push_str("junk");
        false
    }
}

#[test]
fn a_variable_without_value_leaves_nothing_even_from_a_sloppy_engine() {
    assert_eq!(template("[$host]").render(&Sloppy), "[]");
    assert_eq!(template("[$connection_upgrade]").render(&Sloppy), "[close]");
}

#[test]
fn literal_template_keeps_dollars_and_round_trips() {
    let t = Template::literal("price: $5 ${x}");
    assert_eq!(t.source(), "price: $$5 $${x}");
    assert_eq!(t.render(&Facts), "price: $5 ${x}");
    assert_eq!(template(t.source()).render(&Facts), "price: $5 ${x}");
    assert!(t.is_literal());
    assert_eq!(Template::literal("").render(&Facts), "");
}

// ---------------------------------------------------------------------------------------
// Operations

#[test]
fn set_replaces_every_value_and_an_empty_value_removes_the_header() {
    let ops = HeaderOps::from_ops([
        HeaderOp::Set(name("x-a"), template("$host")),
        HeaderOp::Set(name("x-empty"), template("$args")),
        HeaderOp::Set(name("x-literal-empty"), template("")),
    ])
    .unwrap();
    let mut h = headers(&[
        ("x-a", "1"),
        ("x-a", "2"),
        ("x-empty", "client"),
        ("x-literal-empty", "client"),
    ]);
    let dropped = ops.apply(&mut h, &Facts);
    assert!(dropped.is_empty());
    assert_eq!(values(&h, "x-a"), ["example.com"]);
    assert!(!h.contains_key("x-empty"), "empty result removes, as nginx");
    assert!(!h.contains_key("x-literal-empty"));
}

#[test]
fn add_appends_and_an_empty_value_adds_nothing() {
    let ops = HeaderOps::from_ops([
        HeaderOp::Add(name("via"), template("1.1 gangway")),
        HeaderOp::Add(name("via"), template("$args")),
        HeaderOp::Add(name("x-new"), template("$scheme")),
    ])
    .unwrap();
    let mut h = headers(&[("via", "1.1 other")]);
    ops.apply(&mut h, &Facts);
    assert_eq!(values(&h, "via"), ["1.1 other", "1.1 gangway"]);
    assert_eq!(values(&h, "x-new"), ["https"]);
}

#[test]
fn remove_removes_every_value() {
    let ops = HeaderOps::from_ops([HeaderOp::Remove(name("server"))]).unwrap();
    let mut h = headers(&[("server", "a"), ("server", "b"), ("x-k", "kept")]);
    ops.apply(&mut h, &Facts);
    assert!(!h.contains_key("server"));
    assert_eq!(values(&h, "x-k"), ["kept"]);
}

#[test]
fn operations_apply_in_order() {
    let ops = HeaderOps::from_ops([
        HeaderOp::Add(name("x-a"), template("1")),
        HeaderOp::Set(name("x-a"), template("2")),
        HeaderOp::Add(name("x-a"), template("3")),
        HeaderOp::Set(name("x-b"), template("1")),
        HeaderOp::Remove(name("x-b")),
    ])
    .unwrap();
    let mut h = HeaderMap::new();
    ops.apply(&mut h, &Facts);
    assert_eq!(values(&h, "x-a"), ["2", "3"]);
    assert!(!h.contains_key("x-b"));
    let listed: Vec<_> = ops
        .iter()
        .map(|(op, always)| (op.name().as_str(), always))
        .collect();
    assert_eq!(
        listed,
        [
            ("x-a", false),
            ("x-a", false),
            ("x-a", false),
            ("x-b", false),
            ("x-b", false)
        ]
    );
    assert_eq!(ops.len(), 5);
    assert!(!ops.is_empty());
    assert!(HeaderOps::new().is_empty());
}

#[test]
fn headers_the_proxy_manages_cannot_be_operated_on() {
    for header in [
        "connection",
        "upgrade",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "content-length",
    ] {
        let header_name = HeaderName::from_static(header);
        for op in [
            HeaderOp::Set(header_name.clone(), template("$http_upgrade")),
            HeaderOp::Add(header_name.clone(), template("x")),
            HeaderOp::Remove(header_name.clone()),
        ] {
            let err = HeaderOps::new().push(op).unwrap_err();
            assert!(
                matches!(&err, Error::ManagedHeader { header: h, .. } if h == header),
                "{err:?}"
            );
        }
    }
    let err = HeaderOps::new()
        .push(HeaderOp::Set(name("upgrade"), template("$http_upgrade")))
        .unwrap_err();
    assert!(err.to_string().contains("WebSocket route"), "{err}");
    // Proxy-Authorization towards an upstream forward proxy is legitimate.
    assert!(
        HeaderOps::new()
            .push(HeaderOp::Set(
                name("proxy-authorization"),
                template("Basic eA==")
            ))
            .is_ok()
    );
}

#[test]
fn a_literal_control_character_is_a_configuration_error() {
    let err = HeaderOps::new()
        .push(HeaderOp::Set(name("x-a"), template("ab\r\nx-b: c")))
        .unwrap_err();
    assert_eq!(
        err,
        Error::InvalidLiteral {
            header: "x-a".into(),
            byte: b'\r',
            column: 3
        }
    );
    assert_eq!(err.column(), Some(3));
    assert!(
        HeaderOps::new()
            .push(HeaderOp::Add(name("x-a"), template("$host\0")))
            .is_err()
    );
    assert!(
        HeaderOps::new()
            .push(HeaderOp::Add(name("x-a"), template("tab\tand é are fine")))
            .is_ok()
    );
}

#[test]
fn a_route_that_sets_one_header_keeps_the_listener_s_others() {
    let listener = HeaderOps::from_ops([
        HeaderOp::Set(name("x-real-ip"), template("$remote_addr")),
        HeaderOp::Set(name("x-a"), template("listener")),
        HeaderOp::Add(name("x-b"), template("listener")),
        HeaderOp::Add(name("x-b"), template("listener-2")),
    ])
    .unwrap();
    let route = HeaderOps::from_ops([
        HeaderOp::Set(name("x-a"), template("route")),
        HeaderOp::Add(name("x-b"), template("route")),
    ])
    .unwrap();
    let upstream = HeaderOps::from_ops([HeaderOp::Remove(name("x-real-ip"))]).unwrap();

    let merged = listener.merge(&route);
    let facts = Table::default().with(Variable::RemoteAddr, "192.0.2.1");
    let mut h = HeaderMap::new();
    merged.apply(&mut h, &facts);
    assert_eq!(values(&h, "x-real-ip"), ["192.0.2.1"], "inherited");
    assert_eq!(values(&h, "x-a"), ["route"], "overridden");
    assert_eq!(
        values(&h, "x-b"),
        ["route"],
        "all of the listener's x-b ops overridden"
    );
    let order: Vec<_> = merged.iter().map(|(op, _)| op.name().as_str()).collect();
    assert_eq!(order, ["x-real-ip", "x-a", "x-b"]);

    let all = listener.merge(&route).merge(&upstream);
    let mut h = headers(&[("x-real-ip", "forged")]);
    all.apply(&mut h, &facts);
    assert!(
        !h.contains_key("x-real-ip"),
        "the upstream level removes it"
    );
    assert_eq!(values(&h, "x-a"), ["route"]);

    assert_eq!(listener.merge(&HeaderOps::new()), listener);
    assert_eq!(HeaderOps::new().merge(&route), route);
}

#[test]
fn always_operations_reach_the_proxy_s_own_responses() {
    let mut response = HeaderOps::new();
    response
        .push_always(HeaderOp::Set(
            name("strict-transport-security"),
            template("max-age=63072000"),
        ))
        .unwrap()
        .push(HeaderOp::Set(
            name("x-frame-options"),
            template("SAMEORIGIN"),
        ))
        .unwrap()
        .push_always(HeaderOp::Remove(name("server")))
        .unwrap();

    let mut upstream_response = headers(&[("server", "upstream")]);
    assert!(response.apply(&mut upstream_response, &Facts).is_empty());
    assert_eq!(
        upstream_response["strict-transport-security"],
        "max-age=63072000"
    );
    assert_eq!(upstream_response["x-frame-options"], "SAMEORIGIN");
    assert!(!upstream_response.contains_key("server"));

    let mut bad_gateway = headers(&[("server", "gangway")]);
    assert!(response.apply_always(&mut bad_gateway, &Facts).is_empty());
    assert_eq!(bad_gateway["strict-transport-security"], "max-age=63072000");
    assert!(!bad_gateway.contains_key("x-frame-options"), "not `always`");
    assert!(!bad_gateway.contains_key("server"));

    let flags: Vec<_> = response.iter().map(|(_, always)| always).collect();
    assert_eq!(flags, [true, false, true]);
}

#[test]
fn always_flag_survives_a_merge_and_is_overridden_by_name() {
    let mut listener = HeaderOps::new();
    listener
        .push_always(HeaderOp::Set(
            name("strict-transport-security"),
            template("max-age=1"),
        ))
        .unwrap();
    let route = HeaderOps::from_ops([HeaderOp::Set(
        name("strict-transport-security"),
        template("max-age=2"),
    )])
    .unwrap();
    let mut h = HeaderMap::new();
    listener
        .merge(&HeaderOps::new())
        .apply_always(&mut h, &Facts);
    assert_eq!(h["strict-transport-security"], "max-age=1");
    let mut h = HeaderMap::new();
    listener.merge(&route).apply_always(&mut h, &Facts);
    assert!(h.is_empty(), "the route's op is not `always`");
}

/// The engine's answers, reading the request headers as the client sent them.
struct RequestFacts<'a> {
    headers: &'a HeaderMap,
    policy: &'a ForwardingPolicy,
}

impl Variables for RequestFacts<'_> {
    fn write(&self, variable: &Variable, out: &mut String) -> bool {
        match variable {
            Variable::RemoteAddr => out.push_str(&CLIENT.to_string()),
            Variable::Host => out.push_str("ucserver.example.com"),
            Variable::ProxyAddXForwardedFor => {
                self.policy.write_x_forwarded_for(self.headers, CLIENT, out);
            }
            Variable::Header(name) => {
                let Some(value) = self.headers.get(name) else {
                    return false;
                };
                out.push_str(value.to_str().unwrap_or(""));
            }
            _ => return false,
        }
        true
    }
}

#[test]
fn render_then_apply_reads_the_request_as_the_client_sent_it() {
    let policy = ForwardingPolicy::new();
    let ops = HeaderOps::from_ops([
        HeaderOp::Set(
            name("x-forwarded-for"),
            template("$proxy_add_x_forwarded_for"),
        ),
        HeaderOp::Set(name("x-original-agent"), template("$http_user_agent")),
        HeaderOp::Set(name("user-agent"), template("gangway")),
    ])
    .unwrap();
    let mut h = headers(&[("x-forwarded-for", "203.0.113.7"), ("user-agent", "curl/8")]);
    let rendered = ops.render(&RequestFacts {
        headers: &h,
        policy: &policy,
    });
    h.clear();
    assert!(rendered.apply(&mut h).is_empty());
    assert_eq!(h["x-forwarded-for"], "203.0.113.7, 192.0.2.1");
    assert_eq!(h["x-original-agent"], "curl/8");
    assert_eq!(h["user-agent"], "gangway");
}

#[test]
fn overrides_says_whether_the_operations_decide_a_header() {
    let ops = HeaderOps::from_ops([
        HeaderOp::Set(name("x-real-ip"), template("$remote_addr")),
        HeaderOp::Remove(name("x-forwarded-proto")),
        HeaderOp::Add(name("x-forwarded-for"), template("$remote_addr")),
    ])
    .unwrap();
    assert!(ops.overrides(&name("x-real-ip")));
    assert!(ops.overrides(&name("x-forwarded-proto")));
    assert!(
        !ops.overrides(&name("x-forwarded-for")),
        "an add keeps what is there"
    );
    assert!(!ops.overrides(&name("host")));
}

#[test]
fn rare_and_many_identity_headers_are_all_removed() {
    let mut h = HeaderMap::new();
    for (name, _) in FORGED {
        h.append(name, HeaderValue::from_static("x"));
    }
    for name in ["x-ssl-cipher", "x-forwarded-prefix", "x-client-cert-chain"] {
        h.append(name, HeaderValue::from_static("x"));
    }
    h.append("x-kept", HeaderValue::from_static("x"));
    strip_identity_headers(&mut h, &[]);
    let left: Vec<_> = h.keys().map(HeaderName::as_str).collect();
    assert_eq!(left, ["x-kept"]);
}

#[test]
fn render_then_apply_holds_any_number_of_operations() {
    let names: Vec<HeaderName> = (0..12)
        .map(|i| HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap())
        .collect();
    for count in [0, 1, 8, 9, 12] {
        let ops = HeaderOps::from_ops(
            names[..count]
                .iter()
                .map(|n| HeaderOp::Set(n.clone(), template("$host"))),
        )
        .unwrap();
        let mut h = HeaderMap::new();
        assert!(ops.render(&Facts).apply(&mut h).is_empty());
        assert_eq!(h.len(), count);
        assert!(h.values().all(|v| v == "example.com"));
    }
}

/// An engine whose answer itself applies header operations (nothing should, but nothing
/// must break if one does).
struct Nested<'a>(&'a HeaderOps);

impl Variables for Nested<'_> {
    fn write(&self, _: &Variable, out: &mut String) -> bool {
        let mut inner = HeaderMap::new();
        self.0.apply(&mut inner, &Facts);
        out.push_str(inner["x-inner"].to_str().unwrap());
        true
    }
}

#[test]
fn applying_operations_from_inside_a_variable_lookup_works() {
    let inner = HeaderOps::from_ops([HeaderOp::Set(name("x-inner"), template("$host"))]).unwrap();
    let outer = HeaderOps::from_ops([HeaderOp::Set(name("x-outer"), template("<$uri>"))]).unwrap();
    let mut h = HeaderMap::new();
    outer.apply(&mut h, &Nested(&inner));
    assert_eq!(h["x-outer"], "<example.com>");
    let mut h = HeaderMap::new();
    outer.render(&Nested(&inner)).apply(&mut h);
    assert_eq!(h["x-outer"], "<example.com>");
}

#[test]
fn very_long_values_render_whole_and_later_ones_still_work() {
    let ops = HeaderOps::from_ops([HeaderOp::Set(
        name("x-ssl-cert"),
        template("$ssl_client_escaped_cert"),
    )])
    .unwrap();
    let long = "A".repeat(40_000);
    let facts = Table::default().with(Variable::SslClientEscapedCert, &long);
    let mut h = HeaderMap::new();
    ops.apply(&mut h, &facts);
    assert_eq!(h["x-ssl-cert"].len(), 40_000);
    let facts = Table::default().with(Variable::SslClientEscapedCert, "short");
    let mut h = HeaderMap::new();
    ops.apply(&mut h, &facts);
    assert_eq!(h["x-ssl-cert"], "short");
}

#[test]
fn header_ops_list_the_captures_they_use() {
    let ops = HeaderOps::from_ops([
        HeaderOp::Set(name("x-a"), template("$1-$host")),
        HeaderOp::Remove(name("x-b")),
        HeaderOp::Add(
            name("x-c"),
            Template::parse_with_captures("$device$2", &["device"]).unwrap(),
        ),
    ])
    .unwrap();
    let captures: Vec<_> = ops.captures().cloned().collect();
    assert_eq!(
        captures,
        [
            Variable::Capture(1),
            Variable::NamedCapture("device".into()),
            Variable::Capture(2)
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Injection: a rendered value with CR, LF or NUL is never emitted.

#[test]
fn a_value_with_cr_lf_or_nul_is_dropped_and_reported() {
    let ops = HeaderOps::from_ops([
        HeaderOp::Set(name("x-set"), template("v=$http_x_evil")),
        HeaderOp::Add(name("x-add"), template("$http_x_evil")),
    ])
    .unwrap();
    for (evil, index, byte) in [
        ("a\r\nx-injected: 1", 3, b'\r'),
        ("a\nb", 3, b'\n'),
        ("a\0b", 3, 0),
        ("\u{7f}", 2, 0x7f),
        ("bell\u{7}", 6, 7),
    ] {
        let facts = Table::default().with(Variable::Header(name("x-evil")), evil);
        let mut h = headers(&[("x-set", "from client"), ("x-add", "from client")]);
        let dropped = ops.apply(&mut h, &facts);
        assert_eq!(
            dropped,
            [
                Dropped::new(name("x-set"), index, byte),
                Dropped::new(name("x-add"), index - 2, byte)
            ],
            "{evil:?}"
        );
        assert!(
            !h.contains_key("x-set"),
            "the client's value does not survive a set"
        );
        assert_eq!(values(&h, "x-add"), ["from client"], "an add adds nothing");
        assert!(!h.contains_key("x-injected"));
    }
}

#[test]
fn tabs_and_non_ascii_text_are_valid_values() {
    let ops =
        HeaderOps::from_ops([HeaderOp::Set(name("x-dn"), template("$ssl_client_s_dn"))]).unwrap();
    let facts = Table::default().with(Variable::SslClientSDn, "CN=Jürgen\tMüller,O=Ä");
    let mut h = HeaderMap::new();
    assert!(ops.apply(&mut h, &facts).is_empty());
    assert_eq!(h["x-dn"].as_bytes(), "CN=Jürgen\tMüller,O=Ä".as_bytes());
}

#[test]
fn percent_encoded_crlf_in_the_uri_stays_encoded_and_decoded_crlf_is_dropped() {
    let ops = HeaderOps::from_ops([
        HeaderOp::Set(name("x-original-uri"), template("$request_uri")),
        HeaderOp::Set(name("x-path"), template("$uri")),
    ])
    .unwrap();
    // `$request_uri` is the raw target; an engine that decodes `$uri` (as nginx does) hands
    // over the real CR LF.
    let facts = Table::default()
        .with(Variable::RequestUri, "/a%0D%0ASet-Cookie:%20x=1")
        .with(Variable::Uri, "/a\r\nSet-Cookie: x=1");
    let mut h = HeaderMap::new();
    let dropped = ops.apply(&mut h, &facts);
    assert_eq!(h["x-original-uri"], "/a%0D%0ASet-Cookie:%20x=1");
    assert!(!h.contains_key("x-path"));
    assert!(!h.contains_key("set-cookie"));
    assert_eq!(dropped, [Dropped::new(name("x-path"), 2, b'\r')]);
    assert_eq!(
        dropped[0].to_string(),
        "header `x-path` not sent: its value has control byte 0x0d at index 2"
    );
    assert_eq!(
        (
            dropped[0].name().as_str(),
            dropped[0].index(),
            dropped[0].byte()
        ),
        ("x-path", 2, b'\r')
    );
}

proptest! {
    #[test]
    fn no_variable_value_ever_splits_a_header(
        value in any::<String>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let lossy = String::from_utf8_lossy(&bytes).into_owned();
        let ops = HeaderOps::from_ops([
            HeaderOp::Set(name("x-a"), template("[$http_x_in]")),
            HeaderOp::Add(name("x-b"), template("$ssl_client_s_dn$http_x_in")),
        ])
        .unwrap();
        for value in [&value, &lossy] {
            let facts = Table::default()
                .with(Variable::Header(name("x-in")), value)
                .with(Variable::SslClientSDn, value);
            let mut h = HeaderMap::new();
            let dropped = ops.apply(&mut h, &facts);
            let bad = value.bytes().any(|b| b != b'\t' && (b < 0x20 || b == 0x7f));
            prop_assert_eq!(dropped.len(), if bad { 2 } else { 0 });
            for v in h.values() {
                prop_assert!(!v.as_bytes().iter().any(|b| matches!(b, b'\r' | b'\n' | 0)));
            }
        }
    }

    #[test]
    fn fuzz_invariants_hold_for_template_text(input in any::<String>()) {
        fuzzing::header_template(input.as_bytes());
    }

    #[test]
    fn fuzz_invariants_hold_for_template_like_text(input in "[a-z$_{}0-9:/ \r\n]{0,40}") {
        fuzzing::header_template(input.as_bytes());
    }

    #[test]
    fn network_parsing_never_panics_and_round_trips(input in "[0-9a-f:./]{0,45}") {
        if let Ok(network) = Network::parse(&input) {
            prop_assert_eq!(Network::parse(&network.to_string()), Ok(network));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Forwarding and identity headers

#[test]
fn forwarding_appends_and_replaces() {
    let mut headers = HeaderMap::new();
    headers.append("x-forwarded-for", HeaderValue::from_static("203.0.113.7"));
    headers.append(
        "x-forwarded-for",
        HeaderValue::from_static("10.0.0.1, 10.0.0.2"),
    );
    headers.insert("x-real-ip", HeaderValue::from_static("1.1.1.1"));
    headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
    set_forwarding(
        &mut headers,
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        ForwardedProto::Http,
    );
    assert_eq!(
        headers["x-forwarded-for"],
        "203.0.113.7, 10.0.0.1, 10.0.0.2, 192.0.2.1"
    );
    assert_eq!(headers.get_all("x-forwarded-for").iter().count(), 1);
    assert_eq!(headers["x-real-ip"], "192.0.2.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
}

proptest! {
    #[test]
    fn client_addresses_are_written_as_display_writes_them(
        v4 in any::<[u8; 4]>(),
        v6 in any::<[u16; 8]>(),
    ) {
        for ip in [IpAddr::from(v4), IpAddr::from(v6)] {
            let mut out = String::from("x");
            crate::forwarding::push_ip(&mut out, ip);
            prop_assert_eq!(out, format!("x{ip}"));
        }
    }
}

#[test]
fn x_real_ip_is_the_client_alone_with_or_without_a_trusted_list() {
    let balancer = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9));
    let policy = ForwardingPolicy::new().trusted_networks(["10.0.0.0/8".parse().expect("network")]);
    for (incoming, forwarded_for) in [
        (None, "10.0.0.9"),
        (Some("203.0.113.7"), "203.0.113.7, 10.0.0.9"),
    ] {
        let mut h = HeaderMap::new();
        if let Some(incoming) = incoming {
            h.insert("x-forwarded-for", HeaderValue::from_static(incoming));
        }
        policy.apply(&mut h, &balancer.into(), ForwardedProto::Http, None, 80);
        assert_eq!(h["x-forwarded-for"], forwarded_for);
        assert_eq!(h["x-real-ip"], "10.0.0.9");
    }
}

#[test]
fn only_present_hop_by_hop_headers_are_touched() {
    let mut h = headers(&[
        ("host", "example.com"),
        ("transfer-encoding", "gzip"),
        ("transfer-encoding", "chunked"),
        ("accept", "*/*"),
    ]);
    strip_hop_by_hop(&mut h);
    let left: Vec<_> = h.keys().map(HeaderName::as_str).collect();
    assert_eq!(left, ["host", "accept"]);
    let untouched = headers(&[("host", "example.com"), ("accept", "*/*")]);
    let mut h = untouched.clone();
    strip_hop_by_hop(&mut h);
    assert_eq!(h, untouched);
}

#[test]
fn forwarding_without_client_value_starts_the_list() {
    let mut headers = HeaderMap::new();
    set_forwarding(
        &mut headers,
        IpAddr::V6(Ipv6Addr::LOCALHOST),
        ForwardedProto::Https,
    );
    assert_eq!(headers["x-forwarded-for"], "::1");
    assert_eq!(headers["x-forwarded-proto"], "https");
}

const FORGED: [(&str, &str); 14] = [
    ("x-ssl-cert", "-----BEGIN%20CERTIFICATE-----forged"),
    ("x-ssl-client-s-dn", "CN=admin"),
    ("x-ssl-client-verify", "SUCCESS"),
    ("x-client-cert", "forged"),
    ("x-client-certificate", "forged"),
    ("x-client-verify", "SUCCESS"),
    ("x-client-dn", "CN=admin"),
    ("x-real-ip", "127.0.0.1"),
    ("x-forwarded-host", "admin.internal"),
    ("x-forwarded-client-cert", "Hash=forged"),
    ("forwarded", "for=127.0.0.1"),
    ("client-cert", ":Zm9yZ2Vk:"),
    ("client-cert-chain", ":Zm9yZ2Vk:"),
    ("x-arr-clientcert", "forged"),
];

#[test]
fn a_client_can_never_send_its_own_identity_headers() {
    let mut h = HeaderMap::new();
    for (name, value) in FORGED {
        h.append(name, HeaderValue::from_static(value));
        assert!(is_identity_header(&HeaderName::from_static(name)), "{name}");
    }
    h.append("x-device-serial", HeaderValue::from_static("forged"));
    h.append("x-end-to-end", HeaderValue::from_static("kept"));
    h.append("x-client-version", HeaderValue::from_static("kept"));
    strip_identity_headers(&mut h, &[name("x-device-serial")]);
    let mut left: Vec<_> = h.keys().map(HeaderName::as_str).collect();
    left.sort_unstable();
    assert_eq!(left, ["x-client-version", "x-end-to-end"]);

    // The policy strips them too, and sets its own.
    let mut h = HeaderMap::new();
    for (name, value) in FORGED {
        h.append(name, HeaderValue::from_static(value));
    }
    h.append("x-device-serial", HeaderValue::from_static("forged"));
    let policy = ForwardingPolicy::new().identity_header(name("x-device-serial"));
    assert!(
        policy
            .apply(
                &mut h,
                &CLIENT.into(),
                ForwardedProto::Https,
                Some("h"),
                443
            )
            .is_empty()
    );
    let mut left: Vec<_> = h.keys().map(HeaderName::as_str).collect();
    left.sort_unstable();
    assert_eq!(left, ["x-forwarded-for", "x-forwarded-proto", "x-real-ip"]);
    assert_eq!(h["x-real-ip"], "192.0.2.1");
    assert_eq!(policy.identity_headers(), [name("x-device-serial")]);
}

#[test]
fn the_identity_list_leaves_ordinary_headers_alone() {
    for header in [
        "x-request-id",
        "x-client-version",
        "authorization",
        "cookie",
        "host",
    ] {
        assert!(
            !is_identity_header(&HeaderName::from_static(header)),
            "{header}"
        );
    }
}

#[test]
fn forged_tls_identity_does_not_survive_when_the_client_has_no_certificate() {
    // `X-SSL-CERT $ssl_client_escaped_cert`: without a certificate it renders empty, and
    // the client's own header must not be what the upstream sees.
    let ops = HeaderOps::from_ops([
        HeaderOp::Set(name("x-ssl-cert"), template("$ssl_client_escaped_cert")),
        HeaderOp::Set(name("x-device-dn"), template("$ssl_client_s_dn")),
    ])
    .unwrap();
    let mut h = headers(&[("x-ssl-cert", "forged"), ("x-device-dn", "CN=forged")]);
    ops.apply(&mut h, &Table::default());
    assert!(h.is_empty());
}

#[test]
fn trusted_networks_keep_an_incoming_list_only_from_those_peers() {
    let policy = ForwardingPolicy::new().trusted_networks([
        Network::parse("10.0.0.0/8").unwrap(),
        Network::parse("2001:db8::/32").unwrap(),
    ]);
    let incoming = [
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-for", " 198.51.100.2 "),
    ];
    let lb = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
    let mut h = headers(&incoming);
    policy.apply(&mut h, &lb.into(), ForwardedProto::Https, None, 443);
    assert_eq!(h["x-forwarded-for"], "203.0.113.7, 198.51.100.2, 10.1.2.3");

    let mut h = headers(&incoming);
    policy.apply(&mut h, &CLIENT.into(), ForwardedProto::Https, None, 443);
    assert_eq!(
        h["x-forwarded-for"], "192.0.2.1",
        "replaced from an untrusted peer"
    );

    let mapped: IpAddr = "::ffff:10.9.9.9".parse().unwrap();
    assert!(policy.is_trusted(mapped));
    let v6: IpAddr = "2001:db8::5".parse().unwrap();
    assert!(policy.is_trusted(v6));
    assert!(!policy.is_trusted("2001:db9::5".parse().unwrap()));

    let nobody = ForwardingPolicy::new().trusted_networks([]);
    let mut h = headers(&incoming);
    nobody.apply(&mut h, &lb.into(), ForwardedProto::Https, None, 443);
    assert_eq!(h["x-forwarded-for"], "10.1.2.3");
    assert!(
        ForwardingPolicy::new().is_trusted(CLIENT),
        "default: append from anyone"
    );
}

/// One connection's address, made once, serves every request on it: each gets the address
/// in both headers, whether the client sent a list, an empty one or none.
#[test]
fn a_connections_client_addr_gives_each_request_its_address() {
    let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
    assert_eq!(ClientAddr::new(CLIENT).header_value(), "192.0.2.1");
    assert_eq!(ClientAddr::new(v6).header_value(), "2001:db8::1");
    assert_eq!(ClientAddr::from(v6).ip(), v6);

    let policy = ForwardingPolicy::new();
    let client = ClientAddr::new(v6);
    let requests: [&[(&str, &str)]; 3] = [
        &[],
        &[("x-forwarded-for", "")],
        &[("x-forwarded-for", "203.0.113.7")],
    ];
    let mut seen = Vec::new();
    for incoming in requests {
        let mut h = headers(incoming);
        policy.apply(&mut h, &client, ForwardedProto::Http, None, 80);
        assert_eq!(h["x-real-ip"], "2001:db8::1");
        seen.push(h["x-forwarded-for"].to_str().unwrap().to_owned());
    }
    assert_eq!(
        seen,
        ["2001:db8::1", "2001:db8::1", "203.0.113.7, 2001:db8::1"]
    );
}

#[test]
fn proxy_add_x_forwarded_for_follows_the_trust_rule() {
    let incoming = headers(&[("x-forwarded-for", "203.0.113.7"), ("x-forwarded-for", "")]);
    let mut out = String::new();
    ForwardingPolicy::new().write_x_forwarded_for(&incoming, CLIENT, &mut out);
    assert_eq!(out, "203.0.113.7, 192.0.2.1");
    let mut out = String::new();
    ForwardingPolicy::new()
        .trusted_networks([Network::parse("10.0.0.0/8").unwrap()])
        .write_x_forwarded_for(&incoming, CLIENT, &mut out);
    assert_eq!(out, "192.0.2.1");
    let mut out = String::new();
    ForwardingPolicy::new().write_x_forwarded_for(&HeaderMap::new(), CLIENT, &mut out);
    assert_eq!(out, "192.0.2.1");
}

#[test]
fn forwarded_host_port_and_rfc_7239_as_options() {
    let policy = ForwardingPolicy::new()
        .x_forwarded_host(true)
        .x_forwarded_port(true)
        .forwarded(true);
    let mut h = headers(&[("forwarded", "for=6.6.6.6"), ("x-forwarded-port", "1")]);
    let dropped = policy.apply(
        &mut h,
        &CLIENT.into(),
        ForwardedProto::Https,
        Some("ums.example.com:8443"),
        8443,
    );
    assert!(dropped.is_empty());
    assert_eq!(h["x-forwarded-host"], "ums.example.com:8443");
    assert_eq!(h["x-forwarded-port"], "8443");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(
        h["forwarded"],
        "for=6.6.6.6, for=192.0.2.1;host=\"ums.example.com:8443\";proto=https"
    );

    let v6: IpAddr = "2001:db8::1".parse().unwrap();
    let policy = policy.trusted_networks([]);
    let mut h = headers(&[("forwarded", "for=6.6.6.6")]);
    policy.apply(
        &mut h,
        &v6.into(),
        ForwardedProto::Http,
        Some("example.com"),
        80,
    );
    assert_eq!(
        h["forwarded"], "for=\"[2001:db8::1]\";host=example.com;proto=http",
        "untrusted peer: replaced"
    );
    let mut h = HeaderMap::new();
    policy.apply(&mut h, &CLIENT.into(), ForwardedProto::Http, None, 80);
    assert_eq!(h["forwarded"], "for=192.0.2.1;proto=http");
    assert!(!h.contains_key("x-forwarded-host"));
}

#[test]
fn disabled_forwarding_headers_are_removed_not_passed_through() {
    let policy = ForwardingPolicy::new()
        .x_forwarded_for(false)
        .x_real_ip(false)
        .x_forwarded_proto(false);
    let mut h = headers(&[
        ("x-forwarded-for", "6.6.6.6"),
        ("x-real-ip", "6.6.6.6"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "evil"),
        ("x-forwarded-port", "1"),
        ("forwarded", "for=6.6.6.6"),
    ]);
    policy.apply(&mut h, &CLIENT.into(), ForwardedProto::Http, Some("h"), 80);
    assert!(h.is_empty(), "{h:?}");
}

#[test]
fn a_host_that_cannot_be_a_header_value_is_dropped() {
    let policy = ForwardingPolicy::new()
        .x_forwarded_host(true)
        .forwarded(true);
    let mut h = headers(&[("x-forwarded-host", "evil")]);
    let dropped = policy.apply(
        &mut h,
        &CLIENT.into(),
        ForwardedProto::Http,
        Some("a\r\nb"),
        80,
    );
    let names: Vec<_> = dropped.iter().map(|d| d.name().as_str()).collect();
    assert_eq!(names, ["forwarded", "x-forwarded-host"]);
    assert!(!h.contains_key("x-forwarded-host"));
    assert!(!h.contains_key("forwarded"));
    assert_eq!(h["x-forwarded-for"], "192.0.2.1");
}

#[test]
fn a_forwarded_host_with_quotes_is_escaped() {
    let policy = ForwardingPolicy::new().forwarded(true);
    let mut h = HeaderMap::new();
    policy.apply(
        &mut h,
        &CLIENT.into(),
        ForwardedProto::Http,
        Some("a\"b\\c"),
        80,
    );
    assert_eq!(h["forwarded"], r#"for=192.0.2.1;host="a\"b\\c";proto=http"#);
}

#[test]
fn an_incoming_list_value_that_is_not_visible_ascii_is_left_out() {
    let mut h = HeaderMap::new();
    h.append(
        "x-forwarded-for",
        HeaderValue::from_bytes(b"\xff1.2.3.4").unwrap(),
    );
    h.append("x-forwarded-for", HeaderValue::from_static("5.6.7.8"));
    set_forwarding(&mut h, CLIENT, ForwardedProto::Http);
    assert_eq!(h["x-forwarded-for"], "5.6.7.8, 192.0.2.1");
}

// ---------------------------------------------------------------------------------------
// Networks

#[test]
fn networks_parse_mask_and_display() {
    let cases = [
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("10.1.2.3/8", "10.0.0.0/8"),
        ("192.0.2.1", "192.0.2.1/32"),
        ("0.0.0.0/0", "0.0.0.0/0"),
        ("2001:db8::1/32", "2001:db8::/32"),
        ("::1", "::1/128"),
        ("::/0", "::/0"),
    ];
    for (input, shown) in cases {
        let network: Network = input.parse().unwrap();
        assert_eq!(network.to_string(), shown, "{input}");
    }
    let n = Network::parse("172.16.0.0/12").unwrap();
    assert_eq!(n.addr(), IpAddr::V4(Ipv4Addr::new(172, 16, 0, 0)));
    assert_eq!(n.prefix_len(), 12);
    assert!(n.contains(IpAddr::V4(Ipv4Addr::new(172, 31, 255, 255))));
    assert!(!n.contains(IpAddr::V4(Ipv4Addr::new(172, 32, 0, 0))));
    assert!(!n.contains("::1".parse().unwrap()));
    assert!(Network::parse("0.0.0.0/0").unwrap().contains(CLIENT));
    let mapped = Network::parse("::ffff:10.0.0.0/104").unwrap();
    assert!(mapped.contains(IpAddr::V4(Ipv4Addr::new(10, 2, 3, 4))));
    assert_eq!(
        Network::new(CLIENT, 24).unwrap().to_string(),
        "192.0.2.0/24"
    );
}

#[test]
fn network_errors_name_the_column() {
    let v4 = "a prefix length from 0 to 32";
    let v6 = "a prefix length from 0 to 128";
    let address = "an IPv4 or IPv6 address, optionally followed by `/` and a prefix length";
    let cases = [
        ("10.0.0.0/33", 10, v4),
        ("10.0.0.0/", 10, v4),
        ("10.0.0.0/+8", 10, v4),
        ("10.0.0.0/0008", 10, v4),
        ("::/129", 4, v6),
        ("10.0.0/8", 1, address),
        ("", 1, address),
        ("example.com", 1, address),
        ("10.0.0.0/8/8", 10, v4),
    ];
    for (input, column, expected) in cases {
        assert_eq!(
            Network::parse(input),
            Err(Error::InvalidNetwork {
                input: input.into(),
                column,
                expected
            }),
            "{input}"
        );
    }
    assert_eq!(
        Network::new(CLIENT, 33),
        Err(Error::InvalidNetwork {
            input: "192.0.2.1/33".into(),
            column: 11,
            expected: v4
        })
    );
}

// ---------------------------------------------------------------------------------------
// Hop-by-hop

#[test]
fn hop_by_hop_headers_and_connection_named_ones_are_removed() {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("connection", "keep-alive, X-Secret-Hop"),
        ("connection", "x-other-hop"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("te", "trailers"),
        ("trailer", "x-checksum"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "websocket"),
        ("proxy-authorization", "Basic eA=="),
        ("x-secret-hop", "1"),
        ("x-other-hop", "2"),
        ("x-end-to-end", "kept"),
    ] {
        headers.append(name, HeaderValue::from_static(value));
    }
    strip_hop_by_hop(&mut headers);
    let left: Vec<_> = headers.keys().map(|name| name.as_str()).collect();
    assert_eq!(left, ["x-end-to-end"]);
}

#[test]
fn upgrade_is_re_established_only_on_websocket_routes() {
    let upgrade_request = [
        ("connection", "keep-alive, Upgrade, x-hop"),
        ("upgrade", "WebSocket"),
        ("x-hop", "1"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let mut h = headers(&upgrade_request);
    assert!(strip_hop_by_hop_keep_upgrade(&mut h, true));
    assert_eq!(h["upgrade"], "websocket");
    assert_eq!(values(&h, "connection"), ["upgrade"]);
    assert!(!h.contains_key("x-hop"));
    assert!(h.contains_key("sec-websocket-key"));

    let mut h = headers(&upgrade_request);
    assert!(!strip_hop_by_hop_keep_upgrade(&mut h, false));
    assert!(!h.contains_key("upgrade"));
    assert!(!h.contains_key("connection"));

    for not_websocket in [
        &[("connection", "upgrade"), ("upgrade", "h2c")][..],
        &[("upgrade", "websocket")][..],
        &[("connection", "upgrade")][..],
        &[("connection", "close")][..],
    ] {
        let mut h = headers(not_websocket);
        assert!(
            !strip_hop_by_hop_keep_upgrade(&mut h, true),
            "{not_websocket:?}"
        );
        assert!(!h.contains_key("upgrade"));
        assert!(!h.contains_key("connection"));
    }

    // The upstream's 101 answer.
    let mut h = headers(&[
        ("connection", "Upgrade"),
        ("upgrade", "websocket/13, other"),
    ]);
    assert!(strip_hop_by_hop_keep_upgrade(&mut h, true));
    assert_eq!(h["upgrade"], "websocket");
}

// ---------------------------------------------------------------------------------------
// Location and cookie rewriting

fn public_facts() -> Table {
    Table::default()
        .with(Variable::Scheme, "https")
        .with(Variable::Host, "host")
}

#[test]
fn an_upstream_redirect_is_made_public_when_configured_and_left_alone_when_off() {
    let upstream = [("location", "http://10.0.0.1:8080/x")];
    let pairs = LocationRewrite::Pairs(vec![(
        "http://10.0.0.1:8080/".into(),
        template("$scheme://$host/"),
    )]);
    let mut h = headers(&upstream);
    assert!(pairs.apply(&mut h, &public_facts()).is_empty());
    assert_eq!(h["location"], "https://host/x");

    let default = LocationRewrite::Default {
        upstream_prefix: "http://10.0.0.1:8080/".into(),
        public_prefix: template("https://host/"),
    };
    let mut h = headers(&upstream);
    default.apply(&mut h, &Table::default());
    assert_eq!(h["location"], "https://host/x");

    let mut h = headers(&upstream);
    LocationRewrite::Off.apply(&mut h, &public_facts());
    assert_eq!(h["location"], "http://10.0.0.1:8080/x");
    assert_eq!(LocationRewrite::default(), LocationRewrite::Off);
}

#[test]
fn nginx_default_maps_the_proxy_pass_url_to_the_location() {
    // location /two/ { proxy_pass http://upstream:8080/one/; }
    let rewrite = LocationRewrite::Default {
        upstream_prefix: "http://upstream:8080/one/".into(),
        public_prefix: template("/two/"),
    };
    let facts = Table::default();
    assert_eq!(
        rewrite
            .rewrite_url("http://upstream:8080/one/page?a=1", &facts)
            .as_deref(),
        Some("/two/page?a=1")
    );
    assert_eq!(
        rewrite.rewrite_url("/one/page", &facts),
        None,
        "relative: untouched"
    );
    assert_eq!(
        rewrite.rewrite_url("http://upstream:8080/other", &facts),
        None
    );
}

#[test]
fn content_location_and_refresh_are_rewritten_too() {
    let rewrite = LocationRewrite::Pairs(vec![(
        "http://10.0.0.1:8080/".into(),
        template("$scheme://$host/"),
    )]);
    let mut h = headers(&[
        ("content-location", "http://10.0.0.1:8080/doc.html"),
        ("refresh", "5; url=http://10.0.0.1:8080/next"),
        ("x-other", "http://10.0.0.1:8080/kept"),
    ]);
    rewrite.apply(&mut h, &public_facts());
    assert_eq!(h["content-location"], "https://host/doc.html");
    assert_eq!(h["refresh"], "5; url=https://host/next");
    assert_eq!(h["x-other"], "http://10.0.0.1:8080/kept");

    for (refresh, expected) in [
        ("0;URL='http://10.0.0.1:8080/q'", "0;URL='https://host/q'"),
        (
            "0; Url=\"http://10.0.0.1:8080/q\"",
            "0; Url=\"https://host/q\"",
        ),
        ("10", "10"),
        ("1; url=/relative", "1; url=/relative"),
    ] {
        let mut h = HeaderMap::new();
        h.insert("refresh", HeaderValue::from_str(refresh).unwrap());
        rewrite.apply(&mut h, &public_facts());
        assert_eq!(h["refresh"], expected, "{refresh}");
    }
}

#[test]
fn rewrite_rules_match_in_order_with_the_authority_compared_without_case() {
    let rewrite = LocationRewrite::Pairs(vec![
        (String::new(), template("/never")),
        ("http://Backend:8080/app/".into(), template("/a/")),
        ("http://backend:8080/".into(), template("/b/")),
    ]);
    let facts = Table::default();
    let cases = [
        ("http://backend:8080/app/x", Some("/a/x")),
        ("HTTP://BACKEND:8080/app/x", Some("/a/x")),
        ("http://backend:8080/App/x", Some("/b/App/x")),
        ("http://backend:8080/", Some("/b/")),
        ("http://backend:8080", None),
        ("http://backend:80801/x", None),
        ("https://backend:8080/x", None),
        ("/x", None),
        ("", None),
    ];
    for (url, expected) in cases {
        assert_eq!(
            rewrite.rewrite_url(url, &facts).as_deref(),
            expected,
            "{url}"
        );
    }
}

#[test]
fn a_rewritten_location_that_is_not_a_valid_value_is_dropped() {
    let rewrite = LocationRewrite::Pairs(vec![(
        "http://10.0.0.1:8080/".into(),
        template("https://$host/"),
    )]);
    let facts = Table::default().with(Variable::Host, "evil\r\nset-cookie: a=b");
    let mut h = headers(&[("location", "http://10.0.0.1:8080/x")]);
    let dropped = rewrite.apply(&mut h, &facts);
    assert_eq!(dropped, [Dropped::new(name("location"), 12, b'\r')]);
    assert!(
        !h.contains_key("location"),
        "the internal URL is not sent instead"
    );
    assert!(!h.contains_key("set-cookie"));
}

#[test]
fn a_location_that_is_not_visible_ascii_is_left_alone() {
    let rewrite = LocationRewrite::Pairs(vec![("http://a/".into(), template("/"))]);
    let mut h = HeaderMap::new();
    h.insert(
        "location",
        HeaderValue::from_bytes(b"http://a/\xe9").unwrap(),
    );
    rewrite.apply(&mut h, &Table::default());
    assert_eq!(h["location"].as_bytes(), b"http://a/\xe9");
}

#[test]
fn cookie_domains_and_paths_are_rewritten_as_nginx_does() {
    let rewrite = CookieRewrite::new()
        .domain("backend.internal", template("$host"))
        .domain(".old.example", template("new.example"))
        .path("/one/", template("/two/"))
        .path("/", template("/app/"));
    let facts = Table::default().with(Variable::Host, "public.example.com");
    let cases = [
        (
            "sid=abc; Domain=backend.internal; Path=/one/x; HttpOnly",
            "sid=abc; Domain=public.example.com; Path=/two/x; HttpOnly",
        ),
        (
            "sid=abc; domain=.Backend.Internal; path=/",
            "sid=abc; domain=.public.example.com; path=/app/",
        ),
        ("a=1;Domain=old.example", "a=1;Domain=new.example"),
        ("a=1; Path = /one/ ; Secure", "a=1; Path = /two/ ; Secure"),
        ("a=1; Domain=other.example", "a=1; Domain=other.example"),
        ("a=1", "a=1"),
        ("a=Domain=backend.internal", "a=Domain=backend.internal"),
    ];
    for (cookie, expected) in cases {
        let mut h = HeaderMap::new();
        h.insert("set-cookie", HeaderValue::from_str(cookie).unwrap());
        assert!(rewrite.apply(&mut h, &facts).is_empty());
        assert_eq!(h["set-cookie"], expected, "{cookie}");
    }
    assert_eq!(rewrite.rewrite_cookie("a=1; Domain=other", &facts), None);
    assert!(CookieRewrite::new().is_empty());
    assert!(!rewrite.is_empty());
}

#[test]
fn an_empty_cookie_replacement_removes_the_attribute() {
    let rewrite = CookieRewrite::new()
        .domain("backend.internal", template(""))
        .path("/internal", template("$args"));
    let facts = Table::default();
    assert_eq!(
        rewrite
            .rewrite_cookie(
                "a=1; Domain=backend.internal; Path=/internal/x; Secure",
                &facts
            )
            .as_deref(),
        Some("a=1; Secure")
    );
    assert_eq!(
        rewrite
            .rewrite_cookie("a=1; Secure; Domain=backend.internal", &facts)
            .as_deref(),
        Some("a=1; Secure")
    );
}

#[test]
fn every_set_cookie_is_rewritten_in_order() {
    let rewrite = CookieRewrite::new().domain("b.internal", template("b.example"));
    let mut h = headers(&[
        ("set-cookie", "one=1; Domain=other"),
        ("set-cookie", "two=2; Domain=b.internal"),
        ("set-cookie", "three=3"),
        ("x-other", "kept"),
    ]);
    rewrite.apply(&mut h, &Table::default());
    assert_eq!(
        values(&h, "set-cookie"),
        ["one=1; Domain=other", "two=2; Domain=b.example", "three=3"]
    );
    assert_eq!(h["x-other"], "kept");
}

#[test]
fn only_the_first_domain_attribute_is_rewritten() {
    let rewrite = CookieRewrite::new().domain("a", template("b"));
    assert_eq!(
        rewrite
            .rewrite_cookie("c=1; Domain=a; Domain=a", &Table::default())
            .as_deref(),
        Some("c=1; Domain=b; Domain=a")
    );
}

#[test]
fn a_rewritten_cookie_that_is_not_a_valid_value_is_dropped_alone() {
    let rewrite = CookieRewrite::new().domain("b.internal", template("$host"));
    let facts = Table::default().with(Variable::Host, "x\ny");
    let mut h = headers(&[
        ("set-cookie", "one=1"),
        ("set-cookie", "two=2; Domain=b.internal"),
    ]);
    let dropped = rewrite.apply(&mut h, &facts);
    assert_eq!(dropped.len(), 1);
    assert_eq!(values(&h, "set-cookie"), ["one=1"]);
}

// ---------------------------------------------------------------------------------------
// Errors

#[test]
fn errors_say_what_and_where() {
    let cases = [
        (
            Error::UnknownVariable {
                name: "hots".into(),
                column: 9,
            },
            Some(9),
            "unknown variable `$hots` at column 9",
        ),
        (
            Error::CaptureShadowsVariable {
                name: "host".into(),
            },
            None,
            "the route capture `host` has the name of a built-in variable",
        ),
        (
            Error::InvalidLiteral {
                header: "x-a".into(),
                byte: b'\n',
                column: 4,
            },
            Some(4),
            "header `x-a`: the value has control character 0x0a at column 4",
        ),
        (
            Error::ManagedHeader {
                header: "te".into(),
                reason: "r",
            },
            None,
            "header `te` cannot be changed by a header operation: r",
        ),
        (
            Error::InvalidNetwork {
                input: "x".into(),
                column: 1,
                expected: "e",
            },
            Some(1),
            "`x` is not a network: at column 1, expected e",
        ),
    ];
    for (error, column, message) in cases {
        assert_eq!(error.column(), column, "{error:?}");
        assert!(error.to_string().starts_with(message), "{error}");
    }
}

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::{HeaderMap, HeaderValue};

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
    assert_eq!(Variable::from_name("http_"), None);
    assert_eq!(Variable::from_name("nope"), None);
}

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

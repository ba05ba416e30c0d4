//! The route tables of the deployments in the design (IGEL UMS, estos UCServer, PowerFolder,
//! Allegro), each with the paths a client sends and the route nginx (or Apache/IIS, for
//! first-match tables) would choose, including the bypass attempts that must be refused.

use gangway_route::{
    MatchMode, NormalizeError, NormalizeOptions, RouteTable, RouteTableBuilder, Template,
    replace_prefix,
};

#[derive(Debug, PartialEq)]
enum Outcome {
    Route(&'static str),
    NoRoute,
    Refused(&'static str),
}
use Outcome::{NoRoute, Refused, Route};

fn refusal(err: &NormalizeError) -> &'static str {
    match err {
        NormalizeError::NotAbsolute { .. } => "not absolute",
        NormalizeError::InvalidPercentEncoding { .. } => "invalid percent-encoding",
        NormalizeError::EncodedSlash { .. } => "encoded slash",
        NormalizeError::EncodedBackslash { .. } => "encoded backslash",
        NormalizeError::Backslash { .. } => "backslash",
        NormalizeError::Nul { .. } => "nul",
        NormalizeError::AboveRoot { .. } => "above root",
        NormalizeError::Ambiguous { .. } => "ambiguous",
        _ => "other",
    }
}

fn build(mode: MatchMode, routes: &[(&str, &'static str)]) -> RouteTable<&'static str> {
    let mut builder = RouteTableBuilder::new(mode);
    for (expr, name) in routes {
        builder.add_expr(expr, *name).expect(expr);
    }
    builder.build().expect("table")
}

/// (host, method, target, merge slashes, expected)
type Case = (
    Option<&'static str>,
    Option<&'static str>,
    &'static str,
    bool,
    Outcome,
);

fn check(table: &RouteTable<&'static str>, cases: Vec<Case>) {
    for (host, method, target, merge, expected) in cases {
        let options = NormalizeOptions::default().merge_slashes(merge);
        let outcome = match table.resolve(host, method, target, options) {
            Ok(Some(m)) => Route(m.value()),
            Ok(None) => NoRoute,
            Err(e) => Refused(refusal(&e)),
        };
        assert_eq!(
            outcome, expected,
            "{host:?} {method:?} {target} (merge_slashes {merge})"
        );
    }
}

fn igel() -> RouteTable<&'static str> {
    build(
        MatchMode::Nginx,
        &[
            (
                r"~ ^/device-connector/device/(ws-connect|portforwarding)$",
                "device websocket",
            ),
            ("^~ /device-connector/device/.well-known/est/", "est"),
            ("/device-connector/", "device connector"),
            ("/ums-appproxy/", "app proxy"),
            ("/wums-app/", "web app"),
            ("/webapp/", "webapp"),
            ("= /", "root"),
        ],
    )
}

#[test]
fn igel_ums_gateway() {
    let ums = Some("ums.example.com");
    let cases: Vec<Case> = vec![
        (
            ums,
            Some("GET"),
            "/device-connector/device/ws-connect",
            false,
            Route("device websocket"),
        ),
        (
            ums,
            Some("GET"),
            "/device-connector/device/portforwarding?session=1",
            false,
            Route("device websocket"),
        ),
        (
            ums,
            None,
            "/device-connector/device/ws-connect/extra",
            false,
            Route("device connector"),
        ),
        (
            ums,
            None,
            "/device-connector/device/WS-CONNECT",
            false,
            Route("device connector"),
        ),
        (
            ums,
            None,
            "/device-connector/device/ws%2Dconnect",
            false,
            Route("device websocket"),
        ),
        (
            ums,
            None,
            "/device-connector/device/.well-known/est/simpleenroll",
            false,
            Route("est"),
        ),
        (
            ums,
            None,
            "/device-connector/device/.well-known/est/cacerts",
            false,
            Route("est"),
        ),
        // Bypass attempts: encoded or literal dot segments and doubled slashes must not
        // reach the WebSocket route that the raw path does not reach.
        (
            ums,
            None,
            "/device-connector/device/%2e%2e/device/ws-connect",
            false,
            Refused("ambiguous"),
        ),
        (
            ums,
            None,
            "/device-connector/device/%2E%2E/device/ws-connect",
            false,
            Refused("ambiguous"),
        ),
        (
            ums,
            None,
            "/device-connector/device/../device/ws-connect",
            false,
            Refused("ambiguous"),
        ),
        (
            ums,
            None,
            "/device-connector/device/./ws-connect",
            false,
            Refused("ambiguous"),
        ),
        (
            ums,
            None,
            "/device-connector/device/.well-known/est/../../ws-connect",
            false,
            Refused("ambiguous"),
        ),
        (
            ums,
            None,
            "/device-connector//device/ws-connect",
            false,
            // An upstream that merges slashes would read the device path.
            Refused("ambiguous"),
        ),
        (
            ums,
            None,
            "/device-connector//device/ws-connect",
            true,
            Refused("ambiguous"),
        ),
        (
            ums,
            None,
            "/device-connector/device/ws-connect%2F",
            false,
            Refused("encoded slash"),
        ),
        (
            ums,
            None,
            "/device-connector/device/ws-connect%2f..%2f..%2f",
            false,
            Refused("encoded slash"),
        ),
        (
            ums,
            None,
            "/device-connector/device/%5C..%5Cws-connect",
            false,
            Refused("encoded backslash"),
        ),
        (
            ums,
            None,
            "/webapp\\..\\device-connector/device/ws-connect",
            false,
            Refused("backslash"),
        ),
        (
            ums,
            None,
            "/ums-appproxy/app/index.html",
            false,
            Route("app proxy"),
        ),
        (ums, None, "/wums-app/", false, Route("web app")),
        (ums, None, "/wums-app", false, NoRoute),
        (
            ums,
            None,
            "/webapp/index.html;jsessionid=ABC.node1",
            false,
            Route("webapp"),
        ),
        (ums, None, "/webapp/a/../b", false, Route("webapp")),
        (ums, None, "/", false, Route("root")),
        (ums, None, "/?x", false, Route("root")),
        (ums, None, "/favicon.ico", false, NoRoute),
        (ums, None, "/../etc/passwd", false, Refused("above root")),
        (
            ums,
            None,
            "/webapp/%2e%2e/%2e%2e/etc/passwd",
            false,
            Refused("above root"),
        ),
        (ums, None, "/webapp/%00", false, Refused("nul")),
        (
            ums,
            None,
            "/webapp/%zz",
            false,
            Refused("invalid percent-encoding"),
        ),
        (ums, None, "webapp/", false, Refused("not absolute")),
    ];
    check(&igel(), cases);
}

#[test]
fn estos_ucserver_nginx() {
    let table = build(
        MatchMode::Nginx,
        &[("/", "ucserver"), ("/ws/client/websocket", "websocket")],
    );
    let h = Some("ucserver.example.com");
    let cases: Vec<Case> = vec![
        (
            h,
            Some("GET"),
            "/ws/client/websocket",
            false,
            Route("websocket"),
        ),
        (
            h,
            Some("GET"),
            "/ws/client/websocket?token=abc",
            false,
            Route("websocket"),
        ),
        // A plain prefix: nginx matches `/ws/client/websocketX` too.
        (h, None, "/ws/client/websocketX", false, Route("websocket")),
        (
            h,
            None,
            "/ws/client/rest/contacts",
            false,
            Route("ucserver"),
        ),
        (h, None, "/", false, Route("ucserver")),
        (None, None, "/", false, Route("ucserver")),
        (
            h,
            None,
            "/ws/client/../client/websocket",
            false,
            Refused("ambiguous"),
        ),
        (
            h,
            None,
            "/ws/client/%2e/websocket",
            false,
            Refused("ambiguous"),
        ),
    ];
    check(&table, cases);
}

/// estos' IIS URL Rewrite rules: an ordered list with `{R:1}` back-references.
#[test]
fn estos_ucserver_iis_rules() {
    let mut builder = RouteTableBuilder::new(MatchMode::FirstMatch);
    let rules = [
        (
            r"~* ^/ws/client/websocket(.*)$",
            "/ws/client/websocket{R:1}",
        ),
        (r"~ ^/(.*)$", "/{R:1}"),
    ];
    let templates: Vec<Template> = rules
        .iter()
        .map(|(_, t)| Template::parse(t).expect("template"))
        .collect();
    for (i, ((expr, _), template)) in rules.iter().zip(&templates).enumerate() {
        let route = expr.parse().expect("route");
        builder
            .add_with_templates(route, &[template], i)
            .expect("rule");
    }
    let table = builder.build().expect("table");
    let cases = [
        ("/ws/client/websocket", 0, "/ws/client/websocket"),
        ("/WS/Client/WebSocket/x?y", 0, "/ws/client/websocket/x"),
        ("/ucws/rest?a=b", 1, "/ucws/rest"),
        ("/", 1, "/"),
    ];
    for (target, rule, upstream) in cases {
        let m = table.lookup(Some("ucserver"), target).expect(target);
        assert_eq!(*m.value(), rule, "{target}");
        assert_eq!(m.render(&templates[rule]), upstream, "{target}");
    }
}

#[test]
fn powerfolder_apache_proxypass() {
    let table = build(
        MatchMode::FirstMatch,
        &[
            ("/websocket/node1", "node1"),
            ("/websocket/node2", "node2"),
            ("/websocket", "websocket balanced"),
            ("/", "cluster"),
        ],
    );
    let h = Some("files.example.com");
    let cases: Vec<Case> = vec![
        (h, None, "/websocket/node1/x?y=1", false, Route("node1")),
        (h, None, "/websocket/node1", false, Route("node1")),
        (h, None, "/websocket/node2", false, Route("node2")),
        (
            h,
            None,
            "/websocket/node3",
            false,
            Route("websocket balanced"),
        ),
        (h, None, "/websocket", false, Route("websocket balanced")),
        (
            h,
            None,
            "/websocket?rpcid=1",
            false,
            Route("websocket balanced"),
        ),
        (
            h,
            None,
            "/websocket;jsessionid=ABC.node1",
            false,
            Route("websocket balanced"),
        ),
        (
            h,
            None,
            "/login;jsessionid=ABC.node2",
            false,
            Route("cluster"),
        ),
        (
            h,
            None,
            "/filestable;jsessionid=ABC.node2?a=/websocket/node1",
            false,
            Route("cluster"),
        ),
        (
            h,
            None,
            "/websocket/node1/%2e%2e/node2",
            false,
            Refused("ambiguous"),
        ),
        (
            h,
            None,
            "/websocket/node2/../../websocket/node1",
            false,
            Refused("ambiguous"),
        ),
        (h, None, "/upload/big.bin", false, Route("cluster")),
    ];
    check(&table, cases);

    let m = table.lookup(h, "/websocket/node1/x?y=1").expect("node1");
    let prefix = m.matched_prefix().expect("a prefix route");
    assert_eq!(
        replace_prefix("/websocket/node1/x?y=1", prefix, "/websocket"),
        "/websocket/x?y=1"
    );
    assert_eq!(
        replace_prefix("/websocket/node1", prefix, "/websocket"),
        "/websocket"
    );
}

#[test]
fn powerfolder_nginx_with_node_capture() {
    let route = r"~ ^/websocket/(?<node>[^/]+)(?<rest>/.*)?$";
    let rewrite = Template::parse("/websocket${rest}").expect("template");
    let mut builder = RouteTableBuilder::new(MatchMode::Nginx);
    builder
        .add_with_templates(route.parse().expect("route"), &[&rewrite], "node")
        .expect("node");
    builder
        .add_expr("= /websocket", "websocket balanced")
        .expect("exact");
    builder.add_expr("/", "cluster").expect("root");
    let table = builder.build().expect("table");
    let cases: Vec<Case> = vec![
        (None, None, "/websocket/node1", false, Route("node")),
        (
            None,
            None,
            "/websocket/node1/status?x",
            false,
            Route("node"),
        ),
        (None, None, "/websocket", false, Route("websocket balanced")),
        (
            None,
            None,
            "/websocket?rpcid=3",
            false,
            Route("websocket balanced"),
        ),
        (None, None, "/websocket/", false, Route("cluster")),
        (
            None,
            None,
            "/websocket;jsessionid=abc.node1",
            false,
            Route("cluster"),
        ),
        (
            None,
            None,
            "/index.html;jsessionid=abc.node1",
            false,
            Route("cluster"),
        ),
        (
            None,
            None,
            "/websocket/node1;jsessionid=abc.node1",
            false,
            Route("node"),
        ),
    ];
    check(&table, cases);

    let m = table
        .lookup(None, "/websocket/node1/status?x")
        .expect("node");
    assert_eq!(m.captures().name("node"), Some("node1"));
    assert_eq!(m.render(&rewrite), "/websocket/status");
    let m = table.lookup(None, "/websocket/node2").expect("node");
    assert_eq!(m.render(&rewrite), "/websocket");
    // `;jsessionid=` is part of the segment, as in nginx.
    let m = table
        .lookup(None, "/websocket/node1;jsessionid=abc.node1")
        .expect("node");
    assert_eq!(
        m.captures().name("node"),
        Some("node1;jsessionid=abc.node1")
    );
}

#[test]
fn allegro_device_per_hostname() {
    let table = build(
        MatchMode::Nginx,
        &[
            (
                r"host ~ ^(?<device>[a-z0-9-]+)\.mm-remote\.company\.com$ /",
                "device",
            ),
            ("host mm-remote.company.com /", "portal"),
            (
                "host mm-remote.company.com method POST ^~ /api/firmware/",
                "firmware",
            ),
            ("/", "default"),
        ],
    );
    let cases: Vec<Case> = vec![
        (
            Some("dev-42.mm-remote.company.com"),
            Some("GET"),
            "/",
            false,
            Route("device"),
        ),
        (
            Some("DEV-42.MM-Remote.company.com."),
            Some("GET"),
            "/api/measure",
            false,
            Route("device"),
        ),
        (
            Some("a.b.mm-remote.company.com"),
            None,
            "/",
            false,
            Route("default"),
        ),
        (
            Some("mm-remote.company.com"),
            Some("GET"),
            "/",
            false,
            Route("portal"),
        ),
        (
            Some("mm-remote.company.com"),
            Some("POST"),
            "/api/firmware/upload",
            false,
            Route("firmware"),
        ),
        (
            Some("mm-remote.company.com"),
            Some("GET"),
            "/api/firmware/upload",
            false,
            Route("portal"),
        ),
        (Some("evil.example.com"), None, "/", false, Route("default")),
        (None, None, "/", false, Route("default")),
        (
            Some("dev-42.mm-remote.company.com"),
            None,
            "/%2e%2e/x",
            false,
            Refused("above root"),
        ),
    ];
    check(&table, cases);

    let m = table
        .resolve(
            Some("DEV-42.MM-Remote.company.com."),
            None,
            "/x",
            NormalizeOptions::default(),
        )
        .expect("valid")
        .expect("device");
    assert_eq!(m.captures().name("device"), Some("dev-42"));
    assert_eq!(
        m.render(&Template::parse("https://127.0.0.1/${device}$1").expect("t")),
        "https://127.0.0.1/dev-42dev-42"
    );
}

#[test]
fn allegro_wildcard_variant() {
    let table = build(
        MatchMode::Nginx,
        &[
            ("host *.mm-remote.company.com /", "device"),
            ("host mm-remote.company.com /", "portal"),
        ],
    );
    let cases: Vec<Case> = vec![
        (
            Some("dev-42.mm-remote.company.com"),
            None,
            "/",
            false,
            Route("device"),
        ),
        (
            Some("a.b.mm-remote.company.com"),
            None,
            "/",
            false,
            Route("device"),
        ),
        (
            Some("mm-remote.company.com"),
            None,
            "/",
            false,
            Route("portal"),
        ),
        (Some("xmm-remote.company.com"), None, "/", false, NoRoute),
        (None, None, "/", false, NoRoute),
    ];
    check(&table, cases);
}

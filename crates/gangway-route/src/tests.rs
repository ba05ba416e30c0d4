//! Unit tests: the parser's errors, templates, normalisation and the precedence rules.

use std::borrow::Cow;

use crate::*;

fn syntax(what: Input, input: &str, column: usize, expected: &'static str, found: &str) -> Error {
    Error::Syntax {
        what,
        input: input.to_owned(),
        column,
        expected,
        found: found.to_owned(),
    }
}

const PATH_EXPR: &str =
    "a path expression: `= /path`, `^~ /prefix`, `~ regex`, `~* regex` or `/prefix`";
const PATH_LITERAL: &str = "a path starting with `/`";
const HOST_EXPR: &str = "a host match: a name, `*.domain`, `~ regex` or `*`";

fn route_err(input: &str) -> Error {
    RouteExpr::parse(input).expect_err(input)
}

// ---- parser errors: position and what was expected ----

#[test]
fn empty_expression_expects_a_path_expression() {
    assert_eq!(
        route_err(""),
        syntax(Input::Route, "", 1, PATH_EXPR, "end of input")
    );
    assert_eq!(
        route_err("   "),
        syntax(Input::Route, "   ", 4, PATH_EXPR, "end of input")
    );
}

#[test]
fn exact_match_needs_an_absolute_path() {
    assert_eq!(
        route_err("= api"),
        syntax(Input::Route, "= api", 3, PATH_LITERAL, "`api`")
    );
}

#[test]
fn preferred_prefix_without_a_path() {
    assert_eq!(
        route_err("^~"),
        syntax(Input::Route, "^~", 3, PATH_LITERAL, "end of input")
    );
}

#[test]
fn regex_operator_without_a_regex() {
    let expected = "a regular expression";
    assert_eq!(
        route_err("~"),
        syntax(Input::Route, "~", 2, expected, "end of input")
    );
    assert_eq!(
        route_err("~*  "),
        syntax(Input::Route, "~*  ", 5, expected, "end of input")
    );
}

#[test]
fn regex_that_does_not_compile_points_at_the_regex() {
    let err = route_err("~ (unclosed");
    assert!(
        matches!(&err, Error::Regex { what: Input::Route, column: 3, input, .. } if input == "~ (unclosed"),
        "{err:?}"
    );
    let err = route_err(r"host ~ ( /");
    assert!(matches!(err, Error::Regex { column: 8, .. }), "{err:?}");
    assert!(err.to_string().contains("column 8"), "{err}");
}

#[test]
fn named_locations_are_not_path_expressions() {
    assert_eq!(
        route_err("@named"),
        syntax(Input::Route, "@named", 1, PATH_EXPR, "`@named`")
    );
}

#[test]
fn host_keyword_without_a_host() {
    assert_eq!(
        route_err("host"),
        syntax(Input::Route, "host", 5, HOST_EXPR, "end of input")
    );
}

#[test]
fn host_clause_without_a_path() {
    let input = "host ums.example.com";
    assert_eq!(
        route_err(input),
        syntax(Input::Route, input, 21, PATH_EXPR, "end of input")
    );
}

#[test]
fn host_names_cannot_contain_spaces() {
    let input = "host ex ample.com /";
    assert_eq!(
        route_err(input),
        syntax(Input::Route, input, 9, PATH_EXPR, "`ample.com`")
    );
}

#[test]
fn wildcard_needs_a_domain() {
    let input = "host *. /";
    let expected = "a host name";
    assert_eq!(
        route_err(input),
        syntax(Input::Route, input, 8, expected, "whitespace")
    );
}

#[test]
fn host_labels_cannot_be_empty() {
    let input = "host foo..com /";
    let expected = "a non-empty label before `.`";
    assert_eq!(
        route_err(input),
        syntax(Input::Route, input, 10, expected, "`.`")
    );
}

#[test]
fn wildcard_only_in_the_first_label() {
    let input = "host mail.* /";
    let expected = "`*` only as the whole first label (`*.example.com`)";
    assert_eq!(
        route_err(input),
        syntax(Input::Route, input, 11, expected, "`*`")
    );
    let input = "host *foo.com /";
    let expected = "`*.` followed by a domain, or `*` alone";
    assert_eq!(
        route_err(input),
        syntax(Input::Route, input, 6, expected, "`*`")
    );
}

#[test]
fn method_list_with_an_empty_element() {
    let input = "method GET,,POST /";
    assert_eq!(
        route_err(input),
        syntax(Input::Route, input, 12, "a method name", "`,`")
    );
}

#[test]
fn method_list_with_a_repeated_method() {
    let input = "method GET,GET /";
    assert_eq!(
        route_err(input),
        syntax(Input::Route, input, 12, "each method once", "`G`")
    );
}

#[test]
fn literal_path_cannot_continue_after_whitespace() {
    assert_eq!(
        route_err("/a b"),
        syntax(Input::Route, "/a b", 4, "end of input", "`b`")
    );
}

#[test]
fn literal_path_cannot_carry_a_query() {
    let expected = "no `?` in a path (the query is never matched)";
    assert_eq!(
        route_err("= /a?x"),
        syntax(Input::Route, "= /a?x", 5, expected, "`?`")
    );
}

#[test]
fn literal_path_with_invalid_percent_encoding() {
    let expected = "two hex digits after `%`";
    assert_eq!(
        route_err("/a%zz"),
        syntax(Input::Route, "/a%zz", 3, expected, "`%`")
    );
}

#[test]
fn literal_path_that_could_never_match_a_normalised_path() {
    let expected = "the character itself rather than its percent-encoding \
                    (matching decodes unreserved characters)";
    assert_eq!(
        route_err("/a/%7E"),
        syntax(Input::Route, "/a/%7E", 4, expected, "`%`")
    );
    let expected = "upper-case hex digits after `%`";
    assert_eq!(
        route_err("/caf%c3"),
        syntax(Input::Route, "/caf%c3", 5, expected, "`%`")
    );
    let expected = "no encoded NUL, `/` or `\\` (requests with them are refused)";
    assert_eq!(
        route_err("/a%2fb"),
        syntax(Input::Route, "/a%2fb", 3, expected, "`%`")
    );
    let expected = "no `.` or `..` segments (matching sees normalised paths)";
    let input = "= /a/../b";
    assert_eq!(
        route_err(input),
        syntax(Input::Route, input, 6, expected, "`.`")
    );
}

#[test]
fn host_and_path_parsers_alone() {
    let err = HostMatch::parse("ums.example.com /").expect_err("trailing path");
    assert_eq!(
        err,
        syntax(Input::Host, "ums.example.com /", 17, "end of input", "`/`")
    );
    let err = HostMatch::exact("bad_host!").expect_err("bang");
    let expected = "a letter, digit, `-`, `_` or `.` in a host name";
    assert_eq!(err, syntax(Input::Host, "bad_host!", 9, expected, "`!`"));
    let err = PathMatch::parse("host a /").expect_err("not a path");
    assert_eq!(err, syntax(Input::Path, "host a /", 1, PATH_EXPR, "`host`"));
}

#[test]
fn template_errors_point_at_the_reference() {
    let err = Template::parse("/x/${name").expect_err("unclosed");
    assert_eq!(
        err,
        syntax(
            Input::Template,
            "/x/${name",
            10,
            "`}` closing `${`",
            "end of input"
        )
    );
    let expected = "`$$`, `$1`, `${name}` or `$name` after `$`";
    let err = Template::parse("cost: 5$").expect_err("lone dollar");
    assert_eq!(
        err,
        syntax(Input::Template, "cost: 5$", 9, expected, "end of input")
    );
    let err = Template::parse("{R:x}").expect_err("not a number");
    let expected = "a group number after `{R:` or `{C:`";
    assert_eq!(err, syntax(Input::Template, "{R:x}", 4, expected, "`x`"));
    let err = Template::parse("{R:1").expect_err("unclosed");
    let expected = "`}` after the group number";
    assert_eq!(
        err,
        syntax(Input::Template, "{R:1", 5, expected, "end of input")
    );
    let err = Template::parse("${1a}").expect_err("bad name");
    let expected = "a group name starting with a letter or `_`";
    assert_eq!(err, syntax(Input::Template, "${1a}", 3, expected, "`1`"));
}

#[test]
fn error_messages_name_the_input_column_and_expectation() {
    let msg = route_err("= api").to_string();
    assert_eq!(
        msg,
        "route expression `= api`, column 3: expected a path starting with `/`, found `api`"
    );
}

// ---- parsing and display ----

#[test]
fn every_path_operator_parses_and_displays_back() {
    let cases = [
        ("= /exact", PathMatch::Exact("/exact".into())),
        ("=/exact", PathMatch::Exact("/exact".into())),
        ("^~ /static/", PathMatch::PreferredPrefix("/static/".into())),
        (r"~ \.php$", PathMatch::Regex(r"\.php$".into())),
        (
            r"~*\.(gif|jpg)$",
            PathMatch::RegexNoCase(r"\.(gif|jpg)$".into()),
        ),
        ("/api/", PathMatch::Prefix("/api/".into())),
        ("  ~ a b  ", PathMatch::Regex("a b".into())),
    ];
    for (input, expected) in cases {
        let parsed = PathMatch::parse(input).expect(input);
        assert_eq!(parsed, expected, "{input}");
        assert_eq!(
            PathMatch::parse(&parsed.to_string()).expect("display"),
            parsed
        );
    }
}

#[test]
fn route_expressions_with_host_and_methods() {
    let e = RouteExpr::parse("host UMS.Example.com. method GET,HEAD ^~ /wums-app/").expect("valid");
    assert_eq!(e.host(), &HostMatch::Exact("ums.example.com".into()));
    assert_eq!(e.methods(), ["GET", "HEAD"]);
    assert_eq!(e.path(), &PathMatch::PreferredPrefix("/wums-app/".into()));
    assert_eq!(
        e.to_string(),
        "host ums.example.com method GET,HEAD ^~ /wums-app/"
    );

    let e = RouteExpr::parse(r"host ~^(?<d>[a-z]+)\.x$ /").expect("compact regex");
    assert_eq!(e.host(), &HostMatch::Regex(r"^(?<d>[a-z]+)\.x$".into()));
    assert_eq!(e.to_string(), r"host ~ ^(?<d>[a-z]+)\.x$ /");

    let e = RouteExpr::parse("host *.mm-remote.company.com /").expect("wildcard");
    assert_eq!(
        e.host(),
        &HostMatch::Wildcard("mm-remote.company.com".into())
    );
    assert_eq!(
        RouteExpr::parse("host * /").expect("any").host(),
        &HostMatch::Any
    );
    assert_eq!(
        RouteExpr::parse("host [::1] /").expect("v6").host(),
        &HostMatch::Exact("[::1]".into())
    );
    let e: RouteExpr = "/".parse().expect("from_str");
    assert_eq!(
        e,
        RouteExpr::new(HostMatch::Any, PathMatch::Prefix("/".into()))
    );
}

#[test]
fn prefix_may_end_in_a_dot_segment() {
    // `/a/.` is a prefix of `/a/.well-known`, so it is allowed as a prefix.
    assert!(PathMatch::parse("/device/.").is_ok());
    assert!(PathMatch::parse("= /device/.").is_err());
}

#[test]
fn with_methods_validates() {
    let e = RouteExpr::new(HostMatch::Any, PathMatch::Prefix("/".into()));
    assert!(e.clone().with_methods(["GET", "PO ST"]).is_err());
    assert_eq!(
        e.clone()
            .with_methods(Vec::<String>::new())
            .expect("empty")
            .methods(),
        [] as [String; 0]
    );
    assert_eq!(
        e.with_methods(["GET"]).expect("ok").to_string(),
        "method GET /"
    );
}

// ---- templates ----

#[test]
fn template_references_render_from_captures() {
    let mut b = RouteTableBuilder::new(MatchMode::Nginx);
    b.add_expr(
        r"host ~ ^(?<device>[a-z0-9-]+)\.mm\.test$ ~ ^/api/(?<version>v\d+)/(.*)$",
        (),
    )
    .expect("route");
    let table = b.build().expect("table");
    let m = table
        .lookup(Some("Dev-1.mm.test"), "/api/v2/items/7?q")
        .expect("match");
    let render = |t: &str| m.render(&Template::parse(t).expect(t));
    assert_eq!(render("/$2"), "/items/7");
    assert_eq!(render("/${version}/{R:2}"), "/v2/items/7");
    assert_eq!(render("${device}:{C:1}:$device"), "dev-1:dev-1:dev-1");
    assert_eq!(render("$$1 costs $1"), "$1 costs v2");
    assert_eq!(render("$10"), "v20");
    assert_eq!(render("${2}{R:0}"), "items/7/api/v2/items/7");
    assert_eq!(render("{HTTP_HOST}"), "{HTTP_HOST}");
    assert!(Template::parse("/x").expect("literal").is_literal());
}

#[test]
fn template_naming_a_missing_capture_is_a_build_error() {
    let route = RouteExpr::parse(r"~ ^/websocket/(?<node>[^/]+)(/.*)?$").expect("route");
    let template = Template::parse("/ws/$3").expect("template");
    let err = route.check_template(&template).expect_err("no group 3");
    assert_eq!(
        err,
        Error::UnknownCapture {
            template: "/ws/$3".into(),
            column: 5,
            capture: "$3".into(),
            route: r"~ ^/websocket/(?<node>[^/]+)(/.*)?$".into(),
        }
    );
    let mut b = RouteTableBuilder::new(MatchMode::Nginx);
    let bad = Template::parse("${device}").expect("template");
    assert!(matches!(
        b.add_with_templates(route.clone(), &[&bad], 0),
        Err(Error::UnknownCapture { .. })
    ));
    let good = Template::parse("/websocket$2 ${node}").expect("template");
    assert!(b.add_with_templates(route, &[&good], 0).is_ok());

    let prefix = RouteExpr::parse("/websocket/").expect("prefix");
    assert!(
        prefix
            .check_template(&Template::parse("$1").expect("t"))
            .is_err()
    );
    assert!(
        prefix
            .check_template(&Template::parse("$0").expect("t"))
            .is_err()
    );
    let host = RouteExpr::parse(r"host ~ ^([a-z]+)\.x$ /").expect("host regex");
    assert!(
        host.check_template(&Template::parse("$1{C:1}").expect("t"))
            .is_ok()
    );
    assert!(
        host.check_template(&Template::parse("{R:1}").expect("t"))
            .is_err()
    );
    assert!(
        host.check_template(&Template::parse("{C:2}").expect("t"))
            .is_err()
    );
}

// ---- normalisation ----

fn norm(path: &str) -> Result<Cow<'_, str>, NormalizeError> {
    normalize_path(path, NormalizeOptions::default())
}

#[test]
fn normalisation_decodes_unreserved_and_removes_dot_segments() {
    let cases = [
        ("/", "/"),
        ("/a/b", "/a/b"),
        ("/a/./b/%7e", "/a/b/~"),
        ("/%41%2d%5F%2E", "/A-_."),
        ("/caf%c3%a9", "/caf%C3%A9"),
        ("/a%20b", "/a%20b"),
        ("/a/b/../c", "/a/c"),
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/a/%2e%2E/b", "/b"),
        ("/a//b", "/a//b"),
        ("/a//..", "/a/"),
        ("/.well-known/x", "/.well-known/x"),
        ("/a/..b/.c", "/a/..b/.c"),
        ("/login;jsessionid=ABC.node2", "/login;jsessionid=ABC.node2"),
        ("/a/../b?x=/../%zz", "/b?x=/../%zz"),
    ];
    for (input, expected) in cases {
        assert_eq!(norm(input).as_deref(), Ok(expected), "{input}");
    }
}

#[test]
fn normalisation_borrows_when_nothing_changes() {
    assert!(matches!(
        norm("/device-connector/device/ws-connect?x=1"),
        Ok(Cow::Borrowed(_))
    ));
    assert!(matches!(norm("/a%20b"), Ok(Cow::Borrowed(_))));
    assert!(matches!(norm("/a/./b"), Ok(Cow::Owned(_))));
}

#[test]
fn merging_slashes_is_optional() {
    let merge = NormalizeOptions::new().merge_slashes(true);
    assert!(merge.merges_slashes());
    assert_eq!(normalize_path("//a///b//", merge).as_deref(), Ok("/a/b/"));
    assert_eq!(normalize_path("/a//../b", merge).as_deref(), Ok("/b"));
    assert_eq!(normalize_path("///", merge).as_deref(), Ok("/"));
}

#[test]
fn normalisation_refuses_what_could_slip_past_a_route() {
    let p = |s: &str| s.to_owned();
    assert_eq!(
        norm("a/b"),
        Err(NormalizeError::NotAbsolute { path: p("a/b") })
    );
    assert_eq!(norm(""), Err(NormalizeError::NotAbsolute { path: p("") }));
    assert_eq!(
        norm("/a/%zz"),
        Err(NormalizeError::InvalidPercentEncoding {
            path: p("/a/%zz"),
            offset: 3
        })
    );
    assert_eq!(
        norm("/a/%4"),
        Err(NormalizeError::InvalidPercentEncoding {
            path: p("/a/%4"),
            offset: 3
        })
    );
    assert_eq!(
        norm("/a/..%2f..%2fetc"),
        Err(NormalizeError::EncodedSlash {
            path: p("/a/..%2f..%2fetc"),
            offset: 5
        })
    );
    assert_eq!(
        norm("/a/%5Cb"),
        Err(NormalizeError::EncodedBackslash {
            path: p("/a/%5Cb"),
            offset: 3
        })
    );
    assert_eq!(
        norm("/a\\b"),
        Err(NormalizeError::Backslash {
            path: p("/a\\b"),
            offset: 2
        })
    );
    assert_eq!(
        norm("/a/%00"),
        Err(NormalizeError::Nul {
            path: p("/a/%00"),
            offset: 3
        })
    );
    assert_eq!(
        norm("/a\0"),
        Err(NormalizeError::Nul {
            path: p("/a\0"),
            offset: 2
        })
    );
    assert_eq!(
        norm("/.."),
        Err(NormalizeError::AboveRoot {
            path: p("/.."),
            offset: 1
        })
    );
    assert_eq!(
        norm("/a/../../etc"),
        Err(NormalizeError::AboveRoot {
            path: p("/a/../../etc"),
            offset: 6
        })
    );
    assert_eq!(
        norm("/a/%2e%2e/%2e%2e/etc"),
        Err(NormalizeError::AboveRoot {
            path: p("/a/%2e%2e/%2e%2e/etc"),
            offset: 10
        })
    );
}

#[test]
fn every_normalise_error_is_the_clients_fault_and_a_400() {
    let p = String::new;
    let all = [
        NormalizeError::NotAbsolute { path: p() },
        NormalizeError::InvalidPercentEncoding {
            path: p(),
            offset: 0,
        },
        NormalizeError::EncodedSlash {
            path: p(),
            offset: 0,
        },
        NormalizeError::EncodedBackslash {
            path: p(),
            offset: 0,
        },
        NormalizeError::Backslash {
            path: p(),
            offset: 0,
        },
        NormalizeError::Nul {
            path: p(),
            offset: 0,
        },
        NormalizeError::AboveRoot {
            path: p(),
            offset: 0,
        },
        NormalizeError::Ambiguous { path: p() },
    ];
    for err in all {
        assert_eq!(err.side(), Side::Downstream, "{err}");
        assert_eq!(err.status(), 400, "{err}");
    }
}

#[test]
fn prefix_replacement_keeps_the_rest_and_the_query() {
    let cases = [
        (
            "/websocket/node1/a?b",
            "/websocket/node1",
            "/websocket",
            "/websocket/a?b",
        ),
        (
            "/websocket/node1",
            "/websocket/node1",
            "/websocket",
            "/websocket",
        ),
        (
            "/websocket/node1?x=1",
            "/websocket/node1",
            "/websocket",
            "/websocket?x=1",
        ),
        (
            "/websocket/node10/a",
            "/websocket/node1",
            "/websocket",
            "/websocket0/a",
        ),
        ("/api/x", "/api/", "/", "/x"),
        ("/api/x", "/api", "", "/x"),
        ("/api", "/api", "", "/"),
        ("/api?q", "/api", "", "/?q"),
        ("/other", "/api", "/v2", "/other"),
    ];
    for (target, old, new, expected) in cases {
        assert_eq!(
            replace_prefix(target, old, new),
            expected,
            "{target} {old} {new}"
        );
    }
}

// ---- precedence ----

fn table(mode: MatchMode, routes: &[&str]) -> RouteTable<usize> {
    let mut b = RouteTableBuilder::new(mode);
    for (i, r) in routes.iter().enumerate() {
        b.add_expr(r, i).expect(r);
    }
    b.build().expect("table")
}

fn hit(t: &RouteTable<usize>, host: Option<&str>, path: &str) -> Option<usize> {
    t.lookup(host, path).map(|m| *m.value())
}

/// The example from nginx's documentation of `location`.
#[test]
fn nginx_documentation_example() {
    let t = table(
        MatchMode::Nginx,
        &[
            "= /",
            "/",
            "/documents/",
            "^~ /images/",
            r"~* \.(gif|jpg|jpeg)$",
        ],
    );
    assert_eq!(hit(&t, None, "/"), Some(0));
    assert_eq!(hit(&t, None, "/index.html"), Some(1));
    assert_eq!(hit(&t, None, "/documents/document.html"), Some(2));
    assert_eq!(hit(&t, None, "/images/1.gif"), Some(3));
    assert_eq!(hit(&t, None, "/documents/1.JPG"), Some(4));
}

#[test]
fn regexes_are_tried_in_declaration_order_unless_a_longer_caret_tilde_prefix_wins() {
    let t = table(
        MatchMode::Nginx,
        &[r"~ /a", r"~ /a/b", "^~ /a/", "/a/b/", "^~ /a/b/c/"],
    );
    assert_eq!(hit(&t, None, "/a/x"), Some(2), "longest prefix is ^~");
    assert_eq!(
        hit(&t, None, "/a/b/x"),
        Some(0),
        "longest prefix is plain: first regex"
    );
    assert_eq!(hit(&t, None, "/a/b/c/x"), Some(4));
    assert_eq!(hit(&t, None, "/zz/a"), Some(0));
    assert_eq!(hit(&t, None, "/zz"), None);
}

#[test]
fn first_match_mode_takes_declaration_order() {
    let t = table(
        MatchMode::FirstMatch,
        &[
            "/websocket/node1",
            "/websocket",
            "= /websocket/node1",
            r"~ node",
            "/",
        ],
    );
    assert_eq!(hit(&t, None, "/websocket/node1"), Some(0));
    assert_eq!(hit(&t, None, "/websocket/x"), Some(1));
    assert_eq!(hit(&t, None, "/node"), Some(3));
    assert_eq!(hit(&t, None, "/x"), Some(4));
    assert_eq!(t.mode(), MatchMode::FirstMatch);
}

#[test]
fn hosts_choose_a_server_as_nginx_server_name_does() {
    let t = table(
        MatchMode::Nginx,
        &[
            "/",
            "host ums.example.com /",
            "host *.example.com /",
            "host *.b.example.com /",
            r"host ~ ^a\. /",
            r"host ~ ^a /",
            "host only.example.org = /x",
        ],
    );
    assert_eq!(hit(&t, Some("ums.example.com"), "/"), Some(1));
    assert_eq!(
        hit(&t, Some("UMS.Example.COM."), "/"),
        Some(1),
        "case and trailing dot"
    );
    assert_eq!(hit(&t, Some("x.example.com"), "/"), Some(2));
    assert_eq!(
        hit(&t, Some("x.y.example.com"), "/"),
        Some(2),
        "one or more labels"
    );
    assert_eq!(
        hit(&t, Some("x.b.example.com"), "/"),
        Some(3),
        "longest wildcard"
    );
    assert_eq!(
        hit(&t, Some("example.com"), "/"),
        Some(0),
        "wildcard needs a label"
    );
    assert_eq!(
        hit(&t, Some("a.example.com"), "/"),
        Some(2),
        "wildcard before regex"
    );
    assert_eq!(hit(&t, Some("a.test"), "/"), Some(4), "first regex");
    assert_eq!(hit(&t, Some("ab.test"), "/"), Some(5));
    assert_eq!(hit(&t, None, "/"), Some(0));
    assert_eq!(hit(&t, Some(""), "/"), Some(0));
    assert_eq!(
        hit(&t, Some("only.example.org"), "/y"),
        None,
        "no fall-back between servers"
    );
    let long = "a".repeat(300);
    assert_eq!(
        hit(&t, Some(&long), "/"),
        Some(0),
        "a name too long for DNS: default server"
    );
}

#[test]
fn method_filters_need_a_method() {
    let t = table(
        MatchMode::Nginx,
        &[
            "method POST ^~ /api/firmware/",
            "/api/",
            "method GET,HEAD = /api/x",
        ],
    );
    assert_eq!(
        hit(&t, None, "/api/firmware/up"),
        Some(1),
        "no method: filtered routes skipped"
    );
    let m = |method: &str, path: &str| t.lookup_method(None, method, path).map(|m| *m.value());
    assert_eq!(m("POST", "/api/firmware/up"), Some(0));
    assert_eq!(m("GET", "/api/firmware/up"), Some(1));
    assert_eq!(m("HEAD", "/api/x"), Some(2));
    assert_eq!(m("get", "/api/x"), Some(1), "methods are case-sensitive");
}

#[test]
fn duplicate_routes_are_refused() {
    let mut b = RouteTableBuilder::new(MatchMode::Nginx);
    b.add(HostMatch::Any, PathMatch::Prefix("/api/".into()), 0)
        .expect("first");
    let err = b
        .add(HostMatch::Any, PathMatch::Prefix("/api/".into()), 1)
        .expect_err("dup");
    assert_eq!(
        err,
        Error::DuplicateRoute {
            route: "/api/".into(),
            first: 0,
            second: 1
        }
    );
    assert!(matches!(
        b.add_expr("^~ /api/", 2),
        Err(Error::DuplicateRoute { first: 0, .. })
    ));
    b.add_expr("host ums.example.com /api/", 3)
        .expect("other host");
    assert!(
        b.add_expr("host UMS.example.com. /api/", 4).is_err(),
        "same host, canonical"
    );
    b.add_expr("method GET /api/", 5).expect("other methods");
    assert_eq!(b.len(), 3);
}

#[test]
fn values_built_in_code_are_checked_and_made_canonical() {
    let mut b = RouteTableBuilder::new(MatchMode::Nginx);
    let err = b
        .add(HostMatch::Any, PathMatch::Prefix("api".into()), 0)
        .expect_err("relative");
    assert_eq!(err, syntax(Input::Path, "api", 1, PATH_LITERAL, "`api`"));
    assert!(
        b.add(HostMatch::Any, PathMatch::Prefix("= /x".into()), 0)
            .is_err()
    );
    assert!(
        b.add(
            HostMatch::Exact("*".into()),
            PathMatch::Prefix("/".into()),
            0
        )
        .is_err()
    );
    assert!(
        b.add(HostMatch::Any, PathMatch::Regex(" x".into()), 0)
            .is_err()
    );
    assert!(
        b.add(
            HostMatch::Regex("a b".into()),
            PathMatch::Prefix("/".into()),
            0
        )
        .is_err()
    );
    b.add(
        HostMatch::Exact("UMS.Example.com.".into()),
        PathMatch::Prefix("/".into()),
        7,
    )
    .expect("canonicalised");
    let t = b.build().expect("table");
    assert_eq!(
        t.route(0).map(|(e, v)| (e.host().clone(), *v)),
        Some((HostMatch::Exact("ums.example.com".into()), 7))
    );
    assert_eq!(hit(&t, Some("ums.example.com"), "/x"), Some(7));
}

#[test]
fn lookup_ignores_the_query_and_exposes_the_match() {
    let t = table(MatchMode::Nginx, &["/api/", r"~ ^/user/(\d+)$"]);
    let m = t.lookup(Some("h"), "/api/x?y=1").expect("hit");
    assert_eq!(
        (m.index(), m.matched_prefix(), m.captures().is_empty()),
        (0, Some("/api/"), true)
    );
    assert_eq!(m.expr().to_string(), "/api/");
    let m = t.lookup(None, "/user/42?tab=1").expect("regex");
    assert_eq!(m.captures().get(1), Some("42"));
    assert_eq!(m.captures().path(0), Some("/user/42"));
    assert_eq!(m.captures().host(0), None);
    assert_eq!(m.matched_prefix(), None);
    assert_eq!(t.len(), 2);
    assert!(!t.is_empty());
    assert_eq!(t.routes().count(), 2);
}

#[test]
fn resolve_refuses_paths_that_normalisation_moves_to_another_route() {
    let t = table(
        MatchMode::Nginx,
        &[
            r"~ ^/device-connector/device/(ws-connect|portforwarding)$",
            "/device-connector/",
            "/",
        ],
    );
    let opts = NormalizeOptions::default();
    let resolve = |target: &str, opts| {
        t.resolve(None, None, target, opts)
            .map(|m| m.map(|m| *m.value()))
    };
    assert_eq!(
        resolve("/device-connector/device/ws-connect", opts),
        Ok(Some(0))
    );
    assert_eq!(
        resolve("/device-connector/device/ws-%63onnect", opts),
        Ok(Some(0))
    );
    assert_eq!(
        resolve("/device-connector/x/../y", opts),
        Ok(Some(1)),
        "same route: fine"
    );
    assert_eq!(
        resolve("/device-connector/device/%2e%2e/device/ws-connect", opts),
        Err(NormalizeError::Ambiguous {
            path: "/device-connector/device/%2e%2e/device/ws-connect".into()
        })
    );
    // Kept as sent, but an upstream that merges slashes would read it as the other
    // route's path: refused too.
    assert_eq!(
        resolve("/device-connector//device/ws-connect", opts),
        Err(NormalizeError::Ambiguous {
            path: "/device-connector//device/ws-connect".into()
        })
    );
    assert_eq!(
        resolve("/device-connector//other", opts),
        Ok(Some(1)),
        "merged or not, the same route: fine"
    );
    let merge = opts.merge_slashes(true);
    assert!(matches!(
        resolve("/device-connector//device/ws-connect", merge),
        Err(NormalizeError::Ambiguous { .. })
    ));
    assert!(matches!(
        resolve("/../x", opts),
        Err(NormalizeError::AboveRoot { .. })
    ));
}

#[test]
fn tables_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<RouteTable<usize>>();
    shareable::<Error>();
    shareable::<NormalizeError>();
}

#[test]
fn lookup_matches_the_path_as_given_and_resolve_refuses_the_ambiguity() {
    let t = table(MatchMode::Nginx, &["/a/", "= /a/b"]);
    // `lookup` matches exactly what it is given: the engine normalises first.
    assert_eq!(hit(&t, None, "/a/./b"), Some(0));
    let opts = NormalizeOptions::default();
    assert!(
        t.resolve(None, None, "/a/./b", opts).is_err(),
        "exact /a/b vs prefix /a/: refused"
    );
}

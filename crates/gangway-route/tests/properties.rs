//! Property tests: the compiled table agrees with a naive reference model of nginx (and
//! first-match) precedence on random tables and requests; `resolve` never reaches a route
//! the raw path would not; normalisation is idempotent; expressions round-trip.

use gangway_route::fuzzing::{self, Reference};
use gangway_route::{MatchMode, NormalizeOptions, RouteExpr, RouteTableBuilder, normalize_path};
use proptest::prelude::*;

fn literal() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(&["a", "b", "ab", "a;s=1"][..]), 0..4),
        any::<bool>(),
    )
        .prop_map(|(segments, slash)| {
            let mut path = format!("/{}", segments.join("/"));
            if slash && !path.ends_with('/') {
                path.push('/');
            }
            path
        })
}

fn path_expr() -> impl Strategy<Value = String> {
    let regex = prop_oneof![
        Just("^/a"),
        Just("b$"),
        Just("/a/b"),
        Just("^/(a|b)/"),
        Just("ab"),
        Just("^/$"),
        Just("^/(?<x>[ab]+)/(.*)$"),
        Just("a/?$"),
        Just("A"),
    ];
    prop_oneof![
        literal().prop_map(|p| format!("= {p}")),
        literal().prop_map(|p| format!("^~ {p}")),
        literal(),
        literal(),
        regex.clone().prop_map(|r| format!("~ {r}")),
        regex.prop_map(|r| format!("~* {r}")),
    ]
}

fn host_clause() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        4 => Just(""),
        1 => Just("host a.test "),
        1 => Just("host b.test "),
        1 => Just("host *.test "),
        1 => Just("host *.b.test "),
        1 => Just(r"host ~ ^a "),
        1 => Just(r"host ~ ^[ab]\.test$ "),
    ]
}

fn method_clause() -> impl Strategy<Value = &'static str> {
    prop_oneof![4 => Just(""), 1 => Just("method GET "), 1 => Just("method GET,POST ")]
}

fn route() -> impl Strategy<Value = String> {
    (host_clause(), method_clause(), path_expr()).prop_map(|(h, m, p)| format!("{h}{m}{p}"))
}

fn request_path() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(&["a", "b", "ab", "A", "", ".", "..", "%2e", "%61", "a;s=1"][..]),
        0..5,
    )
    .prop_map(|segments| format!("/{}", segments.join("/")))
}

fn request_host() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![
        Just(None),
        Just(Some("a.test")),
        Just(Some("A.TEST.")),
        Just(Some("b.test")),
        Just(Some("x.b.test")),
        Just(Some("ab.test")),
        Just(Some("c.org")),
    ]
}

fn request_method() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![
        Just(None),
        Just(Some("GET")),
        Just(Some("POST")),
        Just(Some("DELETE"))
    ]
}

fn mode() -> impl Strategy<Value = MatchMode> {
    prop_oneof![Just(MatchMode::Nginx), Just(MatchMode::FirstMatch)]
}

type Request = (Option<&'static str>, Option<&'static str>, String);

fn requests() -> impl Strategy<Value = Vec<Request>> {
    prop::collection::vec((request_host(), request_method(), request_path()), 1..16)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn table_agrees_with_the_reference_model(
        mode in mode(),
        routes in prop::collection::vec(route(), 0..24),
        requests in requests(),
    ) {
        let mut builder = RouteTableBuilder::new(mode);
        let mut accepted = Vec::new();
        for line in &routes {
            let expr = RouteExpr::parse(line).expect("generated routes are valid");
            if builder.add_route(expr.clone(), accepted.len()).is_ok() {
                accepted.push(expr);
            }
        }
        let table = builder.build().expect("table");
        let reference = Reference::new(mode, &accepted).expect("reference");
        for (host, method, path) in &requests {
            let expected = reference.lookup(*host, *method, path);
            let found = match method {
                Some(m) => table.lookup_method(*host, m, path),
                None => table.lookup(*host, path),
            };
            prop_assert_eq!(found.map(|m| m.index()), expected, "{:?} {:?} {}", host, method, path);
        }
    }

    #[test]
    fn resolve_never_reaches_a_route_the_raw_path_does_not(
        mode in mode(),
        routes in prop::collection::vec(route(), 0..16),
        requests in requests(),
    ) {
        let mut text = String::new();
        if mode == MatchMode::FirstMatch {
            text.push_str("mode first\n");
        }
        for r in &routes {
            text.push_str(r);
            text.push('\n');
        }
        text.push_str("---\n");
        for (host, method, path) in &requests {
            text.push_str(&format!(
                "{} {} {}\n",
                method.unwrap_or("-"),
                host.unwrap_or("-"),
                path
            ));
        }
        // Panics (and so fails) if an invariant does not hold.
        fuzzing::route_table(text.as_bytes());
    }

    #[test]
    fn normalisation_is_idempotent(
        segments in prop::collection::vec(
            prop::sample::select(
                &["a", "", ".", "..", "%2e", "%2E%2e", "%7e", "%7E", "%c3%a9", "%41", "b;c=d"][..],
            ),
            0..8,
        ),
        query in prop::option::of("[a-z/.%?=]{0,8}"),
        merge in any::<bool>(),
    ) {
        let mut target = format!("/{}", segments.join("/"));
        if let Some(q) = query {
            target.push('?');
            target.push_str(&q);
        }
        let options = NormalizeOptions::default().merge_slashes(merge);
        if let Ok(once) = normalize_path(&target, options) {
            let twice = normalize_path(&once, options).expect("accepted once, accepted twice");
            prop_assert_eq!(&twice, &once);
        }
        fuzzing::normalize(target.as_bytes());
    }

    #[test]
    fn normalisation_of_arbitrary_text_keeps_its_invariants(input in any::<String>()) {
        fuzzing::normalize(input.as_bytes());
    }

    #[test]
    fn expressions_round_trip_through_display(line in route()) {
        let expr = RouteExpr::parse(&line).expect("valid");
        prop_assert_eq!(RouteExpr::parse(&expr.to_string()).expect("display parses"), expr);
        fuzzing::route_expr(line.as_bytes());
    }

    #[test]
    fn parser_never_panics_on_arbitrary_text(input in any::<String>()) {
        fuzzing::route_expr(input.as_bytes());
    }
}

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Body as _;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use super::*;

mod client;

// ---------------------------------------------------------------------------------------
// Helpers

fn peers(weights: &[u32]) -> Vec<Peer> {
    weights
        .iter()
        .enumerate()
        .map(|(index, &weight)| {
            Peer::new(format!("10.0.0.{}", index + 1), 80, weight)
                .with_route(format!("node{}", index + 1))
        })
        .collect()
}

fn pool(weights: &[u32]) -> Pool {
    Pool::new(peers(weights)).unwrap()
}

fn pool_with(method: Method, weights: &[u32]) -> Pool {
    Pool::builder(peers(weights))
        .method(method)
        .build()
        .unwrap()
}

fn sequence(pool: &Pool, count: usize) -> Vec<String> {
    (0..count)
        .map(|_| pool.next_peer().host().to_owned())
        .collect()
}

/// The route names of every peer a selection yields, in order (each attempt dropped at
/// once, so nothing stays in flight).
fn order(selection: Selection<'_>) -> Vec<String> {
    selection
        .map(|attempt| attempt.peer().route().unwrap_or("?").to_owned())
        .collect()
}

fn first(pool: &Pool, request: RequestInfo<'_>) -> String {
    let mut selection = pool.select(request);
    let attempt = selection.next().unwrap();
    attempt.peer().route().unwrap().to_owned()
}

fn client(addr: &str) -> RequestInfo<'static> {
    RequestInfo::new().client(addr.parse().unwrap())
}

fn cookies(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(COOKIE, HeaderValue::from_str(value).unwrap());
    headers
}

// ---------------------------------------------------------------------------------------
// Round robin

#[test]
fn smooth_weighted_round_robin_matches_nginx_for_5_1_1() {
    // nginx's documented sequence for weights a=5, b=1, c=1: a a b a c a a, repeating.
    let pool = pool(&[5, 1, 1]);
    let (a, b, c) = ("10.0.0.1", "10.0.0.2", "10.0.0.3");
    let expected = [a, a, b, a, c, a, a];
    let got = sequence(&pool, 14);
    assert_eq!(got[..7], expected);
    assert_eq!(got[7..], expected);
}

#[test]
fn smooth_weighted_round_robin_type_gives_the_same_sequence() {
    let mut table = SmoothWeightedRoundRobin::new(&[5, 1, 1]);
    let got: Vec<usize> = (0..7).map(|_| table.next_index()).collect();
    assert_eq!(got, [0, 0, 1, 0, 2, 0, 0]);
    assert_eq!(table.total_weight(), 7);
    assert_eq!(table.weights().collect::<Vec<_>>(), [5, 1, 1]);
}

#[test]
fn equal_weights_rotate_in_order() {
    let pool = pool(&[1, 1, 1]);
    assert_eq!(
        sequence(&pool, 4),
        ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.1"]
    );
}

#[test]
fn weights_give_exact_shares() {
    let pool = pool(&[3, 2]);
    let got = sequence(&pool, 500);
    assert_eq!(got.iter().filter(|host| *host == "10.0.0.1").count(), 300);
}

#[test]
fn round_robin_skips_a_failed_peer_and_keeps_the_weights_of_the_rest() {
    let pool = pool(&[5, 1, 1]);
    let now = Instant::now();
    let attempt = pool.select_at(RequestInfo::new(), now).next().unwrap();
    assert_eq!(attempt.index(), 0);
    attempt.failed_at(now);
    let got: Vec<String> = (0..4)
        .map(|_| {
            let attempt = pool.select_at(RequestInfo::new(), now).next().unwrap();
            attempt.peer().route().unwrap().to_owned()
        })
        .collect();
    assert_eq!(got, ["node2", "node3", "node2", "node3"]);
}

// ---------------------------------------------------------------------------------------
// ip_hash

#[test]
fn ip_hash_matches_the_documented_algorithm() {
    // Computed by hand from nginx's algorithm (hash = 89; per byte
    // hash = (hash * 113 + byte) % 6271; hash % total weight walks the weights; a down
    // peer rehashes): equal weights a b c; weights 5 1 2 1; four peers with b down.
    let table = [
        ("1.2.3.4", "node2", "node1", "node4"),
        ("1.2.3.200", "node2", "node1", "node4"),
        ("10.0.0.1", "node1", "node1", "node4"),
        ("192.168.1.10", "node2", "node1", "node3"),
        ("203.0.113.9", "node1", "node1", "node1"),
        ("::1", "node3", "node2", "node1"),
        ("2001:db8::1", "node3", "node4", "node1"),
        ("2001:db8::2", "node1", "node1", "node1"),
        ("fe80::1", "node1", "node3", "node4"),
    ];
    let equal = pool_with(Method::IpHash, &[1, 1, 1]);
    let weighted = pool_with(Method::IpHash, &[5, 1, 2, 1]);
    let mut with_down = peers(&[1, 1, 1, 1]);
    with_down[1] = with_down[1].clone().marked_down();
    let with_down = Pool::builder(with_down)
        .method(Method::IpHash)
        .build()
        .unwrap();
    for (addr, in_equal, in_weighted, in_with_down) in table {
        assert_eq!(first(&equal, client(addr)), in_equal, "{addr}");
        assert_eq!(first(&weighted, client(addr)), in_weighted, "{addr}");
        assert_eq!(first(&with_down, client(addr)), in_with_down, "{addr}");
    }
}

#[test]
fn ip_hash_replays_the_trace_captured_from_nginx() {
    // tests/interop/nginx-ip-hash.sh: Debian's nginx with ip_hash, hash and hash
    // consistent in front of five recording servers, client addresses spoofed by realip.
    let trace = include_str!("../tests/data/ip_hash_golden.txt");
    let mut pools: HashMap<&str, (Pool, Method, Option<&str>)> = HashMap::new();
    let mut replayed = 0;
    for line in trace.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields[0] == "pool" {
            let method = Method::from_name(fields[2]).unwrap();
            let mut unreachable = None;
            let peers = fields[3..]
                .iter()
                .map(|spec| {
                    let (name, address) = spec.split_once('=').unwrap();
                    let parts: Vec<&str> = address.split(':').collect();
                    let peer = Peer::new(
                        parts[0],
                        parts[1].parse().unwrap(),
                        parts[2].parse().unwrap(),
                    )
                    .with_route(name);
                    match parts.get(3) {
                        Some(&"down") => peer.marked_down(),
                        Some(&"maxfails0") => {
                            unreachable = Some(name);
                            peer.with_max_fails(0)
                        }
                        _ => peer,
                    }
                })
                .collect();
            let pool = Pool::builder(peers).method(method).build().unwrap();
            pools.insert(fields[1], (pool, method, unreachable));
            continue;
        }
        let (pool, method, unreachable) = &pools[fields[0]];
        let (value, expected) = (fields[1], fields[2]);
        let request = if method.needs_hash_key() {
            RequestInfo::new().hash_key(value.as_bytes())
        } else {
            client(value)
        };
        // nginx tried the unreachable peer first when the hash named it, then the next
        // peer of the same hash sequence: the selection's fallback order.
        let got = order(pool.select(request))
            .into_iter()
            .find(|name| Some(name.as_str()) != *unreachable);
        assert_eq!(got.as_deref(), Some(expected), "{line}");
        replayed += 1;
    }
    assert!(replayed > 1000, "only {replayed} lines replayed");
    for name in [
        "equal", "weighted", "withdown", "fallback", "hashed", "chashed",
    ] {
        assert!(pools.contains_key(name), "the trace has no pool {name}");
    }
}

#[test]
fn ip_hash_uses_three_octets_of_ipv4_and_all_of_ipv6() {
    let pool = pool_with(Method::IpHash, &[1; 7]);
    let base = first(&pool, client("198.51.100.1"));
    for last in [0, 2, 77, 255] {
        assert_eq!(first(&pool, client(&format!("198.51.100.{last}"))), base);
    }
    let v6: HashSet<String> = (0..64)
        .map(|n| first(&pool, client(&format!("2001:db8::{n:x}"))))
        .collect();
    assert!(v6.len() > 1, "the last IPv6 bytes must count");
}

#[test]
fn ip_hash_treats_an_ipv4_mapped_address_as_ipv4() {
    let pool = pool_with(Method::IpHash, &[1; 5]);
    for addr in ["192.0.2.1", "10.1.2.3", "172.16.9.9"] {
        assert_eq!(
            first(&pool, client(addr)),
            first(&pool, client(&format!("::ffff:{addr}")))
        );
    }
}

#[test]
fn ip_hash_without_a_client_hashes_as_nginx_does_a_unix_socket() {
    let pool = pool_with(Method::IpHash, &[1, 1, 1]);
    // hash 89 over three zero bytes: 3786, 1390, 295; 295 % 3 = 1.
    assert_eq!(first(&pool, RequestInfo::new()), "node2");
    assert_eq!(first(&pool, RequestInfo::new()), "node2");
}

#[test]
fn ip_hash_fallbacks_continue_the_hash_and_never_repeat() {
    let pool = pool_with(Method::IpHash, &[1, 2, 1, 3]);
    for n in 0..200u32 {
        let addr = IpAddr::from(n.wrapping_mul(2_654_435_761).to_be_bytes());
        let got = order(pool.select(RequestInfo::new().client(addr)));
        let unique: HashSet<&String> = got.iter().collect();
        assert_eq!(got.len(), 4, "{addr}: {got:?}");
        assert_eq!(unique.len(), 4, "{addr}: {got:?}");
    }
}

#[test]
fn a_single_peer_pool_always_uses_its_peer() {
    for method in Method::ALL {
        let pool = Pool::builder(peers(&[3])).method(method).build().unwrap();
        let request = client("192.0.2.1").hash_key(b"k");
        assert_eq!(order(pool.select(request)), ["node1"], "{method}");
    }
}

// ---------------------------------------------------------------------------------------
// hash

#[test]
fn hash_is_stable_per_key_and_spreads_keys() {
    let pool = pool_with(Method::Hash, &[1, 1, 1, 1]);
    let mut seen = HashSet::new();
    for n in 0..100 {
        let key = format!("user{n}");
        let one = first(&pool, RequestInfo::new().hash_key(key.as_bytes()));
        let two = first(&pool, RequestInfo::new().hash_key(key.as_bytes()));
        assert_eq!(one, two);
        seen.insert(one);
    }
    assert_eq!(seen.len(), 4);
}

#[test]
fn hash_without_a_key_is_round_robin() {
    for method in [Method::Hash, Method::ConsistentHash] {
        let pool = pool_with(method, &[1, 1, 1]);
        let got: Vec<String> = (0..3).map(|_| first(&pool, RequestInfo::new())).collect();
        assert_eq!(got, ["node1", "node2", "node3"], "{method}");
    }
}

#[test]
fn consistent_hash_moves_only_the_keys_of_a_removed_peer() {
    let all = pool_with(Method::ConsistentHash, &[1, 1, 1, 1, 1]);
    let fewer = Pool::builder(peers(&[1, 1, 1, 1, 1]).into_iter().take(4).collect())
        .method(Method::ConsistentHash)
        .build()
        .unwrap();
    let mut moved = 0;
    for n in 0..500 {
        let key = format!("/item/{n}");
        let before = first(&all, RequestInfo::new().hash_key(key.as_bytes()));
        let after = first(&fewer, RequestInfo::new().hash_key(key.as_bytes()));
        if before == "node5" {
            moved += 1;
            assert_ne!(after, "node5");
        } else {
            assert_eq!(before, after, "{key}");
        }
    }
    assert!(moved > 0);
}

#[test]
fn consistent_hash_skips_a_down_peer_to_the_next_point() {
    let mut list = peers(&[1, 1, 1]);
    list[0] = list[0].clone().marked_down();
    let pool = Pool::builder(list)
        .method(Method::ConsistentHash)
        .build()
        .unwrap();
    for n in 0..100 {
        let key = format!("k{n}");
        let got = order(pool.select(RequestInfo::new().hash_key(key.as_bytes())));
        assert_eq!(got.len(), 2);
        assert!(!got.contains(&"node1".to_owned()));
    }
}

#[test]
fn crc32_is_the_ieee_checksum() {
    // The check value of CRC-32/ISO-HDLC.
    assert_eq!(hash::crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(hash::crc32(b""), 0);
}

// ---------------------------------------------------------------------------------------
// Sticky sessions and direct routes

fn sticky_pool(failover: bool) -> Pool {
    Pool::builder(peers(&[1, 1, 1]))
        .method(Method::ByBusyness)
        .sticky(
            Sticky::new(["rpcid", "JSESSIONID", "jsessionid"])
                .scolon_path_delim(true)
                .failover(failover),
        )
        .build()
        .unwrap()
}

#[test]
fn sticky_cookie_parameter_and_path_parameter_select_the_route() {
    let pool = sticky_pool(true);
    let headers = cookies("JSESSIONID=abc.node2");
    for _ in 0..5 {
        assert_eq!(first(&pool, RequestInfo::new().headers(&headers)), "node2");
        let query = RequestInfo::new().target("/app/list?jsessionid=abc.node2&x=1");
        assert_eq!(first(&pool, query), "node2");
        let path = RequestInfo::new().target("/app;jsessionid=abc.node2");
        assert_eq!(first(&pool, path), "node2");
        let path = RequestInfo::new().target("/app;jsessionid=abc.node3;v=2?x=1");
        assert_eq!(first(&pool, path), "node3");
    }
}

#[test]
fn sticky_route_then_falls_back_to_balancing_without_repeating() {
    let pool = sticky_pool(true);
    let headers = cookies("JSESSIONID=abc.node2");
    let got = order(pool.select(RequestInfo::new().headers(&headers)));
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], "node2");
    assert_eq!(got.iter().collect::<HashSet<_>>().len(), 3);
}

#[test]
fn sticky_unknown_or_dead_route_falls_back() {
    let pool = sticky_pool(true);
    let headers = cookies("JSESSIONID=abc.nodeX");
    assert_eq!(
        order(pool.select(RequestInfo::new().headers(&headers))).len(),
        3
    );

    let now = Instant::now();
    let attempt = pool.select_route_at("node2", now).next().unwrap();
    attempt.failed_at(now);
    let headers = cookies("JSESSIONID=abc.node2");
    let got = order(pool.select_at(RequestInfo::new().headers(&headers), now));
    assert_eq!(got.len(), 2);
    assert!(!got.contains(&"node2".to_owned()));
}

#[test]
fn sticky_without_failover_refuses_a_dead_route_with_503() {
    let pool = sticky_pool(false);
    let now = Instant::now();
    pool.select_route_at("node2", now)
        .next()
        .unwrap()
        .failed_at(now);
    let headers = cookies("JSESSIONID=abc.node2");
    let mut selection = pool.select_at(RequestInfo::new().headers(&headers), now);
    assert!(selection.next().is_none());
    let error = selection.error();
    assert_eq!(
        error,
        Error::RouteUnavailable {
            route: "node2".into()
        }
    );
    assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
    // A route no peer has is balanced even without failover.
    let headers = cookies("JSESSIONID=abc.nodeX");
    assert_eq!(
        order(pool.select_at(RequestInfo::new().headers(&headers), now)).len(),
        2
    );
}

#[test]
fn sticky_reads_cookies_as_apache_does() {
    let sticky = Sticky::new(["JSESSIONID"]);
    let route = |cookie: &str| {
        let headers = cookies(cookie);
        sticky
            .route(&RequestInfo::new().headers(&headers))
            .map(str::to_owned)
    };
    assert_eq!(route("JSESSIONID=abc.n1").as_deref(), Some("n1"));
    assert_eq!(route("a=1; JSESSIONID=abc.n1; b=2").as_deref(), Some("n1"));
    assert_eq!(route("a=1,JSESSIONID=abc.n1,b=2").as_deref(), Some("n1"));
    assert_eq!(route("a=1;JSESSIONID = abc.n1").as_deref(), Some("n1"));
    assert_eq!(route("XJSESSIONID=abc.n1").as_deref(), None);
    assert_eq!(
        route("XJSESSIONID=abc.n1; JSESSIONID=d.n2").as_deref(),
        Some("n2")
    );
    assert_eq!(route("JSESSIONID=abc").as_deref(), None);
    assert_eq!(route("JSESSIONID=abc.").as_deref(), None);
    assert_eq!(route("JSESSIONID=").as_deref(), None);
    // The route is everything after the first separator.
    assert_eq!(route("JSESSIONID=abc.n1.x").as_deref(), Some("n1.x"));
    // Every Cookie header is read.
    let mut headers = cookies("a=1");
    headers.append(COOKIE, HeaderValue::from_static("JSESSIONID=z.n3"));
    assert_eq!(
        sticky.route(&RequestInfo::new().headers(&headers)),
        Some("n3")
    );
}

#[test]
fn sticky_reads_url_parameters_as_apache_does() {
    let plain = Sticky::new(["jsessionid"]);
    let scolon = Sticky::new(["jsessionid"]).scolon_path_delim(true);
    let route =
        |sticky: &Sticky, target: &'static str| sticky.route(&RequestInfo::new().target(target));
    assert_eq!(route(&plain, "/a?jsessionid=x.n1"), Some("n1"));
    assert_eq!(route(&plain, "/a?b=1&jsessionid=x.n1&c=2"), Some("n1"));
    assert_eq!(route(&plain, "/a;jsessionid=x.n1?c=2"), Some("n1"));
    // Without scolonpathdelim the value runs on past `;`, as Apache's does.
    assert_eq!(route(&plain, "/a;jsessionid=x.n1;v=1"), Some("n1;v=1"));
    assert_eq!(route(&scolon, "/a;jsessionid=x.n1;v=1"), Some("n1"));
    assert_eq!(route(&plain, "/a?myjsessionid=x.n1"), None);
    assert_eq!(route(&plain, "/a?jsessionid"), None);
    assert_eq!(route(&plain, "/a?jsessionid=&b=x.n1"), None);
}

#[test]
fn sticky_prefers_the_url_over_the_cookie_and_the_first_name_with_a_route() {
    let sticky = Sticky::new(["rpcid", "JSESSIONID", "jsessionid"]).scolon_path_delim(true);
    let headers = cookies("rpcid=noroute; JSESSIONID=a.n1");
    let both = RequestInfo::new()
        .headers(&headers)
        .target("/x;jsessionid=b.n2");
    assert_eq!(sticky.route(&both), Some("n2"));
    assert_eq!(
        sticky.route(&RequestInfo::new().headers(&headers)),
        Some("n1")
    );
    let custom = Sticky::new(["sid"]).separator(b'!');
    assert_eq!(
        custom.route(&RequestInfo::new().target("/?sid=a!n9")),
        Some("n9")
    );
}

#[test]
fn sticky_configuration_is_checked() {
    let result = Pool::builder(peers(&[1]))
        .sticky(Sticky::new(Vec::<String>::new()))
        .build();
    assert_eq!(
        result.unwrap_err(),
        Error::StickyNames { names: Vec::new() }
    );
    let result = Pool::builder(peers(&[1]))
        .sticky(Sticky::new(["a", ""]))
        .build();
    assert!(matches!(result, Err(Error::StickyNames { .. })));
}

#[test]
fn direct_route_yields_only_that_peer() {
    let pool = pool_with(Method::IpHash, &[1, 1, 1]);
    assert_eq!(order(pool.select_route("node3")), ["node3"]);
    assert_eq!(pool.route_index("node3"), Some(2));

    let mut unknown = pool.select_route("node9");
    assert!(unknown.next().is_none());
    assert_eq!(
        unknown.error(),
        Error::UnknownRoute {
            route: "node9".into()
        }
    );

    let now = Instant::now();
    pool.select_route_at("node3", now)
        .next()
        .unwrap()
        .failed_at(now);
    let mut dead = pool.select_route_at("node3", now);
    assert!(dead.next().is_none());
    assert_eq!(dead.error().status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[test]
fn route_names_are_checked() {
    let duplicate = vec![
        Peer::new("a", 1, 1).with_route("n"),
        Peer::new("b", 1, 1).with_route("n"),
    ];
    assert_eq!(
        Pool::new(duplicate).unwrap_err(),
        Error::DuplicateRoute { route: "n".into() }
    );
    assert_eq!(
        Pool::new(vec![Peer::new("a", 1, 1).with_route("")]).unwrap_err(),
        Error::EmptyRoute { peer: "a:1".into() }
    );
}

// ---------------------------------------------------------------------------------------
// bybusyness and least_conn

#[test]
fn bybusyness_sends_new_requests_to_idle_peers() {
    let pool = pool_with(Method::ByBusyness, &[1, 1, 1]);
    let held: Vec<InFlight> = (0..3)
        .map(|_| pool.select_route("node1").next().unwrap().succeeded())
        .collect();
    assert_eq!(pool.status(0).in_flight, 3);
    let mut next = Vec::new();
    let mut kept = Vec::new();
    for _ in 0..6 {
        let attempt = pool.select(RequestInfo::new()).next().unwrap();
        next.push(attempt.peer().route().unwrap().to_owned());
        // Kept in flight: node2 and node3 fill up evenly, never passing node1's three.
        kept.push(attempt.into_in_flight());
    }
    assert!(!next.contains(&"node1".to_owned()), "{next:?}");
    assert_eq!(next.iter().filter(|name| *name == "node2").count(), 3);
    drop(held);
    assert_eq!(pool.status(0).in_flight, 0);
}

#[test]
fn bybusyness_breaks_ties_by_apache_lbstatus() {
    // Idle peers: each pick adds each weight to lbstatus, the highest wins and drops by the
    // total. Weights 1,1,1 rotate; weights 2,1 go a b a.
    let pool = pool_with(Method::ByBusyness, &[1, 1, 1]);
    let got: Vec<String> = (0..6).map(|_| first(&pool, RequestInfo::new())).collect();
    assert_eq!(got, ["node1", "node2", "node3", "node1", "node2", "node3"]);
    let pool = pool_with(Method::ByBusyness, &[2, 1]);
    let got: Vec<String> = (0..6).map(|_| first(&pool, RequestInfo::new())).collect();
    assert_eq!(got, ["node1", "node2", "node1", "node1", "node2", "node1"]);
}

#[test]
fn bybusyness_counts_a_request_until_its_guard_is_dropped() {
    let pool = pool_with(Method::ByBusyness, &[1, 1]);
    let attempt = pool.select(RequestInfo::new()).next().unwrap();
    let busy = attempt.index();
    let guard = attempt.succeeded();
    for _ in 0..3 {
        let other = pool.select(RequestInfo::new()).next().unwrap();
        assert_ne!(other.index(), busy);
    }
    drop(guard);
    assert_eq!(pool.status(busy).in_flight, 0);
}

#[test]
fn least_conn_weighs_connections_and_breaks_ties_by_round_robin() {
    let pool = pool_with(Method::LeastConn, &[1, 1, 1]);
    let idle: Vec<String> = (0..3).map(|_| first(&pool, RequestInfo::new())).collect();
    assert_eq!(idle, ["node1", "node2", "node3"]);

    // node1 (weight 2) with two requests is as loaded as node2 (weight 1) with one.
    let pool = pool_with(Method::LeastConn, &[2, 1, 1]);
    let _a = pool.select_route("node1").next().unwrap().into_in_flight();
    let _b = pool.select_route("node1").next().unwrap().into_in_flight();
    let _c = pool.select_route("node2").next().unwrap().into_in_flight();
    assert_eq!(first(&pool, RequestInfo::new()), "node3");
    let _d = pool.select_route("node3").next().unwrap().into_in_flight();
    let tied: HashSet<String> = (0..4).map(|_| first(&pool, RequestInfo::new())).collect();
    assert_eq!(
        tied,
        HashSet::from(["node1".to_owned(), "node2".to_owned(), "node3".to_owned()])
    );
}

// ---------------------------------------------------------------------------------------
// Failure accounting, backups

fn failing_pool() -> Pool {
    Pool::new(
        (1..=3)
            .map(|n| {
                Peer::new(format!("10.0.0.{n}"), 80, 1)
                    .with_route(format!("node{n}"))
                    .with_max_fails(2)
                    .with_fail_timeout(Duration::from_secs(10))
            })
            .collect(),
    )
    .unwrap()
}

fn fail_node1(pool: &Pool, at: Instant) {
    pool.select_route_at("node1", at)
        .next()
        .unwrap()
        .failed_at(at);
}

#[test]
fn a_peer_failing_max_fails_times_within_fail_timeout_is_skipped_then_retried() {
    let pool = failing_pool();
    let t0 = Instant::now();
    fail_node1(&pool, t0);
    assert!(pool.status_at(0, t0).available, "one failure of two");
    fail_node1(&pool, t0 + Duration::from_secs(3));
    let t1 = t0 + Duration::from_secs(4);
    assert!(!pool.status_at(0, t1).available);
    for _ in 0..6 {
        let got = order(pool.select_at(RequestInfo::new(), t1));
        assert_eq!(got.len(), 2);
        assert!(!got.contains(&"node1".to_owned()));
    }
    // fail_timeout after the last failure the peer is tried again, by one request only.
    let t2 = t0 + Duration::from_secs(14);
    let mut probes = Vec::new();
    for _ in 0..6 {
        for attempt in pool.select_at(RequestInfo::new(), t2) {
            if attempt.index() == 0 {
                probes.push(attempt);
            }
        }
    }
    assert_eq!(probes.len(), 1);
    // It fails again: straight back out.
    probes.remove(0).failed_at(t2);
    assert!(!pool.status_at(0, t2 + Duration::from_secs(1)).available);
    // The next trial succeeds: back in, failures cleared.
    let t3 = t2 + Duration::from_secs(11);
    let probe = pool
        .select_at(RequestInfo::new(), t3)
        .find(|attempt| attempt.index() == 0)
        .unwrap();
    drop(probe.succeeded_at(t3));
    let status = pool.status_at(0, t3);
    assert!(status.available);
    assert_eq!(status.fails, 0);
}

#[test]
fn failures_further_apart_than_fail_timeout_do_not_add_up() {
    let pool = failing_pool();
    let t0 = Instant::now();
    fail_node1(&pool, t0);
    fail_node1(&pool, t0 + Duration::from_secs(11));
    assert!(pool.status_at(0, t0 + Duration::from_secs(11)).available);
    assert_eq!(pool.status_at(0, t0).fails, 1);
    fail_node1(&pool, t0 + Duration::from_secs(12));
    assert!(!pool.status_at(0, t0 + Duration::from_secs(12)).available);
}

#[test]
fn max_fails_zero_never_takes_a_peer_out() {
    let pool = Pool::new(vec![
        Peer::new("a", 1, 1).with_max_fails(0),
        Peer::new("b", 1, 1),
    ])
    .unwrap();
    let now = Instant::now();
    for _ in 0..5 {
        pool.select_at(RequestInfo::new(), now)
            .find(|attempt| attempt.index() == 0)
            .unwrap()
            .failed_at(now);
    }
    assert!(pool.status_at(0, now).available);
    assert_eq!(pool.status_at(0, now).fails, 0);
}

#[test]
fn the_only_peer_is_never_taken_out_for_failures() {
    let pool = Pool::new(vec![Peer::new("a", 1, 1)]).unwrap();
    let now = Instant::now();
    for _ in 0..3 {
        pool.select_at(RequestInfo::new(), now)
            .next()
            .unwrap()
            .failed_at(now);
    }
    assert_eq!(pool.select_at(RequestInfo::new(), now).count(), 1);
}

#[test]
fn when_every_peer_is_down_the_selection_ends_at_once_with_502() {
    let pool = failing_pool();
    let now = Instant::now();
    for _ in 0..2 {
        for attempt in pool.select_at(RequestInfo::new(), now) {
            attempt.failed_at(now);
        }
    }
    let started = Instant::now();
    let mut selection = pool.select_at(RequestInfo::new(), now);
    assert!(selection.next().is_none());
    assert!(started.elapsed() < Duration::from_millis(50));
    let error = selection.error();
    assert_eq!(error, Error::NoPeerAvailable { tried: 0 });
    assert_eq!(error.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(error.side(), Side::Upstream);
}

#[test]
fn backup_peers_serve_only_when_no_primary_is_left() {
    let pool = Pool::builder(vec![
        Peer::new("p1", 80, 1).with_route("p1"),
        Peer::new("b1", 80, 1).with_route("b1").backup(),
        Peer::new("p2", 80, 1).with_route("p2"),
        Peer::new("b2", 80, 1).with_route("b2").backup(),
    ])
    .method(Method::IpHash)
    .build()
    .unwrap();
    assert_eq!(
        pool.peers()
            .iter()
            .map(|peer| peer.host())
            .collect::<Vec<_>>(),
        ["p1", "p2", "b1", "b2"]
    );
    for _ in 0..4 {
        let got = order(pool.select(client("192.0.2.1")));
        assert_eq!(got.len(), 4);
        assert!(got[..2].iter().all(|name| name.starts_with('p')), "{got:?}");
        assert!(got[2..].iter().all(|name| name.starts_with('b')), "{got:?}");
    }
    assert_eq!(
        Pool::new(vec![Peer::new("b", 1, 1).backup()]).unwrap_err(),
        Error::OnlyBackupPeers
    );
}

#[test]
fn every_method_yields_every_available_peer_once() {
    let mut list = peers(&[1, 3, 1, 2, 1, 1]);
    list[4] = list[4].clone().marked_down();
    for method in Method::ALL {
        let pool = Pool::builder(list.clone()).method(method).build().unwrap();
        for n in 0..50u8 {
            let key = [n];
            let request = RequestInfo::new()
                .client(IpAddr::from([n, n.wrapping_mul(7), 3, 4]))
                .hash_key(&key);
            let got = order(pool.select(request));
            let unique: HashSet<&String> = got.iter().collect();
            assert_eq!(got.len(), 5, "{method}: {got:?}");
            assert_eq!(unique.len(), 5, "{method}: {got:?}");
            assert!(!got.contains(&"node5".to_owned()));
        }
    }
}

#[test]
fn large_pools_select_without_repeats() {
    let pool = pool_with(Method::IpHash, &[1; 200]);
    let got = order(pool.select(client("192.0.2.1")));
    assert_eq!(got.len(), 200);
    assert_eq!(got.iter().collect::<HashSet<_>>().len(), 200);
}

#[test]
fn empty_pool_and_zero_weight_are_refused() {
    assert_eq!(Pool::new(Vec::new()).unwrap_err(), Error::NoPeers);
    assert_eq!(
        Pool::new(vec![Peer::new("::1", 8080, 0)]).unwrap_err(),
        Error::ZeroWeight {
            peer: "[::1]:8080".into()
        }
    );
}

#[test]
fn methods_have_configuration_names() {
    for method in Method::ALL {
        assert_eq!(Method::from_name(method.name()), Some(method));
        assert_eq!(method.to_string(), method.name());
    }
    assert_eq!(Method::from_name("random"), None);
    assert_eq!(Method::default(), Method::RoundRobin);
}

#[test]
fn peer_settings_have_nginx_defaults() {
    let peer = Peer::new("10.0.0.1", 80, 2);
    assert_eq!(peer.max_fails(), 1);
    assert_eq!(peer.fail_timeout(), Duration::from_secs(10));
    assert!(!peer.is_backup() && !peer.is_down());
    assert_eq!(peer.route(), None);
    assert_eq!(peer.scheme(), &http::uri::Scheme::HTTP);
    let peer = peer
        .with_scheme(http::uri::Scheme::HTTPS)
        .backup()
        .marked_down();
    assert_eq!(peer.scheme(), &http::uri::Scheme::HTTPS);
    assert!(peer.is_backup() && peer.is_down());
    assert_eq!(peer.to_string(), "10.0.0.1:80");
}

// ---------------------------------------------------------------------------------------
// Errors

#[test]
fn every_error_knows_its_side_and_status() {
    let cases = [
        (Error::NoPeers, Side::Internal, 500),
        (
            Error::ZeroWeight { peer: "a:1".into() },
            Side::Internal,
            500,
        ),
        (Error::OnlyBackupPeers, Side::Internal, 500),
        (
            Error::EmptyRoute { peer: "a:1".into() },
            Side::Internal,
            500,
        ),
        (
            Error::DuplicateRoute { route: "n".into() },
            Side::Internal,
            500,
        ),
        (
            Error::StickyNames { names: Vec::new() },
            Side::Internal,
            500,
        ),
        (
            Error::HealthCheck {
                path: "x".into(),
                reason: "r".into(),
            },
            Side::Internal,
            500,
        ),
        (Error::NoPeerAvailable { tried: 2 }, Side::Upstream, 502),
        (
            Error::RouteUnavailable { route: "n".into() },
            Side::Upstream,
            503,
        ),
        (
            Error::UnknownRoute { route: "n".into() },
            Side::Downstream,
            404,
        ),
    ];
    for (error, side, status) in cases {
        assert_eq!(error.side(), side, "{error}");
        assert_eq!(error.status().as_u16(), status, "{error}");
    }
}

// ---------------------------------------------------------------------------------------
// Retries

#[test]
fn retry_policy_retries_connect_failures_always_and_response_failures_if_idempotent() {
    let policy = RetryPolicy::default();
    let second = Duration::from_secs(1);
    assert!(policy.should_retry(Failure::Connect, &http::Method::POST, 1, second));
    assert!(policy.should_retry(Failure::Response, &http::Method::GET, 1, second));
    assert!(policy.should_retry(Failure::Response, &http::Method::PUT, 1, second));
    assert!(!policy.should_retry(Failure::Response, &http::Method::POST, 1, second));
    assert!(!policy.should_retry(Failure::Response, &http::Method::PATCH, 1, second));

    let bounded = RetryPolicy {
        max_tries: 2,
        timeout: Some(Duration::from_secs(5)),
        retry_idempotent: false,
    };
    assert!(bounded.should_retry(Failure::Connect, &http::Method::GET, 1, second));
    assert!(!bounded.should_retry(Failure::Connect, &http::Method::GET, 2, second));
    assert!(!bounded.should_retry(Failure::Connect, &http::Method::GET, 1, 5 * second));
    assert!(!bounded.should_retry(Failure::Response, &http::Method::GET, 1, second));
    assert!(!RetryPolicy::never().should_retry(Failure::Connect, &http::Method::GET, 1, second));
}

#[test]
fn a_retry_body_comes_back_only_if_it_was_never_read() {
    let (body, reclaim) = RetryBody::new(Full::new(Bytes::from_static(b"abc")));
    assert_eq!(body.size_hint().exact(), Some(3));
    assert!(!body.is_end_stream());
    drop(body);
    let body = reclaim.take().unwrap();
    assert_eq!(body.size_hint().exact(), Some(3));

    let (body, reclaim) = RetryBody::new(body);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let bytes = runtime.block_on(body.collect()).unwrap().to_bytes();
    assert_eq!(bytes, "abc");
    assert!(reclaim.take().is_none());
}

#[test]
fn a_retry_body_taken_back_cannot_be_sent_as_complete() {
    let (body, reclaim) = RetryBody::new(Full::new(Bytes::from_static(b"abc")));
    assert!(reclaim.take().is_some());
    assert!(!body.is_end_stream());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert!(runtime.block_on(body.collect()).is_err());
}

// ---------------------------------------------------------------------------------------
// Loopback origins

/// A tiny HTTP/1.1 origin on loopback that answers its name and counts connections.
/// Stopping it (or dropping it) closes the listener and every connection.
#[derive(Debug)]
struct Origin {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    max_open: Arc<AtomicUsize>,
    task: Option<JoinHandle<()>>,
}

impl Origin {
    async fn start() -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    async fn start_on(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let max_open = Arc::new(AtomicUsize::new(0));
        let (counted, current, peak) = (accepted.clone(), open.clone(), max_open.clone());
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                let now_open = current.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now_open, Ordering::SeqCst);
                let current = current.clone();
                connections.spawn(async move {
                    let service = service_fn(|_request: Request<hyper::body::Incoming>| async {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                    current.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Self {
            addr,
            accepted,
            open,
            max_open,
            task: Some(task),
        }
    }

    fn peer(&self) -> Peer {
        Peer::new("127.0.0.1", self.addr.port(), 1)
    }

    /// Closes the listener and every connection, and waits until they are gone.
    async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

fn settings(max_idle_per_peer: usize) -> ClientSettings {
    ClientSettings {
        connect_timeout: Duration::from_secs(2),
        max_idle_per_peer,
        idle_timeout: Duration::from_secs(60),
    }
}

fn get() -> Request<Empty<Bytes>> {
    Request::get("/").body(Empty::new()).unwrap()
}

#[tokio::test]
async fn keep_alive_bounds_open_connections_and_reuses_them() {
    for (keepalive, tasks, requests_per_task) in [(4usize, 3usize, 40usize), (1, 4, 25)] {
        let origin = Origin::start().await;
        let client = Arc::new(UpstreamClient::<Empty<Bytes>>::new(
            UpstreamScheme::Http,
            settings(keepalive),
        ));
        let peer = origin.peer();
        let mut set = JoinSet::new();
        for _ in 0..tasks {
            let (client, peer) = (client.clone(), peer.clone());
            set.spawn(async move {
                for _ in 0..requests_per_task {
                    let response = client
                        .send(peer.uri_authority().unwrap(), get())
                        .await
                        .unwrap();
                    assert_eq!(response.status(), StatusCode::OK);
                    let body = response.into_body().collect().await.unwrap().to_bytes();
                    assert_eq!(body, "ok");
                }
            });
        }
        while let Some(result) = set.join_next().await {
            result.unwrap();
        }
        let total = tasks * requests_per_task;
        let accepted = origin.accepted.load(Ordering::SeqCst);
        let max_open = origin.max_open.load(Ordering::SeqCst);
        assert!(
            max_open <= keepalive + tasks,
            "keepalive {keepalive}, {tasks} tasks: {max_open} connections open at once"
        );
        if keepalive >= tasks {
            // No connection is ever closed for want of idle room: all were reused.
            assert!(
                accepted <= keepalive + tasks,
                "{accepted} connections for {total}"
            );
        }
        assert!(origin.open.load(Ordering::SeqCst) <= keepalive + tasks);
    }
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_failure_and_the_next_peer_answers() {
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let origin = Origin::start().await;
    let pool = Pool::new(vec![
        Peer::new("127.0.0.1", refused.port(), 1).with_route("dead"),
        origin.peer().with_route("live"),
    ])
    .unwrap();
    let client = UpstreamClient::<Empty<Bytes>>::new(UpstreamScheme::Http, settings(2));
    let policy = RetryPolicy::default();
    let started = Instant::now();
    let mut answered_by = Vec::new();
    for _ in 0..4 {
        let mut selection = pool.select(RequestInfo::new());
        loop {
            let attempt = selection.next().expect("the live peer is left");
            match client
                .send(attempt.peer().uri_authority().unwrap(), get())
                .await
            {
                Ok(response) => {
                    let _guard = attempt.succeeded();
                    assert_eq!(response.status(), StatusCode::OK);
                    answered_by.push(
                        pool.peers()[_guard.peer_index()]
                            .route()
                            .unwrap()
                            .to_owned(),
                    );
                    break;
                }
                Err(error) => {
                    let failure = Failure::of(&error);
                    assert_eq!(failure, Failure::Connect);
                    attempt.failed();
                    assert!(policy.should_retry(
                        failure,
                        &http::Method::POST,
                        selection.tries(),
                        started.elapsed()
                    ));
                }
            }
        }
    }
    assert_eq!(answered_by, ["live"; 4]);
    // One failure took the dead peer out (max_fails = 1): later requests went straight on.
    assert_eq!(pool.status(0).fails, 1);
    assert!(!pool.status(0).available);
}

#[tokio::test]
async fn active_health_takes_a_stopped_peer_out_and_brings_it_back_after_restart() {
    let first_origin = Origin::start().await;
    let second_origin = Origin::start().await;
    let addr = first_origin.addr;
    let pool = Pool::new(vec![
        first_origin.peer().with_route("one"),
        second_origin.peer().with_route("two"),
    ])
    .unwrap();
    let check = HealthCheck::new("/health")
        .timeout(Duration::from_secs(2))
        .rise(2)
        .fall(1);
    let checker =
        HealthChecker::new(&pool, check, UpstreamScheme::Http, Duration::from_secs(2)).unwrap();
    assert_eq!(checker.check_once().await, 2);

    first_origin.stop().await;
    assert_eq!(checker.check_once().await, 1);
    assert!(!pool.status(0).healthy);
    for _ in 0..4 {
        assert_eq!(order(pool.select(RequestInfo::new())), ["two"]);
    }

    let restarted = Origin::start_on(addr).await;
    assert_eq!(
        checker.check_once().await,
        1,
        "one success of the two needed"
    );
    assert_eq!(checker.check_once().await, 2);
    assert!(pool.status(0).healthy && pool.status(0).available);
    let seen: HashSet<String> = (0..4)
        .flat_map(|_| order(pool.select(RequestInfo::new())))
        .collect();
    assert!(seen.contains("one"));
    assert!(restarted.accepted.load(Ordering::SeqCst) >= 2);
}

#[tokio::test]
async fn passing_health_checks_bring_back_a_peer_out_for_failures() {
    let first_origin = Origin::start().await;
    let second_origin = Origin::start().await;
    let pool = Pool::new(vec![
        first_origin
            .peer()
            .with_route("one")
            .with_fail_timeout(Duration::from_secs(3600)),
        second_origin.peer().with_route("two"),
    ])
    .unwrap();
    let check = HealthCheck::new("/health").rise(2).fall(1);
    let checker =
        HealthChecker::new(&pool, check, UpstreamScheme::Http, Duration::from_secs(2)).unwrap();
    assert_eq!(checker.check_once().await, 2);
    assert_eq!(checker.check_once().await, 2);

    // A request failed on it (a restart between two checks): out for an hour, by passive
    // health alone.
    pool.report_failure(0);
    assert!(!pool.status(0).available);
    assert_eq!(checker.check_once().await, 2);
    assert!(
        !pool.status(0).available,
        "one passing check since the failure is not `rise`"
    );
    assert_eq!(checker.check_once().await, 2);
    assert!(pool.status(0).available && pool.status(0).fails == 0);
}

#[tokio::test]
async fn spawned_health_checks_run_until_dropped() {
    let origin = Origin::start().await;
    let pool = Pool::new(vec![origin.peer(), Peer::new("127.0.0.1", 9, 1)]).unwrap();
    let check = HealthCheck::new("/").interval(Duration::from_millis(20));
    assert_eq!(check.interval_duration(), Duration::from_millis(20));
    assert_eq!(check.path(), "/");
    let task = HealthChecker::new(&pool, check, UpstreamScheme::Http, Duration::from_secs(1))
        .unwrap()
        .spawn();
    let deadline = Instant::now() + Duration::from_secs(10);
    while pool.status(1).healthy || origin.accepted.load(Ordering::SeqCst) < 3 {
        assert!(Instant::now() < deadline, "the checks did not run");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(task);
    assert!(pool.status(0).healthy);
}

#[test]
fn health_checks_are_validated() {
    let pool = pool(&[1]);
    for check in [
        HealthCheck::new("health"),
        HealthCheck::new("/a b"),
        HealthCheck::new("/").host("bad\nhost"),
        HealthCheck::new("/").interval(Duration::ZERO),
    ] {
        let result = HealthChecker::new(&pool, check, UpstreamScheme::Http, Duration::from_secs(1));
        assert!(
            matches!(result, Err(Error::HealthCheck { .. })),
            "{result:?}"
        );
    }
}

#[tokio::test]
async fn a_health_check_with_an_unexpected_status_fails() {
    let origin = Origin::start().await;
    let pool = Pool::new(vec![origin.peer(), Peer::new("127.0.0.1", 9, 1)]).unwrap();
    let check = HealthCheck::new("/")
        .expect_status(204..=204)
        .host("example.test");
    let checker =
        HealthChecker::new(&pool, check, UpstreamScheme::Http, Duration::from_secs(1)).unwrap();
    assert_eq!(checker.check_once().await, 0);
}

// ---------------------------------------------------------------------------------------
// What the engine needs from the types

#[test]
fn the_types_an_engine_shares_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Pool>();
    send_sync::<Selection<'_>>();
    send_sync::<Attempt>();
    send_sync::<InFlight>();
    send_sync::<HealthChecker>();
    send_sync::<HealthTask>();
    send_sync::<RetryBody<Full<Bytes>>>();
}

#[test]
fn a_selection_does_not_borrow_the_request() {
    let pool = Pool::builder(peers(&[1, 1, 1]))
        .method(Method::Hash)
        .sticky(Sticky::new(["JSESSIONID"]))
        .build()
        .unwrap();
    let request = Request::get("/a?x=1")
        .header(COOKIE, "JSESSIONID=s.node3")
        .body(())
        .unwrap();
    let key =
        String::from("a long hash key that does not fit the inline buffer, 0123456789 abcdefghij");
    let mut selection = pool.select(RequestInfo::from_request(&request).hash_key(key.as_bytes()));
    // The engine moves the request's parts into the outbound request, then retries.
    let (parts, ()) = request.into_parts();
    drop(parts);
    drop(key);
    let got: Vec<String> = selection
        .by_ref()
        .map(|attempt| attempt.peer().route().unwrap().to_owned())
        .collect();
    assert_eq!(got[0], "node3");
    assert_eq!(got.len(), 3);
    assert_eq!(selection.tries(), 3);
    assert_eq!(selection.error(), Error::NoPeerAvailable { tried: 3 });
}

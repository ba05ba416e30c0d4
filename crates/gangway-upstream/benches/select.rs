//! Peer selection over a pool of 100 peers (weights 1..=4, every peer with a route name),
//! one benchmark per balancing method, plus sticky and direct routes: the first pick of a
//! selection, with its in-flight guard taken and dropped, as the engine does per request.
//!
//! Run: `cargo bench -p gangway-upstream --bench select`. Results are in
//! `docs/benchmarks-upstream.md`.

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use gangway_upstream::{Method, Peer, Pool, RequestInfo, Sticky};
use http::HeaderMap;
use http::header::{COOKIE, HeaderValue};

const PEERS: usize = 100;

fn peers(weighted: bool) -> Vec<Peer> {
    (0..PEERS)
        .map(|index| {
            let weight = if weighted { 1 + (index % 4) as u32 } else { 1 };
            Peer::new(
                format!("10.1.{}.{}", index / 250, index % 250 + 1),
                8080,
                weight,
            )
            .with_route(format!("node{index}"))
        })
        .collect()
}

fn pool(method: Method, weighted: bool) -> Pool {
    Pool::builder(peers(weighted))
        .method(method)
        .build()
        .expect("valid pool")
}

/// 1,024 client addresses and keys, cycled through so that hashing sees varied input.
fn inputs() -> (Vec<IpAddr>, Vec<String>) {
    let addrs = (0..1024u32)
        .map(|n| {
            let bits = n.wrapping_mul(2_654_435_761);
            if n % 4 == 0 {
                IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, (bits >> 16) as u16, bits as u16])
            } else {
                IpAddr::from(bits.to_be_bytes())
            }
        })
        .collect();
    let keys = (0..1024)
        .map(|n| format!("/item/{n}?user={}", n * 7))
        .collect();
    (addrs, keys)
}

fn select(c: &mut Criterion) {
    let (addrs, keys) = inputs();
    let mut group = c.benchmark_group("select first peer, 100 peers");
    let cases = [
        ("round_robin, equal weights", Method::RoundRobin, false),
        ("round_robin, weights 1-4", Method::RoundRobin, true),
        ("ip_hash, weights 1-4", Method::IpHash, true),
        ("hash, weights 1-4", Method::Hash, true),
        ("hash consistent, weights 1-4", Method::ConsistentHash, true),
        ("least_conn, weights 1-4", Method::LeastConn, true),
        ("bybusyness, weights 1-4", Method::ByBusyness, true),
    ];
    for (name, method, weighted) in cases {
        let pool = pool(method, weighted);
        let mut n = 0usize;
        group.bench_function(name, |b| {
            b.iter(|| {
                n = (n + 1) % 1024;
                let request = RequestInfo::new()
                    .client(addrs[n])
                    .hash_key(keys[n].as_bytes());
                let attempt = pool.select(black_box(request)).next();
                black_box(attempt.map(|attempt| attempt.index()))
            });
        });
    }

    let sticky = Pool::builder(peers(true))
        .method(Method::ByBusyness)
        .sticky(Sticky::new(["rpcid", "JSESSIONID", "jsessionid"]).scolon_path_delim(true))
        .build()
        .expect("valid pool");
    let mut headers = HeaderMap::new();
    headers.insert(
        COOKIE,
        HeaderValue::from_static("lang=en; theme=dark; JSESSIONID=0123456789ABCDEF.node42"),
    );
    group.bench_function("sticky cookie route (bybusyness pool)", |b| {
        b.iter(|| {
            let request = RequestInfo::new()
                .target("/app/list?page=2")
                .headers(&headers);
            let attempt = sticky.select(black_box(request)).next();
            black_box(attempt.map(|attempt| attempt.index()))
        });
    });
    group.bench_function("sticky path parameter route", |b| {
        b.iter(|| {
            let request = RequestInfo::new().target("/app;jsessionid=0123456789ABCDEF.node42?x=1");
            let attempt = sticky.select(black_box(request)).next();
            black_box(attempt.map(|attempt| attempt.index()))
        });
    });
    group.bench_function("direct route /websocket/<nodeID>", |b| {
        b.iter(|| {
            let attempt = sticky.select_route(black_box("node42")).next();
            black_box(attempt.map(|attempt| attempt.index()))
        });
    });

    let ip_hash = pool(Method::IpHash, true);
    let mut n = 0usize;
    group.bench_function("ip_hash, all 100 peers in fallback order", |b| {
        b.iter(|| {
            n = (n + 1) % 1024;
            let request = RequestInfo::new().client(addrs[n]);
            black_box(ip_hash.select(black_box(request)).count())
        });
    });
    group.finish();
}

// `criterion_group!` defines an undocumented public function.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(benches, select);
}
use group::benches;
criterion_main!(benches);

//! Applying the estos UCServer header set, as the engine does per request: render the
//! request operations from the request as received, strip hop-by-hop headers (keeping a
//! WebSocket upgrade on the WebSocket route), apply the forwarding policy (which removes
//! forged identity headers), apply the rendered operations; and on the response, the
//! `always` HSTS header and Location rewriting.
//!
//! The nginx lines this replaces:
//!
//! ```text
//! proxy_set_header X-Real-IP $remote_addr;
//! proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
//! proxy_set_header Host $host;
//! proxy_set_header X-NginX-Proxy true;
//! proxy_set_header Upgrade $http_upgrade;          # WebSocket route: strip_hop_by_hop_keep_upgrade
//! proxy_set_header Connection $connection_upgrade; # idem
//! add_header Strict-Transport-Security "max-age=63072000" always;
//! ```
//!
//! Run: `cargo bench -p gangway-headers --bench apply`. Results are in
//! `docs/benchmarks-headers.md`.

use std::fmt::Write;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use gangway_headers::{
    ClientAddr, ForwardedProto, ForwardingPolicy, HeaderOp, HeaderOps, LocationRewrite, Template,
    Variable, Variables, strip_hop_by_hop_keep_upgrade,
};
use http::{HeaderMap, HeaderName, HeaderValue};

/// What the engine's `Variables` implementation does: answers from the request as
/// received, without allocating beyond `out`.
struct Facts<'a> {
    headers: &'a HeaderMap,
    client: SocketAddr,
    host: &'a str,
    policy: &'a ForwardingPolicy,
}

impl Variables for Facts<'_> {
    fn write(&self, variable: &Variable, out: &mut String) -> bool {
        match variable {
            Variable::RemoteAddr => write!(out, "{}", self.client.ip()).is_ok(),
            Variable::Host => {
                out.push_str(self.host);
                true
            }
            Variable::Scheme => {
                out.push_str("https");
                true
            }
            Variable::ProxyAddXForwardedFor => {
                self.policy
                    .write_x_forwarded_for(self.headers, self.client.ip(), out);
                true
            }
            Variable::Header(name) => match self.headers.get(name).map(HeaderValue::to_str) {
                Some(Ok(value)) => {
                    out.push_str(value);
                    true
                }
                _ => false,
            },
            _ => false,
        }
    }
}

fn parse(source: &str) -> Template {
    Template::parse(source).expect("valid template")
}

fn estos_request_ops() -> HeaderOps {
    HeaderOps::from_ops([
        HeaderOp::Set(HeaderName::from_static("x-real-ip"), parse("$remote_addr")),
        HeaderOp::Set(
            HeaderName::from_static("x-forwarded-for"),
            parse("$proxy_add_x_forwarded_for"),
        ),
        HeaderOp::Set(http::header::HOST, parse("$host")),
        HeaderOp::Set(HeaderName::from_static("x-nginx-proxy"), parse("true")),
    ])
    .expect("valid operations")
}

fn estos_response_ops() -> HeaderOps {
    let mut ops = HeaderOps::new();
    ops.push_always(HeaderOp::Set(
        http::header::STRICT_TRANSPORT_SECURITY,
        parse("max-age=63072000"),
    ))
    .expect("valid operation");
    ops
}

/// A browser's request to the ProCall web client, 12 headers, one of them a forged
/// identity header.
fn browser_request(websocket: bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let mut add = |name: &'static str, value: &'static str| {
        headers.append(name, HeaderValue::from_static(value));
    };
    add("host", "ucserver.example.com");
    add(
        "user-agent",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    );
    add(
        "accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    );
    add("accept-language", "de-DE,de;q=0.9,en;q=0.8");
    add("accept-encoding", "gzip, deflate, br");
    add(
        "cookie",
        "JSESSIONID=4F1A2B3C4D5E6F708192A3B4C5D6E7F8; lang=de",
    );
    add("referer", "https://ucserver.example.com/ucwa/");
    add("x-forwarded-for", "203.0.113.7");
    add("x-ssl-cert", "forged");
    if websocket {
        add("connection", "Upgrade");
        add("upgrade", "websocket");
        add("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
        add("sec-websocket-version", "13");
    } else {
        add("connection", "keep-alive");
        add("cache-control", "no-cache");
        add("pragma", "no-cache");
    }
    headers
}

fn upstream_response() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert("content-length", HeaderValue::from_static("5120"));
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    headers.insert(
        "date",
        HeaderValue::from_static("Mon, 24 Nov 2025 21:00:00 GMT"),
    );
    headers.insert("server", HeaderValue::from_static("UCServer"));
    headers
}

fn apply(c: &mut Criterion) {
    let request_ops = estos_request_ops();
    let response_ops = estos_response_ops();
    // As the configuration sets it up: the operations set X-Real-IP and X-Forwarded-For, so
    // the policy does not compute them too; it still strips identity headers and sets
    // X-Forwarded-Proto.
    let policy = ForwardingPolicy::new()
        .x_real_ip(!request_ops.overrides(&HeaderName::from_static("x-real-ip")))
        .x_forwarded_for(!request_ops.overrides(&HeaderName::from_static("x-forwarded-for")));
    let client = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 23)), 51234);

    let mut group = c.benchmark_group("estos header set");
    for (case, websocket) in [("request", false), ("request, WebSocket route", true)] {
        let request = browser_request(websocket);
        // Made once per connection by the proxy.
        let client_addr = ClientAddr::new(client.ip());
        group.bench_function(case, |b| {
            b.iter_batched(
                || request.clone(),
                |mut headers| {
                    let rendered = request_ops.render(&Facts {
                        headers: &headers,
                        client,
                        host: "ucserver.example.com",
                        policy: &policy,
                    });
                    strip_hop_by_hop_keep_upgrade(&mut headers, websocket);
                    let mut dropped = policy.apply(
                        &mut headers,
                        &client_addr,
                        ForwardedProto::Https,
                        Some("ucserver.example.com"),
                        443,
                    );
                    dropped.extend(rendered.apply(&mut headers));
                    assert!(dropped.is_empty());
                    black_box(headers)
                },
                BatchSize::SmallInput,
            );
        });
    }

    let no_headers = HeaderMap::new();
    let facts = Facts {
        headers: &no_headers,
        client,
        host: "ucserver.example.com",
        policy: &policy,
    };
    let response = upstream_response();
    group.bench_function("response: HSTS", |b| {
        b.iter_batched(
            || response.clone(),
            |mut headers| {
                response_ops.apply(&mut headers, &facts);
                black_box(headers)
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("response: HSTS always (proxy's own 502)", |b| {
        b.iter_batched(
            HeaderMap::new,
            |mut headers| {
                response_ops.apply_always(&mut headers, &facts);
                black_box(headers)
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();

    let redirects = LocationRewrite::Pairs(vec![(
        "http://ucserver:7224/".to_owned(),
        parse("$scheme://$host/"),
    )]);
    let mut redirect = upstream_response();
    redirect.insert(
        "location",
        HeaderValue::from_static("http://ucserver:7224/ucwa/login?next=%2F"),
    );
    let mut group = c.benchmark_group("location rewrite");
    group.bench_function("redirect rewritten", |b| {
        b.iter_batched(
            || redirect.clone(),
            |mut headers| {
                redirects.apply(&mut headers, &facts);
                black_box(headers)
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("no Location (every other response)", |b| {
        b.iter_batched(
            || response.clone(),
            |mut headers| {
                redirects.apply(&mut headers, &facts);
                black_box(headers)
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

// `criterion_group!` defines an undocumented public function.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(benches, apply);
}
use group::benches;
criterion_main!(benches);

use std::time::Duration;

use http::{HeaderMap, Method};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn upgrade_headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(*name, value.parse().unwrap());
    }
    headers
}

const GOOD: [(&str, &str); 4] = [
    ("upgrade", "websocket"),
    ("connection", "Upgrade"),
    ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("sec-websocket-version", "13"),
];

fn without(name: &str) -> Vec<(&'static str, &'static str)> {
    GOOD.iter()
        .copied()
        .filter(|(key, _)| *key != name)
        .collect()
}

fn with(name: &str, value: &'static str) -> Vec<(&'static str, &'static str)> {
    let mut pairs = without(name);
    pairs.push((GOOD.iter().find(|(key, _)| *key == name).unwrap().0, value));
    pairs
}

#[test]
fn valid_handshake_gives_the_key() {
    let key = validate_upgrade_request(&Method::GET, &upgrade_headers(&GOOD)).unwrap();
    assert_eq!(key.as_str(), "dGhlIHNhbXBsZSBub25jZQ==");
}

#[test]
fn each_malformed_handshake_is_refused_with_its_reason() {
    let headers = upgrade_headers(&GOOD);
    assert_eq!(
        validate_upgrade_request(&Method::POST, &headers),
        Err(Error::Method {
            method: "POST".into()
        })
    );
    let cases: Vec<(Vec<(&str, &str)>, Error)> = vec![
        (without("upgrade"), Error::UpgradeHeader),
        (with("upgrade", "h2c"), Error::UpgradeHeader),
        (without("connection"), Error::ConnectionHeader),
        (with("connection", "keep-alive"), Error::ConnectionHeader),
        (without("sec-websocket-key"), Error::Key),
        (with("sec-websocket-key", "c2hvcnQ="), Error::Key),
        (
            with("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZR=="),
            Error::Key,
        ),
        (
            with("sec-websocket-key", "dGhlIHNhbXBsZSBub25j!Q=="),
            Error::Key,
        ),
        (without("sec-websocket-version"), Error::Version),
        (with("sec-websocket-version", "8"), Error::Version),
    ];
    for (pairs, expected) in cases {
        assert_eq!(
            validate_upgrade_request(&Method::GET, &upgrade_headers(&pairs)),
            Err(expected.clone()),
            "{pairs:?}"
        );
    }
    let mut doubled = GOOD.to_vec();
    doubled.push(("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="));
    assert_eq!(
        validate_upgrade_request(&Method::GET, &upgrade_headers(&doubled)),
        Err(Error::Key)
    );
}

#[test]
fn accept_key_follows_rfc_6455_example() {
    let key = validate_upgrade_request(&Method::GET, &upgrade_headers(&GOOD)).unwrap();
    let good = upgrade_headers(&[("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")]);
    assert!(accepts_key(&good, &key));
    let bad = upgrade_headers(&[("sec-websocket-accept", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")]);
    assert!(!accepts_key(&bad, &key));
    assert!(!accepts_key(&HeaderMap::new(), &key));
}

#[tokio::test]
async fn splice_copies_both_ways_and_passes_half_close_on() {
    let (client, mut client_peer) = tokio::io::duplex(64);
    let (upstream, mut upstream_peer) = tokio::io::duplex(64);
    let tunnel = tokio::spawn(splice(client, upstream, Duration::from_secs(30)));

    client_peer.write_all(b"hello upstream").await.unwrap();
    let mut buffer = [0u8; 14];
    upstream_peer.read_exact(&mut buffer).await.unwrap();
    assert_eq!(&buffer, b"hello upstream");

    upstream_peer.write_all(b"hi").await.unwrap();
    let mut buffer = [0u8; 2];
    client_peer.read_exact(&mut buffer).await.unwrap();
    assert_eq!(&buffer, b"hi");

    client_peer.shutdown().await.unwrap();
    let mut rest = Vec::new();
    upstream_peer.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "the half-close arrives as end of stream");
    upstream_peer.write_all(b"late").await.unwrap();
    upstream_peer.shutdown().await.unwrap();
    let mut late = Vec::new();
    client_peer.read_to_end(&mut late).await.unwrap();
    assert_eq!(late, b"late");

    let report = tunnel.await.unwrap();
    assert_eq!(
        report,
        SpliceReport {
            client_to_upstream: 14,
            upstream_to_client: 6,
            end: SpliceEnd::Closed
        }
    );
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_ends_the_tunnel_and_activity_resets_it() {
    let (client, mut client_peer) = tokio::io::duplex(64);
    let (upstream, mut upstream_peer) = tokio::io::duplex(64);
    let started = tokio::time::Instant::now();
    let tunnel = tokio::spawn(splice(client, upstream, Duration::from_secs(10)));
    tokio::time::sleep(Duration::from_secs(8)).await;
    client_peer.write_all(b"x").await.unwrap();
    let mut byte = [0u8; 1];
    upstream_peer.read_exact(&mut byte).await.unwrap();
    let report = tunnel.await.unwrap();
    assert_eq!(report.end, SpliceEnd::IdleTimeout);
    assert_eq!(report.client_to_upstream, 1);
    let lasted = started.elapsed();
    assert!(
        lasted >= Duration::from_secs(18),
        "activity at 8 s resets the 10 s timer: {lasted:?}"
    );
    assert!(lasted < Duration::from_secs(19), "{lasted:?}");
    // Both sides see the end of the tunnel.
    let mut rest = Vec::new();
    assert_eq!(upstream_peer.read_to_end(&mut rest).await.unwrap(), 0);
}

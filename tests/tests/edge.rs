//! Behind an L4 balancer: the PROXY protocol names the client (v1 and v2), only from the
//! trusted balancers; and connection limits per listener and per client.

// In a test, a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Proxy;
use gangway_e2e::clients::raw_exchange;
use gangway_e2e::origins::RecordingOrigin;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn behind_balancer(trusted: &str, origin: &RecordingOrigin) -> Proxy {
    Proxy::start(&format!(
        r#"
[[upstream]]
name = "app"
peers = ["http://{}"]

[[listener]]
address = "127.0.0.1:0"
proxy_protocol = {{ trusted = [{trusted}] }}

[[listener.route]]
path = "/"
proxy = "app"
"#,
        origin.addr()
    ))
    .await
}

const REQUEST: &[u8] = b"GET /who HTTP/1.1\r\nhost: app.test\r\nconnection: close\r\n\r\n";

/// A v2 header (PROXY command, TCP over IPv6) naming `2001:db8::7` port 4242.
fn v2_header() -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend([0x21, 0x21, 0, 36]);
    header.extend(
        "2001:db8::7"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    header.extend(std::net::Ipv6Addr::LOCALHOST.octets());
    header.extend(4242u16.to_be_bytes());
    header.extend(443u16.to_be_bytes());
    header
}

#[tokio::test]
async fn proxy_protocol_v1_and_v2_name_the_client_the_upstream_sees() {
    let origin = RecordingOrigin::start().await;
    let proxy = behind_balancer("\"127.0.0.0/8\"", &origin).await;
    let wait = Duration::from_secs(5);

    let mut v1 = b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 443\r\n".to_vec();
    v1.extend_from_slice(REQUEST);
    let answer = raw_exchange(proxy.addr(), &v1, wait).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    let mut v2 = v2_header();
    v2.extend_from_slice(REQUEST);
    let answer = raw_exchange(proxy.addr(), &v2, wait).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // A balancer health check (v1 UNKNOWN) is served as the balancer itself.
    let mut unknown = b"PROXY UNKNOWN\r\n".to_vec();
    unknown.extend_from_slice(REQUEST);
    let answer = raw_exchange(proxy.addr(), &unknown, wait).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    let seen = origin.requests();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].headers["x-real-ip"], "203.0.113.7");
    assert_eq!(seen[0].headers["x-forwarded-for"], "203.0.113.7");
    assert_eq!(seen[1].headers["x-real-ip"], "2001:db8::7");
    assert_eq!(seen[2].headers["x-real-ip"], "127.0.0.1");
}

#[tokio::test]
async fn a_proxy_header_from_an_untrusted_peer_or_a_missing_one_is_refused() {
    let origin = RecordingOrigin::start().await;
    let wait = Duration::from_secs(5);
    // The test connects from 127.0.0.1, which is not a trusted balancer here.
    let proxy = behind_balancer("\"10.0.0.0/8\"", &origin).await;
    let mut forged = b"PROXY TCP4 198.51.100.1 127.0.0.1 1 443\r\n".to_vec();
    forged.extend_from_slice(REQUEST);
    assert!(raw_exchange(proxy.addr(), &forged, wait).await.is_empty());

    // From a trusted peer, a connection without a header (or with garbage) is refused too.
    let proxy = behind_balancer("\"127.0.0.1/32\"", &origin).await;
    assert!(raw_exchange(proxy.addr(), REQUEST, wait).await.is_empty());
    let mut garbage = b"PROXY TCP9 nonsense\r\n".to_vec();
    garbage.extend_from_slice(REQUEST);
    assert!(raw_exchange(proxy.addr(), &garbage, wait).await.is_empty());
    assert!(
        origin.requests().is_empty(),
        "a refused connection reached the upstream"
    );
}

/// Whether the proxy serves a request on a connection that stays open.
async fn served(stream: &mut TcpStream) -> bool {
    let request = b"GET / HTTP/1.1\r\nhost: app.test\r\n\r\n";
    if stream.write_all(request).await.is_err() {
        return false;
    }
    let mut buffer = [0u8; 256];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await,
        Ok(Ok(read)) if read > 0 && buffer.starts_with(b"HTTP/1.1 200")
    )
}

#[tokio::test]
async fn connections_beyond_the_limits_are_closed_at_accept() {
    let proxy = Proxy::start(
        "[[listener]]\naddress = \"127.0.0.1:0\"\nmax_connections_per_client = 2\n\
         [[listener.route]]\npath = \"/\"\nrespond = { status = 200, body = \"ok\" }\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\nmax_connections = 1\n\
         [[listener.route]]\npath = \"/\"\nrespond = { status = 200, body = \"ok\" }\n",
    )
    .await;
    let (per_client, total) = (proxy.addrs[0], proxy.addrs[1]);

    let mut first = TcpStream::connect(per_client).await.unwrap();
    let mut second = TcpStream::connect(per_client).await.unwrap();
    assert!(served(&mut first).await && served(&mut second).await);
    let mut third = TcpStream::connect(per_client).await.unwrap();
    assert!(
        !served(&mut third).await,
        "a third connection from one client was served"
    );
    // Closing one makes room again.
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = TcpStream::connect(per_client).await.unwrap();
        if served(&mut again).await {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the limit never freed up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut only = TcpStream::connect(total).await.unwrap();
    assert!(served(&mut only).await);
    let mut over = TcpStream::connect(total).await.unwrap();
    assert!(
        !served(&mut over).await,
        "a connection over max_connections was served"
    );
    assert!(
        served(&mut only).await,
        "the admitted connection keeps working"
    );
}

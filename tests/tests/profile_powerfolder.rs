//! `gangway-powerfolder`: the profile file expands to the PowerFolder cluster front
//! (issue #11): ip_hash keeps a client on one node, `/websocket/<nodeID>` reaches that
//! node only, Apache-style sticky sessions by cookie and `;jsessionid=`, the 2 GiB limit.

// In a test, a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

mod common;

use common::Proxy;
use gangway_e2e::certs::{TempDir, TestCa, write_pem_files};
use gangway_e2e::clients::{
    http1_request, http1_request_streaming, tls_client_config, tls_connect,
};
use gangway_e2e::origins::{PseudoRandomBody, RecordingOrigin};
use http_body_util::Full;
use tokio::net::TcpStream;

const SERVER: &str = "files.example.com";

struct Front {
    proxy: Proxy,
    ca: TestCa,
    nodes: Vec<RecordingOrigin>,
}

impl Front {
    async fn get(&self, target: &str, cookie: Option<&str>) -> u16 {
        let config = tls_client_config(&self.ca.pem(), &[b"http/1.1"]);
        let stream = tls_connect(self.proxy.addrs[1], SERVER, config).await;
        let mut request = http::Request::get(target).header("host", SERVER);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        http1_request(stream, request.body(Full::default()).unwrap())
            .await
            .status()
            .as_u16()
    }

    /// How many requests each node has seen.
    fn counts(&self) -> Vec<usize> {
        self.nodes
            .iter()
            .map(|node| node.requests().len())
            .collect()
    }
}

async fn front() -> Front {
    let ca = TestCa::new("powerfolder CA");
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(RecordingOrigin::start().await);
    }
    let dir = TempDir::new("powerfolder");
    let (cert, key) = write_pem_files(dir.path(), &ca.issue_server(&[SERVER]));
    let profile = dir.join("powerfolder.toml");
    let mut text = format!(
        "server_name = \"{SERVER}\"\ncertificate = {cert:?}\nprivate_key = {key:?}\n\
         http_listen = \"127.0.0.1:0\"\nhttps_listen = \"127.0.0.1:0\"\n"
    );
    for (index, node) in nodes.iter().enumerate() {
        // Both address forms: "host:port" and a URL.
        let address = if index == 0 {
            node.addr().to_string()
        } else {
            format!("http://{}", node.addr())
        };
        text.push_str(&format!(
            "\n[[node]]\nid = \"nodeID{}\"\naddress = \"{address}\"\n",
            index + 1
        ));
    }
    std::fs::write(&profile, text).unwrap();
    let (expansion, config) = gangway_profiles::load::<gangway_profiles::PowerFolder>(&profile)
        .unwrap_or_else(|errors| panic!("{errors}"));
    let proxy = Proxy::start_in(dir, &expansion).await;
    let reread = gangway_config::load(&proxy.dir.join("gangway.toml")).unwrap();
    assert_eq!(
        reread, config,
        "the printed configuration reads back the same"
    );
    Front { proxy, ca, nodes }
}

#[tokio::test]
async fn ip_hash_keeps_a_client_on_one_node() {
    let front = front().await;
    for round in 0..9 {
        assert_eq!(front.get(&format!("/files/{round}"), None).await, 200);
    }
    let mut counts = front.counts();
    counts.sort_unstable();
    assert_eq!(counts, [0, 0, 9]);
}

#[tokio::test]
async fn websocket_node_id_reaches_that_node_only_at_its_websocket_path() {
    let front = front().await;
    for _ in 0..3 {
        assert_eq!(front.get("/websocket/nodeID2?x=1", None).await, 200);
    }
    assert_eq!(front.counts(), [0, 3, 0]);
    assert_eq!(front.nodes[1].requests()[0].uri, "/websocket?x=1");
    // An unknown node is 503, not another node.
    assert_eq!(front.get("/websocket/nodeID9", None).await, 503);
    assert_eq!(front.counts(), [0, 3, 0]);
}

#[tokio::test]
async fn sticky_cookie_and_jsessionid_path_parameter_pick_their_node() {
    let front = front().await;
    assert_eq!(front.get("/login", None).await, 200);
    let home = front.counts().iter().position(|&count| count == 1).unwrap();
    let others: Vec<usize> = (0..3).filter(|&index| index != home).collect();
    let (first, second) = (others[0], others[1]);

    let cookie = format!("JSESSIONID=abc.nodeID{}", first + 1);
    assert_eq!(front.get("/files", Some(&cookie)).await, 200);
    let target = format!("/files;jsessionid=def.nodeID{};v=1?q=2", second + 1);
    assert_eq!(front.get(&target, None).await, 200);
    let rpcid = format!("/rpc?rpcid=x.nodeID{}", first + 1);
    assert_eq!(front.get(&rpcid, None).await, 200);

    let mut expected = [0; 3];
    expected[home] = 1;
    expected[first] = 2;
    expected[second] = 1;
    assert_eq!(front.counts(), expected);
    // The path is passed as sent (Apache `nocanon`).
    assert_eq!(front.nodes[second].requests()[0].uri, target.as_str());
}

#[tokio::test]
async fn a_body_of_2_gib_and_one_byte_gets_413_and_port_80_redirects() {
    let front = front().await;
    let config = tls_client_config(&front.ca.pem(), &[b"http/1.1"]);
    let stream = tls_connect(front.proxy.addrs[1], SERVER, config).await;
    let request = http::Request::put("/upload/big.iso")
        .header("host", SERVER)
        .body(PseudoRandomBody::new(2 * 1024 * 1024 * 1024 + 1, 3))
        .unwrap();
    assert_eq!(http1_request_streaming(stream, request).await.status(), 413);
    assert_eq!(front.counts(), [0, 0, 0]);

    let stream = TcpStream::connect(front.proxy.addrs[0]).await.unwrap();
    let request = http::Request::get("/share/abc")
        .header("host", "10.0.0.1")
        .body(Full::default())
        .unwrap();
    let response = http1_request(stream, request).await;
    assert_eq!(response.status(), 301);
    assert_eq!(
        response.headers()["location"],
        "https://files.example.com/share/abc"
    );
}

//! A 1 GiB upload through `gangway-powerfolder` streams: the node gets every byte, and the
//! proxy process's peak memory (VmHWM) stays under 64 MiB.

// In a test, a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gangway_e2e::certs::{TempDir, TestCa, write_pem_files};
use gangway_e2e::clients::{tls_client_config, tls_connect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const BINARY: &str = env!("CARGO_BIN_EXE_gangway-powerfolder");
const GIB: u64 = 1024 * 1024 * 1024;

/// A node that reads one request head, discards a `content-length` body, counts it, and
/// answers 200.
async fn counting_node(received: Arc<AtomicU64>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let received = received.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 256 * 1024];
                let mut head = Vec::new();
                let body_start = loop {
                    let Ok(read) = stream.read(&mut buffer).await else {
                        return;
                    };
                    if read == 0 {
                        return;
                    }
                    head.extend_from_slice(&buffer[..read]);
                    if let Some(end) = head.windows(4).position(|window| window == b"\r\n\r\n") {
                        break end + 4;
                    }
                };
                let text = String::from_utf8_lossy(&head[..body_start]).to_ascii_lowercase();
                let length: u64 = text
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .and_then(|value| value.trim().parse().ok())
                    .unwrap_or(0);
                let mut got = (head.len() - body_start) as u64;
                while got < length {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(read) => got += read as u64,
                    }
                }
                received.store(got, Ordering::SeqCst);
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
    address
}

fn peak_memory_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(u64::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_gib_upload_streams_with_peak_memory_under_64_mib() {
    let received = Arc::new(AtomicU64::new(0));
    let node = counting_node(received.clone()).await;
    let ca = TestCa::new("powerfolder CA");
    let dir = TempDir::new("powerfolder-upload");
    let (cert, key) = write_pem_files(dir.path(), &ca.issue_server(&["files.example.test"]));
    let (http, https) = (
        gangway_e2e::origins::refused_addr(),
        gangway_e2e::origins::refused_addr(),
    );
    let profile = dir.path().join("powerfolder.toml");
    std::fs::write(
        &profile,
        format!(
            "server_name = \"files.example.test\"\ncertificate = {cert:?}\nprivate_key = {key:?}\n\
             http_listen = \"{http}\"\nhttps_listen = \"{https}\"\n\n\
             [[node]]\nid = \"nodeID1\"\naddress = \"{node}\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(BINARY)
        .arg("-c")
        .arg(&profile)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let trust = tls_client_config(&ca.pem(), &[b"http/1.1"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(https).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "gangway-powerfolder did not listen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut stream = tls_connect(https, "files.example.test", trust).await;
    stream
        .write_all(
            format!(
                "POST /upload HTTP/1.1\r\nhost: files.example.test\r\ncontent-length: {GIB}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let chunk = vec![0x5au8; 1024 * 1024];
    for _ in 0..1024 {
        stream.write_all(&chunk).await.unwrap();
    }
    stream.flush().await.unwrap();
    let mut answer = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(120), stream.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]).into_owned();
    let peak = peak_memory_kib(child.id());
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(
        received.load(Ordering::SeqCst),
        GIB,
        "the node got every byte"
    );
    assert!(peak < 64 * 1024, "peak memory {peak} KiB");
    println!("peak memory of gangway-powerfolder during a 1 GiB upload: {peak} KiB");
}

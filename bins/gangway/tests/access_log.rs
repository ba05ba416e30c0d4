//! The access log of the `gangway` binary: JSON lines in a file, reopened on SIGUSR1.

// In a test, a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

mod common;

use common::{BINARY, connect_when_listening, signal, start_run};

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gangway_e2e::certs::TempDir;
use gangway_e2e::clients::http1_request;
use http_body_util::Full;

/// A GET of `path` with a User-Agent, answered 200 by the `respond` route.
async fn get(address: SocketAddr, path: &str) {
    let stream = connect_when_listening(address).await;
    let request = http::Request::get(path)
        .header("host", "localhost")
        .header("user-agent", "access-log-test/1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(http1_request(stream, request).await.status(), 200);
}

/// The file's lines once it has `count` of them (bounded: 30 s; lines are written by a
/// thread of their own, after the response).
async fn lines(path: &Path, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= count || Instant::now() > deadline {
            assert_eq!(lines.len(), count, "{}:\n{text}", path.display());
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn uris(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("not JSON ({error}): {line}"));
            assert_eq!(value["status"], 200, "{line}");
            assert_eq!(value["method"], "GET", "{line}");
            assert_eq!(value["protocol"], "HTTP/1.1", "{line}");
            assert_eq!(value["user_agent"], "access-log-test/1", "{line}");
            assert_eq!(value["listener"], "plain", "{line}");
            assert!(value["time"].as_str().unwrap().ends_with('Z'), "{line}");
            value["uri"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn json_access_log_has_one_line_per_request_and_sigusr1_reopens_it_after_a_rename() {
    let dir = TempDir::new("access-log");
    let log = dir.join("access.log");
    let rotated = dir.join("access.log.1");
    let config = dir.join("gangway.toml");
    let listen = gangway_e2e::origins::refused_addr();
    std::fs::write(
        &config,
        format!(
            "[server]\naccess_log = {{ format = \"json\", path = {log:?} }}\n\n\
             [[listener]]\nname = \"plain\"\naddress = \"{listen}\"\n\n\
             [[listener.route]]\npath = \"/\"\nrespond = {{ status = 200, body = \"ok\" }}\n"
        ),
    )
    .unwrap();
    let mut child = start_run(&config, &[], false);
    for path in ["/one", "/two?x=1", "/three"] {
        get(listen, path).await;
    }
    assert_eq!(uris(&lines(&log, 3).await), ["/one", "/two?x=1", "/three"]);

    // What logrotate does: rename, then signal; until the signal, lines go to the old file.
    std::fs::rename(&log, &rotated).unwrap();
    get(listen, "/before-signal").await;
    assert_eq!(lines(&rotated, 4).await.len(), 4);
    signal(&child.0, "USR1");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log.exists() {
        assert!(Instant::now() < deadline, "SIGUSR1 did not reopen the log");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for path in ["/after/1", "/after/2"] {
        get(listen, path).await;
    }
    assert_eq!(uris(&lines(&log, 2).await), ["/after/1", "/after/2"]);
    assert_eq!(
        uris(&lines(&rotated, 4).await),
        ["/one", "/two?x=1", "/three", "/before-signal"]
    );

    // On SIGTERM the process drains, writes out what is queued and exits 0.
    get(listen, "/last").await;
    signal(&child.0, "TERM");
    assert!(child.0.wait().unwrap().success());
    assert_eq!(lines(&log, 3).await.len(), 3);
}

#[test]
fn run_fails_with_the_path_when_the_access_log_cannot_be_opened() {
    let dir = TempDir::new("access-log-missing");
    let log = dir.join("no/such/dir/access.log");
    let config = dir.join("gangway.toml");
    let listen = gangway_e2e::origins::refused_addr();
    std::fs::write(
        &config,
        format!(
            "[server]\naccess_log = {{ format = \"combined\", path = {log:?} }}\n\n\
             [[listener]]\naddress = \"{listen}\"\n\n\
             [[listener.route]]\npath = \"/\"\nrespond = {{ status = 200 }}\n"
        ),
    )
    .unwrap();
    let output = Command::new(BINARY)
        .args(["run", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "access log {}: cannot open for appending: No such file or directory",
            log.display()
        )),
        "{stderr}"
    );
}

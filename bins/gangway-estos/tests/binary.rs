//! The profile binary itself (the runner every profile binary shares): `--check`,
//! `--print-config` (which the generic reader accepts as it is), serving and SIGTERM.

// In a test, a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gangway_e2e::certs::{TempDir, TestCa, write_pem_files};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BINARY: &str = env!("CARGO_BIN_EXE_gangway-estos");

fn profile(
    dir: &TempDir,
    http: std::net::SocketAddr,
    https: std::net::SocketAddr,
) -> std::path::PathBuf {
    let ca = TestCa::new("estos CA");
    let (cert, key) = write_pem_files(dir.path(), &ca.issue_server(&["uc.example.test"]));
    let path = dir.path().join("estos.toml");
    std::fs::write(
        &path,
        format!(
            "server_name = \"uc.example.test\"\ncertificate = {cert:?}\nprivate_key = {key:?}\n\
             http_listen = \"{http}\"\nhttps_listen = \"{https}\"\nucserver = \"http://127.0.0.1:7224\"\n"
        ),
    )
    .unwrap();
    path
}

fn run(args: &[&str], file: &Path) -> (bool, String, String) {
    let output = Command::new(BINARY)
        .args(["-c"])
        .arg(file)
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn check_and_print_config_on_a_good_and_a_bad_profile() {
    let dir = TempDir::new("estos-bin");
    let path = profile(
        &dir,
        "127.0.0.1:8080".parse().unwrap(),
        "127.0.0.1:8443".parse().unwrap(),
    );
    let (ok, stdout, stderr) = run(&["--check"], &path);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "ok");

    let (ok, stdout, stderr) = run(&["--print-config"], &path);
    assert!(ok, "{stderr}");
    // What it prints is a generic configuration the generic reader takes as it is.
    let config = gangway_config::parse(&stdout, Path::new("/printed.toml"))
        .unwrap_or_else(|errors| panic!("{errors}\n{stdout}"));
    assert_eq!(config.listeners.len(), 2);

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "server_name = \"uc.example.test\"\nhttp_listen = \"nowhere\"\n",
    )
    .unwrap();
    let (ok, _, stderr) = run(&["--check"], &bad);
    assert!(!ok);
    assert!(stderr.contains("bad.toml:2:15:"), "{stderr}");
}

#[tokio::test]
async fn serves_the_profile_and_drains_on_sigterm() {
    let dir = TempDir::new("estos-run");
    let http = gangway_e2e::origins::refused_addr();
    let https = gangway_e2e::origins::refused_addr();
    let path = profile(&dir, http, https);
    let mut child = Command::new(BINARY)
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stream = loop {
        match tokio::net::TcpStream::connect(http).await {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(error) => {
                let _ = child.kill();
                panic!("gangway-estos did not listen: {error}");
            }
        }
    };
    stream
        .write_all(b"GET /app?x=1 HTTP/1.1\r\nhost: whatever\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 301"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("location: https://uc.example.test/app?x=1"),
        "{answer}"
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
}

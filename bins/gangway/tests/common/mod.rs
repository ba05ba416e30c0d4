//! What the binary tests share: starting `gangway`, signalling it, waiting for it.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_gangway");

/// A child process killed on drop if the test did not end it.
pub(crate) struct Running(pub(crate) Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `gangway run -c CONFIG ARGS...`, stdout discarded; stderr kept (piped, without colour)
/// when the test reads the log.
pub(crate) fn start_run(config: &Path, args: &[&std::ffi::OsStr], keep_stderr: bool) -> Running {
    let mut command = Command::new(BINARY);
    command
        .args(["run", "-c"])
        .arg(config)
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(if keep_stderr {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    Running(command.spawn().unwrap())
}

pub(crate) fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Connects once the started binary listens on `address` (bounded: 30 s).
pub(crate) async fn connect_when_listening(address: SocketAddr) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match TcpStream::connect(address).await {
            Ok(stream) => return stream,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(error) => panic!("gangway did not start listening on {address}: {error}"),
        }
    }
}

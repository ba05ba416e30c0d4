//! Starting the engine from TOML text for one test.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use gangway_e2e::certs::TempDir;
use tokio::sync::oneshot;

/// A running engine; dropping it stops it.
pub(crate) struct Proxy {
    pub(crate) addrs: Vec<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    pub(crate) dir: TempDir,
    /// Reloads the listeners' TLS files in place.
    pub(crate) tls_reloader: gangway_proxy::TlsReloader,
    /// The admin listener's address, when the configuration has an `[admin]` table.
    pub(crate) admin: Option<SocketAddr>,
    /// The engine's counters, as `/metrics` shows them.
    pub(crate) metrics: gangway_proxy::Metrics,
    /// Swaps the whole configuration, as SIGHUP does.
    pub(crate) reload: gangway_proxy::ReloadHandle,
}

impl Proxy {
    /// Writes `toml` to a temporary directory (so relative file names resolve there),
    /// validates it and starts the engine on it.
    pub(crate) async fn start(toml: &str) -> Proxy {
        Self::start_in(TempDir::new("proxy"), toml).await
    }

    /// As [`Proxy::start`], with files (certificates) already placed in `dir`.
    pub(crate) async fn start_in(dir: TempDir, toml: &str) -> Proxy {
        Self::start_on(dir, toml, gangway_proxy::Workers::here()).await
    }

    /// As [`Proxy::start_in`], serving connections on `workers`.
    pub(crate) async fn start_on(
        dir: TempDir,
        toml: &str,
        workers: gangway_proxy::Workers,
    ) -> Proxy {
        let path = dir.path().join("gangway.toml");
        std::fs::write(&path, toml).expect("write config");
        let config = gangway_config::load(&path).unwrap_or_else(|errors| panic!("{errors}"));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = gangway_proxy::Server::bind(&config, provider)
            .await
            .expect("bind")
            .spread_over(workers);
        let addrs = server.local_addrs().to_vec();
        let tls_reloader = server.tls_reloader();
        let (admin, metrics) = (server.admin_addr(), server.metrics());
        let reload = server.reload_handle();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Proxy {
            addrs,
            stop: Some(stop),
            task: Some(task),
            dir,
            tls_reloader,
            admin,
            metrics,
            reload,
        }
    }

    /// Validates `toml` (written to this proxy's directory) and swaps it in.
    pub(crate) async fn reload_with(
        &self,
        toml: &str,
    ) -> Result<Vec<SocketAddr>, gangway_proxy::Error> {
        let path = self.dir.path().join("gangway.toml");
        std::fs::write(&path, toml).expect("write config");
        let config = gangway_config::load(&path).unwrap_or_else(|errors| panic!("{errors}"));
        self.reload.reload(config).await
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Signals shutdown without waiting for the drain.
    pub(crate) fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Signals shutdown and waits until the engine has drained.
    pub(crate) async fn shutdown(mut self) {
        self.begin_shutdown();
        if let Some(task) = self.task.take() {
            task.await.expect("engine task");
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A plain request with an empty body.
pub(crate) fn get(uri: &str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    http::Request::get(uri)
        .header("host", "app.test")
        .body(Default::default())
        .expect("request")
}

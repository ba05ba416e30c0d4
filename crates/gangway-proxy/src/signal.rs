//! Process signals.

/// Completes on the first SIGTERM or SIGINT (Ctrl-C); on platforms without SIGTERM, on
/// Ctrl-C alone.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut terminate), Ok(mut interrupt)) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
                return;
            }
            _ => tracing::warn!("cannot install SIGTERM/SIGINT handlers; falling back to Ctrl-C"),
        }
    }
    if tokio::signal::ctrl_c().await.is_err() {
        // Without any signal handling, never complete: the process is stopped by force.
        std::future::pending::<()>().await;
    }
}

/// Reloads `reloader`'s TLS material on every SIGHUP, for as long as the returned future
/// runs (spawn it next to [`Server::run`](crate::Server::run)). The handler is installed
/// when this is called, so a SIGHUP right after no longer ends the process. Where SIGHUP
/// does not exist, or its handler cannot be installed, the future never completes.
///
/// Must be called within a tokio runtime.
pub fn reload_on_hangup(reloader: crate::TlsReloader) -> impl Future<Output = ()> + Send {
    #[cfg(unix)]
    let hangup = {
        use tokio::signal::unix::{SignalKind, signal};
        signal(SignalKind::hangup())
            .inspect_err(|error| tracing::warn!("cannot install the SIGHUP handler: {error}"))
            .ok()
    };
    async move {
        #[cfg(unix)]
        if let Some(mut hangup) = hangup {
            while hangup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading TLS material");
                let reloader = reloader.clone();
                // Failures are logged per listener by the reload itself.
                let _ = tokio::task::spawn_blocking(move || reloader.reload()).await;
            }
        }
        #[cfg(not(unix))]
        drop(reloader);
        std::future::pending::<()>().await;
    }
}

/// Reloads the whole configuration on every SIGHUP, for as long as the returned future runs
/// (spawn it next to [`Server::run`](crate::Server::run)). `load` reads and validates the
/// configuration (typically the file the process was started with); one that does not
/// load is logged with every error, and so is one the server refuses (a port it cannot
/// bind, say): either way the running configuration stays. The handler is installed when
/// this is called. Must be called within a tokio runtime.
pub fn reload_config_on_hangup<F>(
    handle: crate::ReloadHandle,
    load: F,
) -> impl Future<Output = ()> + Send
where
    F: Fn() -> Result<gangway_config::Config, String> + Send + Sync + 'static,
{
    #[cfg(unix)]
    let hangup = {
        use tokio::signal::unix::{SignalKind, signal};
        signal(SignalKind::hangup())
            .inspect_err(|error| tracing::warn!("cannot install the SIGHUP handler: {error}"))
            .ok()
    };
    let load = std::sync::Arc::new(load);
    async move {
        // The access log of the last configuration applied here; the one installed at
        // start stays until a reload replaces it.
        #[cfg(unix)]
        let mut access_log: Option<crate::AccessLog> = None;
        #[cfg(unix)]
        if let Some(mut hangup) = hangup {
            while hangup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the configuration");
                let load = load.clone();
                let loaded = match tokio::task::spawn_blocking(move || load()).await {
                    Ok(loaded) => loaded,
                    Err(error) => Err(format!("the configuration reader failed: {error}")),
                };
                match loaded {
                    Err(errors) => {
                        handle.observer.reloaded(false);
                        tracing::error!(
                            "reload refused; the running configuration stays:\n{errors}"
                        );
                    }
                    // The server logs its own refusal or success.
                    Ok(config) => {
                        let wanted = config.server.access_log.clone();
                        if handle.reload(config).await.is_ok() {
                            match crate::AccessLog::install(&wanted) {
                                Ok(installed) => access_log = Some(installed),
                                Err(error) => tracing::error!(
                                    "the access log stays where it was: {}",
                                    error.report()
                                ),
                            }
                        }
                    }
                }
            }
        }
        #[cfg(not(unix))]
        drop((handle, load));
        std::future::pending::<()>().await;
        #[cfg(unix)]
        drop(access_log);
    }
}

/// A file holding this process's id while it lives, so `gangway reload` (and init scripts)
/// can find it; removed when dropped.
#[derive(Debug)]
pub struct PidFile {
    path: std::path::PathBuf,
}

impl PidFile {
    /// Writes the current process id to `path`.
    pub fn create(path: &std::path::Path) -> Result<Self, String> {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|error| format!("cannot write the pid file {}: {error}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // A pid file someone already removed is fine.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Sends SIGHUP to the process whose id is in `pid_file`: the running instance reloads its
/// configuration.
pub fn send_reload_signal(pid_file: &std::path::Path) -> Result<(), String> {
    let text = std::fs::read_to_string(pid_file)
        .map_err(|error| format!("cannot read {}: {error}", pid_file.display()))?;
    let pid = text
        .trim()
        .parse::<i32>()
        .map_err(|_| format!("{} holds no process id", pid_file.display()))?;
    #[cfg(unix)]
    {
        let target = rustix::process::Pid::from_raw(pid)
            .ok_or_else(|| format!("{} holds no process id", pid_file.display()))?;
        rustix::process::kill_process(target, rustix::process::Signal::HUP)
            .map_err(|error| format!("cannot signal process {pid}: {error}"))
    }
    #[cfg(not(unix))]
    Err(format!("signals are not available here (process {pid})"))
}

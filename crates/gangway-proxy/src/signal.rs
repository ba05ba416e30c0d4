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

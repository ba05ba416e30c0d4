//! Hot reload: the [`Reload`] trait, change detection, and the polling watcher.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use crate::Error;

/// TLS material that can be loaded again from its files while listeners keep running.
///
/// Implemented by [`CertificateStore`](crate::CertificateStore) (certificates and keys),
/// [`ClientAuth`](crate::ClientAuth) (client CA bundle and CRLs) and
/// [`ListenerTls`](crate::ListenerTls) (both). New handshakes use the new material; open
/// connections keep what they negotiated. A reload either replaces all of an object's
/// material or none of it: when any file is missing or broken, the previous material stays
/// in use, the failure is logged at `error` naming the file, and the error is returned.
pub trait Reload: Send + Sync {
    /// Reads every file again and swaps the material in (the engine calls this on
    /// SIGHUP).
    fn reload(&self) -> Result<ReloadReport, Error>;

    /// Reloads only when the content of a watched file differs from the content seen by
    /// the last reload (successful or not), so a broken file is reported once, not on
    /// every poll. `Ok(None)` means nothing changed.
    fn reload_if_changed(&self) -> Result<Option<ReloadReport>, Error>;

    /// The files this material is read from.
    fn watched_files(&self) -> Vec<PathBuf>;
}

/// What a successful reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReloadReport {
    /// Every source that was read (file names; `in-memory ...` for inline PEM).
    pub reloaded: Vec<String>,
    /// The sources whose certificates (by SHA-256 fingerprint) differ from before.
    pub changed: Vec<String>,
}

impl ReloadReport {
    pub(crate) fn merge(mut self, other: Self) -> Self {
        self.reloaded.extend(other.reloaded);
        self.changed.extend(other.changed);
        self
    }
}

/// Remembers a digest of the watched files' content as of the last reload, and serialises
/// reloads.
#[derive(Debug, Default)]
pub(crate) struct ChangeTracker {
    last: Mutex<Option<[u8; 32]>>,
}

impl ChangeTracker {
    pub(crate) fn record(&self, files: &[PathBuf]) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(digest(files));
    }

    pub(crate) fn unchanged(&self, files: &[PathBuf]) -> bool {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) == Some(digest(files))
    }

    /// Runs `reload` with the lock held, then records the content it saw.
    pub(crate) fn run<T>(&self, files: &[PathBuf], reload: impl FnOnce() -> T) -> T {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = digest(files);
        let result = reload();
        *last = Some(seen);
        result
    }
}

/// SHA-256 over each file's name and content (or the kind of error reading it).
fn digest(files: &[PathBuf]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(file.as_os_str().as_encoded_bytes());
        hasher.update([0]);
        match std::fs::read(file) {
            Ok(content) => {
                hasher.update((content.len() as u64).to_be_bytes());
                hasher.update(&content);
            }
            Err(error) => {
                hasher.update(u64::MAX.to_be_bytes());
                hasher.update(error.kind().to_string().as_bytes());
            }
        }
    }
    hasher.finalize().into()
}

pub(crate) fn log_failure(what: &str, error: &Error) {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    tracing::error!(error = %message, "reloading {what} failed; keeping the previous material");
}

/// Polls material for file changes on the current tokio runtime; stops when dropped.
#[derive(Debug)]
pub struct Watcher {
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    /// Stops polling (the same as dropping the watcher).
    pub fn stop(self) {}
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Checks `target`'s files every `interval` and reloads it when their content changed
/// ([`Reload::reload_if_changed`]; file reads run on tokio's blocking pool). Reload
/// failures are logged by the reload itself and polling goes on.
///
/// Must be called from within a tokio runtime (with the time driver enabled); otherwise
/// [`Error::NoRuntime`]. SIGHUP handling stays with the engine, which calls
/// [`Reload::reload`].
pub fn spawn_watcher(target: Arc<dyn Reload>, interval: Duration) -> Result<Watcher, Error> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
    let task = runtime.spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let target = target.clone();
            match tokio::task::spawn_blocking(move || target.reload_if_changed()).await {
                Ok(Ok(Some(report))) => {
                    tracing::debug!(changed = ?report.changed, "watcher reloaded TLS material");
                }
                // Nothing changed, or the failure was logged by the reload.
                Ok(Ok(None) | Err(_)) => {}
                Err(join) => tracing::error!(error = %join, "TLS reload task failed"),
            }
        }
    });
    Ok(Watcher { task })
}

//! Where access-log lines go: the process-wide sink that [`AccessLog::install`] sets up.
//!
//! A request formats its line and hands it to a bounded channel; a writer thread does the
//! blocking writes, so a slow disk never stalls a response. When the channel is full the
//! line is dropped and counted, and the writer reports the count once it catches up. A
//! file is opened for appending and reopened by [`reopen_access_log`] (on SIGUSR1 through
//! [`reopen_logs_on_usr1`]), so logrotate can rename it and have new lines go to a new
//! file.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;

use arc_swap::ArcSwapOption;
use gangway_config::AccessLogFormat;

use crate::Error;

/// Lines waiting for the writer before new ones are dropped.
const QUEUE: usize = 8192;

/// The installed sink; `None` leaves the default line to `tracing`.
// Read once per request: an atomic load, no lock.
static SINK: ArcSwapOption<Sink> = ArcSwapOption::const_empty();

#[derive(Debug)]
struct Sink {
    format: AccessLogFormat,
    lines: SyncSender<Message>,
    shared: Arc<Shared>,
}

/// What the request side and the writer thread both see.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    dropped: AtomicU64,
    reopen: AtomicBool,
}

/// The access log of this process, installed by [`AccessLog::install`]. Dropping it
/// uninstalls it (unless another has been installed since), writes out the lines still
/// queued and closes the file.
#[derive(Debug)]
pub struct AccessLog {
    sink: Option<Arc<Sink>>,
    writer: Option<JoinHandle<()>>,
}

impl AccessLog {
    /// Sends access-log lines where `config` says, replacing the access log installed
    /// before (a configuration reload may call this again; lines already queued still go
    /// to the old destination). The `default` format to standard error needs no sink:
    /// lines stay `tracing` events on target `gangway::access`, as without this call.
    ///
    /// # Errors
    ///
    /// [`Error::AccessLog`] when the file cannot be opened for appending.
    pub fn install(config: &gangway_config::AccessLog) -> Result<Self, Error> {
        if config.format == AccessLogFormat::Default && config.path.is_none() {
            set(None);
            return Ok(Self {
                sink: None,
                writer: None,
            });
        }
        let (lines, shared, writer) =
            start_writer(config.path.as_deref()).map_err(|source| Error::AccessLog {
                path: config.path.clone().unwrap_or_else(|| "<stderr>".into()),
                source,
            })?;
        let sink = Arc::new(Sink {
            format: config.format,
            lines,
            shared,
        });
        set(Some(sink.clone()));
        Ok(Self {
            sink: Some(sink),
            writer: Some(writer),
        })
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        let Some(sink) = self.sink.take() else {
            return;
        };
        // Uninstalled only if it is still the one installed.
        let _ = SINK.compare_and_swap(&Some(sink.clone()), None);
        // With the last sender gone the writer drains the queue and ends.
        drop(sink);
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// Opens `path` (standard error if `None`) and starts the writer thread on it.
pub(crate) fn start_writer(
    path: Option<&Path>,
) -> io::Result<(SyncSender<Message>, Arc<Shared>, JoinHandle<()>)> {
    let output = match path {
        Some(path) => Output::File {
            writer: BufWriter::new(open(path)?),
            path: path.to_owned(),
        },
        None => Output::Stderr,
    };
    let (lines, receiver) = std::sync::mpsc::sync_channel(QUEUE);
    let shared = Arc::new(Shared::default());
    let writer = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("gangway-access-log".to_owned())
            .spawn(move || write_lines(&receiver, output, &shared))?
    };
    Ok((lines, shared, writer))
}

fn set(sink: Option<Arc<Sink>>) {
    SINK.store(sink);
}

/// Hands the line `make` formats to the installed access log; `false` when there is none.
/// Never blocks: a full queue drops the line and counts it.
pub(crate) fn write(make: impl FnOnce(AccessLogFormat) -> String) -> bool {
    let installed = SINK.load();
    let Some(sink) = installed.as_ref() else {
        return false;
    };
    match sink.lines.try_send(Message::Line(make(sink.format))) {
        Ok(()) | Err(TrySendError::Disconnected(_)) => {}
        Err(TrySendError::Full(_)) => {
            sink.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
    true
}

/// Reopens the access-log file of the installed access log (after logrotate renamed it):
/// lines written from then on go to a file at the configured path, created if needed. If
/// it cannot be opened the old file is kept and the failure logged. Returns at once; the
/// writer thread reopens before its next write.
pub fn reopen_access_log() {
    let installed = SINK.load();
    if let Some(sink) = installed.as_ref() {
        sink.shared.request_reopen(&sink.lines);
    }
}

impl Shared {
    /// Asks the writer to reopen its file after the lines queued so far; with the queue
    /// full, before the next line it writes.
    pub(crate) fn request_reopen(&self, lines: &SyncSender<Message>) {
        if let Err(TrySendError::Full(_)) = lines.try_send(Message::Reopen) {
            self.reopen.store(true, Ordering::Release);
        }
    }
}

/// What the writer thread is sent.
#[derive(Debug)]
pub(crate) enum Message {
    /// A line to write, with its newline.
    Line(String),
    /// Reopen the file.
    Reopen,
}

/// Reopens the access-log file ([`reopen_access_log`]) on every SIGUSR1, for as long as
/// the returned future runs. The handler is installed when this is called, so a SIGUSR1
/// right after no longer ends the process. Where SIGUSR1 does not exist, or its handler
/// cannot be installed, the future never completes.
///
/// Must be called within a tokio runtime.
pub fn reopen_logs_on_usr1() -> impl Future<Output = ()> + Send {
    #[cfg(unix)]
    let usr1 = {
        use tokio::signal::unix::{SignalKind, signal};
        signal(SignalKind::user_defined1())
            .inspect_err(|error| tracing::warn!("cannot install the SIGUSR1 handler: {error}"))
            .ok()
    };
    async move {
        #[cfg(unix)]
        if let Some(mut usr1) = usr1 {
            while usr1.recv().await.is_some() {
                tracing::info!("SIGUSR1: reopening the access log");
                reopen_access_log();
            }
        }
        std::future::pending::<()>().await;
    }
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

enum Output {
    Stderr,
    File {
        path: PathBuf,
        writer: BufWriter<File>,
    },
}

impl Output {
    fn write_line(&mut self, line: &str) -> io::Result<()> {
        match self {
            Self::Stderr => io::stderr().lock().write_all(line.as_bytes()),
            Self::File { writer, .. } => writer.write_all(line.as_bytes()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Stderr => Ok(()),
            Self::File { writer, .. } => writer.flush(),
        }
    }

    fn reopen(&mut self) {
        let Self::File { path, writer } = self else {
            return;
        };
        match open(path) {
            Ok(file) => {
                *writer = BufWriter::new(file);
                tracing::info!(path = %path.display(), "access log reopened");
            }
            Err(error) => tracing::error!(
                path = %path.display(),
                "access log: cannot reopen, writing on to the old file: {error}"
            ),
        }
    }
}

/// The writer thread: waits for a line, writes it and whatever else is queued, then
/// flushes; reopens the file when asked. Ends when every sender is gone.
fn write_lines(receiver: &Receiver<Message>, mut output: Output, shared: &Shared) {
    let mut failing = false;
    while let Ok(first) = receiver.recv() {
        let mut next = Some(first);
        let mut result = Ok(());
        while let Some(message) = next.take() {
            let reopen = shared.reopen.swap(false, Ordering::AcqRel);
            if reopen || matches!(message, Message::Reopen) {
                result = result.and(output.flush());
                output.reopen();
            }
            if let Message::Line(line) = message {
                result = result.and(output.write_line(&line));
            }
            next = receiver.try_recv().ok();
        }
        result = result.and(output.flush());
        // Report a failing disk once, and again only after it recovered.
        match result {
            Err(error) if !failing => {
                failing = true;
                tracing::error!("access log: cannot write: {error}");
            }
            Err(_) => {}
            Ok(()) => failing = false,
        }
        let dropped = shared.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!("access log: {dropped} lines dropped, the writer fell behind");
        }
    }
    let _ = output.flush();
}

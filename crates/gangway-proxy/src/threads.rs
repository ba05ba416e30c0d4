//! The threads a gangway binary serves on, sized like nginx's `worker_processes auto`: a
//! main thread that accepts connections and runs the housekeeping (admin listener, health
//! checks, reloads, signals), and worker threads that each serve whole connections on a
//! runtime of their own.
//!
//! Each worker runs tokio's current-thread runtime, as each nginx worker is one process with
//! one event loop: a connection, its requests and its tunnels stay on one thread (idle
//! upstream connections are shared by all workers). Per CPU-second that served a third to
//! a half more requests than tokio's multi-thread scheduler on one core, and about a sixth
//! more on two (`docs/benchmarks.md`): no cross-thread wake-ups and no work-stealing
//! bookkeeping on a request's path.

use std::ffi::OsStr;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use tokio::net::TcpStream;
use tokio::runtime::{Builder, Handle, Runtime};
use tokio::sync::oneshot;

/// The environment variable that sets the number of worker threads (tokio's own name for it).
pub const WORKER_THREADS_VAR: &str = "TOKIO_WORKER_THREADS";

/// Why the threads could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The worker-thread variable is set to something other than a positive whole number.
    #[error("{WORKER_THREADS_VAR}=`{value}`: expected a whole number of threads, 1 or more")]
    BadWorkerThreads {
        /// The value as set.
        value: String,
    },
    /// The operating system refused a thread or an I/O driver.
    #[error("cannot start the runtime: {0}")]
    Build(#[source] std::io::Error),
}

/// The number of threads to serve on: [`WORKER_THREADS_VAR`] when set, otherwise the CPUs
/// this process may run on (its affinity mask and cgroup quota count, so `taskset -c 0`
/// gives 1).
pub fn worker_threads() -> Result<NonZeroUsize, RuntimeError> {
    let cpus = std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN);
    threads_from(std::env::var_os(WORKER_THREADS_VAR).as_deref(), cpus)
}

fn threads_from(value: Option<&OsStr>, cpus: NonZeroUsize) -> Result<NonZeroUsize, RuntimeError> {
    let Some(value) = value else {
        return Ok(cpus);
    };
    value
        .to_str()
        .and_then(|text| text.trim().parse::<NonZeroUsize>().ok())
        .ok_or_else(|| RuntimeError::BadWorkerThreads {
            value: value.to_string_lossy().into_owned(),
        })
}

/// The main thread's runtime and the [`Workers`] for a binary: see [`start_threads`].
#[derive(Debug)]
pub struct Threads {
    /// A current-thread runtime for the thread that calls `block_on`.
    pub runtime: Runtime,
    /// The threads that serve connections; hand them to [`Server::spread_over`](crate::Server::spread_over).
    pub workers: Workers,
}

/// The main thread's runtime and [`worker_threads`] workers. With one, there is no extra
/// thread: connections are served on the main thread, everything on one thread.
pub fn start_threads() -> Result<Threads, RuntimeError> {
    let threads = worker_threads()?;
    let runtime = current_thread_runtime()?;
    let workers = if threads.get() == 1 {
        Workers::here()
    } else {
        Workers::start(threads)?
    };
    Ok(Threads { runtime, workers })
}

fn current_thread_runtime() -> Result<Runtime, RuntimeError> {
    Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RuntimeError::Build)
}

/// Threads that serve connections, each on a current-thread runtime of its own. A new
/// connection goes to the worker with the fewest live tasks: connections, and what they
/// started there (HTTP/2 streams, WebSocket tunnels, upstream connections), so long-lived
/// tunnels count as the load they are.
///
/// Cloning is cheap; the threads stop when the last clone is dropped (connections still
/// open on them are cut). [`Workers::here`] has no threads: connections are served on the
/// runtime that accepted them, which is what a [`Server`](crate::Server) does by default.
#[derive(Debug, Clone)]
pub struct Workers {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    workers: Vec<Worker>,
    /// What each worker was given, in worker order; shared with `/metrics`, which must not
    /// keep the threads themselves alive.
    loads: Arc<[WorkerLoad]>,
    /// Where the search for the least busy worker starts, so that ties rotate.
    next: AtomicUsize,
}

/// The connections one worker thread was given: what `/metrics` shows of the balance.
#[derive(Debug, Default)]
pub(crate) struct WorkerLoad {
    /// Connections handed to the worker since the start.
    pub(crate) connections: AtomicU64,
    /// Of those, the ones it still serves.
    pub(crate) open: AtomicUsize,
}

/// Counts a connection as open on its worker until it is dropped.
struct OpenOnWorker {
    loads: Arc<[WorkerLoad]>,
    index: usize,
}

impl Drop for OpenOnWorker {
    fn drop(&mut self) {
        if let Some(load) = self.loads.get(self.index) {
            load.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[derive(Debug)]
struct Worker {
    handle: Handle,
    /// Dropped to stop the thread.
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Workers {
    /// No worker threads: connections are served where they were accepted.
    pub fn here() -> Self {
        Self {
            inner: Arc::new(Inner::default()),
        }
    }

    /// Starts `count` threads named `gangway-worker-N`, each running a current-thread runtime
    /// with every driver enabled.
    pub fn start(count: NonZeroUsize) -> Result<Self, RuntimeError> {
        let mut workers = Vec::with_capacity(count.get());
        for index in 0..count.get() {
            let runtime = current_thread_runtime()?;
            let handle = runtime.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("gangway-worker-{index}"))
                .spawn(move || {
                    // Either a stop or the sender gone ends the thread.
                    let _ = runtime.block_on(stopped);
                    // Connections still open are cut rather than waited for: the server's
                    // drain has given them their time already.
                    runtime.shutdown_background();
                })
                .map_err(RuntimeError::Build)?;
            workers.push(Worker {
                handle,
                stop: Some(stop),
                thread: Some(thread),
            });
        }
        let loads = workers.iter().map(|_| WorkerLoad::default()).collect();
        Ok(Self {
            inner: Arc::new(Inner {
                workers,
                loads,
                next: AtomicUsize::new(0),
            }),
        })
    }

    /// What each worker was given, in worker order (empty for [`here`](Self::here)).
    pub(crate) fn loads(&self) -> Arc<[WorkerLoad]> {
        Arc::clone(&self.inner.loads)
    }

    /// How many worker threads there are (0 for [`here`](Self::here)).
    pub fn len(&self) -> usize {
        self.inner.workers.len()
    }

    /// Whether there are no worker threads.
    pub fn is_empty(&self) -> bool {
        self.inner.workers.is_empty()
    }

    /// The live tasks on each worker, in worker order: what balancing compares.
    pub fn tasks(&self) -> Vec<usize> {
        self.inner.workers.iter().map(Worker::tasks).collect()
    }

    /// Serves `stream` with `serve` on the least busy worker, or on the current runtime
    /// when there are none. The stream moves to the worker's I/O driver.
    pub(crate) fn serve<F>(
        &self,
        stream: TcpStream,
        serve: impl FnOnce(TcpStream) -> F + Send + 'static,
    ) where
        F: Future<Output = ()> + Send + 'static,
    {
        let Some((index, worker)) = self.least_busy() else {
            tokio::spawn(serve(stream));
            return;
        };
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!("cannot hand a connection to a worker: {error}");
                return;
            }
        };
        let loads = self.loads();
        if let Some(load) = loads.get(index) {
            load.connections.fetch_add(1, Ordering::Relaxed);
            load.open.fetch_add(1, Ordering::Relaxed);
        }
        let open = OpenOnWorker { loads, index };
        worker.handle.spawn(async move {
            let _open = open;
            match TcpStream::from_std(stream) {
                Ok(stream) => serve(stream).await,
                Err(error) => tracing::warn!("a worker cannot take a connection: {error}"),
            }
        });
    }

    /// The worker with the fewest live tasks, and its index.
    fn least_busy(&self) -> Option<(usize, &Worker)> {
        let workers = &self.inner.workers;
        if workers.is_empty() {
            return None;
        }
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed);
        (0..workers.len())
            .map(|offset| (start + offset) % workers.len())
            .map(|index| (index, &workers[index]))
            .min_by_key(|(_, worker)| worker.tasks())
    }
}

impl Worker {
    fn tasks(&self) -> usize {
        self.handle.metrics().num_alive_tasks()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for worker in &mut self.workers {
            drop(worker.stop.take());
        }
        for worker in &mut self.workers {
            if let Some(thread) = worker.thread.take() {
                // A worker that panicked has nothing left to stop.
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    fn threads(value: Option<&str>, cpus: usize) -> Result<usize, String> {
        let cpus = NonZeroUsize::new(cpus).ok_or("zero cpus")?;
        threads_from(value.map(OsStr::new), cpus)
            .map(NonZeroUsize::get)
            .map_err(|error| error.to_string())
    }

    #[test]
    fn the_variable_wins_over_the_cpu_count() {
        assert_eq!(threads(None, 4), Ok(4));
        assert_eq!(threads(Some("1"), 4), Ok(1));
        assert_eq!(threads(Some(" 3 "), 1), Ok(3));
    }

    #[test]
    fn a_bad_value_is_an_error_naming_it() {
        for bad in ["0", "-1", "two", ""] {
            assert_eq!(
                threads(Some(bad), 2),
                Err(format!(
                    "TOKIO_WORKER_THREADS=`{bad}`: expected a whole number of threads, 1 or more"
                ))
            );
        }
    }

    /// Accepts `count` connections and hands each to `workers`; each connection answers with
    /// the name of the thread serving it once it has read a byte, then waits for EOF.
    async fn serve_names(workers: &Workers, count: usize) -> Vec<TcpStream> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut clients = Vec::new();
        for _ in 0..count {
            let client = TcpStream::connect(address).await.unwrap();
            let (stream, _) = listener.accept().await.unwrap();
            workers.serve(stream, |mut stream| async move {
                let mut byte = [0; 1];
                if stream.read_exact(&mut byte).await.is_ok() {
                    let name = std::thread::current().name().unwrap_or("-").to_owned();
                    let _ = stream.write_all(format!("{name}\n").as_bytes()).await;
                    let _ = stream.read(&mut byte).await;
                }
            });
            clients.push(client);
        }
        clients
    }

    async fn thread_of(client: &mut TcpStream) -> String {
        client.write_all(b"?").await.unwrap();
        let mut name = Vec::new();
        let mut byte = [0; 1];
        while tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut byte))
            .await
            .unwrap()
            .is_ok()
            && byte[0] != b'\n'
        {
            name.push(byte[0]);
        }
        String::from_utf8(name).unwrap()
    }

    /// (connections handed over, connections open) of each worker.
    fn loads(workers: &Workers) -> Vec<(u64, usize)> {
        workers
            .loads()
            .iter()
            .map(|load| {
                (
                    load.connections.load(Ordering::Relaxed),
                    load.open.load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    async fn until_tasks(workers: &Workers, expected: &[usize]) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while workers.tasks() != expected {
            assert!(
                tokio::time::Instant::now() < deadline,
                "tasks {:?}, expected {expected:?}",
                workers.tasks()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn connections_go_to_the_least_busy_worker_and_are_served_there() {
        let workers = Workers::start(NonZeroUsize::new(2).unwrap()).unwrap();
        let clients = serve_names(&workers, 4).await;
        until_tasks(&workers, &[2, 2]).await;
        let mut served = Vec::new();
        for mut client in clients {
            served.push((thread_of(&mut client).await, client));
        }
        let mut names: Vec<&str> = served.iter().map(|(name, _)| name.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "gangway-worker-0",
                "gangway-worker-0",
                "gangway-worker-1",
                "gangway-worker-1"
            ]
        );

        assert_eq!(loads(&workers), [(2, 2), (2, 2)]);

        // Both connections on worker 0 end: the next two both go to it.
        served.retain(|(name, _)| name != "gangway-worker-0");
        until_tasks(&workers, &[0, 2]).await;
        assert_eq!(loads(&workers), [(2, 0), (2, 2)]);
        let more = serve_names(&workers, 2).await;
        until_tasks(&workers, &[2, 2]).await;
        for mut client in more {
            assert_eq!(thread_of(&mut client).await, "gangway-worker-0");
        }
        drop(served);
        until_tasks(&workers, &[0, 0]).await;
        assert_eq!(loads(&workers), [(4, 0), (2, 0)], "what /metrics shows");
    }

    #[tokio::test]
    async fn without_workers_a_connection_is_served_on_the_current_runtime() {
        let workers = Workers::here();
        assert!(workers.is_empty());
        let current = std::thread::current().name().unwrap_or("-").to_owned();
        let mut clients = serve_names(&workers, 1).await;
        assert_eq!(thread_of(&mut clients[0]).await, current);
        assert!(workers.tasks().is_empty());
        assert!(loads(&workers).is_empty());
    }
}

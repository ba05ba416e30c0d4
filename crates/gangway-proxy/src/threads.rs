//! The tokio runtime a gangway binary serves on, sized like nginx's `worker_processes auto`.

use std::ffi::OsStr;
use std::num::NonZeroUsize;

use tokio::runtime::{Builder, Runtime};

/// The environment variable that sets the number of worker threads (tokio's own name for it).
pub const WORKER_THREADS_VAR: &str = "TOKIO_WORKER_THREADS";

/// Why the runtime could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The worker-thread variable is set to something other than a positive whole number.
    #[error("{WORKER_THREADS_VAR}=`{value}`: expected a whole number of threads, 1 or more")]
    BadWorkerThreads {
        /// The value as set.
        value: String,
    },
    /// The operating system refused a thread or the I/O driver.
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

/// A runtime with [`worker_threads`] threads and every driver enabled.
///
/// With one thread it is tokio's current-thread runtime: everything runs on the thread that
/// calls `block_on`, as in one nginx worker. On one core that serves a third to a half more
/// requests than the multi-thread scheduler with a single worker (`docs/benchmarks.md`), which
/// pays for cross-thread wake-ups and work-stealing bookkeeping it cannot use.
pub fn build_runtime() -> Result<Runtime, RuntimeError> {
    runtime_with(worker_threads()?)
}

fn runtime_with(threads: NonZeroUsize) -> Result<Runtime, RuntimeError> {
    let mut builder = if threads.get() == 1 {
        Builder::new_current_thread()
    } else {
        let mut builder = Builder::new_multi_thread();
        // Set explicitly so that tokio never reads (and panics on) the variable itself.
        builder.worker_threads(threads.get());
        builder
    };
    builder.enable_all().build().map_err(RuntimeError::Build)
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn one_thread_runs_tasks_on_the_calling_thread_more_use_the_multi_thread_scheduler()
    -> Result<(), RuntimeError> {
        let one = runtime_with(NonZeroUsize::MIN)?;
        assert_eq!(
            one.handle().runtime_flavor(),
            tokio::runtime::RuntimeFlavor::CurrentThread
        );
        let caller = std::thread::current().id();
        let task_thread =
            one.block_on(async { tokio::spawn(async { std::thread::current().id() }).await });
        assert_eq!(task_thread.ok(), Some(caller));

        let two = runtime_with(
            NonZeroUsize::new(2).ok_or(RuntimeError::BadWorkerThreads { value: "2".into() })?,
        )?;
        assert_eq!(
            two.handle().runtime_flavor(),
            tokio::runtime::RuntimeFlavor::MultiThread
        );
        Ok(())
    }
}

//! What every Hearth process sets up, in one place: logging ([`logging`]:
//! journald under systemd, stderr otherwise), the stop signal
//! ([`shutdown_signal`]), the async runtime and exit code ([`run`]), the
//! wall clock that shells read and pass to pure decisions ([`clock`]), and
//! locks that survive a panicked holder ([`lock`]), and an error with its
//! causes on one line ([`error_chain`]), and what a command-line tool
//! draws at a terminal ([`terminal`]).

pub mod clock;
pub mod logging;
mod signal;
pub mod terminal;

pub use logging::init;
pub use signal::shutdown_signal;

use std::future::Future;
use std::process::ExitCode;
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// How many threads a process's runtime runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    /// One thread: replies are relays of small events between sockets, and
    /// one thread spares a cross-core wake-up per hop (the gateway).
    One,
    /// One worker per core.
    PerCore,
}

/// Runs `main` on a new runtime; prints its error (with its causes) and
/// exits non-zero when it fails.
pub fn run<F>(threads: Threads, main: F) -> ExitCode
where
    F: Future<Output = anyhow::Result<()>>,
{
    let runtime = match threads {
        Threads::One => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Threads::PerCore => tokio::runtime::Runtime::new(),
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Locks `mutex`, also when a thread panicked holding it: Hearth's shared
/// state stays consistent between statements, so the data is still good.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reads `lock`, also when a writer panicked (see [`lock`]).
pub fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Writes `lock`, also when a holder panicked (see [`lock`]).
pub fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An error and its causes, on one line (`error: cause: cause`): HTTP
/// clients hide what went wrong (a refused connection, a TLS failure) in
/// the causes.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chain_names_every_cause() {
        let error = anyhow::anyhow!("connection refused")
            .context("error sending request")
            .context("cannot reach the provider");
        assert_eq!(
            error_chain(error.as_ref()),
            "cannot reach the provider: error sending request: connection refused"
        );
    }

    #[test]
    fn a_lock_survives_a_panicked_holder() {
        let shared = std::sync::Arc::new(Mutex::new(1));
        let held = std::sync::Arc::clone(&shared);
        let _ = std::thread::spawn(move || {
            let _guard = held.lock().unwrap();
            panic!("while holding the lock");
        })
        .join();
        assert!(shared.is_poisoned());
        *lock(&shared) += 1;
        assert_eq!(*lock(&shared), 2);
    }

    #[test]
    fn run_reports_failure_as_an_exit_code() {
        assert_eq!(run(Threads::One, async { Ok(()) }), ExitCode::SUCCESS);
        assert_eq!(
            run(Threads::PerCore, async { anyhow::bail!("no") }),
            ExitCode::FAILURE
        );
    }
}

//! Logging. Under systemd (when stderr is connected to the journal) events go to
//! journald with their level as priority and their fields as `KEY=VALUE`
//! entries, through `systemd-journal-logger`. Anywhere else they go to stderr.
//! The filter comes from `HEARTH_LOG`, then `RUST_LOG`, then the default.
//!
//! Hearth never logs secrets, prompts or message contents at any level;
//! per-packet and per-token detail is TRACE only.

use std::fmt::Write as _;

use systemd_journal_logger::JournalLog;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber. `default` is the filter used when neither
/// `HEARTH_LOG` nor `RUST_LOG` is set, e.g. `"info"`.
pub fn init(default: &str) {
    let filter = EnvFilter::try_from_env("HEARTH_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default));
    if systemd_journal_logger::connected_to_journal()
        && let Ok(journal) = JournalLog::new()
    {
        tracing_subscriber::registry()
            .with(filter)
            .with(JournalLayer { journal })
            .init();
        return;
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, not in files or `podman logs`.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Sends each event to journald.
struct JournalLayer {
    journal: JournalLog,
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={value}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for JournalLayer {
    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        let metadata = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = match *metadata.level() {
            Level::ERROR => log::Level::Error,
            Level::WARN => log::Level::Warn,
            Level::INFO => log::Level::Info,
            Level::DEBUG => log::Level::Debug,
            Level::TRACE => log::Level::Trace,
        };
        let text = format!("{}{}", fields.message, fields.rest);
        log::Log::log(
            &self.journal,
            &log::Record::builder()
                .level(level)
                .target(metadata.target())
                .module_path(metadata.module_path())
                .file(metadata.file())
                .line(metadata.line())
                .args(format_args!("{text}"))
                .build(),
        );
    }
}

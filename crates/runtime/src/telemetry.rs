//! Logging: `tracing` to stderr, human-readable or one JSON object a line.

use tracing_subscriber::EnvFilter;

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A tracing filter such as `info` or `shelfwatch=debug,sqlx=warn`;
    /// `RUST_LOG` wins when set.
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            filter: "info,sqlx=warn".to_owned(),
        }
    }
}

/// Keeps the log writer running; dropping it writes out every line still
/// queued. Hold it for the life of the process.
pub struct LogGuard {
    _writer: Option<tracing_appender::non_blocking::WorkerGuard>,
}

/// Installs the global subscriber. `RUST_LOG` overrides `default_filter`.
/// Calling it twice is harmless (the second call does nothing).
///
/// Lines are formatted on the thread that logs and written to stderr by a
/// writer thread, in batches: a request's access line costs a copy into a
/// queue, not a system call on the request's path. The queue blocks when
/// full rather than dropping lines.
pub fn init(format: LogFormat, default_filter: &str) -> LogGuard {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(default_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("shelfwatch-log")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    // Colour codes only for a person at a terminal: a file, a pipe or a
    // log collector gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    let installed = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    LogGuard {
        _writer: installed.is_ok().then_some(guard),
    }
}

//! Log output: human-readable lines by default, one JSON object per line
//! with `--log-format json`, to stderr.

use std::io::IsTerminal;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `tracing`'s compact text lines, for a terminal.
    #[default]
    Human,
    /// One JSON object per line, for a log pipeline.
    Json,
}

/// Installs the global subscriber. The level comes from `IDEM_LOG`, else
/// `RUST_LOG`, else `info`; both take `tracing`'s filter syntax (e.g.
/// `info,idem::request=warn` silences the per-request lines).
pub fn init(format: LogFormat) {
    let filter = std::env::var("IDEM_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    // Colours only on a terminal: escape codes in a log file or pipeline
    // are noise that breaks every grep.
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        // Fields at the top level (not under "fields"), so that a pipeline
        // reads `outcome` rather than `fields.outcome`.
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

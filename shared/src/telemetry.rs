//! Logging set-up. In Lambda, JSON lines without timestamps (CloudWatch stamps each line).

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        // Colours for a person at a terminal only: in a file or a pipe they are escape codes.
        .with_ansi(std::io::stdout().is_terminal());
    // try_init: tests and the local server may initialise more than once in one process.
    if json {
        crate::metrics::enable();
    }
    let _ = if json {
        builder.json().without_time().try_init()
    } else {
        builder.try_init()
    };
}

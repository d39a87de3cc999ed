//! Tracing setup for the binaries modal builds (user programs, containers, the CLI).

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// What `RUST_LOG` asks for (`warn`, `modal=debug,tonic=info`…); warnings when it is unset or
/// not understood.
fn filter() -> Targets {
    std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::WARN))
}

/// Installs a stderr subscriber filtered by `RUST_LOG` (default: warnings), once.
pub(crate) fn init() {
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let _ = tracing_subscriber::registry()
        .with(output)
        .with(filter())
        .try_init();
}

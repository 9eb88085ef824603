//! `iii-gateway` command line.

use clap::Parser;

/// The security edge for the iii function engine.
#[derive(Debug, Parser)]
#[command(name = "iii-gateway", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "iii-gateway: the RBAC listener and edge routes are not built yet");
}

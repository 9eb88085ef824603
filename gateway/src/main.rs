//! `iii-gateway` command line.

mod policy_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The security edge for the iii function engine.
#[derive(Debug, Parser)]
#[command(name = "iii-gateway", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with RBAC policies.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Policy(command)) => policy_cmd::run(&command),
        None => {
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init();
            tracing::info!(
                version = env!("CARGO_PKG_VERSION"),
                "iii-gateway: the RBAC listener and edge routes are not built yet"
            );
            ExitCode::SUCCESS
        }
    }
}

//! `iii-gateway [run] --config FILE [--ready-file PATH]`, `iii-gateway check --config FILE`,
//! `iii-gateway dev [--ready-file PATH] [--port-base N]`, `iii-gateway policy test [PATH…]`.

mod policy_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// mimalloc: the edge allocates per request on its threads, where mimalloc costs ~11% less CPU
/// per proxied request than the system allocator, for ~1 KiB more per idle RBAC session
/// (BENCHMARKS.md, edge and gateway).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The security edge for the iii function engine.
#[derive(Debug, Parser)]
#[command(
    name = "iii-gateway",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: Option<RunArgs>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Run(RunArgs),
    /// Validate a config and print what it would serve (exit 1 on error).
    Check {
        /// The gateway config file.
        #[arg(long, short = 'c')]
        config: PathBuf,
    },
    /// Local development: an embedded engine and the gateway, self-signed TLS, fixed ports.
    Dev(DevArgs),
    /// Work with RBAC policies.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
}

/// `iii-gateway run` arguments.
#[derive(Debug, Args)]
struct RunArgs {
    /// The gateway config file.
    #[arg(long, short = 'c')]
    config: PathBuf,
    /// Write `{"service","pid","addrs"}` here (atomically) once every listener accepts.
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

/// `iii-gateway dev` arguments.
#[derive(Debug, Args)]
struct DevArgs {
    /// Write `{"service","pid","addrs"}` here (atomically) once every listener accepts.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Use ports N..N+4 (engine worker, engine REST, RBAC listener, edge, admin) instead of
    /// 49134, 3111, 49135, 8443, 9464; 0 picks free ports.
    #[arg(long, value_name = "N")]
    port_base: Option<u16>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match (cli.command, cli.run) {
        (Some(Command::Policy(command)), _) => policy_cmd::run(&command),
        (Some(Command::Check { config }), _) => iii_gateway::check::run(&config),
        (Some(Command::Run(args)), _) | (None, Some(args)) => run(&args),
        (Some(Command::Dev(args)), _) => dev(args),
        (None, None) => {
            let _ = <Cli as clap::CommandFactory>::command().print_help();
            ExitCode::from(2)
        }
    }
}

fn dev(args: DevArgs) -> ExitCode {
    init_logging();
    install_crypto_provider();
    let options = iii_gateway::dev::DevOptions {
        ready_file: args.ready_file,
        port_base: args.port_base,
    };
    match iii_gateway::dev::run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// rustls' process-wide provider is ring (as pingora-rustls uses), installed before anything
/// builds a TLS config.
#[expect(
    deprecated,
    reason = "ring (as pingora-rustls uses) has no post-quantum key exchange"
)]
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn run(args: &RunArgs) -> ExitCode {
    install_crypto_provider();
    match iii_gateway::config::load_file(&args.config) {
        Ok(config) => {
            match iii_gateway::run::run(&config, args.ready_file.as_deref()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    // Telemetry may not be up yet: make sure the error is printed.
                    init_logging();
                    tracing::error!("{error}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(errors) => {
            init_logging();
            tracing::error!("{errors}");
            ExitCode::FAILURE
        }
    }
}

/// Plain stderr logging when the configured telemetry is not (yet) installed.
fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

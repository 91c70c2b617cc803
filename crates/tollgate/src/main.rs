//! The `tollgate` command: runs the broker (`serve`) and its tools (`passwd`, `admin-token`,
//! `check`, `check-config`, `ctl`).

mod admin_token;
mod check;
mod config_file;
mod ctl;
mod passwd;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use config_file::ConfigErrors;
use tollgate_broker::{BrokerConfig, Extensions, Server};
use tracing_subscriber::EnvFilter;

/// Tollgate: an MQTT broker with authentication and authorization at its core.
#[derive(Parser)]
#[command(name = "tollgate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker. With no --config, one listener on 127.0.0.1:1883 with anonymous access.
    Serve {
        /// The TOML configuration file (see docs/configuration.md).
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Keep persistent sessions and retained messages in this directory across restarts
        /// (the configuration's `[persistence] path`, which it overrides).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Check a configuration file and exit (0 when it is valid).
    CheckConfig {
        /// The TOML configuration file.
        config: PathBuf,
    },
    /// Manage a password file (like mosquitto_passwd; writes argon2id, reads Mosquitto's
    /// $6$ and $7$ lines too).
    Passwd(passwd::PasswdArgs),
    /// Make a token for the admin API: the token on standard output (once), its hash in the
    /// token file (`[admin] token_file`).
    AdminToken(admin_token::AdminTokenArgs),
    /// Explain an authorization decision (exit 0: allowed, 1: denied), or run the policy
    /// files' tests (--tests).
    Check(Box<check::CheckArgs>),
    /// The admin API from the command line: clients, kick, ban, revoke, explain, metrics
    /// (the token from TOLLGATE_ADMIN_TOKEN or --token-file).
    Ctl(Box<ctl::CtlArgs>),
}

fn main() -> ExitCode {
    give_back_large_allocations();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, data_dir } => {
            let (mut config, file) = match config {
                Some(path) => match config_file::load(&path) {
                    Ok((config, text)) => (config, Some((path, text))),
                    Err(e) => {
                        eprintln!("tollgate: {e}");
                        return ExitCode::from(2);
                    }
                },
                None => (BrokerConfig::default(), None),
            };
            if let Some(dir) = data_dir {
                config.persistence.path = Some(dir);
            }
            init_logging(&config.log_level);
            match &config.persistence.path {
                Some(path) => tracing::info!(version = env!("CARGO_PKG_VERSION"), store = %path.display(), fsync = ?config.persistence.fsync, "tollgate starting; persistence on"),
                None => tracing::info!(version = env!("CARGO_PKG_VERSION"), "tollgate starting; persistence off: sessions and retained messages live in memory and a restart forgets them"),
            }
            serve(config, file)
        }
        Command::Passwd(args) => passwd::run(args),
        Command::AdminToken(args) => admin_token::run(args),
        Command::Check(args) => check::run(*args),
        Command::Ctl(args) => ctl::run(*args),
        Command::CheckConfig { config: path } => {
            let checked = config_file::load(&path)
                .map_err(ConfigErrors::from)
                .and_then(|(config, text)| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime");
                    let _inside = runtime.enter();
                    config_file::check(&path, &text, config, Extensions::default()).map(drop)
                });
            match checked {
                Ok(()) => {
                    println!("{}: ok", path.display());
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    for e in errors.0 {
                        eprintln!("tollgate: {e}");
                    }
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// Makes glibc serve every allocation of 256 KiB or more with its own mapping, unmapped when
/// freed. By default glibc raises that threshold as large blocks are freed, so argon2's
/// working memory (19 MiB a check) ended up kept in up to one arena per thread: after a burst
/// of password checks the process held hundreds of megabytes it no longer used.
fn give_back_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets an allocator parameter; it is called once, first thing in
        // main, before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        }
    }
}

fn init_logging(level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    use std::io::IsTerminal;
    // Targets are shown: audit lines are the ones under `tollgate::audit`.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// Runs the broker until SIGINT or SIGTERM. `file`: the configuration file and its text, for
/// errors that name the line.
fn serve(config: BrokerConfig, file: Option<(PathBuf, String)>) -> ExitCode {
    // One thread: the current-thread scheduler, which runs woken connections in the order
    // they were woken (the multi-thread one runs the last woken first).
    let mut builder = if config.worker_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    if config.worker_threads > 1 {
        builder.worker_threads(config.worker_threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tollgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let prepared = match Server::prepare(config, Extensions::default()) {
            Ok(prepared) => prepared,
            Err(problems) => {
                match &file {
                    Some((path, text)) => {
                        for e in config_file::in_file(path, text, problems).0 {
                            eprintln!("tollgate: {e}");
                        }
                    }
                    None => {
                        for problem in problems {
                            eprintln!("tollgate: {problem}");
                        }
                    }
                }
                return ExitCode::from(2);
            }
        };
        // Installed before the listeners open: a SIGHUP sent once the broker logs that it is
        // listening must not find the default action (which ends the process).
        let signals = Signals::install();
        let server = match prepared.start().await {
            Ok(server) => server,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        signals
            .wait_for_shutdown(&server, file.as_ref().map(|(path, _)| path.as_path()))
            .await;
        tracing::info!("shutting down");
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// The signals `serve` answers: SIGINT and SIGTERM end it, SIGHUP reloads.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers (from here on, none of these signals has its default action).
    fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Signals {
                interrupt: signal(SignalKind::interrupt()).expect("SIGINT handler"),
                term: signal(SignalKind::terminate()).expect("SIGTERM handler"),
                hangup: signal(SignalKind::hangup()).expect("SIGHUP handler"),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Waits for SIGINT or SIGTERM; on SIGHUP meanwhile, reads the configuration file again
    /// and applies it (without one, re-reads the files it names in place).
    async fn wait_for_shutdown(mut self, server: &Server, file: Option<&Path>) {
        #[cfg(unix)]
        {
            loop {
                tokio::select! {
                    _ = self.interrupt.recv() => return,
                    _ = self.term.recv() => return,
                    _ = self.hangup.recv() => reconfigure(server, file),
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = (server, file, &mut self);
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// SIGHUP: the configuration file read again and applied to the running broker. A file that
/// cannot be used changes no setting (the error names its line and key); the files it names
/// (password files, policies, the revocation list, TLS material) are still re-read in place.
fn reconfigure(server: &Server, file: Option<&Path>) {
    let Some(path) = file else {
        server.reload();
        return;
    };
    tracing::info!(file = %path.display(), "reading the configuration again");
    let errors = match config_file::load(path) {
        Ok((config, text)) => match server.reconfigure(config) {
            Ok(_) => return,
            Err(problems) => config_file::in_file(path, &text, problems),
        },
        Err(e) => ConfigErrors::from(e),
    };
    for e in &errors.0 {
        tracing::error!("configuration not applied, the running one is kept: {e}");
    }
    server.reload();
}

//! The `sextant` binary: parses the command line and configuration, then wires storage, ingest
//! and query together. It holds no logic of its own beyond that wiring.

mod config;
mod logs;
mod rules_cli;
mod server;
mod telemetry;
mod traces;
mod tsdb_cli;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, LogFormat};

#[derive(Parser, Debug)]
#[command(
    name = "sextant",
    version,
    about = "Metrics, logs and traces in one binary, with Prometheus-compatible APIs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (data in ./data, HTTP on 127.0.0.1:9090 unless configured otherwise).
    Serve(ServeArgs),
    /// Inspect a data directory offline: `list`, `analyze`, `dump` (like `promtool tsdb`).
    Tsdb(tsdb_cli::TsdbArgs),
    /// Check configuration files: `check rules FILE…` (like `promtool check rules`).
    Check(rules_cli::CheckArgs),
    /// Run unit tests: `test rules FILE…` (like `promtool test rules`).
    Test(rules_cli::TestArgs),
}

#[derive(clap::Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// YAML configuration file; flags given on the command line override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where data is stored [default: ./data].
    #[arg(long = "data-dir")]
    data_dir: Option<PathBuf>,
    /// Address for the HTTP API and remote write [default: 127.0.0.1:9090].
    #[arg(long = "http-addr")]
    http_addr: Option<SocketAddr>,
    /// Log format [default: logfmt].
    #[arg(long = "log.format", value_enum)]
    log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `debug` [default: info].
    #[arg(long = "log.level")]
    log_level: Option<String>,
    /// WAL fsync policy: `always`, `never`, or an interval such as `1s` [default: always].
    #[arg(long = "storage.wal-fsync")]
    wal_fsync: Option<String>,
    /// Delete blocks older than this, e.g. `15d`; `0` keeps everything [default: 15d].
    #[arg(long = "storage.retention-time")]
    retention_time: Option<String>,
    /// Delete the oldest blocks when blocks and WAL exceed this many bytes [default: no limit].
    #[arg(long = "storage.retention-size-bytes")]
    retention_size_bytes: Option<u64>,
}

impl ServeArgs {
    /// The configuration file's settings with the flags applied on top.
    fn resolve(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(d) = &self.data_dir {
            config.storage.data_dir = d.clone();
        }
        if let Some(a) = self.http_addr {
            config.server.http_addr = a;
        }
        if let Some(f) = self.log_format {
            config.server.log_format = f;
        }
        if let Some(l) = &self.log_level {
            config.server.log_level = l.clone();
        }
        if let Some(w) = &self.wal_fsync {
            config.storage.wal_fsync = w.clone();
        }
        if let Some(r) = &self.retention_time {
            config.storage.retention_time = r.clone();
        }
        if let Some(r) = self.retention_size_bytes {
            config.storage.retention_size_bytes = r;
        }
        config.validate()?;
        Ok(config)
    }

    /// The flags as `/api/v1/status/flags` reports them.
    fn as_flag_map(&self, config: &Config) -> std::collections::BTreeMap<String, String> {
        let mut flags = std::collections::BTreeMap::new();
        flags.insert(
            "config.file".to_string(),
            self.config
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        );
        flags.insert(
            "storage.tsdb.path".to_string(),
            config.storage.data_dir.display().to_string(),
        );
        flags.insert(
            "web.listen-address".to_string(),
            config.server.http_addr.to_string(),
        );
        flags.insert(
            "log.format".to_string(),
            format!("{:?}", config.server.log_format).to_lowercase(),
        );
        flags.insert("log.level".to_string(), config.server.log_level.clone());
        flags.insert(
            "storage.wal-fsync".to_string(),
            config.storage.wal_fsync.clone(),
        );
        flags.insert(
            "query.lookback-delta".to_string(),
            config.query.lookback_delta.clone(),
        );
        flags.insert("query.timeout".to_string(), config.query.timeout.clone());
        flags.insert(
            "query.max-samples".to_string(),
            config.query.max_samples.to_string(),
        );
        flags
    }
}

/// mimalloc instead of glibc's allocator: ingest decodes into many small strings and vectors,
/// and glibc's malloc/free (arena locking, consolidation) took about a third of server CPU while
/// ingesting OTLP traces. `.cargo/config.toml` builds it with eager arena commit off, which
/// keeps memory it purges out of the resident set.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Tsdb(args) => tsdb_cli::run(args),
        Command::Check(args) => rules_cli::run_check(args),
        Command::Test(args) => rules_cli::run_test(args),
        Command::Serve(args) => {
            let config = match args.resolve() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("sextant: {e:#}");
                    return std::process::ExitCode::from(2);
                }
            };
            if let Err(e) =
                telemetry::init_logging(config.server.log_format, &config.server.log_level)
            {
                eprintln!("sextant: cannot set up logging: {e:#}");
                return std::process::ExitCode::from(2);
            }
            let flags = args.as_flag_map(&config);
            match server::run(config, flags) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "sextant stopped with an error");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}

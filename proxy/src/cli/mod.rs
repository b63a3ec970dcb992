//! The command line: one file per verb.

mod config_cmd;
mod daemon;
mod guardrails;
mod init;
mod key;
mod models;
mod policy;
mod route;
mod serve;
mod spend;

use bitrouter_config::{Config, ConfigError, ProcessEnv};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

/// bitrouter: an agent-native LLM router. Point agents at http://127.0.0.1:4356 and it routes
/// OpenAI, Anthropic and Google requests to every provider whose key it has.
#[derive(Debug, Parser)]
#[command(name = "bitrouter", version)]
pub struct Cli {
    /// Path to bitrouter.yaml (default: ./bitrouter.yaml, then
    /// $XDG_CONFIG_HOME/bitrouter/bitrouter.yaml, else zero-config from the environment).
    #[arg(short = 'c', long = "config", global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the router in the foreground, logging to stdout (what a supervisor should run).
    Serve {
        /// Listen address, overriding server.listen (port 0 picks a free port).
        #[arg(long, value_name = "HOST:PORT")]
        listen: Option<String>,
        /// Append log lines to this file (reopened on reload) instead of stdout.
        #[arg(long, value_name = "PATH")]
        log: Option<PathBuf>,
        /// Control socket path, overriding server.control_socket.
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// Start a new session (used by `start` and `restart`).
        #[arg(long, hide = true)]
        detach: bool,
        /// Take the listening socket over from the running router (used by `restart`).
        #[arg(long, hide = true)]
        upgrade: bool,
    },
    /// Start the router in the background; returns once it answers (pid and address printed).
    Start {
        /// Log file (default: bitrouter.log next to the config file).
        #[arg(long, value_name = "PATH")]
        log: Option<PathBuf>,
    },
    /// Stop the background router gracefully: in-flight requests and streams finish first.
    Stop {
        /// Control socket of the router (default: from the config).
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
    /// Is the router running? pid, address, config, uptime, providers, models, requests.
    /// Exit code 0 when running, 3 when not. With --requests: the last requests from the
    /// ledger instead (read from the database; the router need not run).
    Status {
        /// Control socket of the router (default: from the config).
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// List the last requests from the ledger: time, status, tokens, cost, duration,
        /// model -> provider.
        #[arg(long)]
        requests: bool,
        /// How many requests --requests lists.
        #[arg(
            short = 'n',
            value_name = "N",
            default_value_t = 20,
            requires = "requests"
        )]
        n: usize,
        /// Ledger database URL for --requests (default: database.url from the config).
        #[arg(long, value_name = "URL", requires = "requests")]
        db: Option<String>,
    },
    /// Usage and cost from the ledger: requests, tokens (uncached input, cache read, cache
    /// write, output, of which reasoning) and USD per model, provider, key, user or day, with a
    /// total. Reads the database directly; the router need not run.
    Spend {
        /// Start of the period: a duration back from now (24h, 7d, 30m) or an RFC 3339 time.
        #[arg(long, value_name = "WHEN", default_value = "24h")]
        since: String,
        /// End of the period (excluded), same forms; default now.
        #[arg(long, value_name = "WHEN")]
        until: Option<String>,
        /// What to group by (days are UTC).
        #[arg(long, value_enum, default_value = "model")]
        by: crate::ledger::Grouping,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Ledger database URL (default: database.url from the config).
        #[arg(long, value_name = "URL")]
        db: Option<String>,
    },
    /// Re-read bitrouter.yaml (and the provider keys in this shell's environment) and swap it
    /// in without dropping a request; an invalid file is rejected and the running config stays.
    /// SIGHUP does the same.
    Reload {
        /// Control socket of the router (default: from the config).
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
    /// Replace the running router with a new process (new binary or settings reload cannot
    /// change) without refusing a connection: the new one takes the listening socket over, the
    /// old one drains and exits.
    Restart {
        /// Control socket of the router (default: from the config).
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// Log file for the new process (default: the running one's).
        #[arg(long, value_name = "PATH")]
        log: Option<PathBuf>,
    },
    /// Write a commented starter bitrouter.yaml (with skip_auth: true) and, beside it, the JSON
    /// Schema editors validate it against (bitrouter.schema.json).
    Init {
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Show how a model name resolves: virtual model, endpoints, providers, protocols, URLs.
    Route {
        /// The model name as a client would send it (`smart`, `openai/gpt-4o`, `claude-sonnet-4-5`).
        model: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Guardrail commands.
    Guardrails {
        #[command(subcommand)]
        command: GuardrailsCommand,
    },
    /// List every routable model.
    Models {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Access policy commands: the files in policies/ next to bitrouter.yaml that limit what a
    /// key may do (models, monthly spend, requests per minute, expiry, tools).
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// Virtual keys (`brvk_…`): sign one per agent, list them, revoke one. They live in the
    /// ledger's database; the router need not run.
    Key {
        #[command(subcommand)]
        command: key::KeyCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum GuardrailsCommand {
    /// Show what each configured rule would do to TEXT, in each direction (exit 1 when a rule
    /// would block it). Nothing is sent anywhere.
    Test {
        /// The text to check.
        text: String,
        /// Apply the rules' scoping as for a request routed to this provider.
        #[arg(long)]
        provider: Option<String>,
        /// Apply the rules' scoping as for a request for this model.
        #[arg(long)]
        model: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check bitrouter.yaml and list every problem with its line number.
    Validate,
    /// Print the JSON Schema of bitrouter.yaml (for editors: `$schema` / yaml-language-server).
    Schema,
}

/// Parses the command line and runs the verb; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let config = cli.config.as_deref();
    let code = match cli.command {
        Command::Serve {
            listen,
            log,
            socket,
            detach,
            upgrade,
        } => serve::run(
            config,
            serve::ServeOptions {
                listen,
                log,
                socket,
                detach,
                upgrade,
            },
        ),
        Command::Start { log } => daemon::start(config, log.as_deref()),
        Command::Stop { socket } => daemon::stop(config, socket.as_deref()),
        Command::Status {
            json,
            requests: true,
            n,
            db,
            ..
        } => spend::requests(config, db.as_deref(), n, json),
        Command::Status { socket, json, .. } => daemon::status(config, socket.as_deref(), json),
        Command::Spend {
            since,
            until,
            by,
            json,
            db,
        } => spend::spend(config, db.as_deref(), &since, until.as_deref(), by, json),
        Command::Reload { socket } => daemon::reload(config, socket.as_deref()),
        Command::Restart { socket, log } => {
            daemon::restart(config, socket.as_deref(), log.as_deref())
        }
        Command::Init { force } => init::run(config, force),
        Command::Config {
            command: ConfigCommand::Validate,
        } => config_cmd::validate(config),
        Command::Config {
            command: ConfigCommand::Schema,
        } => config_cmd::schema(),
        Command::Route { model, json } => route::run(config, &model, json),
        Command::Models { json } => models::run(config, json),
        Command::Policy { command } => policy::run(config, command),
        Command::Key { command } => key::run(config, command),
        Command::Guardrails {
            command:
                GuardrailsCommand::Test {
                    text,
                    provider,
                    model,
                },
        } => guardrails::test(config, &text, provider.as_deref(), model.as_deref()),
    };
    // The caller exits with `std::process::exit`, which would not wait for queued log lines.
    crate::logger::flush(crate::server::LOG_FLUSH_LIMIT);
    code
}

/// Loads the configuration the way every verb does: explicit path, discovery, or zero-config.
pub(crate) fn load_config(explicit: Option<&Path>) -> Result<Config, ConfigError> {
    let env = ProcessEnv;
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let path = bitrouter_config::discover(explicit, &cwd, &env);
    bitrouter_config::load(path.as_deref(), &env)
}

/// Prints a load failure: one problem per line, each with file:line:col.
pub(crate) fn report_config_error(e: &ConfigError) {
    eprintln!("error: invalid configuration");
    for line in e.to_string().lines() {
        eprintln!("  {line}");
    }
}

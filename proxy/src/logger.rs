//! Logging through the `log` crate (Pingora logs through it too), to stdout or stderr.
//! `RUST_LOG` overrides `server.log_level`.

use std::io::Write;

/// Installs the process logger once. Later calls are ignored (tests may start several times).
pub fn init(level: &str) {
    let mut builder = env_logger::Builder::new();
    builder.parse_filters(level);
    // Pingora is chatty at info about its own lifecycle; keep it to warnings unless asked.
    if !level.contains("pingora") {
        builder.filter_module("pingora_core", log::LevelFilter::Warn);
        builder.filter_module("pingora_proxy", log::LevelFilter::Warn);
    }
    if let Ok(env) = std::env::var("RUST_LOG") {
        builder.parse_filters(&env);
    }
    builder.target(env_logger::Target::Stdout);
    builder.format(|buf, record| {
        writeln!(
            buf,
            "{} {:<5} {}",
            buf.timestamp_millis(),
            record.level(),
            record.args()
        )
    });
    let _ = builder.try_init();
}

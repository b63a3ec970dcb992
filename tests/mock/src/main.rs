//! `bitrouter-mock` binary: the mock provider as a standalone server, for manual runs and the
//! load benchmark. Prints the bound address on its first line (so scripts can read it), then
//! `base_url=...` and, with `--tls`, `ca_file=...`; runs until SIGINT/SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use bitrouter_mock::{MockConfig, MockUpstream, RecordMode};

const USAGE: &str = "usage: bitrouter-mock [--listen ADDR] [--tls] [--no-record | --record N] [--key KEY] [--threads N]

  --listen ADDR   address to bind (default 127.0.0.1:0)
  --tls           serve HTTPS with a generated CA (its PEM path is printed as ca_file=...)
  --no-record     keep no requests (use for load benchmarks)
  --record N      keep the last N requests for GET /__mock/requests (default 1000)
  --key KEY       accept only this credential (default: any non-empty one)
  --threads N     runtime worker threads (default: one per core)";

fn parse(args: &[String]) -> Result<MockConfig, String> {
    let mut config = MockConfig {
        record: RecordMode::Last(1000),
        ..MockConfig::default()
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--listen" => {
                let v = value("--listen")?;
                config.listen = v
                    .parse::<SocketAddr>()
                    .map_err(|e| format!("--listen {v}: {e}"))?;
            }
            "--tls" => config.tls = true,
            "--no-record" => config.record = RecordMode::Off,
            "--record" => {
                let v = value("--record")?;
                let n = v.parse().map_err(|e| format!("--record {v}: {e}"))?;
                config.record = RecordMode::Last(n);
            }
            "--key" => config.expected_key = Some(value("--key")?),
            "--threads" => {
                let v = value("--threads")?;
                config.worker_threads = Some(v.parse().map_err(|e| format!("--threads {v}: {e}"))?);
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(config)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match parse(&args) {
        Ok(config) => config,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("bitrouter-mock: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mock = match MockUpstream::try_start(config) {
        Ok(mock) => mock,
        Err(e) => {
            eprintln!("bitrouter-mock: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", mock.addr());
    let _ = writeln!(out, "base_url={}", mock.base_url());
    if let Some(ca) = mock.ca_file() {
        let _ = writeln!(out, "ca_file={}", ca.display());
    }
    let _ = out.flush();
    drop(out);

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bitrouter-mock: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(wait_for_signal());
    drop(mock); // stops the server and deletes the CA temp file
    ExitCode::SUCCESS
}

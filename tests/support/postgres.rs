//! A throwaway PostgreSQL server for the ledger tests: `initdb` into a temp dir, `postgres` on a
//! free loopback port, trust authentication, no fsync.
//!
//! The server runs under a small `sh` wrapper that stops it (fast shutdown) when our end of its
//! stdin closes, so it dies with the test process even if a test aborts; dropping the
//! [`PgCluster`] stops it too. Each test that needs one starts its own (an `initdb` takes a
//! second or two), which lets a test stop and restart its server without disturbing another.
//!
//! The binaries are looked up on `PATH`, in `/usr/local/bin` and in `/usr/lib/postgresql/*/bin`
//! (Debian's package). When none is found the tests are skipped, unless
//! `BITROUTER_TEST_REQUIRE_POSTGRES=1` (set by `scripts/test`): then they fail. As root (initdb
//! refuses root) the server runs as the `postgres` user through `runuser`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    run_as: Option<String>,
    server: Option<(Child, ChildStdin)>,
}

/// Where `initdb` and `postgres` are, if anywhere.
fn find_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push(PathBuf::from("/usr/local/bin"));
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    // The newest version first (directory names are major versions).
    debian.sort_by_key(|p| {
        std::cmp::Reverse(
            p.parent()
                .and_then(|v| v.file_name())
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0),
        )
    });
    dirs.extend(debian);
    dirs.into_iter()
        .find(|d| d.join("initdb").is_file() && d.join("postgres").is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `cmd` run as `user` (through runuser) or as ourselves.
fn command(run_as: Option<&str>, program: &Path) -> Command {
    match run_as {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

impl PgCluster {
    /// A started server, or `None` (the test should return) when PostgreSQL is not installed
    /// and not required.
    pub fn start() -> Option<PgCluster> {
        let required = std::env::var("BITROUTER_TEST_REQUIRE_POSTGRES").as_deref() == Ok("1");
        let Some(bin) = find_bin() else {
            assert!(
                !required,
                "BITROUTER_TEST_REQUIRE_POSTGRES=1 but no PostgreSQL server binaries (initdb, postgres) \
                 were found on PATH, in /usr/local/bin or in /usr/lib/postgresql/*/bin"
            );
            eprintln!("skipped: PostgreSQL is not installed (set BITROUTER_TEST_REQUIRE_POSTGRES=1 to fail instead)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let run_as = nix::unistd::geteuid()
            .is_root()
            .then(|| "postgres".to_string());
        if let Some(user) = &run_as {
            let u = nix::unistd::User::from_name(user)
                .unwrap()
                .unwrap_or_else(|| panic!("running as root, PostgreSQL needs the `{user}` user"));
            std::os::unix::fs::chown(dir.path(), Some(u.uid.as_raw()), Some(u.gid.as_raw()))
                .unwrap();
        }
        let out = command(run_as.as_deref(), &bin.join("initdb"))
            .arg("-D")
            .arg(dir.path().join("data"))
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut cluster = PgCluster {
            dir,
            bin,
            port: free_port(),
            run_as,
            server: None,
        };
        cluster.restart();
        Some(cluster)
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server (again, after [`PgCluster::stop`]) and waits until it accepts queries.
    pub fn restart(&mut self) {
        assert!(self.server.is_none(), "already running");
        const SCRIPT: &str = r#"
"$1/postgres" -D "$2/data" -p "$3" -c listen_addresses=127.0.0.1 -c unix_socket_directories="$2" \
  -c fsync=off -c full_page_writes=off -c synchronous_commit=off >>"$2/server.log" 2>&1 &
pid=$!
cat >/dev/null
kill -INT "$pid"
wait "$pid"
"#;
        let sh = Path::new("/bin/sh");
        let mut child = command(self.run_as.as_deref(), sh)
            .args(["-c", SCRIPT, "sh"])
            .arg(&self.bin)
            .arg(self.dir.path())
            .arg(self.port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        self.server = Some((child, stdin));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = postgres::Client::connect(&self.url(), postgres::NoTls)
                .is_ok_and(|mut c| c.simple_query("SELECT 1").is_ok());
            match ready {
                true => return,
                false if Instant::now() > deadline => panic!(
                    "PostgreSQL did not start; its log:\n{}",
                    std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
                ),
                false => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Stops the server (fast shutdown) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some((mut child, mut stdin)) = self.server.take() {
            let _ = stdin.flush();
            drop(stdin);
            let _ = child.wait();
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

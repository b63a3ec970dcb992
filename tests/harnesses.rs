//! The coding agents themselves as clients: Claude Code (`claude -p`), Codex CLI (`codex exec`)
//! and Gemini CLI (`gemini -p`), the real releases from npm at the versions pinned in
//! tests/harness/package.json, pointed at the real binary, which routes to the mock upstream over
//! each of the four upstream protocols. Each harness × each protocol runs one plain turn and one
//! turn with a tool call: the mock answers with a call to one of the harness's own tools, the
//! harness runs it and sends the result back, and the mock answers the result.
//!
//! What this catches: a harness release that sends a field a translator refuses shows up here as
//! a failed test whose output holds the harness's own report of bitrouter's 400, which names
//! the field (`tools[4].type: unknown tool type "namespace"`).
//!
//! The harnesses come from BITROUTER_TEST_HARNESSES (the directory holding `claude`, `codex` and
//! `gemini`; scripts/test sets it from scripts/harnesses, which installs them once into a cache
//! outside the work tree). Without it these tests fail with instructions rather than skip.
//! Telemetry, update checks and every other call home are off; each run gets its own HOME.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bitrouter_mock::MockUpstream;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::{tag, Router, RouterSpec};

/// Longest a harness may take for one run (a turn takes ~1 s; the limit is for a stuck one).
const RUN_LIMIT: Duration = Duration::from_secs(120);

struct Fixture {
    mock: MockUpstream,
    router: Router,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mock = MockUpstream::start();
        let m = mock.base_url();
        // One provider per upstream protocol; `local` stands for an OpenAI-compatible server
        // (vLLM, llama.cpp, Ollama) that speaks only Chat Completions.
        let config = format!(
            r#"
providers:
  anthropic:
    api_base: {m}
    api_key: sk-ant-test
  openai:
    api_base: {m}/v1
    api_key: sk-openai-test
    api_protocol: responses
  google:
    api_base: {m}
    api_key: goog-test
  local:
    api_base: {m}/v1
    api_key: none
    api_protocol: chat_completions
    models:
      - id: qwen3-coder
"#
        );
        let router = Router::start(RouterSpec {
            config: Some(&config),
            ..Default::default()
        });
        Fixture { mock, router }
    })
}

/// The upstream protocols, as the model a harness is asked to use and the path the mock must
/// see the request on.
#[derive(Clone, Copy, Debug)]
enum Upstream {
    Messages,
    ChatCompletions,
    Responses,
    GenerateContent,
}

impl Upstream {
    fn model(self) -> &'static str {
        match self {
            Upstream::Messages => "anthropic/claude-sonnet-4-5",
            Upstream::ChatCompletions => "local/qwen3-coder",
            Upstream::Responses => "openai/gpt-5",
            Upstream::GenerateContent => "google/gemini-2.5-pro",
        }
    }

    fn path_suffix(self) -> &'static str {
        match self {
            Upstream::Messages => "/v1/messages",
            Upstream::ChatCompletions => "/v1/chat/completions",
            Upstream::Responses => "/v1/responses",
            Upstream::GenerateContent => ":streamGenerateContent",
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Harness {
    ClaudeCode,
    Codex,
    GeminiCli,
}

impl Harness {
    fn bin(self) -> PathBuf {
        let name = match self {
            Harness::ClaudeCode => "claude",
            Harness::Codex => "codex",
            Harness::GeminiCli => "gemini",
        };
        let dir = std::env::var_os("BITROUTER_TEST_HARNESSES").unwrap_or_else(|| {
            panic!(
                "the harness tests need Claude Code, Codex CLI and Gemini CLI: run scripts/test \
                 (it installs them with scripts/harnesses), or set BITROUTER_TEST_HARNESSES to \
                 the directory `scripts/harnesses` prints"
            )
        });
        Path::new(&dir).join(name)
    }

    /// A call of one of the harness's own read-only tools that reads `file`, as the mock's
    /// tool-call marker (see tests/mock/src/reply.rs).
    fn read_tool_marker(self, file: &Path) -> String {
        let f = file.display();
        match self {
            Harness::ClaudeCode => format!(r#"[[tool:Read {{"file_path":"{f}"}}]]"#),
            Harness::Codex => format!(r#"[[tool:exec_command {{"cmd":"cat {f}"}}]]"#),
            Harness::GeminiCli => format!(r#"[[tool:read_file {{"file_path":"{f}"}}]]"#),
        }
    }
}

/// What one harness run printed.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn report(&self) -> String {
        let tail = |s: &str| {
            let start = s.len().saturating_sub(3000);
            let start = (start..=s.len())
                .find(|&i| s.is_char_boundary(i))
                .unwrap_or(s.len());
            s[start..].to_string()
        };
        format!(
            "success={}\n--- stdout (tail) ---\n{}\n--- stderr (tail) ---\n{}",
            self.success,
            tail(&self.stdout),
            tail(&self.stderr)
        )
    }
}

/// Runs `harness` non-interactively with `prompt` against the router, in a fresh HOME whose
/// work directory is `workdir`.
fn run(harness: Harness, model: &str, prompt: &str, home: &Path, workdir: &Path) -> Run {
    let base = format!("http://{}", fixture().router.addr);
    run_with(&base, None, harness, model, prompt, home, workdir)
}

/// [`run`] against the router at `base`, with `key` (a `brvk_` virtual key) as the harness's
/// credential when given.
fn run_with(
    base: &str,
    key: Option<&str>,
    harness: Harness,
    model: &str,
    prompt: &str,
    home: &Path,
    workdir: &Path,
) -> Run {
    let base = base.to_string();
    let mut cmd = Command::new(harness.bin());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("TERM", "dumb")
        .env("NO_COLOR", "1")
        .current_dir(workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match harness {
        Harness::ClaudeCode => {
            cmd.env("ANTHROPIC_BASE_URL", &base)
                .env("ANTHROPIC_API_KEY", key.unwrap_or("sk-ant-harness"))
                .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
                .env("DISABLE_AUTOUPDATER", "1")
                .env("DISABLE_TELEMETRY", "1")
                .env("DISABLE_ERROR_REPORTING", "1")
                .args(["-p", prompt, "--model", model, "--allowedTools", "Read"]);
        }
        Harness::Codex => {
            let codex_home = home.join(".codex");
            std::fs::create_dir_all(&codex_home).unwrap();
            // docs/harnesses.md gives the same settings.
            let toml = format!(
                r#"model_provider = "bitrouter"
check_for_update_on_startup = false

[model_providers.bitrouter]
name = "bitrouter"
base_url = "{base}/v1"
env_key = "BITROUTER_API_KEY"
wire_api = "responses"

[analytics]
enabled = false
"#
            );
            std::fs::write(codex_home.join("config.toml"), toml).unwrap();
            cmd.env("CODEX_HOME", &codex_home)
                .env("BITROUTER_API_KEY", key.unwrap_or("harness-key"))
                .args(["exec", "--skip-git-repo-check", "-m", model, prompt]);
        }
        Harness::GeminiCli => {
            let gemini_home = home.join(".gemini");
            std::fs::create_dir_all(&gemini_home).unwrap();
            std::fs::write(
                gemini_home.join("settings.json"),
                r#"{"security": {"auth": {"selectedType": "gemini-api-key"}},
                    "privacy": {"usageStatisticsEnabled": false},
                    "telemetry": {"enabled": false},
                    "general": {"disableAutoUpdate": true, "disableUpdateNag": true}}"#,
            )
            .unwrap();
            cmd.env("GOOGLE_GEMINI_BASE_URL", &base)
                .env("GEMINI_API_KEY", key.unwrap_or("goog-harness"))
                .env("GEMINI_CLI_TRUST_WORKSPACE", "true")
                .args(["-p", prompt, "-m", model]);
        }
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{harness:?} ({}): {e}", harness.bin().display()));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut run = Run {
        success: status.is_some_and(|s| s.success()),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    };
    if status.is_none() {
        run.stderr
            .push_str(&format!("\n[killed after {} s]", RUN_LIMIT.as_secs()));
    }
    run
}

/// One plain turn and one tool-call turn of `harness` on `upstream`.
fn agent_turns(harness: Harness, upstream: Upstream) {
    let f = fixture();
    let t = tag(&format!("{harness:?}-{upstream:?}").to_lowercase());
    let home = tempfile::tempdir().unwrap();
    let workdir = home.path().join("project");
    std::fs::create_dir_all(&workdir).unwrap();
    let model = upstream.model();

    // A plain turn: the mock echoes the last user text.
    let run1 = run(
        harness,
        model,
        &format!("say hello {t}"),
        home.path(),
        &workdir,
    );
    assert!(
        run1.success && run1.stdout.contains("mock reply:") && run1.stdout.contains(&t),
        "{harness:?} via {model}: plain turn\n{}",
        run1.report()
    );

    // A tool turn: the model calls the harness's file-reading tool, the harness runs it and
    // sends the result back, the model answers it.
    let note = workdir.join("note.txt");
    let content = format!("note-{t}");
    std::fs::write(&note, format!("{content}\n")).unwrap();
    let prompt = format!("read the note {t} {}", harness.read_tool_marker(&note));
    let run2 = run(harness, model, &prompt, home.path(), &workdir);
    assert!(
        run2.success && run2.stdout.contains("tool result:") && run2.stdout.contains(&content),
        "{harness:?} via {model}: tool turn\n{}",
        run2.report()
    );

    // Every request went upstream in the protocol of the provider (not passed through as-is
    // to the wrong API), and the tool turn made two: the call, then its result.
    let seen = f.mock.requests_containing(&t);
    assert!(
        seen.len() >= 3,
        "{harness:?} via {model}: {} requests",
        seen.len()
    );
    for r in &seen {
        assert!(
            r.path.ends_with(upstream.path_suffix()),
            "{harness:?} via {model}: request went to {}",
            r.path
        );
    }
    assert!(
        seen.iter().any(|r| r.body_text().contains(&content)),
        "{harness:?} via {model}: the tool result never reached the model"
    );

    if let Harness::Codex = harness {
        codex_namespaced_tool(upstream, home.path(), &workdir);
    }
}

/// Codex groups tools in `namespace` tools (`multi_agent_v1`, MCP servers). Through another
/// protocol the model sees flattened names; its call must come back to Codex as namespace +
/// name, or Codex answers "unsupported call". `close_agent` on an id that does not exist is
/// harmless: Codex's own handler answers "invalid agent id nobody".
fn codex_namespaced_tool(upstream: Upstream, home: &Path, workdir: &Path) {
    let t = tag("codex-namespace");
    let model = upstream.model();
    let prompt =
        format!(r#"close it {t} [[tool:multi_agent_v1__close_agent {{"target":"nobody"}}]]"#);
    let run3 = run(Harness::Codex, model, &prompt, home, workdir);
    assert!(
        run3.success
            && run3.stdout.contains("tool result:")
            && run3.stdout.contains("nobody")
            && !run3.stdout.contains("unsupported"),
        "Codex via {model}: namespaced tool turn\n{}",
        run3.report()
    );
}

#[test]
fn claude_code_on_anthropic() {
    agent_turns(Harness::ClaudeCode, Upstream::Messages);
}

#[test]
fn claude_code_on_openai_chat() {
    agent_turns(Harness::ClaudeCode, Upstream::ChatCompletions);
}

#[test]
fn claude_code_on_openai_responses() {
    agent_turns(Harness::ClaudeCode, Upstream::Responses);
}

#[test]
fn claude_code_on_gemini() {
    agent_turns(Harness::ClaudeCode, Upstream::GenerateContent);
}

#[test]
fn codex_on_openai_responses() {
    agent_turns(Harness::Codex, Upstream::Responses);
}

#[test]
fn codex_on_openai_chat() {
    agent_turns(Harness::Codex, Upstream::ChatCompletions);
}

#[test]
fn codex_on_anthropic() {
    agent_turns(Harness::Codex, Upstream::Messages);
}

#[test]
fn codex_on_gemini() {
    agent_turns(Harness::Codex, Upstream::GenerateContent);
}

#[test]
fn gemini_cli_on_gemini() {
    agent_turns(Harness::GeminiCli, Upstream::GenerateContent);
}

#[test]
fn gemini_cli_on_openai_chat() {
    agent_turns(Harness::GeminiCli, Upstream::ChatCompletions);
}

#[test]
fn gemini_cli_on_openai_responses() {
    agent_turns(Harness::GeminiCli, Upstream::Responses);
}

#[test]
fn gemini_cli_on_anthropic() {
    agent_turns(Harness::GeminiCli, Upstream::Messages);
}

/// Each agent with a virtual key as its own credential (Claude Code's `ANTHROPIC_API_KEY` goes
/// as `x-api-key`, Codex's `env_key` as Bearer, Gemini CLI's `GEMINI_API_KEY` as
/// `x-goog-api-key`) on a router that requires one: a whole turn works, and the ledger charges
/// the key.
#[test]
fn every_agent_with_a_virtual_key() {
    let f = fixture();
    let m = f.mock.base_url();
    let config = format!(
        "server:\n  skip_auth: false\nproviders:\n  anthropic:\n    api_base: {m}\n    api_key: sk-ant-test\n  google:\n    api_base: {m}\n    api_key: goog-test\n  local:\n    api_base: {m}/v1\n    api_key: none\n    api_protocol: chat_completions\n    models:\n      - id: qwen3-coder\n"
    );
    let router = Router::start(RouterSpec {
        config: Some(&config),
        files: vec![(
            "policies/agents.yaml",
            "description: coding agents\n".into(),
        )],
        ..Default::default()
    });
    let conf = router.dir.path().join("bitrouter.yaml");
    let out = support::cli(
        &[
            "key",
            "sign",
            "--user",
            "agents",
            "--policy",
            "agents",
            "--json",
            "-c",
            conf.to_str().unwrap(),
        ],
        &[],
        router.dir.path(),
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    let signed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = signed["key"].as_str().unwrap().to_string();
    let id = signed["id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(1_500));
    let base = format!("http://{}", router.addr);
    for (harness, model) in [
        (Harness::ClaudeCode, "anthropic/claude-sonnet-4-5"),
        (Harness::Codex, "local/qwen3-coder"),
        (Harness::GeminiCli, "google/gemini-2.5-pro"),
    ] {
        let t = tag(&format!("{harness:?}-key").to_lowercase());
        let home = tempfile::tempdir().unwrap();
        let workdir = home.path().join("project");
        std::fs::create_dir_all(&workdir).unwrap();
        let r = run_with(
            &base,
            Some(&key),
            harness,
            model,
            &format!("say hello {t}"),
            home.path(),
            &workdir,
        );
        assert!(
            r.success && r.stdout.contains(&t),
            "{harness:?} with a virtual key\n{}\nrouter logs:\n{}",
            r.report(),
            router.logs()
        );
        // The upstream got the provider's key, never the client's.
        assert!(f
            .mock
            .requests_containing(&t)
            .iter()
            .all(|req| !format!("{req:?}").contains(&key)));
    }
    let logs = router.logs();
    assert!(logs.contains(&format!("key={id} user=agents")), "{logs}");
    assert!(!logs.contains(&key), "the key was logged");
}

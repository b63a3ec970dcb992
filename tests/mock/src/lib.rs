//! `bitrouter-mock`: a stand-in for the real LLM providers in bitrouter's integration tests and
//! load benchmarks (which have no internet).
//!
//! It speaks the providers' real wire formats — JSON bodies, SSE streams, error bodies, auth
//! headers — so the router is tested against what it will meet in production:
//!
//! | route (matched by path suffix)                 | protocol                         |
//! |------------------------------------------------|----------------------------------|
//! | `POST */chat/completions`                      | OpenAI Chat Completions          |
//! | `POST */responses`                             | OpenAI Responses                 |
//! | `POST */messages`, `*/messages/count_tokens`   | Anthropic Messages               |
//! | `POST */models/{m}:generateContent`            | Gemini                           |
//! | `POST */models/{m}:streamGenerateContent`      | Gemini (`?alt=sse`: SSE, else JSON array) |
//! | `POST */embeddings`, `*/completions` (JSON, SSE), `*/rerank`, `*/moderations`, `*/images/generations`, `*/audio/speech` (binary, chunked) | OpenAI endpoints (see `openai_endpoints`) |
//! | `POST */audio/transcriptions`, `*/audio/translations` | OpenAI multipart uploads, parsed as they stream ([`UploadRecord`], [`MockUpstream::uploads`]) |
//! | `POST */models/{m}:batchEmbedContents`, `:embedContent` | Gemini embeddings            |
//! | `GET */models`, `GET */models/{id}`            | OpenAI model list / model        |
//! | anything else                                  | 404, OpenAI error format         |
//!
//! Answers are deterministic and derived from the request, so tests can assert end-to-end
//! content through any protocol translation:
//!
//! - `mock reply: <text of the last user message>` (text parts joined by one space);
//! - a prompt containing `[[tool:NAME]]` or `[[tool:NAME {"json":"args"}]]` makes the model
//!   answer with a tool call in the protocol's format (several markers: parallel calls);
//!   without explicit args they are synthesized from the declared tool's JSON schema;
//! - a conversation ending in tool results is answered `mock reply: tool result: <r1>; <r2>`;
//! - the `model` of the response is the request's model (Gemini: the path's), echoed exactly.
//!
//! Token usage is estimated as whitespace-separated words (input: all message text; output:
//! the reply's words), at least 1. A `[[usage in=N cache_read=N cache_write=N out=N
//! reasoning=N]]` marker in the last user message (any subset of the fields, any order) makes
//! every protocol report exactly those numbers, whole and streamed, each in its provider's
//! convention. `in` is UNCACHED input and `out` is ALL output, reasoning included; a field left
//! out keeps the estimate (`in`; `out` = the reply's words + `reasoning`) or 0 (the others).
//! The marker stays part of the prompt, so the reply echoes it like any other text.
//!
//! | protocol  | input reported                                   | output reported |
//! |-----------|--------------------------------------------------|-----------------|
//! | Chat      | `prompt_tokens` = in + cache_read, `prompt_tokens_details.cached_tokens` = cache_read; **cache_write is not reported** (no such field) | `completion_tokens` = out, `completion_tokens_details.reasoning_tokens` |
//! | Responses | `input_tokens` = in + cache_read + cache_write, `input_tokens_details.cached_tokens`, `.cache_write_tokens` (when > 0) | `output_tokens` = out, `output_tokens_details.reasoning_tokens` |
//! | Anthropic | `input_tokens` = in, `cache_read_input_tokens`, `cache_creation_input_tokens` (streams: in `message_start`) | `output_tokens` = out (streams: in `message_delta`; no reasoning count) |
//! | Gemini    | `promptTokenCount` = in + cache_read, `cachedContentTokenCount` (when > 0); **cache_write is not reported** | `candidatesTokenCount` = out − reasoning, `thoughtsTokenCount` (when > 0) |
//!
//! Chat streams carry usage only when the request asks (`stream_options.include_usage`), on a
//! last chunk with `"choices": []`, as the real API does.
//!
//! Auth is checked like the providers do (see [`MockUpstream::set_expected_key`]): OpenAI routes
//! need `Authorization: Bearer` (or Azure's `api-key`), Anthropic `x-api-key` plus an
//! `anthropic-version` header, Gemini `x-goog-api-key` or `?key=`. A missing credential is a
//! 401 in the provider's error format; a wrong one is a 401, except Gemini, which (like the real
//! API) answers 400 `INVALID_ARGUMENT` / `API_KEY_INVALID`. Streams follow each provider's
//! framing exactly, including Google's CRLF (`data: {...}\r\n\r\n`) line endings.
//!
//! `GET /__mock/requests` and `GET /__mock/stats` expose the recording over HTTP, for manual
//! runs of the `bitrouter-mock` binary; they are neither recorded nor scripted.
//!
//! Tests script faults with [`MockUpstream::script`] (matched by body tag, path or header, see
//! [`Match`]) and inspect what the router sent with [`MockUpstream::requests`] and how each
//! streamed response ended — completed, cut, or abandoned by the router — with
//! [`MockUpstream::stream_outcomes`]. The server runs on its own thread and tokio runtime, so one
//! instance can be shared by every test of a file:
//!
//! ```no_run
//! use std::sync::OnceLock;
//! use bitrouter_mock::{Action, MockUpstream, Script};
//!
//! fn mock() -> &'static MockUpstream {
//!     static MOCK: OnceLock<MockUpstream> = OnceLock::new();
//!     MOCK.get_or_init(MockUpstream::start)
//! }
//!
//! mock().script(Script::for_body("tag-42", Action::Error { status: 529, message: "Overloaded".into() }));
//! // ... send a request mentioning tag-42 through the router ...
//! assert_eq!(mock().requests_containing("tag-42").len(), 1);
//! ```
#![forbid(unsafe_code)]

mod anthropic;
mod gemini;
mod models;
mod openai_chat;
mod openai_endpoints;
mod openai_responses;
mod protocol;
mod record;
mod reply;
mod script;
mod server;
mod sse;
mod tls;
mod upload;
mod util;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use openai_endpoints::{embedding_of, speech_bytes, DEFAULT_DIMENSIONS};
pub use record::{RecordMode, RecordedRequest, StreamOutcome};
pub use script::{Action, LineEnds, Match, Script};
pub use upload::UploadRecord;

use server::State;

/// How to start a [`MockUpstream`] (the binary and benchmarks need more knobs than tests).
#[derive(Clone, Debug)]
pub struct MockConfig {
    /// Address to bind; port 0 picks a free port (tests must never use fixed ports).
    pub listen: SocketAddr,
    /// Serve HTTPS with a freshly generated CA (see [`MockUpstream::start_tls`]).
    pub tls: bool,
    /// How many requests to keep for [`MockUpstream::requests`].
    pub record: RecordMode,
    /// The only credential accepted (`None`: any non-empty credential).
    pub expected_key: Option<String>,
    /// Worker threads of the mock's runtime (`None`: tokio's default, one per core).
    pub worker_threads: Option<usize>,
}

impl Default for MockConfig {
    fn default() -> MockConfig {
        MockConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
            record: RecordMode::All,
            expected_key: None,
            worker_threads: None,
        }
    }
}

/// A running mock provider. Cloning shares the same server; it stops when the last clone is
/// dropped (a `static` one lives for the whole test process).
#[derive(Clone)]
pub struct MockUpstream {
    inner: Arc<Inner>,
}

struct Inner {
    addr: SocketAddr,
    tls: Option<TlsFiles>,
    state: Arc<State>,
    /// Dropping it stops the server thread.
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

struct TlsFiles {
    ca_pem: String,
    ca_file: tempfile::TempPath,
}

impl std::fmt::Debug for MockUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockUpstream")
            .field("base_url", &self.base_url())
            .finish()
    }
}

impl MockUpstream {
    /// Plain HTTP on 127.0.0.1:0, served by its OWN background thread + tokio runtime, so it
    /// outlives any single `#[tokio::test]` runtime and can be shared by all tests in a file
    /// (e.g. via a `std::sync::OnceLock`). Sync API.
    ///
    /// # Panics
    /// If the socket cannot be bound or the runtime not built (a broken test machine).
    pub fn start() -> MockUpstream {
        MockUpstream::start_with(MockConfig::default())
    }

    /// HTTPS (TLS via tokio-rustls) with a freshly generated CA (rcgen) and a leaf cert for
    /// `localhost` and 127.0.0.1; the CA's PEM is written to a temp file whose path is
    /// [`MockUpstream::ca_file`]. ALPN offers `h2` and `http/1.1`.
    ///
    /// # Panics
    /// As [`MockUpstream::start`].
    pub fn start_tls() -> MockUpstream {
        MockUpstream::start_with(MockConfig {
            tls: true,
            ..MockConfig::default()
        })
    }

    /// Starts with explicit settings.
    ///
    /// # Panics
    /// As [`MockUpstream::start`]; use [`MockUpstream::try_start`] to handle the error.
    pub fn start_with(config: MockConfig) -> MockUpstream {
        match MockUpstream::try_start(config) {
            Ok(mock) => mock,
            Err(e) => panic!("bitrouter-mock: cannot start: {e}"),
        }
    }

    /// Starts with explicit settings, reporting bind/runtime/TLS errors.
    pub fn try_start(config: MockConfig) -> io::Result<MockUpstream> {
        let listener = std::net::TcpListener::bind(config.listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (acceptor, tls) = if config.tls {
            let material = tls::generate()?;
            let mut file = tempfile::Builder::new()
                .prefix("bitrouter-mock-ca-")
                .suffix(".pem")
                .tempfile()?;
            file.write_all(material.ca_pem.as_bytes())?;
            file.flush()?;
            let files = TlsFiles {
                ca_pem: material.ca_pem,
                ca_file: file.into_temp_path(),
            };
            (Some(material.acceptor), Some(files))
        } else {
            (None, None)
        };
        let state = Arc::new(State::new(config.record, config.expected_key));

        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.enable_all().thread_name("bitrouter-mock");
        if let Some(n) = config.worker_threads {
            builder.worker_threads(n.max(1));
        }
        let runtime = builder.build()?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(listener)
        };
        let listener = match listener {
            Ok(listener) => listener,
            Err(e) => {
                // Dropping a runtime inside the caller's async context would panic.
                runtime.shutdown_background();
                return Err(e);
            }
        };
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = state.clone();
        std::thread::Builder::new()
            .name("bitrouter-mock".into())
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        () = server::serve(listener, served, acceptor) => {}
                        _ = stopped => {}
                    }
                });
                runtime.shutdown_background();
            })?;
        Ok(MockUpstream {
            inner: Arc::new(Inner {
                addr,
                tls,
                state,
                _shutdown: shutdown,
            }),
        })
    }

    /// The bound socket address (always a concrete port).
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://127.0.0.1:PORT` or `https://localhost:PORT` (no trailing slash, no `/v1`), the
    /// value to put in a provider's `base_url`.
    pub fn base_url(&self) -> String {
        let port = self.inner.addr.port();
        match self.inner.tls {
            Some(_) => format!("https://localhost:{port}"),
            None => format!("http://{}", self.inner.addr),
        }
    }

    /// Path of the PEM file of the CA that signed the TLS mock's certificate (`None` for
    /// plain HTTP). Deleted when the last clone of the mock is dropped.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.inner.tls.as_ref().map(|t| t.ca_file.to_path_buf())
    }

    /// The CA's PEM itself (for clients configured in memory).
    pub fn ca_pem(&self) -> Option<String> {
        self.inner.tls.as_ref().map(|t| t.ca_pem.clone())
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner.state.recorder.snapshot()
    }

    /// Requests whose body contains `needle` (tests share one mock and tag their prompts
    /// uniquely).
    pub fn requests_containing(&self, needle: &str) -> Vec<RecordedRequest> {
        let mut requests = self.requests();
        requests.retain(|r| util::bytes_contain(&r.body, needle.as_bytes()));
        requests
    }

    /// How every finished streamed response ended, in the order they ended (streams still
    /// running are not listed). See [`StreamOutcome`].
    pub fn stream_outcomes(&self) -> Vec<StreamOutcome> {
        self.inner.state.recorder.streams()
    }

    /// Finished streamed responses to requests whose body contains `needle`.
    pub fn stream_outcomes_containing(&self, needle: &str) -> Vec<StreamOutcome> {
        let mut outcomes = self.stream_outcomes();
        outcomes.retain(|o| o.request_contains(needle));
        outcomes
    }

    /// Waits (polling, without blocking the caller's runtime) until a streamed response to a
    /// request whose body contains `needle` has ended, and returns the first such outcome;
    /// `None` after `timeout`. Needs a tokio runtime with the time driver (`#[tokio::test]`).
    pub async fn wait_stream_outcome(
        &self,
        needle: &str,
        timeout: Duration,
    ) -> Option<StreamOutcome> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(outcome) = self.stream_outcomes_containing(needle).into_iter().next() {
                return Some(outcome);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Queues a scripted behaviour; each request takes the first matching script with uses
    /// left (FIFO among matching ones).
    pub fn script(&self, script: Script) {
        self.inner.state.scripts.push(script);
    }

    /// Scripts queued but not used up yet (assert a scripted fault was actually hit).
    pub fn pending_scripts(&self) -> usize {
        self.inner.state.scripts.pending()
    }

    /// Drops every queued script.
    pub fn clear_scripts(&self) {
        self.inner.state.scripts.clear();
    }

    /// Every multipart upload received so far, in arrival order.
    pub fn uploads(&self) -> Vec<UploadRecord> {
        self.inner
            .state
            .uploads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Number of TCP connections accepted so far (tests assert upstream connection reuse).
    pub fn connections(&self) -> usize {
        self.inner.state.connections.load(Ordering::Relaxed)
    }

    /// Mock-wide expected credential: `Some(key)` accepts only `key`; `None` (the default)
    /// accepts any non-empty credential. A missing credential is always a 401.
    pub fn set_expected_key(&self, key: Option<String>) {
        let mut expected = self
            .inner
            .state
            .expected_key
            .write()
            .unwrap_or_else(|e| e.into_inner());
        *expected = key.map(Arc::from);
    }
}

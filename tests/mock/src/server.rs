//! The accept loop, routing, scripted faults and response rendering.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use bytes::Bytes;
use http::request::Parts;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::gemini::Method as GeminiMethod;
use crate::protocol::{openai_error, Protocol, Reply, ReplyBody, JSON};
use crate::record::{RecordMode, RecordedRequest, Recorder, StreamOutcome};
use crate::script::{Plan, ScriptQueue, Terminal};
use crate::sse::{self, Body};
use crate::upload::{self, UploadRecord};
use crate::util::{new_id, percent_decode, query_param};
use crate::{anthropic, gemini, models, openai_chat, openai_endpoints, openai_responses};

/// Everything the service shares across connections. No lock here is held across an await.
pub(crate) struct State {
    pub(crate) recorder: Recorder,
    pub(crate) scripts: ScriptQueue,
    pub(crate) expected_key: RwLock<Option<Arc<str>>>,
    pub(crate) connections: AtomicUsize,
    /// Every multipart upload received (see [`UploadRecord`]).
    pub(crate) uploads: std::sync::Mutex<Vec<UploadRecord>>,
}

impl State {
    pub(crate) fn new(record: RecordMode, expected_key: Option<String>) -> State {
        State {
            recorder: Recorder::new(record),
            scripts: ScriptQueue::default(),
            expected_key: RwLock::new(expected_key.map(Arc::from)),
            connections: AtomicUsize::new(0),
            uploads: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn expected_key(&self) -> Option<Arc<str>> {
        self.expected_key
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Accepts connections forever, serving HTTP/1.1 and h2 (prior knowledge, or ALPN over TLS).
pub(crate) async fn serve(listener: TcpListener, state: Arc<State>, tls: Option<TlsAcceptor>) {
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // e.g. EMFILE under load: back off instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        state.connections.fetch_add(1, Ordering::Relaxed);
        let state = state.clone();
        let tls = tls.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(state.clone(), req));
            match tls {
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
                None => {
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
            }
        });
    }
}

/// Returned by the service to make hyper drop the connection (HTTP/1.1) or reset the stream
/// (HTTP/2) without a response.
#[derive(Debug)]
pub(crate) struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("bitrouter-mock: scripted connection drop")
    }
}

impl std::error::Error for Dropped {}

/// The API a request is for, decided by path suffix so any base path prefix works.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Chat,
    Responses,
    Messages,
    CountTokens,
    Gemini {
        model: String,
        method: GeminiMethod,
    },
    /// `:batchEmbedContents` (`batch`) or `:embedContent`.
    GeminiEmbed {
        model: String,
        batch: bool,
    },
    Embeddings,
    Completions,
    Rerank,
    Moderations,
    Images,
    Speech,
    /// `*/audio/transcriptions` and `*/audio/translations` (multipart, read as it streams).
    Upload,
    ListModels,
    GetModel(String),
    NotFound,
}

impl Route {
    fn parse(method: &Method, path: &str, query: Option<&str>) -> Route {
        let path = path.trim_end_matches('/');
        if method == Method::POST {
            if path.ends_with("/chat/completions") {
                return Route::Chat;
            }
            if path.ends_with("/responses") {
                return Route::Responses;
            }
            if path.ends_with("/messages/count_tokens") {
                return Route::CountTokens;
            }
            if path.ends_with("/messages") {
                return Route::Messages;
            }
            for (suffix, route) in [
                ("/embeddings", Route::Embeddings),
                ("/completions", Route::Completions),
                ("/rerank", Route::Rerank),
                ("/moderations", Route::Moderations),
                ("/images/generations", Route::Images),
                ("/audio/speech", Route::Speech),
                ("/audio/transcriptions", Route::Upload),
                ("/audio/translations", Route::Upload),
            ] {
                if path.ends_with(suffix) {
                    return route;
                }
            }
            let decoded = percent_decode(path, false);
            if let Some((resource, verb)) = decoded.rsplit_once(':') {
                if let Some(batch) = match verb {
                    "batchEmbedContents" => Some(true),
                    "embedContent" => Some(false),
                    _ => None,
                } {
                    if let Some(i) = resource.rfind("/models/") {
                        let model = &resource[i + "/models/".len()..];
                        if !model.is_empty() {
                            return Route::GeminiEmbed {
                                model: model.to_owned(),
                                batch,
                            };
                        }
                    }
                }
                let method = match verb {
                    "generateContent" => Some(GeminiMethod::Generate),
                    "streamGenerateContent" => {
                        Some(if query_param(query, "alt").as_deref() == Some("sse") {
                            GeminiMethod::StreamSse
                        } else {
                            GeminiMethod::StreamArray
                        })
                    }
                    _ => None,
                };
                let model = ["/models/", "/tunedModels/"].iter().find_map(|prefix| {
                    resource
                        .rfind(prefix)
                        .map(|i| &resource[i + prefix.len()..])
                });
                if let (Some(method), Some(model)) = (method, model) {
                    if !model.is_empty() {
                        return Route::Gemini {
                            model: model.to_owned(),
                            method,
                        };
                    }
                }
            }
        } else if method == Method::GET {
            if path.ends_with("/models") {
                return Route::ListModels;
            }
            if let Some(i) = path.rfind("/models/") {
                let id = &path[i + "/models/".len()..];
                if !id.is_empty() {
                    return Route::GetModel(percent_decode(id, false));
                }
            }
        }
        Route::NotFound
    }

    fn protocol(&self) -> Protocol {
        match self {
            Route::Messages | Route::CountTokens => Protocol::Anthropic,
            Route::Gemini { .. } | Route::GeminiEmbed { .. } => Protocol::Google,
            _ => Protocol::OpenAi,
        }
    }
}

fn record(parts: &Parts, body: Bytes) -> RecordedRequest {
    RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
        http_version: format!("{:?}", parts.version),
    }
}

/// The service: record, apply the script, then answer like the provider would.
async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Dropped> {
    let (parts, body) = req.into_parts();
    if Route::parse(&parts.method, parts.uri.path(), parts.uri.query()) == Route::Upload {
        return handle_upload(state, parts, body).await;
    }
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(Dropped),
    };
    let path = parts.uri.path();
    if path.starts_with("/__mock/") {
        return Ok(render(
            admin(&state, path),
            Protocol::OpenAi,
            &Plan::default(),
            None,
        ));
    }
    let plan = state.scripts.take(path, &parts.headers, &body);
    let track = if state.recorder.enabled() {
        state.recorder.push(record(&parts, body.clone()));
        Some(Track {
            state: state.clone(),
            path: path.to_owned(),
            body: body.clone(),
        })
    } else {
        None
    };
    if !plan.delay.is_zero() {
        tokio::time::sleep(plan.delay).await;
    }
    let route = Route::parse(&parts.method, path, parts.uri.query());
    let protocol = route.protocol();
    let reply = match &plan.terminal {
        Some(Terminal::Drop) => return Err(Dropped),
        Some(Terminal::Status {
            status,
            body,
            retry_after,
        }) => status_reply(*status, body, *retry_after),
        Some(Terminal::Error {
            status,
            message,
            retry_after,
        }) => {
            let reply = protocol.error(*status, message);
            match retry_after {
                Some(secs) => reply.header("retry-after", secs.to_string()),
                None => reply,
            }
        }
        None => dispatch(&state, route, &parts, &body, plan.reply.as_deref()),
    };
    Ok(render(reply, protocol, &plan, track))
}

/// A multipart upload: read as it streams (never collected whole), recorded, answered.
async fn handle_upload(
    state: Arc<State>,
    parts: Parts,
    body: Incoming,
) -> Result<Response<Body>, Dropped> {
    let protocol = Protocol::OpenAi;
    let none = Plan::default();
    let record_up = match upload::receive(&parts, body).await {
        Ok(r) => r,
        Err(reply) => return Ok(render(reply, protocol, &none, None)),
    };
    // What tests search with `requests_containing`: the text fields and the file's size.
    let mut summary = format!("model={}\n", record_up.model);
    for (k, v) in &record_up.fields {
        summary.push_str(&format!("{k}={v}\n"));
    }
    summary.push_str(&format!(
        "file={} bytes={}\n",
        record_up.file_name.as_deref().unwrap_or("-"),
        record_up.file_bytes
    ));
    let summary = Bytes::from(summary);
    let path = parts.uri.path();
    let plan = state.scripts.take(path, &parts.headers, &summary);
    if state.recorder.enabled() {
        state.recorder.push(record(&parts, summary));
    }
    state
        .uploads
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(record_up.clone());
    let expected = state.expected_key();
    if let Err(reply) = protocol.check_auth(&parts.headers, parts.uri.query(), expected.as_deref())
    {
        return Ok(render(reply, protocol, &none, None));
    }
    let reply = match &plan.terminal {
        Some(Terminal::Drop) => return Err(Dropped),
        Some(Terminal::Status {
            status,
            body,
            retry_after,
        }) => status_reply(*status, body, *retry_after),
        Some(Terminal::Error {
            status, message, ..
        }) => protocol.error(*status, message),
        None => upload::answer(&record_up),
    };
    Ok(render(reply, protocol, &plan, None))
}

/// Where to record how a streamed response ends.
struct Track {
    state: Arc<State>,
    path: String,
    body: Bytes,
}

fn status_reply(status: u16, body: &str, retry_after: Option<u64>) -> Reply {
    let trimmed = body.trim_start();
    let content_type = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        JSON
    } else {
        "text/plain; charset=utf-8"
    };
    Reply {
        status,
        content_type,
        headers: retry_after
            .map(|s| vec![("retry-after", s.to_string())])
            .unwrap_or_default(),
        body: ReplyBody::Full(Bytes::from(body.to_owned())),
    }
}

fn parse_object(body: &[u8]) -> Result<Value, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err("The request body must be a JSON object.".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

fn dispatch(
    state: &State,
    route: Route,
    parts: &Parts,
    body: &[u8],
    reply_override: Option<&str>,
) -> Reply {
    let protocol = route.protocol();
    if route == Route::NotFound {
        return openai_error(
            404,
            &format!("Invalid URL ({} {})", parts.method, parts.uri.path()),
            "invalid_request_error",
            None,
            None,
        );
    }
    let expected = state.expected_key();
    if let Err(reply) = protocol.check_auth(&parts.headers, parts.uri.query(), expected.as_deref())
    {
        return reply;
    }
    if protocol == Protocol::Anthropic {
        if let Err(reply) = anthropic::check_version(&parts.headers) {
            return reply;
        }
    }
    let json = || parse_object(body).map_err(|detail| protocol.malformed_json(&detail));
    let result = match route {
        Route::ListModels => Ok(models::list()),
        Route::GetModel(id) => Ok(models::get(&id)),
        Route::Chat => json().map(|req| openai_chat::handle(&req, reply_override)),
        Route::Responses => json().map(|req| openai_responses::handle(&req, reply_override)),
        Route::Messages => json().map(|req| anthropic::handle(&req, reply_override)),
        Route::CountTokens => json().map(|req| anthropic::count_tokens(&req)),
        Route::Gemini { model, method } => {
            json().map(|req| gemini::handle(&model, method, &req, reply_override))
        }
        Route::GeminiEmbed { model, batch } => {
            json().map(|req| openai_endpoints::gemini_embed(&model, batch, &req))
        }
        Route::Embeddings => json().map(|req| openai_endpoints::embeddings(&req)),
        Route::Completions => json().map(|req| openai_endpoints::completions(&req)),
        Route::Rerank => json().map(|req| openai_endpoints::rerank(&req)),
        Route::Moderations => json().map(|req| openai_endpoints::moderations(&req)),
        Route::Images => json().map(|req| openai_endpoints::images(&req)),
        Route::Speech => json().map(|req| openai_endpoints::speech(&req)),
        Route::Upload => Err(openai_error(
            400,
            "uploads are read as they stream",
            "invalid_request_error",
            None,
            None,
        )),
        Route::NotFound => Err(openai_error(
            404,
            "Not found",
            "invalid_request_error",
            None,
            None,
        )),
    };
    result.unwrap_or_else(|reply| reply)
}

/// `/__mock/requests` (recorded requests as JSON) and `/__mock/stats`, for manual runs of the
/// binary: `curl $MOCK/__mock/requests` shows what the router sent.
fn admin(state: &State, path: &str) -> Reply {
    match path {
        "/__mock/requests" => {
            let requests: Vec<Value> = state
                .recorder
                .snapshot()
                .iter()
                .map(|r| {
                    json!({
                        "method": r.method,
                        "path": r.path,
                        "query": r.query,
                        "headers": r.headers,
                        "body": r.body_text(),
                        "http_version": r.http_version
                    })
                })
                .collect();
            Reply::json(200, &Value::Array(requests))
        }
        "/__mock/stats" => Reply::json(
            200,
            &json!({
                "connections": state.connections.load(Ordering::Relaxed),
                "recorded": state.recorder.len(),
                "streams": state.recorder.streams_len(),
                "pending_scripts": state.scripts.pending()
            }),
        ),
        _ => openai_error(
            404,
            "Unknown mock admin path",
            "invalid_request_error",
            None,
            None,
        ),
    }
}

/// Turns a [`Reply`] into a hyper response, applying pacing and cuts from the plan; with
/// `track`, a streamed body records its [`StreamOutcome`] when it ends.
fn render(reply: Reply, protocol: Protocol, plan: &Plan, track: Option<Track>) -> Response<Body> {
    // Real providers name their front end (`server: cloudflare`) and describe the resource;
    // none of it is about the router's answer.
    let mut builder = Response::builder()
        .status(reply.status)
        .header(header::CONTENT_TYPE, reply.content_type)
        .header(header::SERVER, "mock-provider")
        .header(header::ACCEPT_RANGES, "bytes");
    let has_request_id = reply.headers.iter().any(|(k, _)| *k == "request-id");
    for (name, value) in reply.headers {
        builder = builder.header(name, value);
    }
    builder = match protocol {
        Protocol::OpenAi => builder.header("x-request-id", new_id("req_", 32)),
        Protocol::Anthropic if !has_request_id => {
            builder.header("request-id", new_id("req_011", 21))
        }
        _ => builder,
    };
    let body = match reply.body {
        ReplyBody::Full(bytes) => match plan.cut_after {
            None => sse::full(bytes),
            Some(events) => {
                builder = builder.header(header::CONTENT_LENGTH, bytes.len());
                let keep = if events == 0 { 0 } else { bytes.len() / 2 };
                sse::truncated(bytes.slice(..keep))
            }
        },
        ReplyBody::Events(mut chunks) => {
            if let Some(ends) = plan.line_ends {
                for chunk in &mut chunks {
                    *chunk = sse::with_line_ends(chunk, ends);
                }
            }
            let events_total = chunks.len();
            let body = sse::stream(chunks, plan.interval, plan.cut_after, plan.stall);
            match track {
                None => body,
                Some(track) => {
                    let started = Instant::now();
                    sse::tracked(body, move |events_sent, end| {
                        track.state.recorder.push_stream(StreamOutcome {
                            path: track.path,
                            request_body: track.body,
                            events_total,
                            events_sent,
                            completed: end == sse::End::Completed,
                            cut: end == sse::End::Cut,
                            aborted_by_peer: end == sse::End::Abandoned,
                            started,
                            ended: Instant::now(),
                        });
                    })
                }
            }
        }
    };
    builder.body(body).unwrap_or_else(|e| {
        let mut response = Response::new(sse::full(format!(
            "bitrouter-mock: bad scripted response: {e}"
        )));
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        response
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_suffix() {
        let post = Method::POST;
        assert_eq!(
            Route::parse(&post, "/v1/chat/completions", None),
            Route::Chat
        );
        assert_eq!(
            Route::parse(&post, "/openai/v1/chat/completions/", None),
            Route::Chat
        );
        assert_eq!(
            Route::parse(&post, "/api/v1/responses", None),
            Route::Responses
        );
        assert_eq!(Route::parse(&post, "/v1/messages", None), Route::Messages);
        assert_eq!(
            Route::parse(&post, "/v1/messages/count_tokens", None),
            Route::CountTokens
        );
        assert_eq!(
            Route::parse(
                &post,
                "/v1beta/models/gemini-2.0-flash:generateContent",
                None
            ),
            Route::Gemini {
                model: "gemini-2.0-flash".into(),
                method: GeminiMethod::Generate
            }
        );
        assert_eq!(
            Route::parse(
                &post,
                "/v1beta/models/my%2Fmodel%3Av1:streamGenerateContent",
                Some("alt=sse")
            ),
            Route::Gemini {
                model: "my/model:v1".into(),
                method: GeminiMethod::StreamSse
            }
        );
        assert_eq!(
            Route::parse(&post, "/v1beta/models/g%3AstreamGenerateContent", None),
            Route::Gemini {
                model: "g".into(),
                method: GeminiMethod::StreamArray
            }
        );
        assert_eq!(
            Route::parse(&post, "/v1beta/models/:generateContent", None),
            Route::NotFound
        );
        assert_eq!(
            Route::parse(&Method::GET, "/v1/models", None),
            Route::ListModels
        );
        assert_eq!(
            Route::parse(&Method::GET, "/v1/models/gpt-4o", None),
            Route::GetModel("gpt-4o".into())
        );
        assert_eq!(
            Route::parse(&Method::GET, "/v1/chat/completions", None),
            Route::NotFound
        );
        assert_eq!(Route::parse(&post, "/v1/other", None), Route::NotFound);
    }
}

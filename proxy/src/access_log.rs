//! The access log: one line per request, in the human format (the default, as the log line has
//! always been) or as one JSON object per line for a log pipeline (`server.access_log.format:
//! json`). Lines go through the logger's queue (never blocking a request), to the log output or
//! a file of their own (`server.access_log.path`, reopened on reload).
//!
//! Never a key or a body: a virtual key appears as its id and user only.

use crate::metering;
use bitrouter_config::{AccessLog, AccessLogFormat};
use serde::Serialize;
use std::time::SystemTime;

/// What one request's access line says.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    /// When the line was written (the request's end), RFC 3339 UTC with milliseconds.
    pub ts: String,
    pub id: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    /// The `routes:` entry that proxied the request (plain reverse-proxy requests only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<&'a str>,
    /// `HTTP/1.1`, `HTTP/2`.
    pub http: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a str>,
    /// The model the client asked for (`-`: none).
    pub model: &'a str,
    pub provider: &'a str,
    /// The replica of a pool (`api_base` a list) that served, `host:port`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<&'a str>,
    pub account: &'a str,
    pub upstream_model: &'a str,
    pub attempts: usize,
    pub status: u16,
    pub stream: bool,
    pub duration_ms: f64,
    pub bytes_in: usize,
    pub bytes_out: usize,
    /// The client's address (`ip:port`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The local address of the listener the request came in on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listener: Option<String>,
    /// `TLSv1.3`, `TLSv1.2` on a TLS listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
    /// The upstream address of the last attempt (`ip:port`), when one was called.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub dropped: &'a [String],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guardrails: Vec<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub spent: Option<Spent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
}

/// Usage and cost of an LLM request.
#[derive(Debug, Serialize)]
pub struct Spent {
    pub tokens: Tokens,
    /// Where the counts come from (`provider`, `estimated`, ...).
    pub usage: &'static str,
    /// US dollars; absent when unknown (then `cost_unknown` says why).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_unknown: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct Tokens {
    pub input: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub output: u64,
}

/// [`Entry::http`] for a request's version.
pub fn http_version(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    }
}

/// The current time for [`Entry::ts`].
pub fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Whether a line would be written at all: the default (text to the log output) follows the
/// log level, and a router at `log_level: warn` (the benchmark's setting, and what a busy edge
/// runs) should not pay for building a line nobody writes (a timestamp, the addresses as text).
pub fn wanted(config: &AccessLog) -> bool {
    match (config.format, &config.path) {
        (AccessLogFormat::Text, None) => log::log_enabled!(log::Level::Info),
        _ => true,
    }
}

/// Writes `entry` as `config` says.
pub fn emit(config: &AccessLog, entry: &Entry<'_>) {
    match (config.format, &config.path) {
        // The line it has always been, through the logger (level filter included).
        (AccessLogFormat::Text, None) => log::info!("{}", text(entry)),
        (AccessLogFormat::Text, Some(_)) => {
            let line = format!("{} {}\n", entry.ts, text(entry));
            crate::logger::access(line.into_bytes());
        }
        (AccessLogFormat::Json, _) => match serde_json::to_vec(entry) {
            Ok(mut line) => {
                line.push(b'\n');
                crate::logger::access(line);
            }
            Err(e) => log::warn!("access log: cannot encode a line: {e}"),
        },
    }
}

/// The human line (without time and level).
pub fn text(e: &Entry<'_>) -> String {
    use std::fmt::Write;
    let mut s = format!("{} {} id={}", e.method, e.path, e.id);
    if let Some(route) = e.route {
        let _ = write!(s, " route={route}");
    }
    if let (Some(k), Some(u)) = (e.key_id, e.user) {
        let _ = write!(s, " key={k} user={u}");
    }
    let _ = write!(s, " model={} provider={}", e.model, e.provider);
    if let Some(r) = e.replica {
        let _ = write!(s, " replica={r}");
    }
    let _ = write!(
        s,
        " account={} upstream_model={} attempts={} status={} stream={} duration_ms={:.1} bytes_in={} bytes_out={}",
        e.account,
        e.upstream_model,
        e.attempts,
        e.status,
        e.stream,
        e.duration_ms,
        e.bytes_in,
        e.bytes_out
    );
    if !e.dropped.is_empty() {
        let _ = write!(s, " dropped={}", e.dropped.join(","));
    }
    if !e.guardrails.is_empty() {
        let _ = write!(s, " guardrails={}", e.guardrails.join(","));
    }
    if let Some(sp) = &e.spent {
        let t = &sp.tokens;
        let cost = match (sp.cost_usd, sp.cost_unknown) {
            (Some(c), _) => metering::format_cost(c),
            (None, reason) => format!("unknown({})", reason.unwrap_or("-")),
        };
        let _ = write!(
            s,
            " tokens={}/{}/{}/{} usage={} cost={cost}",
            t.input, t.cache_read, t.cache_write, t.output, sp.usage
        );
    }
    if let Some(err) = e.error {
        let _ = write!(s, " error=\"{err}\"");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry<'static> {
        Entry {
            ts: "2026-01-02T03:04:05.678Z".into(),
            id: "r1",
            method: "POST",
            path: "/v1/chat/completions",
            route: None,
            http: "HTTP/2",
            key_id: Some("k1"),
            user: Some("alice"),
            model: "gpt-4o",
            provider: "openai",
            replica: None,
            account: "default",
            upstream_model: "gpt-4o",
            attempts: 1,
            status: 200,
            stream: true,
            duration_ms: 12.34,
            bytes_in: 10,
            bytes_out: 20,
            client: Some("127.0.0.1:5555".into()),
            listener: Some("127.0.0.1:443".into()),
            tls: Some("TLSv1.3".into()),
            upstream: Some("127.0.0.1:9000".into()),
            dropped: &[],
            guardrails: vec![],
            spent: Some(Spent {
                tokens: Tokens {
                    input: 1,
                    cache_read: 2,
                    cache_write: 3,
                    output: 4,
                },
                usage: "provider",
                cost_usd: Some(0.5),
                cost_unknown: None,
            }),
            error: None,
        }
    }

    #[test]
    fn the_text_line_is_the_log_line() {
        assert_eq!(
            text(&entry()),
            "POST /v1/chat/completions id=r1 key=k1 user=alice model=gpt-4o provider=openai account=default upstream_model=gpt-4o attempts=1 status=200 stream=true duration_ms=12.3 bytes_in=10 bytes_out=20 tokens=1/2/3/4 usage=provider cost=0.5"
        );
    }

    #[test]
    fn the_json_line_has_every_field() {
        let v: serde_json::Value = serde_json::to_value(entry()).unwrap();
        assert_eq!(v["tls"], "TLSv1.3");
        assert_eq!(v["tokens"]["output"], 4);
        assert_eq!(v["cost_usd"], 0.5);
        assert_eq!(v["key_id"], "k1");
        assert!(v.get("error").is_none() && v.get("cost_unknown").is_none());
    }
}

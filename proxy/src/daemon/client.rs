//! The verbs' side of the control socket: send one request, read one reply.

use super::{Reply, Request};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Why a control request got no reply.
#[derive(Debug)]
pub enum ClientError {
    /// No router answers on that socket (no file, or a stale one nobody listens on).
    NotRunning,
    /// Something else went wrong (permissions, a reply that is not JSON, a timeout).
    Failed(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::NotRunning => f.write_str("not running"),
            ClientError::Failed(why) => f.write_str(why),
        }
    }
}

/// Sends `request` to the router on `socket` and returns its reply.
pub fn call(socket: &Path, request: &Request, timeout: Duration) -> Result<Reply, ClientError> {
    let mut stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ClientError::NotRunning)
        }
        Err(e) => {
            return Err(ClientError::Failed(format!(
                "cannot reach the control socket {}: {e}",
                socket.display()
            )))
        }
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let mut line = serde_json::to_string(request)
        .map_err(|e| ClientError::Failed(format!("cannot encode the request: {e}")))?;
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .map_err(|e| ClientError::Failed(format!("cannot send to the router: {e}")))?;
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .map_err(|e| ClientError::Failed(format!("no reply from the router: {e}")))?;
    if reply.is_empty() {
        return Err(ClientError::Failed(
            "the router closed the control connection without a reply".into(),
        ));
    }
    serde_json::from_str(&reply)
        .map_err(|e| ClientError::Failed(format!("unreadable reply from the router: {e}")))
}

/// The variables `bitrouter reload` forwards from the caller's environment: provider keys
/// (`*_API_KEY`, `BITROUTER_*`, which zero-config detection reads) and every variable the
/// config file references as `${NAME}`. Nothing else of the caller's environment is sent.
pub fn forwarded_env(config: Option<&Path>) -> BTreeMap<String, String> {
    let referenced: Vec<String> = config
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|text| referenced_vars(&text))
        .unwrap_or_default();
    std::env::vars()
        .filter(|(k, _)| {
            k.ends_with("_API_KEY") || k.starts_with("BITROUTER_") || referenced.contains(k)
        })
        .collect()
}

/// Names inside `${...}` placeholders (up to a `:-default`).
fn referenced_vars(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        rest = &rest[at + 2..];
        let end = rest
            .find(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
            .unwrap_or(rest.len());
        if end > 0 {
            out.push(rest[..end].to_string());
        }
        rest = &rest[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_referenced_variables() {
        assert_eq!(
            referenced_vars("a: ${KEY}\nb: \"x ${OTHER:-d} $${LIT}\"\nc: ${}"),
            ["KEY", "OTHER", "LIT"]
        );
    }

    #[test]
    fn a_missing_socket_is_not_running() {
        let dir = std::env::temp_dir().join(format!("bitrouter-client-{}", std::process::id()));
        let r = call(
            &dir.join("none.sock"),
            &Request::Status,
            Duration::from_secs(1),
        );
        assert!(matches!(r, Err(ClientError::NotRunning)));
    }
}

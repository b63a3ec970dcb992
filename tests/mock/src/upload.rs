//! `POST */audio/transcriptions` and `*/audio/translations`: `multipart/form-data` parsed as
//! it streams in (frame by frame, a window of one boundary's length kept between frames), so
//! the mock holds no more of a 20 MB upload than the router sends it in one frame.
//!
//! It records each upload ([`UploadRecord`]: the model, the other text fields, the file's name
//! and size, the largest frame received) and answers `mock transcript: model=<m> bytes=<n>` in
//! the response format asked for (`json`, `text`, `verbose_json`).

use bytes::Bytes;
use http::request::Parts;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::json;

use crate::protocol::{openai_error, Reply, ReplyBody};

/// One multipart upload as the mock received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadRecord {
    /// The raw request path.
    pub path: String,
    /// The `model` form field.
    pub model: String,
    /// The other text fields, in order.
    pub fields: Vec<(String, String)>,
    /// The file part's `filename`.
    pub file_name: Option<String>,
    /// Bytes of the file part.
    pub file_bytes: u64,
    /// Bytes of the whole body.
    pub body_bytes: u64,
    /// The largest body frame that arrived.
    pub largest_frame: usize,
    /// The `content-length` the router sent, if any (else it was chunked).
    pub content_length: Option<u64>,
}

impl UploadRecord {
    /// A text field's value.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

enum State {
    /// Waiting for the blank line ending a part's headers.
    Headers,
    /// Inside a part's body; `file`: it has a filename.
    Body {
        name: String,
        file: bool,
    },
    /// Right after a delimiter: `--` ends the body, a line end starts the next part.
    AfterDelimiter,
    Done,
}

struct Parser {
    delimiter: Vec<u8>,
    window: Vec<u8>,
    state: State,
    value: Vec<u8>,
    record: UploadRecord,
}

impl Parser {
    fn feed(&mut self, chunk: &[u8]) -> Result<(), String> {
        self.window.extend_from_slice(chunk);
        loop {
            match &self.state {
                State::Done => {
                    self.window.clear();
                    return Ok(());
                }
                State::AfterDelimiter => {
                    if self.window.len() < 2 {
                        return Ok(());
                    }
                    if self.window.starts_with(b"--") {
                        self.state = State::Done;
                    } else if self.window.starts_with(b"\r\n") {
                        self.window.drain(..2);
                        self.state = State::Headers;
                    } else {
                        return Err("a boundary is followed by garbage".into());
                    }
                }
                State::Headers => {
                    let Some(end) = find(&self.window, b"\r\n\r\n") else {
                        if self.window.len() > 16 * 1024 {
                            return Err("part headers too long".into());
                        }
                        return Ok(());
                    };
                    let headers = String::from_utf8_lossy(&self.window[..end]).into_owned();
                    self.window.drain(..end + 4);
                    let disposition = headers
                        .split("\r\n")
                        .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))
                        .ok_or("a part has no Content-Disposition")?
                        .to_owned();
                    let param = |key: &str| {
                        disposition.split(';').find_map(|p| {
                            let (k, v) = p.split_once('=')?;
                            (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
                        })
                    };
                    let name = param("name").ok_or("a part has no name")?;
                    let file_name = param("filename");
                    let file = file_name.is_some();
                    if file {
                        self.record.file_name = file_name;
                    }
                    self.state = State::Body { name, file };
                    self.value.clear();
                }
                State::Body { name, file } => {
                    let (name, file) = (name.clone(), *file);
                    match find(&self.window, &self.delimiter) {
                        Some(i) => {
                            self.take(&name, file, i);
                            self.window.drain(..self.delimiter.len());
                            self.finish_part(&name, file);
                            self.state = State::AfterDelimiter;
                        }
                        None => {
                            // Keep what could be the start of a delimiter.
                            let keep = self.delimiter.len().saturating_sub(1);
                            let take = self.window.len().saturating_sub(keep);
                            self.take(&name, file, take);
                            return Ok(());
                        }
                    }
                }
            }
        }
    }

    fn take(&mut self, name: &str, file: bool, n: usize) {
        if file {
            self.record.file_bytes += n as u64;
        } else if name != "\u{0}preamble" && self.value.len() < 64 * 1024 {
            self.value.extend_from_slice(&self.window[..n]);
        }
        self.window.drain(..n);
    }

    fn finish_part(&mut self, name: &str, file: bool) {
        if file || name == "\u{0}preamble" {
            return;
        }
        let value = String::from_utf8_lossy(&self.value).into_owned();
        if name == "model" {
            self.record.model = value;
        } else {
            self.record.fields.push((name.to_owned(), value));
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn boundary(parts: &Parts) -> Option<String> {
    let ct = parts
        .headers
        .get(http::header::CONTENT_TYPE)?
        .to_str()
        .ok()?;
    let (kind, params) = ct.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim().eq_ignore_ascii_case("boundary")).then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// Reads the upload frame by frame; `Err(reply)` for a body that is not a valid form.
pub(crate) async fn receive(parts: &Parts, mut body: Incoming) -> Result<UploadRecord, Reply> {
    let Some(boundary) = boundary(parts) else {
        return Err(openai_error(
            400,
            "Content-Type must be multipart/form-data with a boundary",
            "invalid_request_error",
            None,
            None,
        ));
    };
    let mut parser = Parser {
        delimiter: format!("\r\n--{boundary}").into_bytes(),
        // The body starts with the first delimiter without its line end: supply one, and treat
        // whatever precedes it as a preamble part.
        window: b"\r\n".to_vec(),
        state: State::Body {
            name: "\u{0}preamble".into(),
            file: false,
        },
        value: Vec::new(),
        record: UploadRecord {
            path: parts.uri.path().to_owned(),
            model: String::new(),
            fields: Vec::new(),
            file_name: None,
            file_bytes: 0,
            body_bytes: 0,
            largest_frame: 0,
            content_length: parts
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok()),
        },
    };
    let bad = |m: String| openai_error(400, &m, "invalid_request_error", None, None);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| bad(format!("reading the body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            parser.record.body_bytes += data.len() as u64;
            parser.record.largest_frame = parser.record.largest_frame.max(data.len());
            parser.feed(&data).map_err(bad)?;
        }
    }
    if !matches!(parser.state, State::Done) {
        return Err(bad(
            "the multipart body ended before its closing boundary".into()
        ));
    }
    Ok(parser.record)
}

/// The answer to a received upload.
pub(crate) fn answer(record: &UploadRecord) -> Reply {
    if record.model.is_empty() {
        return openai_error(
            400,
            "you must provide a model parameter",
            "invalid_request_error",
            Some("model"),
            None,
        );
    }
    if record.file_name.is_none() {
        return openai_error(
            400,
            "'file' is a required property",
            "invalid_request_error",
            Some("file"),
            None,
        );
    }
    let kind = if record.path.ends_with("/translations") {
        "translation"
    } else {
        "transcript"
    };
    let text = format!(
        "mock {kind}: model={} bytes={}",
        record.model, record.file_bytes
    );
    match record.field("response_format") {
        Some("text") | Some("srt") | Some("vtt") => Reply {
            status: 200,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: ReplyBody::Full(Bytes::from(text)),
        },
        Some("verbose_json") => Reply::json(
            200,
            &json!({"task": kind, "language": "english", "duration": 1.0, "text": text, "segments": []}),
        ),
        _ => Reply::json(
            200,
            &json!({"text": text, "usage": {"type": "duration", "seconds": 1}}),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(body: &[u8], piece: usize) -> UploadRecord {
        let mut parser = Parser {
            delimiter: b"\r\n--XyZ".to_vec(),
            window: b"\r\n".to_vec(),
            state: State::Body {
                name: "\u{0}preamble".into(),
                file: false,
            },
            value: Vec::new(),
            record: UploadRecord {
                path: "/v1/audio/transcriptions".into(),
                model: String::new(),
                fields: Vec::new(),
                file_name: None,
                file_bytes: 0,
                body_bytes: 0,
                largest_frame: 0,
                content_length: None,
            },
        };
        for chunk in body.chunks(piece) {
            parser
                .feed(chunk)
                .unwrap_or_else(|e| panic!("piece {piece}: {e}"));
        }
        assert!(matches!(parser.state, State::Done), "piece {piece}");
        parser.record
    }

    #[test]
    fn parses_at_any_chunk_size() {
        let mut body = b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--XyZ\r\nContent-Disposition: form-data; name=\"language\"\r\n\r\nen\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n".to_vec();
        let file: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        body.extend_from_slice(&file);
        body.extend_from_slice(b"\r\n--XyZ--\r\n");
        for piece in [1, 2, 3, 7, 64, 1000, body.len()] {
            let r = parse_in_pieces(&body, piece);
            assert_eq!(r.model, "whisper-1");
            assert_eq!(r.field("language"), Some("en"));
            assert_eq!(r.file_name.as_deref(), Some("a.wav"));
            assert_eq!(r.file_bytes, 5000, "piece {piece}");
        }
    }
}

//! Reading one text field from the start of a `multipart/form-data` body, without the rest.
//!
//! `POST /v1/audio/transcriptions` names its model in a form field, and the upload after it
//! can be tens of megabytes. The router reads only the prefix up to and including the `model`
//! field (the openai SDKs send form fields before files), routes on it, and streams the rest
//! through untouched; so this scanner works on a prefix, says when it needs more bytes, and
//! never looks past the field it wants.
//!
//! Hand-written rather than a multipart crate: the crates (multer, multipart) consume the
//! stream and hand back parsed fields, while the router must forward the original bytes and
//! stop after one field.

/// The `boundary` parameter of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        (!value.is_empty() && value.len() <= 200).then(|| value.to_string())
    })
}

/// What a prefix says about a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// The field's value (UTF-8, lossily decoded, trimmed), complete in the prefix, and the
    /// byte range of its raw value in the prefix (to rewrite it: [`replace`]).
    Found(String, std::ops::Range<usize>),
    /// The prefix ends before the field (or its value) is complete.
    NeedMore,
    /// The body ended (closing delimiter) without the field.
    Missing,
    /// The prefix is not `multipart/form-data` framed with this boundary.
    Malformed(&'static str),
}

/// Looks for the form field `name` in `prefix`, the first bytes of a multipart body with
/// `boundary`. Parts before it (other fields, even a small file) are skipped whole.
pub fn find_field(prefix: &[u8], boundary: &str, name: &str) -> Scan {
    let open = format!("--{boundary}");
    let delimiter = format!("\r\n--{boundary}");
    // RFC 2046: a preamble may come before the first delimiter; clients send none, but skip it.
    let mut pos = if prefix.starts_with(open.as_bytes()) {
        open.len()
    } else {
        match find(prefix, delimiter.as_bytes(), 0) {
            Some(i) => i + delimiter.len(),
            None if prefix.len() > 1024 => return Scan::Malformed("no multipart boundary"),
            None => return Scan::NeedMore,
        }
    };
    loop {
        // After a delimiter: `--` closes the body, CRLF starts a part.
        let Some(after) = prefix.get(pos..pos + 2) else {
            return Scan::NeedMore;
        };
        if after == b"--" {
            return Scan::Missing;
        }
        if after != b"\r\n" {
            return Scan::Malformed("a multipart boundary is not followed by a line end");
        }
        let headers_start = pos + 2;
        let Some(headers_end) = find(prefix, b"\r\n\r\n", headers_start) else {
            return Scan::NeedMore;
        };
        let headers = &prefix[headers_start..headers_end];
        let body_start = headers_end + 4;
        let Some(body_end) = find(prefix, delimiter.as_bytes(), body_start) else {
            return Scan::NeedMore;
        };
        if part_name(headers).as_deref() == Some(name) {
            let value = String::from_utf8_lossy(&prefix[body_start..body_end]);
            return Scan::Found(value.trim().to_string(), body_start..body_end);
        }
        pos = body_end + delimiter.len();
    }
}

/// `prefix` with the bytes in `span` (a field's value, from [`Scan::Found`]) replaced by
/// `value`.
pub fn replace(prefix: &[u8], span: std::ops::Range<usize>, value: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + value.len());
    out.extend_from_slice(prefix.get(..span.start).unwrap_or_default());
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(prefix.get(span.end..).unwrap_or_default());
    out
}

/// The `name` of a part, from its `Content-Disposition: form-data; name="..."` header.
fn part_name(headers: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(headers);
    let line = text.split("\r\n").find(|line| {
        line.split_once(':')
            .is_some_and(|(h, _)| h.trim().eq_ignore_ascii_case("content-disposition"))
    })?;
    let (_, value) = line.split_once(':')?;
    value.split(';').find_map(|param| {
        let (key, v) = param.split_once('=')?;
        if !key.trim().eq_ignore_ascii_case("name") {
            return None;
        }
        let v = v.trim();
        Some(
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v)
                .to_string(),
        )
    })
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    memchr::memmem::find(haystack.get(from..)?, needle).map(|i| i + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &str = "abc123";

    fn body(parts: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in parts {
            out.extend_from_slice(
                format!(
                    "--{B}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        }
        out.extend_from_slice(format!("--{B}--\r\n").as_bytes());
        out
    }

    #[test]
    fn reads_the_boundary() {
        assert_eq!(
            boundary("multipart/form-data; boundary=abc123").as_deref(),
            Some("abc123")
        );
        assert_eq!(
            boundary("Multipart/Form-Data;charset=utf-8; boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(boundary("application/json"), None);
        assert_eq!(boundary("multipart/form-data"), None);
        assert_eq!(boundary("multipart/form-data; boundary="), None);
    }

    #[test]
    fn finds_the_model_before_the_file() {
        let mut b = body(&[("model", "whisper-1"), ("language", "en")]);
        // A file part follows (cut: the prefix ends inside it).
        b.truncate(b.len() - format!("--{B}--\r\n").len());
        b.extend_from_slice(
            format!("--{B}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF....")
                .as_bytes(),
        );
        let Scan::Found(model, span) = find_field(&b, B, "model") else {
            panic!("not found")
        };
        assert_eq!(model, "whisper-1");
        let swapped = replace(&b, span, "large-v3");
        assert!(matches!(find_field(&swapped, B, "model"), Scan::Found(m, _) if m == "large-v3"));
        assert!(swapped.ends_with(b"RIFF...."));
        // Every shorter prefix that does not hold the whole value needs more.
        let whole = body(&[("model", "whisper-1")]);
        let end = memchr::memmem::find(&whole, b"whisper-1\r\n--").unwrap_or(0) + 11;
        for cut in 0..end {
            assert_eq!(
                find_field(&whole[..cut], B, "model"),
                Scan::NeedMore,
                "{cut}"
            );
        }
    }

    #[test]
    fn skips_other_parts_and_reports_a_missing_field() {
        let b = body(&[("prompt", "hello"), ("model", " tts-1 ")]);
        assert!(matches!(find_field(&b, B, "model"), Scan::Found(m, _) if m == "tts-1"));
        let b = body(&[("prompt", "hello")]);
        assert_eq!(find_field(&b, B, "model"), Scan::Missing);
        assert!(matches!(
            find_field(&[b'x'; 2000], B, "model"),
            Scan::Malformed(_)
        ));
        assert!(matches!(
            find_field(format!("--{B}xx").as_bytes(), B, "model"),
            Scan::Malformed(_)
        ));
    }
}

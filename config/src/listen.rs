//! The listeners of `server:`: `listen` (one address or a list), `tls`, `h2c`, and
//! `access_log`; their schema types, their resolution (defaults, paths relative to the file)
//! and their checks (every problem at file:line:col, like the rest of the configuration).
//!
//! Why a list: one process serves a loopback plain-HTTP port (local agents, health checks)
//! and an external TLS port, as nginx does with several `listen` lines. The single-string form
//! stays the default and means exactly what it meant before.

use crate::spans::Seg;
use crate::validate::Diagnostics;
use schemars::JsonSchema;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// `server.listen`: `host:port`, or a list of listeners.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[schemars(untagged)]
pub enum ListenSection {
    /// One address (`127.0.0.1:4356`); TLS when `server.tls` is set.
    One(String),
    /// Several listeners, each an address or `{address, tls?, h2c?}`. The first is the one
    /// `bitrouter status` and `bitrouter start` check.
    Many(Vec<ListenEntry>),
}

/// One entry of a `server.listen` list.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[schemars(untagged)]
pub enum ListenEntry {
    /// `host:port`, with the section's `tls` / `h2c`.
    Address(String),
    /// A listener with its own settings.
    Listener(ListenerSection),
}

/// A listener written as a map.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerSection {
    /// `host:port` (`[v6]:port` for IPv6); port 0 picks a free port.
    pub address: String,
    /// Serve TLS here (default: whether `server.tls` is set). `true` needs `server.tls`.
    #[serde(default)]
    pub tls: Option<bool>,
    /// Accept HTTP/2 without TLS (prior knowledge) here, besides HTTP/1.1 (default:
    /// `server.h2c`). Ignored on a TLS listener, where ALPN chooses.
    #[serde(default)]
    pub h2c: Option<bool>,
}

impl Default for ListenSection {
    fn default() -> Self {
        ListenSection::One(crate::DEFAULT_LISTEN.to_string())
    }
}

impl<'de> Deserialize<'de> for ListenSection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ListenSection;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`host:port` or a list of listeners")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ListenSection, E> {
                Ok(ListenSection::One(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ListenSection, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = seq.next_element::<ListenEntry>()? {
                    out.push(entry);
                }
                Ok(ListenSection::Many(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for ListenEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ListenEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`host:port` or `{address, tls, h2c}`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ListenEntry, E> {
                Ok(ListenEntry::Address(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ListenEntry, A::Error> {
                ListenerSection::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(ListenEntry::Listener)
            }
        }
        d.deserialize_any(V)
    }
}

/// `server.tls`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// The certificate chain, PEM (the server's certificate first, then intermediates).
    /// Relative to the folder of this file. Re-read by `bitrouter reload`.
    pub cert_file: PathBuf,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1). Relative to the folder of this file.
    pub key_file: PathBuf,
}

/// `server.access_log`: one line per request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessLogSection {
    /// `text` (the human line, default) or `json` (one object per line).
    #[serde(default)]
    pub format: AccessLogFormat,
    /// `stdout` (default: where the router's log goes, the daemon's log file under `bitrouter
    /// start`) or a file, appended to and reopened by `bitrouter reload` (rotation).
    #[serde(default)]
    pub path: Option<String>,
}

/// The access log's line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogFormat {
    #[default]
    Text,
    Json,
}

/// One listener, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// `host:port` as written (port 0: the proxy picks a free port).
    pub address: String,
    pub tls: bool,
    /// HTTP/2 prior knowledge on a plain listener.
    pub h2c: bool,
}

impl Listener {
    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }
}

/// `server.tls`, paths resolved against the config file's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// `server.access_log`, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccessLog {
    pub format: AccessLogFormat,
    /// `None`: the router's own log output.
    pub path: Option<PathBuf>,
}

/// The listener settings of `server:`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listening {
    pub listeners: Vec<Listener>,
    pub tls: Option<TlsFiles>,
    pub h2c: bool,
    pub access_log: AccessLog,
}

impl crate::ServerConfig {
    /// Replaces the listeners with one at `address` (`serve --listen`), TLS when `server.tls`
    /// is set, h2c when `server.h2c` is, as the single-string form of `server.listen`.
    pub fn override_listen(&mut self, address: &str) {
        self.listen = address.to_string();
        self.listeners = vec![Listener {
            address: address.to_string(),
            tls: self.tls.is_some(),
            h2c: self.h2c,
        }];
    }
}

/// Resolves and checks `server.listen`, `server.tls`, `server.h2c` and `server.access_log`.
/// `check_listen` is the resolver's address check (`host:port`).
pub(crate) fn resolve(
    s: &crate::schema::ServerSection,
    base_dir: Option<&Path>,
    diag: &mut Diagnostics,
    check_listen: fn(&str) -> Result<(), String>,
) -> Listening {
    let server = |rest: &[Seg]| {
        let mut p = vec![Seg::key("server")];
        p.extend_from_slice(rest);
        p
    };
    let tls = s.tls.as_ref().map(|t| TlsFiles {
        cert_file: rooted(&t.cert_file, base_dir),
        key_file: rooted(&t.key_file, base_dir),
    });
    if let Some(files) = &tls {
        if let Err(why) = check_pem(&files.cert_file, Pem::Certificate) {
            diag.at_value(&server(&[Seg::key("tls"), Seg::key("cert_file")]), why);
        }
        if let Err(why) = check_pem(&files.key_file, Pem::PrivateKey) {
            diag.at_value(&server(&[Seg::key("tls"), Seg::key("key_file")]), why);
        }
    }
    let mut listeners = Vec::new();
    let check = |address: &str, path: &[Seg], diag: &mut Diagnostics| {
        if let Err(why) = check_listen(address) {
            diag.at_value(path, format!("invalid `listen` address `{address}`: {why}"));
        }
    };
    match &s.listen {
        ListenSection::One(address) => {
            check(address, &server(&[Seg::key("listen")]), diag);
            listeners.push(Listener {
                address: address.clone(),
                tls: tls.is_some(),
                h2c: s.h2c,
            });
        }
        ListenSection::Many(entries) => {
            if entries.is_empty() {
                diag.at_value(
                    &server(&[Seg::key("listen")]),
                    "`listen` is an empty list: name at least one address",
                );
            }
            for (i, entry) in entries.iter().enumerate() {
                let at = server(&[Seg::key("listen"), Seg::Index(i)]);
                let listener = match entry {
                    ListenEntry::Address(address) => {
                        check(address, &at, diag);
                        Listener {
                            address: address.clone(),
                            tls: tls.is_some(),
                            h2c: s.h2c,
                        }
                    }
                    ListenEntry::Listener(l) => {
                        let mut field = at.clone();
                        field.push(Seg::key("address"));
                        check(&l.address, &field, diag);
                        if l.tls == Some(true) && tls.is_none() {
                            let mut field = at.clone();
                            field.push(Seg::key("tls"));
                            diag.at_value(
                                &field,
                                "`tls: true` needs `server.tls: {cert_file, key_file}`",
                            );
                        }
                        Listener {
                            address: l.address.clone(),
                            tls: l.tls.unwrap_or(tls.is_some()) && tls.is_some(),
                            h2c: l.h2c.unwrap_or(s.h2c),
                        }
                    }
                };
                // Port 0 picks a different free port for each.
                let fixed = !listener.address.ends_with(":0");
                if let Some(first) = listeners
                    .iter()
                    .position(|o: &Listener| fixed && o.address == listener.address)
                {
                    diag.at_value(
                        &at,
                        format!(
                            "`{}` is listed twice (entries {} and {})",
                            listener.address,
                            first + 1,
                            i + 1
                        ),
                    );
                }
                listeners.push(listener);
            }
        }
    }
    let access_log = match &s.access_log {
        None => AccessLog::default(),
        Some(a) => {
            let path = a.path.as_deref().filter(|p| *p != "stdout");
            if path == Some("") {
                diag.at_value(
                    &server(&[Seg::key("access_log"), Seg::key("path")]),
                    "`path` is empty: a file, or `stdout`",
                );
            }
            AccessLog {
                format: a.format,
                path: path
                    .filter(|p| !p.is_empty())
                    .map(|p| rooted(Path::new(p), base_dir)),
            }
        }
    };
    Listening {
        listeners,
        tls,
        h2c: s.h2c,
        access_log,
    }
}

fn rooted(path: &Path, base_dir: Option<&Path>) -> PathBuf {
    match base_dir {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    }
}

/// What a PEM file must hold.
#[derive(Debug, Clone, Copy)]
enum Pem {
    Certificate,
    PrivateKey,
}

/// Whether `path` can be read and holds a PEM block of the kind wanted. The blocks' contents
/// are parsed by the proxy when it builds the TLS configuration (at start, `config validate`
/// and reload); this check puts a missing file or a swapped cert/key at the line that names it.
fn check_pem(path: &Path, want: Pem) -> Result<(), String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&text);
    let found = text.lines().any(|line| {
        let Some(label) = line
            .trim()
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            return false;
        };
        match want {
            Pem::Certificate => label == "CERTIFICATE",
            Pem::PrivateKey => label.ends_with("PRIVATE KEY"),
        }
    });
    if found {
        return Ok(());
    }
    Err(match want {
        Pem::Certificate => format!(
            "`{}` holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ),
        Pem::PrivateKey => format!(
            "`{}` holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA or EC)",
            path.display()
        ),
    })
}

#[cfg(test)]
mod tests {
    use crate::{load_str, AccessLogFormat, MapEnv};

    fn load(yaml: &str) -> Result<crate::Config, String> {
        load_str(yaml, "bitrouter.yaml", &MapEnv::default()).map_err(|e| e.to_string())
    }

    #[test]
    fn single_string_listen_keeps_its_meaning() {
        let c = load("server:\n  listen: 127.0.0.1:9000\n").unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:9000");
        assert_eq!(c.server.listeners.len(), 1);
        assert!(!c.server.listeners[0].tls && !c.server.listeners[0].h2c);
        let c = load("server: {}\n").unwrap();
        assert_eq!(c.server.listeners[0].address, crate::DEFAULT_LISTEN);
    }

    #[test]
    fn a_list_mixes_strings_and_maps() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        std::fs::write(
            &cert,
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let yaml = format!(
            "server:\n  h2c: true\n  tls: {{cert_file: {}, key_file: {}}}\n  listen:\n    - address: 127.0.0.1:1\n      tls: false\n    - 0.0.0.0:2\n  access_log: {{format: json, path: stdout}}\n",
            cert.display(),
            key.display()
        );
        let c = load(&yaml).unwrap();
        let l = &c.server.listeners;
        assert_eq!(l.len(), 2);
        assert_eq!((l[0].tls, l[0].h2c), (false, true));
        assert_eq!((l[1].address.as_str(), l[1].tls), ("0.0.0.0:2", true));
        assert_eq!(c.server.listen, "127.0.0.1:1");
        assert_eq!(c.server.access_log.format, AccessLogFormat::Json);
        assert_eq!(c.server.access_log.path, None);
    }

    #[test]
    fn problems_are_placed_and_named() {
        let e = load("server:\n  listen:\n    - 127.0.0.1:1\n    - address: 127.0.0.1:2\n      tls: true\n      tsl: 1\n").unwrap_err();
        assert!(e.contains("unknown field `tsl`"), "{e}");
        let e = load(
            "server:\n  listen:\n    - 127.0.0.1:1\n    - address: 127.0.0.1:2\n      tls: true\n",
        )
        .unwrap_err();
        assert!(e.contains(":5:12: `tls: true` needs `server.tls"), "{e}");
        let e = load("server:\n  listen: [127.0.0.1:1, nope]\n").unwrap_err();
        assert!(e.contains(":2:25: invalid `listen` address `nope`"), "{e}");
        let e = load(
            "server:\n  tls:\n    cert_file: /nonexistent/cert.pem\n    key_file: /nonexistent/key.pem\n",
        )
        .unwrap_err();
        assert!(
            e.contains(":3:16: cannot read `/nonexistent/cert.pem`")
                && e.contains(":4:15: cannot read `/nonexistent/key.pem`"),
            "{e}"
        );
        let e = load("server:\n  listen: [127.0.0.1:1, 127.0.0.1:1]\n").unwrap_err();
        assert!(e.contains("listed twice"), "{e}");
        let e = load("server:\n  access_log: {format: xml}\n").unwrap_err();
        assert!(e.contains("unknown variant `xml`"), "{e}");
    }

    #[test]
    fn a_key_in_the_cert_field_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pem");
        std::fs::write(
            &key,
            "-----BEGIN EC PRIVATE KEY-----\nAA==\n-----END EC PRIVATE KEY-----\n",
        )
        .unwrap();
        let yaml = format!(
            "server:\n  tls: {{cert_file: {0}, key_file: {0}}}\n",
            key.display()
        );
        let e = load(&yaml).unwrap_err();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        assert!(!e.contains("holds no PEM private key"), "{e}");
    }
}

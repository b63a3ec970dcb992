//! The downstream listeners: addresses resolved (port 0 picks a free port now, so the log can
//! print it), TLS with a certificate that `bitrouter reload` replaces without a restart, and
//! HTTP/2 (ALPN on TLS listeners, prior knowledge with `h2c` on plain ones).
//!
//! Why a resolver rather than Pingora's certificate files: `TlsSettings` reads the files once,
//! when the listener is built, into a rustls `ServerConfig` nobody can reach afterwards. Pingora
//! 0.9.1 lets the listener take a rustls `ResolvesServerCert` instead
//! (`TlsSettings::set_cert_resolver`), asked on every handshake; [`CertStore`] answers from an
//! `ArcSwap`, which a reload swaps, so the next handshake gets the new certificate while
//! connections already open keep theirs.

use arc_swap::ArcSwap;
use bitrouter_config::{Listener, TlsFiles};
use pingora_core::tls::sign::CertifiedKey;
use pingora_core::tls::{ClientHello, CryptoProvider, ResolvesServerCert};
use std::fs::File;
use std::io::BufReader;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;

/// A listener with its address resolved.
#[derive(Debug, Clone)]
pub struct Bound {
    pub listener: Listener,
    pub addr: SocketAddr,
}

impl Bound {
    /// `http://addr` or `https://addr`, as the log and `bitrouter status` print it.
    pub fn url(&self) -> String {
        format!("{}://{}", self.listener.scheme(), self.addr)
    }

    /// What `bitrouter status` shows for it (`http://127.0.0.1:4356 (h2c)`).
    pub fn describe(&self) -> String {
        if self.listener.h2c && !self.listener.tls {
            format!("{} (h2c)", self.url())
        } else {
            self.url()
        }
    }
}

/// Turns `listen` into a concrete socket address. Port 0 picks a free port now, so the address
/// can be printed (tests read it from the log).
pub fn resolve_listen(listen: &str) -> Result<SocketAddr, String> {
    let addr = listen
        .to_socket_addrs()
        .map_err(|e| format!("server.listen `{listen}` is not a usable address: {e}"))?
        .next()
        .ok_or_else(|| format!("server.listen `{listen}` resolves to no address"))?;
    if addr.port() != 0 {
        return Ok(addr);
    }
    let probe = TcpListener::bind(addr).map_err(|e| format!("cannot bind {addr}: {e}"))?;
    probe
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))
}

/// Resolves every listener (see [`resolve_listen`]).
pub fn resolve_all(listeners: &[Listener]) -> Result<Vec<Bound>, String> {
    let mut out: Vec<Bound> = Vec::with_capacity(listeners.len());
    for l in listeners {
        let addr = resolve_listen(&l.address)?;
        if out.iter().any(|b| b.addr == addr) {
            return Err(format!(
                "server.listen names {addr} twice (`{}` resolves to it)",
                l.address
            ));
        }
        out.push(Bound {
            listener: l.clone(),
            addr,
        });
    }
    Ok(out)
}

/// The certificate TLS listeners present, replaceable while they run.
#[derive(Debug)]
pub struct CertStore {
    current: ArcSwap<CertifiedKey>,
}

impl CertStore {
    /// Reads `files` (see [`load_certified_key`]).
    pub fn load(files: &TlsFiles) -> Result<Arc<CertStore>, String> {
        Ok(Arc::new(CertStore {
            current: ArcSwap::from_pointee(load_certified_key(files)?),
        }))
    }

    /// Serves `key` to every handshake from now on.
    pub fn replace(&self, key: CertifiedKey) {
        self.current.store(Arc::new(key));
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Reads and checks `server.tls`: the chain's certificates, the private key, and that the key
/// belongs to the first certificate. Every error names the file and the field.
pub fn load_certified_key(files: &TlsFiles) -> Result<CertifiedKey, String> {
    pingora_core::tls::install_default_crypto_provider();
    let provider = CryptoProvider::get_default()
        .ok_or_else(|| "server.tls: no TLS crypto provider is installed".to_string())?;
    let cert_path = &files.cert_file;
    let certs = rustls_pemfile::certs(&mut reader("server.tls.cert_file", cert_path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            format!(
                "server.tls.cert_file `{}`: not a valid PEM certificate chain: {e}",
                cert_path.display()
            )
        })?;
    if certs.is_empty() {
        return Err(format!(
            "server.tls.cert_file `{}` holds no PEM certificate",
            cert_path.display()
        ));
    }
    let key_path = &files.key_file;
    let key = rustls_pemfile::private_key(&mut reader("server.tls.key_file", key_path)?)
        .map_err(|e| {
            format!(
                "server.tls.key_file `{}`: not a valid PEM private key: {e}",
                key_path.display()
            )
        })?
        .ok_or_else(|| {
            format!(
                "server.tls.key_file `{}` holds no PEM private key",
                key_path.display()
            )
        })?;
    let signing = provider.key_provider.load_private_key(key).map_err(|e| {
        format!(
            "server.tls.key_file `{}`: not a usable private key (RSA, ECDSA or Ed25519): {e}",
            key_path.display()
        )
    })?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match().map_err(|e| {
        format!(
            "server.tls: the key in `{}` does not belong to the certificate in `{}`: {e}",
            key_path.display(),
            cert_path.display()
        )
    })?;
    Ok(certified)
}

fn reader(field: &str, path: &Path) -> Result<BufReader<File>, String> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|e| format!("{field} `{}`: cannot read it: {e}", path.display()))
}

/// The TLS version of a session (`TLSv1.3`), from Pingora's digest (`TLSv1_3`).
pub fn tls_version(session: &pingora_proxy::Session) -> Option<String> {
    let digest = session.digest()?.ssl_digest.as_ref()?;
    if digest.version.is_empty() {
        return None;
    }
    Some(digest.version.replace('_', "."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_unparsable_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert_file: dir.path().join("nope.pem"),
            key_file: dir.path().join("key.pem"),
        };
        let e = load_certified_key(&files).unwrap_err();
        assert!(e.starts_with("server.tls.cert_file `"), "{e}");
        assert!(e.contains("nope.pem"), "{e}");
        std::fs::write(&files.cert_file, "not pem").unwrap();
        let e = load_certified_key(&files).unwrap_err();
        assert!(e.contains("holds no PEM certificate"), "{e}");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_and_a_pair_loads() {
        let dir = tempfile::tempdir().unwrap();
        let a = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let files = TlsFiles {
            cert_file: dir.path().join("cert.pem"),
            key_file: dir.path().join("key.pem"),
        };
        std::fs::write(&files.cert_file, a.cert.pem()).unwrap();
        std::fs::write(&files.key_file, b.key_pair.serialize_pem()).unwrap();
        let e = load_certified_key(&files).unwrap_err();
        assert!(e.contains("does not belong to the certificate"), "{e}");
        std::fs::write(&files.key_file, a.key_pair.serialize_pem()).unwrap();
        let store = CertStore::load(&files).unwrap();
        assert_eq!(store.current.load().cert.len(), 1);
    }
}

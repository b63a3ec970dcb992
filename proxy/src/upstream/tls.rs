//! Per-provider trust roots: a PEM bundle loaded once at start-up and attached to the provider's
//! peers (used for private CAs and for the tests' local HTTPS mock).

use pingora_core::protocols::tls::CaType;
use pingora_core::utils::tls::{parse_x509, WrappedX509};
use std::path::Path;
use std::sync::Arc;

/// Loads every certificate in a PEM file. Errors name the file and what is wrong with it.
pub fn load_ca_file(path: &Path) -> Result<Arc<CaType>, String> {
    let pem =
        std::fs::read(path).map_err(|e| format!("cannot read ca_file {}: {e}", path.display()))?;
    let mut certs = Vec::new();
    for item in rustls_pemfile::certs(&mut pem.as_slice()) {
        let der = item.map_err(|e| format!("ca_file {} is not valid PEM: {e}", path.display()))?;
        let der = der.as_ref().to_vec();
        // Pingora's parser panics on bad DER; check first so a bad file is an error, not a crash.
        if x509_parser::parse_x509_certificate(&der).is_err() {
            return Err(format!(
                "ca_file {} contains a certificate that is not valid X.509",
                path.display()
            ));
        }
        certs.push(WrappedX509::new(der, parse_x509));
    }
    if certs.is_empty() {
        return Err(format!(
            "ca_file {} contains no certificates",
            path.display()
        ));
    }
    Ok(Arc::from(certs.into_boxed_slice()))
}

//! TLS for the load generator's connections: the CA that signs the broker's certificate and
//! the name to check it against.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;

/// How to open TLS connections to the broker.
#[derive(Clone)]
pub struct TlsSettings {
    /// The connector (trusting the given CA).
    pub connector: TlsConnector,
    /// The name the broker's certificate must carry.
    pub server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsSettings {
    /// Trusts the certificates in the PEM file `ca` and checks the broker's against `name`.
    pub fn new(ca: &Path, name: &str) -> Result<TlsSettings, String> {
        let mut roots = rustls::RootCertStore::empty();
        let certificates = CertificateDer::pem_file_iter(ca)
            .map_err(|e| format!("{}: {e}", ca.display()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{}: {e}", ca.display()))?;
        if certificates.is_empty() {
            return Err(format!("{}: no certificate", ca.display()));
        }
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|e| format!("{}: {e}", ca.display()))?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let server_name = ServerName::try_from(name.to_owned())
            .map_err(|e| format!("server name `{name}`: {e}"))?;
        Ok(TlsSettings {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }
}

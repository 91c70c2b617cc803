//! TLS for listeners: the server certificate (reloaded when its files change), client
//! certificates checked against a CA bundle and CRLs, and what the broker reads from a client
//! certificate (common name, subject alternative names, fingerprint).
//!
//! rustls is used as what it is, a state machine without I/O: the connection driver moves
//! bytes between the socket and the `ServerConnection`, so TLS connections run in the same
//! readiness-driven loop as plain ones.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::RwLock;
use rustls::crypto::aws_lc_rs;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig, ServerConnection};
use sha2::{Digest, Sha256};
use tollgate_auth::CertificateInfo;

use crate::config::{ClientCertMode, TlsConfig};

/// Most plaintext bytes rustls holds for sending before the driver waits for the socket.
pub(crate) const TLS_SEND_BUFFER: usize = 64 * 1024;

/// Makes TLS server connections for one listener.
pub struct TlsAcceptor {
    config: Arc<ServerConfig>,
    certificate: Arc<ReloadingCertificate>,
}

impl TlsAcceptor {
    /// Loads the certificate, key, CA bundle and CRLs named in `settings`.
    pub fn new(settings: &TlsConfig) -> Result<TlsAcceptor, String> {
        let provider = Arc::new(aws_lc_rs::default_provider());
        let certificate = Arc::new(ReloadingCertificate::load(
            settings.cert.clone(),
            settings.key.clone(),
        )?);
        let verifier = match (&settings.client_certs, &settings.client_ca) {
            (ClientCertMode::None, None) => WebPkiClientVerifier::no_client_auth(),
            (ClientCertMode::None, Some(_)) => {
                return Err("tls.client_ca is set but tls.client_certs is \"none\"".into())
            }
            (_, None) => return Err("tls.client_certs needs tls.client_ca".into()),
            (mode, Some(ca)) => {
                let mut roots = RootCertStore::empty();
                for cert in read_certificates(ca)? {
                    roots
                        .add(cert)
                        .map_err(|e| format!("{}: {e}", ca.display()))?;
                }
                let mut crls = Vec::new();
                for path in &settings.crl {
                    let crl = CertificateRevocationListDer::from_pem_file(path)
                        .map_err(|e| format!("{}: cannot read CRL: {e}", path.display()))?;
                    crls.push(crl);
                }
                let builder =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .with_crls(crls);
                let builder = if *mode == ClientCertMode::Optional {
                    builder.allow_unauthenticated()
                } else {
                    builder
                };
                builder
                    .build()
                    .map_err(|e| format!("client certificate verifier: {e}"))?
            }
        };
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(certificate.clone());
        Ok(TlsAcceptor {
            config: Arc::new(config),
            certificate,
        })
    }

    /// A new server-side TLS session for an accepted socket.
    pub fn accept(&self) -> Result<ServerConnection, String> {
        let mut connection =
            ServerConnection::new(Arc::clone(&self.config)).map_err(|e| e.to_string())?;
        connection.set_buffer_limit(Some(TLS_SEND_BUFFER));
        Ok(connection)
    }

    /// Reads the certificate and key again (new connections use them; existing ones keep
    /// theirs). The previous pair stays in force when the new files are bad.
    pub fn reload(&self) -> Result<(), String> {
        self.certificate.reload()
    }

    /// Polls the certificate and key files and reloads them when they change.
    pub fn watch(self: &Arc<Self>, interval: Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let Some(acceptor) = weak.upgrade() else {
                    return;
                };
                if acceptor.certificate.changed() {
                    match acceptor.reload() {
                        Ok(()) => {
                            tracing::info!(cert = %acceptor.certificate.cert_path.display(), "TLS certificate reloaded")
                        }
                        Err(e) => {
                            tracing::error!("TLS certificate not reloaded, previous one kept: {e}")
                        }
                    }
                }
            }
        });
    }
}

/// The server certificate and key, swapped in place on reload.
#[derive(Debug)]
struct ReloadingCertificate {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<(Arc<CertifiedKey>, Option<SystemTime>)>,
}

impl ReloadingCertificate {
    fn load(cert_path: PathBuf, key_path: PathBuf) -> Result<Self, String> {
        let key = load_certified_key(&cert_path, &key_path)?;
        let stamp = modified(&cert_path).max(modified(&key_path));
        Ok(ReloadingCertificate {
            cert_path,
            key_path,
            current: RwLock::new((Arc::new(key), stamp)),
        })
    }

    fn reload(&self) -> Result<(), String> {
        let stamp = modified(&self.cert_path).max(modified(&self.key_path));
        let key = load_certified_key(&self.cert_path, &self.key_path)?;
        *self.current.write() = (Arc::new(key), stamp);
        Ok(())
    }

    fn changed(&self) -> bool {
        let stamp = modified(&self.cert_path).max(modified(&self.key_path));
        stamp.is_some() && stamp != self.current.read().1
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read().0))
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: cannot read certificates: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: bad PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", path.display()));
    }
    Ok(certs)
}

fn load_certified_key(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, String> {
    let certs = read_certificates(cert_path)?;
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| format!("{}: cannot read private key: {e}", key_path.display()))?;
    let provider = aws_lc_rs::default_provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("{}: unusable private key: {e}", key_path.display()))?;
    let certified = CertifiedKey::new(certs, signing_key);
    certified.keys_match().map_err(|e| {
        format!(
            "{} and {} do not belong together: {e}",
            cert_path.display(),
            key_path.display()
        )
    })?;
    Ok(certified)
}

/// What the broker reads from a client certificate (already verified by rustls).
pub fn certificate_info(der: &[u8]) -> CertificateInfo {
    let fingerprint_sha256 = Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut info = CertificateInfo {
        fingerprint_sha256,
        ..CertificateInfo::default()
    };
    if let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) {
        info.common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                use x509_parser::extensions::GeneralName;
                match name {
                    GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                        info.subject_alt_names.push((*s).to_owned())
                    }
                    _ => {}
                }
            }
        }
    }
    info
}

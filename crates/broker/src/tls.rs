//! TLS for listeners: the server certificate (reloaded when its files change), client
//! certificates checked against a CA bundle and CRLs, and what the broker reads from a client
//! certificate (common name, subject alternative names, fingerprint).
//!
//! rustls is used as what it is, a state machine without I/O: the connection driver moves
//! bytes between the socket and the `ServerConnection`, so TLS connections run in the same
//! readiness-driven loop as plain ones.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

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
use crate::tls_error::{TlsError, TlsMaterial};

/// Most plaintext bytes rustls holds for sending before the driver waits for the socket.
pub(crate) const TLS_SEND_BUFFER: usize = 64 * 1024;

/// Serial numbers the listener's CRLs revoke, by issuer.
#[derive(Debug, Default)]
struct RevokedSerials(HashSet<(String, String)>);

impl RevokedSerials {
    fn contains(&self, certificate: &CertificateInfo) -> bool {
        self.0
            .contains(&(certificate.issuer.clone(), certificate.serial_hex.clone()))
    }
}

/// Makes TLS server connections for one listener. The server certificate, the client CA
/// bundle and the CRLs are read again on reload (SIGHUP, or when their files change); the
/// serial numbers the CRLs revoke are kept so that connected clients whose certificate is
/// revoked since can be found and closed.
pub struct TlsAcceptor {
    settings: TlsConfig,
    config: RwLock<Arc<ServerConfig>>,
    certificate: Arc<ReloadingCertificate>,
    revoked: RwLock<Arc<RevokedSerials>>,
    /// Modification times of the CA bundle and the CRLs when last read.
    trust_stamp: parking_lot::Mutex<Vec<Option<SystemTime>>>,
}

impl TlsAcceptor {
    /// Loads the certificate, key, CA bundle and CRLs named in `settings`.
    pub fn new(settings: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
        let certificate = Arc::new(ReloadingCertificate::load(
            settings.cert.clone(),
            settings.key.clone(),
        )?);
        let (config, revoked) = server_config(settings, &certificate)?;
        Ok(TlsAcceptor {
            settings: settings.clone(),
            config: RwLock::new(config),
            certificate,
            revoked: RwLock::new(Arc::new(revoked)),
            trust_stamp: parking_lot::Mutex::new(trust_stamp(settings)),
        })
    }

    /// A new server-side TLS session for an accepted socket.
    pub fn accept(&self) -> Result<ServerConnection, rustls::Error> {
        let config = Arc::clone(&self.config.read());
        let mut connection = ServerConnection::new(config)?;
        connection.set_buffer_limit(Some(TLS_SEND_BUFFER));
        Ok(connection)
    }

    /// The rustls configuration in force (for a listener that runs TLS over tokio streams,
    /// the admin listener).
    pub fn server_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.config.read())
    }

    /// Whether the CRLs in force revoke `certificate`.
    pub fn is_revoked(&self, certificate: &CertificateInfo) -> bool {
        self.revoked.read().contains(certificate)
    }

    /// Reads the certificate and key, the CA bundle and the CRLs again (new connections use
    /// them; connected clients are checked against the new CRLs by the caller). What fails
    /// to load leaves the previous files in force. Returns whether the CA bundle or CRLs were
    /// read again.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let certificate = self.certificate.reload();
        let trust = self.reload_trust();
        certificate?;
        trust
    }

    /// Reloads whatever changed on disk since it was read; see [`TlsAcceptor::reload`].
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let mut trust_changed = false;
        if self.certificate.changed() {
            self.certificate.reload()?;
            tracing::info!(cert = %self.certificate.cert_path.display(), "TLS certificate reloaded");
        }
        if *self.trust_stamp.lock() != trust_stamp(&self.settings) {
            trust_changed = self.reload_trust()?;
        }
        Ok(trust_changed)
    }

    fn reload_trust(&self) -> Result<bool, TlsError> {
        if self.settings.client_ca.is_none() {
            return Ok(false);
        }
        let stamp = trust_stamp(&self.settings);
        *self.trust_stamp.lock() = stamp;
        let (config, revoked) = server_config(&self.settings, &self.certificate)?;
        *self.config.write() = config;
        *self.revoked.write() = Arc::new(revoked);
        tracing::info!(
            crls = self.settings.crl.len(),
            "TLS client CA and CRLs reloaded"
        );
        Ok(true)
    }
}

/// The modification times of the CA bundle and CRL files.
fn trust_stamp(settings: &TlsConfig) -> Vec<Option<SystemTime>> {
    settings
        .client_ca
        .iter()
        .chain(&settings.crl)
        .map(|p| modified(p))
        .collect()
}

/// The rustls configuration for `settings`, and the serials its CRLs revoke.
fn server_config(
    settings: &TlsConfig,
    certificate: &Arc<ReloadingCertificate>,
) -> Result<(Arc<ServerConfig>, RevokedSerials), TlsError> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let mut revoked = RevokedSerials::default();
    let verifier = match (&settings.client_certs, &settings.client_ca) {
        (ClientCertMode::None, None) => WebPkiClientVerifier::no_client_auth(),
        (ClientCertMode::None, Some(_)) => return Err(TlsError::CaWithoutClientCerts),
        (_, None) => return Err(TlsError::ClientCertsWithoutCa),
        (mode, Some(ca)) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certificates("client_ca", ca)? {
                roots.add(cert).map_err(|e| TlsError::BadCaCertificate {
                    path: ca.clone(),
                    error: e.to_string(),
                })?;
            }
            let mut crls = Vec::new();
            for path in &settings.crl {
                let crl = CertificateRevocationListDer::from_pem_file(path).map_err(|e| {
                    TlsError::Unreadable {
                        key: "crl",
                        path: path.clone(),
                        material: TlsMaterial::Crl,
                        error: e.to_string(),
                    }
                })?;
                revoked_serials(&crl, &mut revoked).map_err(|error| TlsError::BadCrl {
                    path: path.clone(),
                    error,
                })?;
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
                .map_err(|e| TlsError::Verifier(e.to_string()))?
        }
    };
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::ServerConfig(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(certificate.clone());
    Ok((Arc::new(config), revoked))
}

/// Adds the (issuer, serial) pairs a CRL revokes.
fn revoked_serials(
    der: &CertificateRevocationListDer<'_>,
    into: &mut RevokedSerials,
) -> Result<(), String> {
    let (_, crl) = x509_parser::parse_x509_crl(der.as_ref()).map_err(|e| e.to_string())?;
    let issuer = crl.issuer().to_string();
    for entry in crl.iter_revoked_certificates() {
        into.0.insert((issuer.clone(), hex(entry.raw_serial())));
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The server certificate and key, swapped in place on reload.
#[derive(Debug)]
struct ReloadingCertificate {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<(Arc<CertifiedKey>, Option<SystemTime>)>,
}

impl ReloadingCertificate {
    fn load(cert_path: PathBuf, key_path: PathBuf) -> Result<Self, TlsError> {
        let key = load_certified_key(&cert_path, &key_path)?;
        let stamp = modified(&cert_path).max(modified(&key_path));
        Ok(ReloadingCertificate {
            cert_path,
            key_path,
            current: RwLock::new((Arc::new(key), stamp)),
        })
    }

    fn reload(&self) -> Result<(), TlsError> {
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

/// The certificates in the PEM file `path`, named by `key` in the listener's `tls` table.
fn read_certificates(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let unreadable = |error: String| TlsError::Unreadable {
        key,
        path: path.to_owned(),
        material: TlsMaterial::Certificates,
        error,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| unreadable(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable(format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            key,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn load_certified_key(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    let certs = read_certificates("cert", cert_path)?;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| TlsError::Unreadable {
        key: "key",
        path: key_path.to_owned(),
        material: TlsMaterial::PrivateKey,
        error: e.to_string(),
    })?;
    let provider = aws_lc_rs::default_provider();
    let signing_key =
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::UnusableKey {
                path: key_path.to_owned(),
                error: e.to_string(),
            })?;
    let certified = CertifiedKey::new(certs, signing_key);
    certified.keys_match().map_err(|e| TlsError::KeyMismatch {
        cert: cert_path.to_owned(),
        key: key_path.to_owned(),
        error: e.to_string(),
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
        info.issuer = cert.issuer().to_string();
        info.serial_hex = hex(cert.raw_serial());
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

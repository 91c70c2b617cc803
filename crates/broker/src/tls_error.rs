//! Why a listener's TLS material could not be used: one variant per cause, each naming the
//! key of the listener's `tls` table at fault ([`TlsError::key`]) and the file concerned.

use std::fmt;
use std::path::PathBuf;

/// What a TLS file holds, as said in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMaterial {
    /// Certificates (the server's chain, or the client CA bundle).
    Certificates,
    /// The server's private key.
    PrivateKey,
    /// A certificate revocation list.
    Crl,
}

impl fmt::Display for TlsMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsMaterial::Certificates => "certificates",
            TlsMaterial::PrivateKey => "private key",
            TlsMaterial::Crl => "CRL",
        })
    }
}

/// A listener's TLS settings or files that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsError {
    /// `client_ca` is set but `client_certs` is `"none"`.
    CaWithoutClientCerts,
    /// `client_certs` asks for client certificates but no `client_ca` is set.
    ClientCertsWithoutCa,
    /// A file cannot be read, or is not PEM holding what it should.
    Unreadable {
        /// The key naming the file (`cert`, `key`, `client_ca`, `crl`).
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What it should hold.
        material: TlsMaterial,
        /// The reader's error.
        error: String,
    },
    /// A certificate file holds no certificate.
    NoCertificate {
        /// The key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// A CA certificate cannot be used as a trust anchor.
    BadCaCertificate {
        /// The CA bundle.
        path: PathBuf,
        /// rustls' error.
        error: String,
    },
    /// A CRL cannot be parsed.
    BadCrl {
        /// The CRL file.
        path: PathBuf,
        /// The parser's error.
        error: String,
    },
    /// The private key is of a kind or form the TLS library cannot sign with.
    UnusableKey {
        /// The key file.
        path: PathBuf,
        /// The library's error.
        error: String,
    },
    /// The private key is not the certificate's.
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// The library's error.
        error: String,
    },
    /// The client certificate verifier cannot be built from the CA bundle and CRLs.
    Verifier(String),
    /// The TLS library refuses the server configuration.
    ServerConfig(String),
}

impl TlsError {
    /// The key of the listener's `tls` table at fault.
    pub fn key(&self) -> &'static str {
        match self {
            TlsError::CaWithoutClientCerts | TlsError::BadCaCertificate { .. } => "client_ca",
            TlsError::Verifier(_) => "client_ca",
            TlsError::ClientCertsWithoutCa => "client_certs",
            TlsError::Unreadable { key, .. } | TlsError::NoCertificate { key, .. } => key,
            TlsError::BadCrl { .. } => "crl",
            TlsError::UnusableKey { .. } | TlsError::KeyMismatch { .. } => "key",
            TlsError::ServerConfig(_) => "cert",
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::CaWithoutClientCerts => {
                f.write_str("tls.client_ca is set but tls.client_certs is \"none\"")
            }
            TlsError::ClientCertsWithoutCa => f.write_str("client certificates need tls.client_ca"),
            TlsError::Unreadable {
                path,
                material,
                error,
                ..
            } => write!(f, "{}: cannot read {material}: {error}", path.display()),
            TlsError::NoCertificate { path, .. } => {
                write!(f, "{}: no certificate found", path.display())
            }
            TlsError::BadCaCertificate { path, error } => write!(f, "{}: {error}", path.display()),
            TlsError::BadCrl { path, error } => write!(f, "{}: bad CRL: {error}", path.display()),
            TlsError::UnusableKey { path, error } => {
                write!(f, "{}: unusable private key: {error}", path.display())
            }
            TlsError::KeyMismatch { cert, key, error } => write!(
                f,
                "{} and {} do not belong together: {error}",
                cert.display(),
                key.display()
            ),
            TlsError::Verifier(error) => write!(f, "client certificate verifier: {error}"),
            TlsError::ServerConfig(error) => f.write_str(error),
        }
    }
}

impl std::error::Error for TlsError {}

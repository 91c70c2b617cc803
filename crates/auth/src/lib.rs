//! Identity and access for Tollgate.
//!
//! Every connection becomes a [`Principal`] at CONNECT: the listener's
//! [`authentication::AuthChain`] decides who the client is, from a password file
//! ([`password_file`]), a certificate, a token, or an authenticator supplied in code.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod ace;
pub mod audit;
pub mod authentication;
pub mod jwt;
pub mod log;
pub mod oauth;
pub mod password_file;
pub mod permissions;
pub mod policy;
mod principal;
pub mod revocation;
pub mod scram;
pub mod seconds;
mod secret;
mod setup_error;
pub mod token;
pub mod webhook;

pub use principal::{Attribute, CertificateInfo, NameOrigin, Owner, Principal, Source};
pub use secret::{constant_time_eq, random_bytes, Secret};
pub use setup_error::SetupError;

//! What every token authenticator shares: where the token travels in CONNECT, how its
//! claims become an identity, the certificate a token may be bound to (RFC 8705), and how the times it carries become times without overflow.

mod certificate_binding;
mod claims_config;
mod location;
mod mapping;
mod signer;
mod time;

pub use certificate_binding::CertificateBinding;
pub use claims_config::TokenClaimsConfig;
pub use location::{TokenLocation, TokenSource};
pub use mapping::{claim_holds, lookup, strings, ClaimMapping};
pub use signer::{
    PermissionsForm, SignRefusal, SignedToken, SignerSettings, TokenGrant, TokenSigner,
    TrustedIssuer,
};
pub use time::MAX_EXPIRY;
pub(crate) use time::{after_secs, at_unix_secs, numeric_date};

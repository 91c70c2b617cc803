//! What every token authenticator shares: where the token travels in CONNECT, how its
//! claims become an identity, and how the times it carries become times without overflow.

mod claims_config;
mod location;
mod mapping;
mod signer;
mod time;

pub use claims_config::TokenClaimsConfig;
pub use location::{TokenLocation, TokenSource};
pub use mapping::{claim_holds, lookup, strings, ClaimMapping};
pub use signer::{
    PermissionsForm, SignRefusal, SignedToken, SignerSettings, TokenGrant, TokenSigner,
    TrustedIssuer,
};
pub use time::MAX_EXPIRY;
pub(crate) use time::{after_secs, at_unix_secs, numeric_date};

//! What every token authenticator shares: where the token travels in CONNECT, and how its
//! claims become an identity.

mod location;
mod mapping;

pub use location::{TokenLocation, TokenSource};
pub use mapping::{claim_holds, lookup, strings, ClaimMapping};

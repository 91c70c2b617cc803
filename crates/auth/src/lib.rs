//! Identity and access for Tollgate.
//!
//! Every connection becomes a [`Principal`] at CONNECT. This first version carries only what
//! the broker core needs (who the client is and who the user is); the authentication chain and
//! the permission engine grow here.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod principal;

pub use principal::Principal;

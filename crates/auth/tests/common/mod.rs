//! Helpers shared by the integration tests of this crate.

pub mod held;
pub mod http_service;

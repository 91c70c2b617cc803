//! The running broker.

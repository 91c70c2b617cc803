//! Sources of permissions: Tollgate's policy file, Mosquitto's `acl_file`, and token claims.
//! Each is an [`Authorizer`](crate::permissions::Authorizer) to put in a chain.

mod acl_file;
mod claims;
mod policy_file;
mod policy_tests;
mod source_error;

pub use acl_file::AclFile;
pub use claims::{ClaimsAuthorizer, ClaimsSettings, ScopeTemplate};
pub use policy_file::PolicyFile;
pub use policy_tests::{
    run_policy_tests, PolicyTest, TestAction, TestFailure, TestIdentity, TestReport,
};
pub use source_error::SourceError;

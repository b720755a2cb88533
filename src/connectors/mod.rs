//! Connecting to SaaS systems: the provider catalogue, the guarded outbound HTTP client,
//! and the OAuth 2.0 client.

pub mod catalogue;
pub mod http;
pub mod oauth;
pub mod redact;

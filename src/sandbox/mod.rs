//! The built-in sandbox SaaS.

//! Authentication building blocks: password hashing, random secrets and their digests,
//! login throttling, and signed device cookies.

pub mod device;
pub mod password;
pub mod throttle;
pub mod tokens;

//! Authentication building blocks shared by every way a device or a person signs in:
//! argon2id password hashes, strong password generation, source-network allow-lists
//! and the failed-login policy (temporary blocks after repeated failures).
//!
//! Hashing and verification are CPU-bound (tens of milliseconds by design): async
//! callers run them on a blocking thread.

mod networks;
mod password;
mod throttle;

pub use networks::{InvalidNetwork, NetworkAllowList};
pub use password::{
    GENERATED_PARAMS, PasswordError, dummy_verify, generate_password, hash_device_password,
    hash_generated_password, hash_password, verify_password,
};
pub use throttle::{BlockScope, Blocked, LoginThrottle, ThrottlePolicy};

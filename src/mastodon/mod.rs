//! The only code that knows Mastodon: URLs, parameters, entities, headers, error bodies, rate limits.
//!
//! `operations/` asks for things in Mastodon's terms ("register this app", "post this status") and gets
//! Mastodon's entities back as JSON values, or a classified [`crate::error::Error`]. Nothing here knows
//! about callers' wire formats; nothing outside knows Mastodon's paths.

pub mod address;
pub mod capabilities;
mod client;
pub mod form;
mod instance;
pub mod multipart;
pub mod redact;
pub mod resilience;

pub use capabilities::{Capabilities, CapabilityOverrides, LengthRule, Software};
pub use client::format_unix;
pub(crate) use client::unix_now;
#[doc(hidden)]
pub use client::{classify_for_fuzzing, FUZZ_ROUTES, FUZZ_SECRET};
pub use client::{Answer, Body, Endpoint, MastodonClient, RateLimit};
pub use instance::{InstanceInfo, MediaLimits};

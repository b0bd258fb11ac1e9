//! How large a request body may be, chosen from the request head alone (the path's operation, or the
//! SOAP action), so that the intake and the handlers refuse an oversized body before reading it.
//!
//! One function decides it for every operation: an operation that needs a larger limit (an upload)
//! gets its own arm in [`body_limit_for`] and its setting's name in [`body_limit_setting`].

use crate::config::ServerSettings;
use crate::operations::Operation;

/// The most bytes a body of `operation` may have (`None`: the operation cannot be told from the
/// head, or the path names none).
pub fn body_limit_for(server: &ServerSettings, operation: Option<Operation>) -> usize {
    // Every operation takes the general limit so far.
    let _ = operation;
    server.max_body_bytes
}

/// The setting that [`body_limit_for`] read for `operation`, for error details.
pub fn body_limit_setting(operation: Option<Operation>) -> &'static str {
    let _ = operation;
    "server.max_body_bytes"
}

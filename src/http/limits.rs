//! How large a request body may be, chosen from the request head alone (the path's operation, or the
//! SOAP action), so that the intake and the handlers refuse an oversized body before reading it.
//!
//! One function decides it for every operation: an operation that needs a larger limit (an upload)
//! gets its own arm in [`body_limit_for`] and its setting's name in [`body_limit_setting`].

use crate::config::ServerSettings;
use crate::operations::Operation;

/// Whether `operation`'s body may carry files (base64 or multipart), and so takes the upload limit.
fn carries_files(operation: Option<Operation>) -> bool {
    matches!(
        operation,
        Some(Operation::UploadMedia | Operation::PostStatus)
    )
}

/// The most bytes a body of `operation` may have (`None`: the operation cannot be told from the
/// head, or the path names none: the general limit).
pub fn body_limit_for(server: &ServerSettings, operation: Option<Operation>) -> usize {
    if carries_files(operation) {
        // Never below the general limit: a post without media is a post like any other.
        server.max_upload_bytes.max(server.max_body_bytes)
    } else {
        server.max_body_bytes
    }
}

/// The setting that [`body_limit_for`] read for `operation`, for error details.
pub fn body_limit_setting(operation: Option<Operation>) -> &'static str {
    if carries_files(operation) {
        "server.max_upload_bytes"
    } else {
        "server.max_body_bytes"
    }
}

//! Typed errors that cross the wire.

use serde::{Deserialize, Serialize};

/// What went wrong, in terms a caller can act on. Every message says what
/// happened and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    /// What kind of failure, for code to act on.
    pub kind: ErrorKind,
    /// What happened and what to do about it, for a person or a model.
    pub message: String,
    /// Trying the same request again later may succeed.
    pub retriable: bool,
    /// When retrying makes sense at the earliest, in milliseconds from
    /// now (a rate limit says when its next token comes).
    pub retry_after_ms: Option<u64>,
}

/// The kinds of failure a request can meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The host alias is not in the SSH client config.
    HostUnknown,
    /// The server's host key is not in known_hosts.
    HostKeyUnknown,
    /// The server's host key differs from the one in known_hosts.
    HostKeyMismatch,
    /// No offered credential was accepted, or a key could not be used.
    AuthFailed,
    /// The TCP connection or SSH handshake did not finish in time.
    ConnectTimeout,
    /// The host could not be reached (refused, no route, circuit open).
    Unreachable,
    /// The operation ran past its deadline.
    Timeout,
    /// A path does not exist.
    NotFound,
    /// The server refused access.
    PermissionDenied,
    /// The daemon's policy forbids this request.
    PolicyDenied,
    /// The daemon is at a limit; retry later.
    Overloaded,
    /// The client cancelled the request.
    Cancelled,
    /// The request was malformed or its arguments were wrong.
    BadRequest,
    /// The client and daemon speak different protocol versions.
    VersionMismatch,
    /// A bug or an unexpected failure inside the daemon.
    Internal,
    /// The destination path exists and the request would not replace it.
    AlreadyExists,
    /// The filesystem (remote or local) is full or over quota.
    NoSpace,
    /// A path has the wrong type for the operation (not a directory, is a
    /// directory, not a regular file).
    WrongType,
    /// A file operation failed for another reason; the message says which.
    IoError,
}

impl ErrorKind {
    /// Stable lowercase name, used in MCP results, `sshmcpctl`'s errors and
    /// the daemon's log.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::HostUnknown => "host_unknown",
            ErrorKind::HostKeyUnknown => "host_key_unknown",
            ErrorKind::HostKeyMismatch => "host_key_mismatch",
            ErrorKind::AuthFailed => "auth_failed",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::NotFound => "not_found",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::PolicyDenied => "policy_denied",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::VersionMismatch => "version_mismatch",
            ErrorKind::Internal => "internal",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::NoSpace => "no_space",
            ErrorKind::WrongType => "wrong_type",
            ErrorKind::IoError => "io_error",
        }
    }
}

impl Error {
    /// An error of `kind`; retriable when the kind usually is.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let retriable = matches!(
            kind,
            ErrorKind::ConnectTimeout
                | ErrorKind::Unreachable
                | ErrorKind::Overloaded
                | ErrorKind::Timeout
        );
        Error {
            kind,
            message: message.into(),
            retry_after_ms: None,
            retriable,
        }
    }

    /// The request was malformed; the message says which argument and why.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::BadRequest, message)
    }

    /// This error, saying that a retry makes sense after `ms` milliseconds.
    pub fn retry_after(mut self, ms: u64) -> Self {
        self.retry_after_ms = Some(ms);
        self
    }

    /// An unexpected failure inside the daemon.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }
}

//! The file side shared by the file ops: remote SFTP building blocks, the
//! local-path policy, and the transfer and sync engines.

pub mod local;
pub mod policy;
pub mod remote;
pub mod transfer;

/// Run `$body` with `$remote` bound to a [`Remote`] on a fresh share of
/// `$host`'s SFTP session; when it fails because the session died, run it once
/// more on a new one (only for operations that are safe to repeat).
macro_rules! on_sftp {
    ($host:expr, retry = $retry:expr, |$remote:ident| $body:expr) => {{
        let host: &std::sync::Arc<$crate::pool::Host> = $host;
        let alias = host.resolved.alias.as_str();
        let deadline = std::time::Instant::now() + $crate::pool::sftp::SESSION_WAIT;
        let mut tries = if $retry { 2 } else { 1 };
        loop {
            tries -= 1;
            let sftp = host.sftp(deadline).await?;
            let $remote = $crate::files::remote::Remote::new(&sftp, alias);
            match $body.await {
                Err(e) if tries > 0 && $crate::files::session_died(&e) => {
                    tracing::info!(host = alias, "SFTP session died; retrying on a fresh one");
                    continue;
                }
                result => break result,
            }
        }
    }};
}

/// The SFTP session (or its connection) failed, as opposed to the request.
pub fn session_died(error: &sshmcp_proto::Error) -> bool {
    matches!(
        error.kind,
        sshmcp_proto::ErrorKind::Unreachable | sshmcp_proto::ErrorKind::Timeout
    )
}
pub(crate) use on_sftp;

//! The file side shared by the file ops: remote SFTP building blocks, the
//! local-path policy, and the transfer and sync engines.

pub mod local;
pub mod policy;
pub mod remote;
pub mod transfer;

/// Run `$body` with `$remote` bound to a [`Remote`] on a fresh share of the
/// host's SFTP session; when it fails because the session died, run it once
/// more on a new one (only for operations that are safe to repeat).
macro_rules! on_sftp {
    ($pool:expr, $host:expr, retry = $retry:expr, |$remote:ident| $body:expr) => {{
        let deadline = std::time::Instant::now() + $crate::pool::sftp::SESSION_WAIT;
        let mut tries = if $retry { 2 } else { 1 };
        loop {
            tries -= 1;
            let sftp = $pool.sftp($host, deadline).await?;
            let $remote = $crate::files::remote::Remote::new(&sftp, $host);
            match $body.await {
                Err(e) if tries > 0 && $crate::files::session_died(&e) => {
                    tracing::info!(host = $host, "SFTP session died; retrying on a fresh one");
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

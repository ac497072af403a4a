//! `read_file`: bytes of a remote file, from an offset, at most one reply's
//! worth (`truncated` says when there is more).

use russh_sftp::protocol::{FileAttributes, OpenFlags};
use sshmcp_proto::{Error, ErrorKind, FileContent, FileKind, ReadFileRequest};

use super::{Context, Op};
use crate::files::on_sftp;
use crate::files::remote::kind_of;

impl Op for ReadFileRequest {
    type Output = FileContent;

    /// The bytes read, then twice more on the way out (encoded, then in
    /// the socket's write buffer).
    fn reservation(&self, max_frame: usize) -> u64 {
        wanted(self, max_frame).saturating_mul(3)
    }

    async fn run(self, ctx: &Context<'_>) -> Result<FileContent, Error> {
        let max_frame = ctx.daemon.config().daemon.max_frame;
        let req = self;
        let want = wanted(&req, max_frame);
        on_sftp!(ctx.host()?, retry = true, |remote| async {
            let attrs = remote.stat(&req.path, true).await?;
            if kind_of(&attrs) != FileKind::File {
                return Err(Error::new(
                    ErrorKind::WrongType,
                    format!(
                        "read_file: {}:{} is a {}, not a regular file; use list_dir or stat",
                        req.host,
                        req.path,
                        kind_of(&attrs).as_str()
                    ),
                ));
            }
            let handle = remote
                .open(
                    "read_file",
                    &req.path,
                    OpenFlags::READ,
                    FileAttributes::empty(),
                )
                .await?;
            let size = match remote.sftp.raw().fstat(handle.id.clone()).await {
                Ok(a) => a.attrs.size.unwrap_or(0),
                Err(e) => return Err(remote.error("read_file", &req.path, e)),
            };
            // No further than the size fstat gave: a read past it would
            // cost one more round trip to hear EOF.
            let len = want.min(size.saturating_sub(req.offset));
            let mut data = Vec::with_capacity(len as usize);
            if len > 0 {
                remote
                    .read_range(&handle, &req.path, req.offset, len, |_, piece| {
                        data.extend_from_slice(&piece);
                        std::future::ready(Ok(()))
                    })
                    .await?;
            }
            let _ = handle.close().await;
            let end = req.offset + data.len() as u64;
            Ok(FileContent {
                path: req.path.clone(),
                offset: req.offset,
                size,
                truncated: end < size,
                data,
            })
        })
    }
}

/// The bytes `req` asks for, within what one reply frame carries.
fn wanted(req: &ReadFileRequest, max_frame: usize) -> u64 {
    req.length
        .unwrap_or(ReadFileRequest::DEFAULT_MAX_READ)
        .min(sshmcp_proto::max_read_per_reply(max_frame))
}

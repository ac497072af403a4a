//! `stat`: what a remote path is (type, size, mode, mtime, link target).

use sshmcp_proto::{Error, FileKind, FileStat, StatRequest};

use super::{Context, Op};
use crate::files::on_sftp;
use crate::files::remote::{file_stat, kind_of};

impl Op for StatRequest {
    type Output = FileStat;

    async fn run(self, ctx: &Context<'_>) -> Result<FileStat, Error> {
        let req = self;
        on_sftp!(ctx.host()?, retry = true, |remote| async {
            let attrs = remote.stat(&req.path, req.follow_symlinks).await?;
            let link = if kind_of(&attrs) == FileKind::Symlink {
                remote.readlink(&req.path).await
            } else {
                None
            };
            Ok(file_stat(req.path.clone(), &attrs, link))
        })
    }
}

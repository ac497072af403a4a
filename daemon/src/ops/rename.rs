//! `rename`: move a remote path, replacing the target only with `overwrite`.

use sshmcp_proto::{Error, ErrorKind, RenameRequest};

use super::{Context, Op};
use crate::files::on_sftp;
use crate::files::remote::kind_of;

impl Op for RenameRequest {
    type Output = ();

    async fn run(self, ctx: &Context<'_>) -> Result<(), Error> {
        let req = self;
        on_sftp!(ctx.host()?, retry = false, |remote| async {
            remote.stat(&req.from, false).await?;
            if let Some(attrs) = remote.try_stat(&req.to, false).await? {
                if !req.overwrite {
                    return Err(Error::new(
                        ErrorKind::AlreadyExists,
                        format!(
                            "rename: {}:{} already exists (a {}); pass overwrite: true to replace it",
                            req.host,
                            req.to,
                            kind_of(&attrs).as_str()
                        ),
                    ));
                }
                return remote.rename_over(&req.from, &req.to).await;
            }
            remote
                .sftp
                .raw()
                .rename(req.from.clone(), req.to.clone())
                .await
                .map(drop)
                .map_err(|e| remote.error("rename", &req.to, e))
        })
    }
}

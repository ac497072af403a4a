//! `mkdir`: make a remote directory, with its parents on request.

use sshmcp_proto::{Error, ErrorKind, MkdirRequest};

use super::{Context, Op};
use crate::files::on_sftp;
use crate::files::remote::kind_of;

impl Op for MkdirRequest {
    type Output = ();

    async fn run(self, ctx: &Context<'_>) -> Result<(), Error> {
        let req = self;
        on_sftp!(ctx.host()?, retry = true, |remote| async {
            if req.parents {
                return remote.mkdir_all(&req.path, req.mode).await.map(drop);
            }
            match remote.mkdir(&req.path, req.mode).await {
                Ok(()) => Ok(()),
                Err(e) => match remote.try_stat(&req.path, false).await {
                    Ok(Some(attrs)) => Err(Error::new(
                        ErrorKind::AlreadyExists,
                        format!(
                            "mkdir: {}:{} already exists (a {}); pass parents: true to accept an existing directory",
                            req.host,
                            req.path,
                            kind_of(&attrs).as_str()
                        ),
                    )),
                    _ if e.kind == ErrorKind::NotFound => Err(Error::new(
                        ErrorKind::NotFound,
                        format!(
                            "mkdir: the parent of {}:{} does not exist; pass parents: true to create it",
                            req.host, req.path
                        ),
                    )),
                    _ => Err(e),
                },
            }
        })
    }
}

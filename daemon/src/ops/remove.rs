//! `remove`: delete a remote file, or a directory (and its tree with
//! `recursive`).

use sshmcp_proto::{Error, ErrorKind, FileKind, RemoveRequest, RemoveResult};

use super::{Context, Op};
use crate::files::on_sftp;
use crate::files::remote::kind_of;

impl Op for RemoveRequest {
    type Output = RemoveResult;

    async fn run(self, ctx: &Context<'_>) -> Result<RemoveResult, Error> {
        let req = self;
        on_sftp!(ctx.host()?, retry = false, |remote| async {
            let attrs = remote.stat(&req.path, false).await?;
            if kind_of(&attrs) != FileKind::Dir {
                remote.remove_file(&req.path).await?;
                return Ok(RemoveResult {
                    path: req.path.clone(),
                    files: 1,
                    dirs: 0,
                });
            }
            if !req.recursive {
                let entries = remote.read_dir(&req.path).await?;
                if !entries.is_empty() {
                    return Err(Error::new(
                        ErrorKind::WrongType,
                        format!(
                            "remove: {}:{} is a directory with {} entries; pass recursive: true to remove it and everything in it",
                            req.host,
                            req.path,
                            entries.len()
                        ),
                    ));
                }
                remote.remove_dir(&req.path).await?;
                return Ok(RemoveResult {
                    path: req.path.clone(),
                    files: 0,
                    dirs: 1,
                });
            }
            let (files, dirs) = remote.remove_tree(&req.path).await?;
            Ok(RemoveResult {
                path: req.path.clone(),
                files,
                dirs,
            })
        })
    }
}

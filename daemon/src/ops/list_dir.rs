//! `list_dir`: a remote directory's entries, optionally recursive.

use sshmcp_proto::{DirListing, Error, FileKind, ListDirRequest};

use super::{Context, Op};
use crate::files::on_sftp;
use crate::files::remote::{self, file_stat, kind_of};

impl Op for ListDirRequest {
    type Output = DirListing;

    async fn run(self, ctx: &Context<'_>) -> Result<DirListing, Error> {
        let req = self;
        let max = req
            .max_entries
            .unwrap_or(ListDirRequest::DEFAULT_MAX_ENTRIES) as usize;
        on_sftp!(ctx.host()?, retry = true, |remote| async {
            let (mut entries, truncated) = if req.recursive {
                remote.walk(&req.path, max).await?
            } else {
                let mut all = remote.read_dir(&req.path).await?;
                all.sort_by(|a, b| a.0.cmp(&b.0));
                let truncated = all.len() > max;
                all.truncate(max);
                (all, truncated)
            };
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut out = Vec::with_capacity(entries.len());
            for (rel, attrs) in entries {
                let link = if kind_of(&attrs) == FileKind::Symlink {
                    remote.readlink(&remote::join(&req.path, &rel)).await
                } else {
                    None
                };
                out.push(file_stat(rel, &attrs, link));
            }
            Ok(DirListing {
                path: req.path.clone(),
                entries: out,
                truncated,
            })
        })
    }
}

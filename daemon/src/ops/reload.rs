//! `reload`: re-read the config and the ssh config, as SIGHUP does.

use sshmcp_proto::{Error, ErrorKind};

use super::{Context, Op};

/// The `Reload` request.
pub struct Reload;

impl Op for Reload {
    type Output = String;

    async fn run(self, ctx: &Context<'_>) -> Result<String, Error> {
        crate::reload::reload(ctx.daemon).await.map_err(|e| {
            Error::new(
                ErrorKind::BadRequest,
                format!("reload refused, the previous config stays in force: {e}"),
            )
        })
    }
}

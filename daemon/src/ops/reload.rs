//! `reload`: re-read the config and the ssh config, as SIGHUP does.

use sshmcp_proto::{Error, ErrorKind};

use crate::state::Daemon;

pub async fn run(daemon: &Daemon) -> Result<String, Error> {
    crate::reload::reload(daemon).await.map_err(|e| {
        Error::new(
            ErrorKind::BadRequest,
            format!("reload refused, the previous config stays in force: {e}"),
        )
    })
}

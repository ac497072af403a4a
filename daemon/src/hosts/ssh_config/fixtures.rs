//! A local user and config helpers shared by the tests of every part of
//! the ssh config module.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{LocalUser, SshConfig};

const HOME: &str = "/home/alice";

/// A local user with a fixed home and host name, so expected paths and
/// tokens can be written out.
pub(super) fn alice() -> LocalUser {
    LocalUser {
        name: "alice".to_owned(),
        uid: LocalUser::current().unwrap().uid,
        home: PathBuf::from(HOME),
        hostname: "build.example.com".to_owned(),
    }
}

/// `text` parsed as `/test/config` for [`alice`].
pub(super) fn parse(text: &str) -> SshConfig {
    SshConfig::parse_str_as(text, Path::new("/test/config"), alice()).unwrap()
}

/// The error that parsing `text` as `/test/config` gives.
pub(super) fn parse_error(text: &str) -> String {
    SshConfig::parse_str_as(text, Path::new("/test/config"), alice())
        .unwrap_err()
        .to_string()
}

/// Write a config file with the permissions ssh insists on.
pub(super) fn write_config(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
}

pub(super) fn paths(list: &[&str]) -> Vec<PathBuf> {
    list.iter().map(PathBuf::from).collect()
}

//! The local account a config is read for, as ssh looks it up: the
//! password database and `gethostname()`, through the reentrant libc calls
//! since the daemon resolves hosts from many threads.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::SshConfigError;

/// The local account a config is resolved for: what ssh reads from the
/// password database and `gethostname()`.
///
/// It is a value rather than a global lookup so that tests, and a daemon
/// serving another user, can say exactly whose view of the config they want.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalUser {
    /// Login name: the default `User`, `%u`, and what `Match localuser` tests.
    pub name: String,
    /// Real uid: `%i`, and who may own config files besides root.
    pub uid: u32,
    /// Home directory: `~`, `%d`, and where relative Includes live (`~/.ssh`).
    pub home: PathBuf,
    /// Local host name with domain: `%l`; up to the first dot it is `%L`.
    pub hostname: String,
}

impl LocalUser {
    /// The account running this process, as ssh looks it up: the password
    /// database entry of the real uid (not `$USER` or `$HOME`), and
    /// `gethostname()`.
    pub fn current() -> Result<LocalUser, SshConfigError> {
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        let entry =
            passwd_entry(&PasswdKey::Uid(uid)).ok_or(SshConfigError::UnknownLocalUser { uid })?;
        Ok(LocalUser {
            name: entry.name,
            uid,
            home: entry.home,
            hostname: local_hostname().map_err(SshConfigError::LocalHostname)?,
        })
    }
}

/// The home directory of the account called `name`, for `~name`; `None`
/// if there is no such account.
pub(super) fn home_of(name: &str) -> Option<PathBuf> {
    let name = CString::new(name).ok()?;
    passwd_entry(&PasswdKey::Name(name)).map(|entry| entry.home)
}

/// The parts of a password-database entry that ssh uses.
struct PasswdEntry {
    name: String,
    home: PathBuf,
}

/// Which password-database entry to look up.
enum PasswdKey {
    Uid(libc::uid_t),
    Name(CString),
}

/// `getpwuid_r`/`getpwnam_r`: the reentrant forms, since the daemon resolves
/// hosts from many threads.
fn passwd_entry(key: &PasswdKey) -> Option<PasswdEntry> {
    let mut buffer_len: usize = 1024;
    loop {
        let mut buffer: Vec<libc::c_char> = vec![0; buffer_len];
        // SAFETY: `passwd` is plain old data; all zeroes is a valid value
        // that the call below overwrites.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the duration of the call,
        // `buffer.len()` is the buffer's real size, and the `_r` variants
        // keep no shared static state.
        let rc = unsafe {
            match key {
                PasswdKey::Uid(uid) => libc::getpwuid_r(
                    *uid,
                    &mut entry,
                    buffer.as_mut_ptr(),
                    buffer.len(),
                    &mut result,
                ),
                PasswdKey::Name(name) => libc::getpwnam_r(
                    name.as_ptr(),
                    &mut entry,
                    buffer.as_mut_ptr(),
                    buffer.len(),
                    &mut result,
                ),
            }
        };
        if rc == libc::ERANGE && buffer_len < 1 << 20 {
            buffer_len *= 4;
            continue;
        }
        if rc != 0 || result.is_null() || entry.pw_name.is_null() || entry.pw_dir.is_null() {
            return None;
        }
        // SAFETY: on success both fields point at NUL-terminated strings
        // inside `buffer`, which is still alive.
        let (name, home) = unsafe { (CStr::from_ptr(entry.pw_name), CStr::from_ptr(entry.pw_dir)) };
        return Some(PasswdEntry {
            name: name.to_string_lossy().into_owned(),
            home: PathBuf::from(OsStr::from_bytes(home.to_bytes())),
        });
    }
}

/// `gethostname()`: the local host name with its domain, if it has one.
fn local_hostname() -> io::Result<String> {
    let mut buffer = [0u8; 257];
    // SAFETY: `buffer` is writable for the length passed, which leaves one
    // byte that stays NUL whatever gethostname writes.
    let rc = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len() - 1) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let name = CStr::from_bytes_until_nul(&buffer).map_err(io::Error::other)?;
    Ok(name.to_string_lossy().into_owned())
}

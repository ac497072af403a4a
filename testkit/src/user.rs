//! The account test servers log in as.

use std::ffi::{CStr, CString};
use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::output_within;
use crate::wait::Backoff;

/// Name of the dedicated account used when the tests run as root.
const DEDICATED_NAME: &str = "sshmcp-test";
const DEDICATED_SHELL: &str = "/bin/sh";
/// Serializes creating the account across test binaries running in parallel.
const CREATION_LOCK: &str = "/run/sshmcp-testkit-user.lock";

/// The account that every test server accepts logins for.
///
/// As root this is the dedicated `sshmcp-test` account with a plain
/// `/bin/sh`, so that remote commands do not pay for root's shell start-up
/// files and timings measure sshd and the product. Otherwise it is the
/// current user, the only one a non-root sshd can log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
    shell: PathBuf,
}

impl TestUser {
    /// Login name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Numeric user id.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// Numeric primary group id.
    pub fn gid(&self) -> u32 {
        self.gid
    }

    /// Home directory: where remote commands start.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// A fresh directory in the user's home that the user owns, removed when
    /// dropped: a place for remote file operations that parallel tests do not
    /// share.
    pub fn scratch_dir(&self) -> TempDir {
        let dir = tempfile::Builder::new()
            .prefix("scratch-")
            .tempdir_in(&self.home)
            .unwrap_or_else(|e| {
                panic!(
                    "cannot create a scratch directory in {}: {e}",
                    self.home.display()
                )
            });
        std::os::unix::fs::chown(dir.path(), Some(self.uid), Some(self.gid)).unwrap_or_else(|e| {
            panic!("cannot give {} to {}: {e}", dir.path().display(), self.name)
        });
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", dir.path().display()));
        dir
    }
}

/// The account test servers accept (see [`TestUser`]), created on first use
/// when running as root.
pub fn test_user() -> &'static TestUser {
    static USER: OnceLock<TestUser> = OnceLock::new();
    USER.get_or_init(|| {
        // SAFETY: getuid(2) cannot fail and has no preconditions.
        let uid = unsafe { libc::getuid() };
        if uid == 0 {
            dedicated_user()
        } else {
            lookup(Lookup::Uid(uid))
                .unwrap_or_else(|| panic!("the current uid {uid} has no passwd entry"))
        }
    })
}

/// Finds or creates `sshmcp-test` and makes it fit for key logins.
fn dedicated_user() -> TestUser {
    let _lock = FileLock::acquire(Path::new(CREATION_LOCK), Duration::from_secs(30));
    if lookup(Lookup::Name(DEDICATED_NAME)).is_none() {
        let output = output_within(
            Command::new("useradd")
                .args(["-m", "-s", DEDICATED_SHELL])
                .arg(DEDICATED_NAME),
            Duration::from_secs(30),
        );
        // 9: the name is taken, by a process that did not use our lock.
        if !output.status.success() && output.status.code() != Some(9) {
            panic!(
                "useradd {DEDICATED_NAME} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    let user = lookup(Lookup::Name(DEDICATED_NAME))
        .unwrap_or_else(|| panic!("{DEDICATED_NAME} has no passwd entry after useradd"));
    if user.shell != Path::new(DEDICATED_SHELL) {
        usermod(&["-s", DEDICATED_SHELL]);
    }
    // sshd with `UsePAM no` refuses locked accounts (`!` as left by useradd);
    // `*` unlocks key logins while no password can ever match. A real hash
    // (`$...`, the sudo tests' password, see `sudo.rs`) keeps them too.
    if !shadow_password(DEDICATED_NAME).is_some_and(|p| p == "*" || p.starts_with('$')) {
        usermod(&["-p", "*"]);
    }
    if !user.home.is_dir() {
        fs::create_dir_all(&user.home)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", user.home.display()));
        std::os::unix::fs::chown(&user.home, Some(user.uid), Some(user.gid))
            .unwrap_or_else(|e| panic!("cannot chown {}: {e}", user.home.display()));
    }
    lookup(Lookup::Name(DEDICATED_NAME))
        .unwrap_or_else(|| panic!("{DEDICATED_NAME} vanished while being set up"))
}

fn usermod(args: &[&str]) {
    let output = output_within(
        Command::new("usermod").args(args).arg(DEDICATED_NAME),
        Duration::from_secs(30),
    );
    assert!(
        output.status.success(),
        "usermod {} {DEDICATED_NAME} failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The password field of `name` in /etc/shadow.
fn shadow_password(name: &str) -> Option<String> {
    let shadow = fs::read_to_string("/etc/shadow").ok()?;
    shadow.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next() == Some(name)).then(|| fields.next().unwrap_or("").to_owned())
    })
}

pub(crate) enum Lookup<'a> {
    Name(&'a str),
    Uid(u32),
}

/// Reads a passwd entry through NSS.
pub(crate) fn lookup(key: Lookup<'_>) -> Option<TestUser> {
    // SAFETY: `passwd` is a plain C struct for which all-zeroes is valid.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 1 << 16];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let rc = match key {
        Lookup::Name(name) => {
            let name = CString::new(name).ok()?;
            // SAFETY: every pointer is valid for the call and `buf.len()` is
            // the buffer's true size.
            unsafe {
                libc::getpwnam_r(
                    name.as_ptr(),
                    &mut entry,
                    buf.as_mut_ptr(),
                    buf.len(),
                    &mut found,
                )
            }
        }
        // SAFETY: as above.
        Lookup::Uid(uid) => unsafe {
            libc::getpwuid_r(uid, &mut entry, buf.as_mut_ptr(), buf.len(), &mut found)
        },
    };
    if rc != 0 || found.is_null() {
        return None;
    }
    // SAFETY: on success the string fields point to NUL-terminated strings
    // inside `buf`, which outlives these reads.
    let text = |ptr: *const libc::c_char| {
        unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned()
    };
    Some(TestUser {
        name: text(entry.pw_name),
        uid: entry.pw_uid,
        gid: entry.pw_gid,
        home: PathBuf::from(text(entry.pw_dir)),
        shell: PathBuf::from(text(entry.pw_shell)),
    })
}

/// An exclusive `flock` on a file, released when dropped (the descriptor
/// closes).
pub(crate) struct FileLock {
    _file: File,
}

impl FileLock {
    pub(crate) fn acquire(path: &Path, timeout: Duration) -> FileLock {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .unwrap_or_else(|e| panic!("cannot open lock file {}: {e}", path.display()));
        let deadline = Instant::now() + timeout;
        let mut backoff = Backoff::new(Duration::from_millis(50));
        loop {
            // SAFETY: flock(2) on a descriptor we own.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return FileLock { _file: file };
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                panic!("cannot lock {}: {err}", path.display());
            }
            if Instant::now() >= deadline {
                panic!(
                    "another process held {} for more than {timeout:?}",
                    path.display()
                );
            }
            backoff.sleep();
        }
    }
}

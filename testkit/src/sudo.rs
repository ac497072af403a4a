//! sudo on the test machine, for the tests of `exec` with `sudo`.
//!
//! As root, the kit gives the test account ([`test_user`]) a sudoers
//! drop-in, `/etc/sudoers.d/sshmcp-test`, and a known password:
//!
//! ```text
//! Defaults:sshmcp-test !lecture, timestamp_timeout=0
//! sshmcp-test ALL=(sshmcp-nopw) NOPASSWD: ALL
//! sshmcp-test ALL=(root) ALL
//! ```
//!
//! so becoming `sshmcp-nopw` (a system account made for it) needs no
//! password and becoming root needs [`TestSudo::password`], every time
//! (`timestamp_timeout=0`). `passwd_tries` keeps sudo's default of three on
//! purpose: the daemon must make one attempt on its own. A real password
//! hash keeps key logins working (the test servers run with `UsePAM no`).
//! Other users cannot set any of this up, so the sudo tests skip, saying
//! why.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::process::output_within;
use crate::user::{FileLock, Lookup, lookup, test_user};

/// The account the test user may become without a password.
const NOPASSWD_USER: &str = "sshmcp-nopw";
/// The test user's password, as sudo asks for it.
const PASSWORD: &str = "sshmcp-Test-sudo-4x9Q";
const DROP_IN: &str = "/etc/sudoers.d/sshmcp-test";
/// sudo reads no file of `sudoers.d` whose name has a `.`.
const DROP_IN_NEW: &str = "/etc/sudoers.d/sshmcp-test.new";
/// Serializes the set-up across test binaries running in parallel.
const SETUP_LOCK: &str = "/run/sshmcp-testkit-sudo.lock";

/// sudo as the test machine has it for [`test_user`].
#[derive(Debug)]
pub struct TestSudo {
    nopasswd_user: &'static str,
    password: &'static str,
}

impl TestSudo {
    /// A user the test user becomes with `sudo -u` and no password.
    pub fn nopasswd_user(&self) -> &str {
        self.nopasswd_user
    }

    /// The test user's password: what sudo wants to run commands as root.
    pub fn password(&self) -> &str {
        self.password
    }
}

/// sudo set up for the test user (once per process), or why it cannot be:
/// not running as root, or sudo not installed.
pub fn test_sudo() -> Result<&'static TestSudo, String> {
    static SUDO: OnceLock<Result<TestSudo, String>> = OnceLock::new();
    SUDO.get_or_init(set_up).as_ref().map_err(Clone::clone)
}

fn set_up() -> Result<TestSudo, String> {
    // SAFETY: getuid(2) cannot fail and has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return Err("sudo tests need root, to install a sudoers drop-in for the test user".into());
    }
    for tool in ["/usr/bin/sudo", "/usr/sbin/visudo", "/usr/sbin/chpasswd"] {
        if !Path::new(tool).exists() {
            return Err(format!("{tool} is missing: apt-get install sudo"));
        }
    }
    let user = test_user().name().to_owned();
    let _lock = FileLock::acquire(Path::new(SETUP_LOCK), Duration::from_secs(60));
    if lookup(Lookup::Name(NOPASSWD_USER)).is_none() {
        let output = output_within(
            Command::new("useradd").args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                NOPASSWD_USER,
            ]),
            Duration::from_secs(30),
        );
        // 9: the name is taken, by a process that did not use our lock.
        if !output.status.success() && output.status.code() != Some(9) {
            return Err(format!(
                "useradd {NOPASSWD_USER} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    let drop_in = format!(
        "# Written by sshmcp's testkit (testkit/src/sudo.rs) for the sudo tests.\n\
         Defaults:{user} !lecture, timestamp_timeout=0\n\
         {user} ALL=({NOPASSWD_USER}) NOPASSWD: ALL\n\
         {user} ALL=(root) ALL\n"
    );
    if fs::read_to_string(DROP_IN).ok().as_deref() != Some(drop_in.as_str()) {
        install_drop_in(&drop_in)?;
    }
    set_password(&user)?;
    Ok(TestSudo {
        nopasswd_user: NOPASSWD_USER,
        password: PASSWORD,
    })
}

/// Write the drop-in beside its place, check it with `visudo -cf`, and
/// move it in: a broken sudoers file would lock sudo for everyone.
fn install_drop_in(text: &str) -> Result<(), String> {
    fs::write(DROP_IN_NEW, text).map_err(|e| format!("cannot write {DROP_IN_NEW}: {e}"))?;
    fs::set_permissions(DROP_IN_NEW, fs::Permissions::from_mode(0o440))
        .map_err(|e| format!("cannot chmod {DROP_IN_NEW}: {e}"))?;
    let check = output_within(
        Command::new("/usr/sbin/visudo").args(["-cf", DROP_IN_NEW]),
        Duration::from_secs(30),
    );
    if !check.status.success() {
        let _ = fs::remove_file(DROP_IN_NEW);
        return Err(format!(
            "visudo refused the drop-in: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        ));
    }
    fs::rename(DROP_IN_NEW, DROP_IN).map_err(|e| format!("cannot install {DROP_IN}: {e}"))
}

/// Give `user` the known password (`chpasswd`, the password on stdin so it
/// is in no command line).
fn set_password(user: &str) -> Result<(), String> {
    let mut child = Command::new("/usr/sbin/chpasswd")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run chpasswd: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("chpasswd has no stdin")?
        .write_all(format!("{user}:{PASSWORD}\n").as_bytes())
        .map_err(|e| format!("cannot write to chpasswd: {e}"))?;
    let output = child
        .wait_with_output()
        .map_err(|e| format!("chpasswd did not finish: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "chpasswd failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}

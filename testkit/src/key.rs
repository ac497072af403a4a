//! Throwaway ed25519 keys made with `ssh-keygen`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::exit_cleanup::KitDir;
use crate::process::output_within;

/// A user key pair that exists only for one test: what the client (the
/// daemon, or `ssh` in benchmarks) authenticates with.
///
/// The private key is written by `ssh-keygen` in OpenSSH format, mode 0600,
/// in its own temporary directory; optionally encrypted with a passphrase so
/// tests can exercise encrypted identity files.
#[derive(Debug)]
pub struct ClientKey {
    path: PathBuf,
    public: String,
    passphrase: Option<String>,
    _dir: KitDir,
}

impl ClientKey {
    /// A fresh unencrypted key.
    pub fn generate() -> ClientKey {
        ClientKey::create(None)
    }

    /// A fresh key encrypted with `passphrase`.
    pub fn generate_with_passphrase(passphrase: &str) -> ClientKey {
        ClientKey::create(Some(passphrase))
    }

    fn create(passphrase: Option<&str>) -> ClientKey {
        let dir = KitDir::new("sshmcp-key-");
        let path = dir.join("id_ed25519");
        let public = generate_ed25519(&path, passphrase.unwrap_or(""), "sshmcp-testkit-user");
        ClientKey {
            path,
            public,
            passphrase: passphrase.map(str::to_owned),
            _dir: dir,
        }
    }

    /// The private key file (what `IdentityFile` names).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The public key as one authorized_keys line: `ssh-ed25519 AAAA… comment`.
    pub fn public_line(&self) -> &str {
        &self.public
    }

    /// The passphrase the private key is encrypted with, if any.
    pub fn passphrase(&self) -> Option<&str> {
        self.passphrase.as_deref()
    }
}

/// Writes a new ed25519 key pair at `path` and `path.pub` (mode 0600 for the
/// private half) and returns the public line.
pub(crate) fn generate_ed25519(path: &Path, passphrase: &str, comment: &str) -> String {
    let output = output_within(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", passphrase, "-C", comment, "-f"])
            .arg(path),
        Duration::from_secs(30),
    );
    assert!(
        output.status.success(),
        "ssh-keygen failed to write {} ({}): {}",
        path.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
    let mut public_path = path.as_os_str().to_owned();
    public_path.push(".pub");
    let public_path = PathBuf::from(public_path);
    let public = fs::read_to_string(&public_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", public_path.display()));
    public.trim().to_owned()
}

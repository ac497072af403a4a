//! Host key verification against OpenSSH `known_hosts` files.
//!
//! Written here rather than taken from russh because the daemon must read
//! real users' files the way `ssh` does: hashed names, comma-separated
//! patterns with wildcards and negation, `@revoked` markers, tabs, and
//! lines it cannot parse (which `ssh` skips rather than failing on).

use std::path::{Path, PathBuf};

use hmac::{KeyInit, Mac};
use russh::keys::{HashAlg, PublicKey};

/// Why a presented host key was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No file records a key of any type for this host.
    Unknown,
    /// A file records a different key of the same type.
    Changed { file: PathBuf, line: usize },
    /// The key is marked `@revoked`.
    Revoked { file: PathBuf, line: usize },
}

/// A trust file that exists but could not be read. Not a [`Rejection`]:
/// nothing can be said about the key while a file that may record it (or
/// revoke it) is unread, and calling it "unknown" once sent users to
/// re-trust keys when the daemon had merely run out of file descriptors.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {source}", file.display())]
pub struct UnreadableFile {
    pub file: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// The name `ssh` looks hosts up by: `host` on port 22, else `[host]:port`.
pub fn lookup_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// Check `key` for `host:port` against `files` in order, as `ssh` does: a
/// revoked key or a changed key of the same type is refused whatever
/// other lines say; otherwise a matching line accepts it. A file that does
/// not exist records nothing (ENOENT, as in OpenSSH); any other failure to
/// read one is an [`UnreadableFile`], never a verdict. The outer `Result`
/// says whether a verdict could be reached, the inner one is the verdict.
pub fn verify(
    host: &str,
    port: u16,
    key: &PublicKey,
    files: &[PathBuf],
) -> Result<Result<(), Rejection>, UnreadableFile> {
    let name = lookup_name(host, port);
    let mut matched = false;
    let mut changed = None;
    for file in files {
        let bytes = match std::fs::read(file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(UnreadableFile {
                    file: file.clone(),
                    source,
                });
            }
        };
        // Bytes, not `read_to_string`: a stray non-UTF-8 comment must not
        // make the whole file unreadable; `ssh` reads it line by line.
        let text = String::from_utf8_lossy(&bytes);
        for (index, line) in text.lines().enumerate() {
            let Some(entry) = Entry::parse(line) else {
                continue;
            };
            if !entry.matches_host(&name) {
                continue;
            }
            let line = index + 1;
            let same = entry.key.key_data() == key.key_data();
            match entry.marker {
                Marker::Revoked if same => {
                    return Ok(Err(Rejection::Revoked {
                        file: file.clone(),
                        line,
                    }));
                }
                Marker::None if same => matched = true,
                Marker::None if entry.key.algorithm() == key.algorithm() => {
                    changed.get_or_insert((file.clone(), line));
                }
                _ => {}
            }
        }
    }
    Ok(match (matched, changed) {
        (_, Some((file, line))) => Err(Rejection::Changed { file, line }),
        (true, None) => Ok(()),
        (false, None) => Err(Rejection::Unknown),
    })
}

/// Append `key` for `host:port` to `file` (creating it and its directory),
/// as `ssh` does under `StrictHostKeyChecking accept-new`.
pub fn learn(host: &str, port: u16, key: &PublicKey, file: &Path) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let openssh = key
        .to_openssh()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    let needs_newline = std::fs::read(file)
        .map(|bytes| bytes.last().is_some_and(|b| *b != b'\n'))
        .unwrap_or(false);
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    let lead = if needs_newline { "\n" } else { "" };
    writeln!(out, "{lead}{} {openssh}", lookup_name(host, port))
}

/// The SHA-256 fingerprint `ssh` prints, e.g. `SHA256:abc...`.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

#[derive(Debug, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

struct Entry<'a> {
    marker: Marker,
    patterns: &'a str,
    key: PublicKey,
}

impl<'a> Entry<'a> {
    fn parse(line: &'a str) -> Option<Entry<'a>> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let mut fields = line.split_whitespace();
        let mut first = fields.next()?;
        let marker = match first {
            "@revoked" => Marker::Revoked,
            "@cert-authority" => Marker::CertAuthority,
            _ => Marker::None,
        };
        if marker != Marker::None {
            first = fields.next()?;
        }
        let _algorithm = fields.next()?;
        let key = russh::keys::parse_public_key_base64(fields.next()?).ok()?;
        Some(Entry {
            marker,
            patterns: first,
            key,
        })
    }

    /// OpenSSH semantics: any negated pattern that matches excludes the line;
    /// otherwise any positive match includes it.
    fn matches_host(&self, name: &str) -> bool {
        if self.patterns.starts_with("|1|") {
            return hashed_matches(self.patterns, name);
        }
        let mut positive = false;
        for pattern in self.patterns.split(',') {
            if let Some(negated) = pattern.strip_prefix('!') {
                if wildcard_match(negated, name) {
                    return false;
                }
            } else if wildcard_match(pattern, name) {
                positive = true;
            }
        }
        positive
    }
}

fn hashed_matches(entry: &str, name: &str) -> bool {
    use base64::Engine;
    let mut parts = entry.split('|').skip(2);
    let engine = base64::engine::general_purpose::STANDARD;
    let (Some(Ok(salt)), Some(Ok(hash))) = (
        parts.next().map(|p| engine.decode(p)),
        parts.next().map(|p| engine.decode(p)),
    ) else {
        return false;
    };
    let Ok(mac) = hmac::Hmac::<sha1::Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.chain_update(name.as_bytes())
        .verify_slice(&hash)
        .is_ok()
}

/// `*` and `?` glob match, case-insensitive as OpenSSH's host matching is.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            backtrack = Some((pi, ti));
            pi += 1;
        } else if let Some((bp, bt)) = backtrack {
            pi = bp + 1;
            ti = bt + 1;
            backtrack = Some((bp, bt + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED1: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIG4kD3bFkt67jXoAYfHFIJG2go5NjnT1phA5d67k3buh";
    const ED2: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOQ2J4HgFCEZNjkUXj/KddJRhGkJUokcRowupMei8wIM";

    fn key(b64: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b64).unwrap()
    }

    /// The verdict for files the test made readable.
    fn check(host: &str, port: u16, key: &PublicKey, files: &[PathBuf]) -> Result<(), Rejection> {
        verify(host, port, key, files).expect("the test's known_hosts files are readable")
    }

    fn file_with(text: &str) -> (tempfile::TempDir, Vec<PathBuf>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        std::fs::write(&path, text).unwrap();
        (dir, vec![path])
    }

    #[test]
    fn recorded_key_on_a_custom_port_is_accepted() {
        let (_d, files) = file_with(&format!("[127.0.0.5]:2222 ssh-ed25519 {ED1}\n"));
        assert_eq!(check("127.0.0.5", 2222, &key(ED1), &files), Ok(()));
        assert_eq!(
            check("127.0.0.5", 22, &key(ED1), &files),
            Err(Rejection::Unknown)
        );
    }

    #[test]
    fn different_key_of_the_same_type_is_a_change() {
        let (_d, files) = file_with(&format!("# c\n\nweb,10.0.0.1\tssh-ed25519 {ED1} me@x\n"));
        assert_eq!(
            check("web", 22, &key(ED2), &files),
            Err(Rejection::Changed {
                file: files[0].clone(),
                line: 3
            })
        );
    }

    #[test]
    fn wildcards_negation_and_revocation_follow_openssh() {
        let text = format!(
            "*.lab,!bad.lab ssh-ed25519 {ED1}\n@revoked * ssh-ed25519 {ED2}\ngarbage line\n"
        );
        let (_d, files) = file_with(&text);
        assert_eq!(check("a.lab", 22, &key(ED1), &files), Ok(()));
        assert_eq!(
            check("bad.lab", 22, &key(ED1), &files),
            Err(Rejection::Unknown)
        );
        assert!(matches!(
            check("a.lab", 22, &key(ED2), &files),
            Err(Rejection::Revoked { .. })
        ));
    }

    #[test]
    fn hashed_names_match() {
        // `ssh-keygen -H` output for "[127.0.0.1]:2222" with this salt.
        use base64::Engine;
        let engine = base64::engine::general_purpose::STANDARD;
        let salt = [7u8; 20];
        let mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(&salt)
            .unwrap()
            .chain_update(b"[127.0.0.1]:2222")
            .finalize()
            .into_bytes();
        let line = format!(
            "|1|{}|{} ssh-ed25519 {ED1}\n",
            engine.encode(salt),
            engine.encode(mac)
        );
        let (_d, files) = file_with(&line);
        assert_eq!(check("127.0.0.1", 2222, &key(ED1), &files), Ok(()));
    }

    #[test]
    fn learned_key_is_then_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/known_hosts");
        learn("h", 2200, &key(ED1), &path).unwrap();
        assert_eq!(check("h", 2200, &key(ED1), &[path]), Ok(()));
    }

    #[test]
    fn a_missing_file_records_nothing_as_in_openssh() {
        let dir = tempfile::tempdir().unwrap();
        let (_d, mut files) = file_with(&format!("web ssh-ed25519 {ED1}\n"));
        files.insert(0, dir.path().join("absent"));
        assert_eq!(check("web", 22, &key(ED1), &files), Ok(()));
        assert_eq!(check("db", 22, &key(ED1), &files), Err(Rejection::Unknown));
    }

    #[test]
    fn a_file_that_cannot_be_read_is_an_error_not_an_unknown_key() {
        // A directory opens but fails to read (EISDIR), as a file does when
        // the daemon is out of descriptors (EMFILE) or lacks permission.
        let dir = tempfile::tempdir().unwrap();
        let (_d, mut files) = file_with(&format!("web ssh-ed25519 {ED1}\n"));
        files.insert(0, dir.path().to_path_buf());
        let err = verify("db", 22, &key(ED1), &files).unwrap_err();
        assert_eq!(err.file, dir.path());
        assert_eq!(err.source.kind(), std::io::ErrorKind::IsADirectory);
        assert!(
            err.to_string().contains(&dir.path().display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn lines_that_are_not_utf8_do_not_hide_the_rest_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        let mut text = b"# caf\xe9\n".to_vec();
        text.extend_from_slice(format!("web ssh-ed25519 {ED1}\n").as_bytes());
        std::fs::write(&path, text).unwrap();
        assert_eq!(check("web", 22, &key(ED1), &[path]), Ok(()));
    }
}

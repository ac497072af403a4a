//! File attributes as the file tools show them: type names, octal modes,
//! times, `ls -l` lines, and the remote paths models write.

use std::fmt::Write as _;

use schemars::JsonSchema;
use serde::Serialize;
use sshmcp_proto::{Error, FileKind};

/// What a path is, as the JSON names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
// Inline in the schemas: some MCP clients do not follow `$ref`.
#[schemars(inline)]
pub enum FileType {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (see `link_target`).
    Symlink,
    /// A device, socket or FIFO.
    Other,
}

impl From<FileKind> for FileType {
    fn from(kind: FileKind) -> Self {
        match kind {
            FileKind::File => FileType::File,
            FileKind::Dir => FileType::Dir,
            FileKind::Symlink => FileType::Symlink,
            FileKind::Other => FileType::Other,
        }
    }
}

impl FileType {
    /// The type's name, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            FileType::File => "file",
            FileType::Dir => "dir",
            FileType::Symlink => "symlink",
            FileType::Other => "other",
        }
    }

    /// The first letter of `ls -l`.
    fn letter(self) -> char {
        match self {
            FileType::File => '-',
            FileType::Dir => 'd',
            FileType::Symlink => 'l',
            FileType::Other => '?',
        }
    }
}

/// Permission bits as four octal digits: `0644`, `4755`.
pub fn octal_mode(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

/// Permission bits from an octal string as people write them: `0644`,
/// `644`, `0o755`, `4755`.
pub fn parse_mode(argument: &str, text: &str) -> Result<u32, Error> {
    let trimmed = text.trim();
    let digits = trimmed.strip_prefix("0o").unwrap_or(trimmed);
    let octal = !digits.is_empty() && digits.bytes().all(|b| (b'0'..=b'7').contains(&b));
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if octal && mode <= 0o7777 => Ok(mode),
        _ => Err(Error::bad_request(format!(
            "`{argument}` is {text:?}: give permission bits as an octal string such as \
             \"0644\" or \"755\""
        ))),
    }
}

/// `rwxr-xr-x` with the type letter in front, as `ls -l` shows a mode.
pub fn ls_mode(kind: FileType, mode: u32) -> String {
    let mut text = String::with_capacity(10);
    text.push(kind.letter());
    // (read, write, execute bit, special bit, special letter) per class.
    let classes = [
        (0o400, 0o200, 0o100, 0o4000, 's'),
        (0o040, 0o020, 0o010, 0o2000, 's'),
        (0o004, 0o002, 0o001, 0o1000, 't'),
    ];
    for (read, write, exec, special, letter) in classes {
        text.push(if mode & read != 0 { 'r' } else { '-' });
        text.push(if mode & write != 0 { 'w' } else { '-' });
        text.push(match (mode & exec != 0, mode & special != 0) {
            (true, true) => letter,
            (false, true) => letter.to_ascii_uppercase(),
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    text
}

/// Seconds since the Unix epoch as an ISO 8601 UTC time,
/// `2024-05-01T12:34:56Z`.
pub fn iso_time(secs: u64) -> String {
    let (year, month, day) = civil_date(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch).
fn civil_date(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// One `ls -l`-like line: mode, size, time (UTC, to the minute), name, and
/// where a symlink points.
pub fn ls_line(
    kind: FileType,
    mode: u32,
    size: u64,
    mtime: u64,
    name: &str,
    link_target: Option<&str>,
) -> String {
    let time = iso_time(mtime);
    let mut line = format!(
        "{} {size:>10} {} {} {name}",
        ls_mode(kind, mode),
        &time[..10],
        &time[11..16]
    );
    if kind == FileType::Dir && !name.ends_with('/') {
        line.push('/');
    }
    if let Some(target) = link_target {
        let _ = write!(line, " -> {target}");
    }
    line
}

/// A remote path as the SFTP server wants it. SFTP servers resolve relative
/// paths against the remote user's home but do not expand `~`, which models
/// write out of habit: `~` becomes `.` and `~/x` becomes `x`.
pub fn remote_path(path: &str) -> String {
    if path == "~" {
        ".".to_string()
    } else if let Some(rest) = path.strip_prefix("~/") {
        let rest = rest.trim_start_matches('/');
        if rest.is_empty() {
            ".".to_string()
        } else {
            rest.to_string()
        }
    } else {
        path.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_print_as_four_octal_digits() {
        assert_eq!(octal_mode(0o644), "0644");
        assert_eq!(octal_mode(0o4755), "4755");
        assert_eq!(octal_mode(0o100644), "0644");
    }

    #[test]
    fn modes_parse_in_the_usual_spellings() {
        for (text, mode) in [
            ("0644", 0o644),
            ("755", 0o755),
            ("0o700", 0o700),
            ("4755", 0o4755),
        ] {
            assert_eq!(parse_mode("mode", text).unwrap(), mode, "{text}");
        }
    }

    #[test]
    fn bad_modes_are_refused_naming_the_argument() {
        for text in ["", "rwx", "0o", "888", "-1", "17777", "0x1ff"] {
            let err = parse_mode("mode", text).unwrap_err();
            assert!(err.message.contains("`mode`"), "{text}: {}", err.message);
        }
    }

    #[test]
    fn ls_mode_shows_type_permissions_and_special_bits() {
        assert_eq!(ls_mode(FileType::File, 0o644), "-rw-r--r--");
        assert_eq!(ls_mode(FileType::Dir, 0o755), "drwxr-xr-x");
        assert_eq!(ls_mode(FileType::File, 0o4755), "-rwsr-xr-x");
        assert_eq!(ls_mode(FileType::Dir, 0o1777), "drwxrwxrwt");
        assert_eq!(ls_mode(FileType::File, 0o2644), "-rw-r-Sr--");
        assert_eq!(ls_mode(FileType::Symlink, 0o777), "lrwxrwxrwx");
    }

    #[test]
    fn times_are_iso_8601_utc() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_time(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso_time(1_714_566_896), "2024-05-01T12:34:56Z");
        assert_eq!(iso_time(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn ls_lines_mark_directories_and_link_targets() {
        assert_eq!(
            ls_line(FileType::Dir, 0o755, 4096, 0, "sub", None),
            "drwxr-xr-x       4096 1970-01-01 00:00 sub/"
        );
        assert_eq!(
            ls_line(FileType::Symlink, 0o777, 3, 60, "l", Some("a/b")),
            "lrwxrwxrwx          3 1970-01-01 00:01 l -> a/b"
        );
    }

    #[test]
    fn tilde_remote_paths_become_home_relative() {
        assert_eq!(remote_path("~"), ".");
        assert_eq!(remote_path("~/"), ".");
        assert_eq!(remote_path("~/a/b"), "a/b");
        assert_eq!(remote_path("/etc/hosts"), "/etc/hosts");
        assert_eq!(remote_path("~root/x"), "~root/x");
        assert_eq!(remote_path("a~/b"), "a~/b");
    }
}

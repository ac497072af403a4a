//! File attributes as the file tools show them: octal modes, times, and
//! the remote paths models write.

use schemars::JsonSchema;
use serde::Serialize;
use sshmcp_proto::{Error, FileKind, FileStat, MAX_MODE};

/// A path's attributes as `stat` and `list_dir` show them: the daemon's
/// [`FileStat`] with the mode as the octal string people read and write
/// (`"0644"`, not 420). `uid` and `gid` are left to `stat`.
#[derive(Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct PathAttrs {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: FileKind,
    pub size: u64,
    pub mode: String,
    pub mtime: u64,
    pub link_target: Option<String>,
}

impl From<FileStat> for PathAttrs {
    fn from(stat: FileStat) -> Self {
        PathAttrs {
            path: stat.path,
            kind: stat.kind,
            size: stat.size,
            mode: octal_mode(stat.mode),
            mtime: stat.mtime,
            link_target: stat.link_target,
        }
    }
}

/// Permission bits as four octal digits: `0644`, `4755`.
pub fn octal_mode(mode: u32) -> String {
    format!("{:04o}", mode & MAX_MODE)
}

/// Permission bits from an octal string as people write them: `0644`,
/// `644`, `0o755`, `4755`.
pub fn parse_mode(argument: &str, text: &str) -> Result<u32, Error> {
    let trimmed = text.trim();
    let digits = trimmed.strip_prefix("0o").unwrap_or(trimmed);
    let octal = !digits.is_empty() && digits.bytes().all(|b| (b'0'..=b'7').contains(&b));
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if octal && mode <= MAX_MODE => Ok(mode),
        _ => Err(Error::bad_request(format!(
            "`{argument}` is {text:?}: give permission bits as an octal string such as \
             \"0644\" or \"755\""
        ))),
    }
}

/// Seconds since the Unix epoch as an ISO 8601 UTC time,
/// `2024-05-01T12:34:56Z`.
pub fn iso_time(secs: u64) -> String {
    let (year, month, day) = sshmcp_proto::civil_date(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
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
    fn times_are_iso_8601_utc() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_time(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso_time(1_714_566_896), "2024-05-01T12:34:56Z");
        assert_eq!(iso_time(4_102_444_799), "2099-12-31T23:59:59Z");
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

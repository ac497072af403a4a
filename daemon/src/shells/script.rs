//! What the daemon writes to a shell, and the markers the shell writes
//! back around each command's output.
//!
//! A command goes in two lines. The first resets the INT trap, prints a
//! start marker on both streams and `eval`s the command, quoted, with
//! `/dev/null` as its standard input (so nothing it reads can eat what the
//! daemon sends next). The second, sent only once the start marker is
//! back, prints the exit status and `$PWD` between end markers on stdout,
//! then an end marker on stderr. Sending it later matters: the shell runs
//! interactively (`sh -i`), so an INT, a syntax error or a failed special
//! builtin abandons the rest of the input it has read, as at a prompt;
//! input that was still on its way is read afterwards and runs.
//!
//! A command run through sudo (`sudo.rs`) is a line whose reader takes
//! one line of the shell's input first (the password, or an empty line):
//! its `eval` keeps the shell's input, and the trailer goes only after
//! that line.
//!
//! Each marker carries a nonce from the OS's CSPRNG, new for every
//! command, which the command cannot know: no output, not even a copy of a
//! marker with another nonce, ends the command early. The input spells
//! each marker as two `printf` arguments, so a shell that echoes its input
//! or traces it (`set -x`) never writes a marker whole.

use std::collections::BTreeMap;

use sshmcp_proto::Error;

/// What starts a start marker; the nonce and a newline follow.
const START: &str = "sshmcp-start-";
/// What starts an end marker; the nonce follows.
const END: &str = "sshmcp-end-";

/// The remote command that starts a shell. Interactive, so that INT ends
/// the command in the foreground and the shell goes back to reading (a
/// non-interactive shell dies of it or runs the rest of the command line),
/// and a syntax error does not end the shell; no TTY, so no echo and no
/// line discipline between the daemon and the shell.
pub const SHELL: &str = "exec /bin/sh -i";

/// Sent once when the shell starts: no prompts, and for bash (which is
/// `/bin/sh` on some systems) no line editing, history or `!` expansion,
/// which would read the daemon's input as keystrokes. Everything the shell
/// prints before the first command's start marker is dropped.
pub const SETUP: &str = "PS1= PS2=; case ${BASH_VERSION-} in ?*) set +o emacs +o vi +o history +H; unset HISTFILE;; esac\n";

/// One command's secret: 128 bits from the OS's CSPRNG, as hex.
pub struct Nonce {
    hex: String,
}

impl Nonce {
    pub fn new() -> Result<Nonce, Error> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)
            .map_err(|e| Error::internal(format!("the OS gave no random bytes: {e}")))?;
        Ok(Nonce {
            hex: bytes.iter().map(|b| format!("{b:02x}")).collect(),
        })
    }

    /// The start marker as the shell prints it, newline included.
    pub fn start(&self) -> Vec<u8> {
        format!("{START}{}\n", self.hex).into_bytes()
    }

    /// The end marker as the shell prints it.
    pub fn end(&self) -> Vec<u8> {
        format!("{END}{}", self.hex).into_bytes()
    }

    /// A marker as two shell words that `printf '%s%s'` joins.
    fn words(&self, tag: &str) -> String {
        let (a, b) = self.hex.split_at(self.hex.len() / 2);
        format!("{tag}{a} {b}")
    }
}

/// Where the command's standard input comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// `/dev/null`: any command.
    Null,
    /// The shell's own: a sudo line whose reader takes one line of it
    /// (see `sudo::shell_line`), which redirects everything else itself.
    Shell,
}

/// The first line of a command: start markers, then the command itself.
/// Words are backslash-quoted so no alias can stand in for them.
pub fn command_line(nonce: &Nonce, command: &str, input: Input) -> String {
    let start = nonce.words(START);
    let stdin = match input {
        Input::Null => " </dev/null",
        Input::Shell => "",
    };
    format!(
        "\\trap - INT; \\command printf '%s%s\\n' {start}; \
         \\command printf '%s%s\\n' {start} >&2; \\eval {}{stdin}\n",
        quote(command)
    )
}

/// The second line of a command: its status and the shell's `$PWD`
/// between end markers on stdout, then an end marker on stderr.
pub fn trailer_line(nonce: &Nonce) -> String {
    let end = nonce.words(END);
    format!(
        "\\command printf '%s%s %s %s%s%s\\n' {end} \"$?\" \"${{PWD-}}\" {end}; \
         \\command printf '%s%s\\n' {end} >&2\n"
    )
}

/// The command that puts a new shell where `shell_open` asked: the
/// variables exported, then the directory entered (`~` and `~/...` from
/// `$HOME`, a relative one from the home, where the shell starts). Names
/// were checked by `Request::validate`; values are quoted.
pub fn opening(cwd: Option<&str>, env: &BTreeMap<String, String>) -> String {
    let mut steps = Vec::new();
    if !env.is_empty() {
        let pairs: Vec<String> = env
            .iter()
            .map(|(name, value)| format!("{name}={}", quote(value)))
            .collect();
        steps.push(format!("export {}", pairs.join(" ")));
    }
    // An empty CDPATH: a relative directory is the home's, never one
    // found along the user's CDPATH.
    match cwd {
        None => {}
        Some("~") => steps.push("cd".to_string()),
        Some(dir) => match dir.strip_prefix("~/") {
            Some(rest) => steps.push(format!("CDPATH= cd -- \"$HOME\"/{}", quote(rest))),
            None => steps.push(format!("CDPATH= cd -- {}", quote(dir))),
        },
    }
    if steps.is_empty() {
        return ":".to_string();
    }
    steps.join(" && ")
}

pub use crate::files::transfer::shell_quote as quote;

/// What the stdout trailer said: the command's exit status and the
/// shell's working directory after it.
pub fn parse_trailer(trailer: &[u8]) -> (Option<u32>, String) {
    let trailer = trailer.strip_prefix(b" ").unwrap_or(trailer);
    let (status, cwd) = match trailer.iter().position(|&b| b == b' ') {
        Some(at) => (&trailer[..at], &trailer[at + 1..]),
        None => (trailer, &[][..]),
    };
    let status = std::str::from_utf8(status)
        .ok()
        .and_then(|s| s.parse().ok());
    (status, String::from_utf8_lossy(cwd).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nonce() -> Nonce {
        Nonce::new().expect("random bytes")
    }

    #[test]
    fn nonces_are_new_every_time_and_never_written_whole_in_the_input() {
        let (a, b) = (nonce(), nonce());
        assert_ne!(a.hex, b.hex);
        assert_eq!(a.hex.len(), 32);
        let input = command_line(&a, "echo hi", Input::Null) + &trailer_line(&a);
        let (start, end) = (a.start(), a.end());
        let contains = |needle: &[u8]| input.as_bytes().windows(needle.len()).any(|w| w == needle);
        assert!(!contains(&start[..start.len() - 1]), "{input}");
        assert!(!contains(&end), "{input}");
        assert!(!contains(a.hex.as_bytes()), "{input}");
    }

    #[test]
    fn a_command_is_one_quoted_word_whatever_it_holds() {
        assert_eq!(quote("it's"), r"'it'\''s'");
        let line = command_line(&nonce(), "echo 'a'\necho $HOME; exit", Input::Null);
        let quoted = format!(
            "{}\n{}\n",
            r"\eval 'echo '\''a'\''", r"echo $HOME; exit' </dev/null"
        );
        assert!(line.ends_with(&quoted), "{line}");
        let line = command_line(&nonce(), "x", Input::Shell);
        assert!(line.ends_with("\\eval 'x'\n"), "{line}");
    }

    #[test]
    fn opening_exports_then_enters_the_directory() {
        let env: BTreeMap<String, String> = [
            ("A".to_string(), "x y".to_string()),
            ("B".into(), "'".into()),
        ]
        .into();
        assert_eq!(
            opening(Some("/srv/my app"), &env),
            r#"export A='x y' B=''\''' && CDPATH= cd -- '/srv/my app'"#
        );
        assert_eq!(opening(Some("~"), &BTreeMap::new()), "cd");
        assert_eq!(
            opening(Some("~/src"), &BTreeMap::new()),
            r#"CDPATH= cd -- "$HOME"/'src'"#
        );
        assert_eq!(opening(None, &BTreeMap::new()), ":");
    }

    #[test]
    fn a_trailer_gives_status_and_a_cwd_with_spaces() {
        assert_eq!(parse_trailer(b" 0 /tmp/a b"), (Some(0), "/tmp/a b".into()));
        assert_eq!(parse_trailer(b" 130 /"), (Some(130), "/".into()));
        assert_eq!(parse_trailer(b"junk"), (None, String::new()));
        assert_eq!(
            parse_trailer(b" 1 /x\xffy"),
            (Some(1), "/x\u{fffd}y".into())
        );
    }
}

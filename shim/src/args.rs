//! The command line, parsed by hand: the shim takes two options, and a
//! parser crate would cost more binary size and startup time than it saves.

use std::ffi::OsString;
use std::path::PathBuf;

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Serve MCP on stdin/stdout, forwarding to the daemon at the first of
    /// `sockets` that answers (only the one named, when one is), offering
    /// the tools `tools` names (`--tools`; all of them when `None`).
    Serve {
        sockets: Vec<PathBuf>,
        tools: Option<String>,
    },
    /// Print the version and exit.
    Version,
    /// Print usage and exit.
    Help,
}

/// Usage text for `--help` and for a bad command line.
pub const USAGE: &str = "\
sshmcp: MCP server (stdio) that gives AI clients SSH access to the hosts in
sshmcpd's ssh config, through the daemon's warm connection pool.

MCP clients launch it; it reads JSON-RPC on stdin and writes it on stdout.

Usage: sshmcp [--socket PATH] [--tools LIST]

Options:
  --socket PATH  the daemon's socket (default: $SSHMCP_SOCKET, else the
                 first that answers of $XDG_RUNTIME_DIR/sshmcp/sshmcpd.sock,
                 /run/user/$UID/sshmcp/sshmcpd.sock and
                 /run/sshmcp/sshmcpd.sock)
  --tools LIST   offer only these tools, comma-separated: names (hosts,
                 exec, stat, list_dir, read_file, write_file, mkdir, remove,
                 rename, transfer, sync, batch, job_output, job_signal, jobs,
                 shell_open, shell_exec, shell_close) and profiles: all (the
                 default), read-only (the tools that change nothing), files
                 (all but exec, the job and the shell tools).
                 Fewer tools take less of the model's context.
  -V, --version  print the version and exit
  -h, --help     print this help and exit
";

/// Parse the arguments that follow the program name. `default_sockets` is
/// only called when `--socket` is absent, so the environment is read once.
pub fn parse(
    args: impl IntoIterator<Item = OsString>,
    default_sockets: impl FnOnce() -> Vec<PathBuf>,
) -> Result<Command, String> {
    let mut socket = None;
    let mut tools = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let Some(text) = arg.to_str() else {
            return Err(format!("unexpected argument {}", arg.to_string_lossy()));
        };
        let (option, inline) = match text.split_once('=') {
            Some((option, value)) if option.starts_with("--") => (option, Some(value)),
            _ => (text, None),
        };
        match option {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--socket" => socket = Some(PathBuf::from(value(option, inline, &mut args)?)),
            "--tools" => tools = Some(value(option, inline, &mut args)?),
            _ => return Err(format!("unexpected argument {text}")),
        }
    }
    Ok(Command::Serve {
        sockets: socket.map_or_else(default_sockets, |socket| vec![socket]),
        tools,
    })
}

/// The value of `option`: after its `=`, else the next argument.
fn value(
    option: &str,
    inline: Option<&str>,
    rest: &mut impl Iterator<Item = OsString>,
) -> Result<String, String> {
    let value = match inline {
        Some(value) => Some(value.to_string()),
        None => rest.next().and_then(|value| value.into_string().ok()),
    };
    match value {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(format!("{option} needs a value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(OsString::from), || {
            vec!["/first.sock".into(), "/second.sock".into()]
        })
    }

    #[test]
    fn no_arguments_serve_on_the_default_sockets() {
        assert_eq!(
            parse_strs(&[]),
            Ok(Command::Serve {
                sockets: vec!["/first.sock".into(), "/second.sock".into()],
                tools: None,
            })
        );
    }

    #[test]
    fn socket_is_taken_in_both_spellings_and_is_the_only_one_tried() {
        let want = Ok(Command::Serve {
            sockets: vec!["/x.sock".into()],
            tools: None,
        });
        assert_eq!(parse_strs(&["--socket", "/x.sock"]), want);
        assert_eq!(parse_strs(&["--socket=/x.sock"]), want);
    }

    #[test]
    fn socket_without_a_path_is_an_error() {
        assert!(parse_strs(&["--socket"]).is_err());
        assert!(parse_strs(&["--socket="]).is_err());
    }

    #[test]
    fn tools_is_taken_in_both_spellings() {
        for args in [
            &["--tools", "read-only,exec"][..],
            &["--tools=read-only,exec"],
        ] {
            let Ok(Command::Serve { tools, .. }) = parse_strs(args) else {
                panic!("{args:?} is not a serve command");
            };
            assert_eq!(tools.as_deref(), Some("read-only,exec"));
        }
        assert!(parse_strs(&["--tools"]).is_err());
        assert!(parse_strs(&["--tools="]).is_err());
    }

    #[test]
    fn help_and_version_win_over_other_arguments() {
        assert_eq!(parse_strs(&["--socket", "/x", "--help"]), Ok(Command::Help));
        assert_eq!(parse_strs(&["-V"]), Ok(Command::Version));
    }

    #[test]
    fn unknown_arguments_are_named_in_the_error() {
        let err = parse_strs(&["--verbose"]).unwrap_err();
        assert!(err.contains("--verbose"), "{err}");
    }
}

//! What one command does, judged from its argv: reads only, changes the
//! host, runs code the policy cannot read, or runs other commands that are
//! judged in turn.
//!
//! Every judgement here errs towards refusal: an option that is not
//! understood, an abbreviation that could stand for a dangerous long option
//! (GNU getopt accepts any unambiguous prefix, so `--out` is `--output`), a
//! value that could be read as an option, all count against the command.
//! Options are looked for in every argument, including after `--` and
//! after operands: GNU tools permute their arguments, and a `--` can itself
//! be the value of the option before it (`sort -t -- -o f`).

use super::sed;

/// Where a program must live for a path to it to be judged by its name.
/// Anywhere else, `./rm` or `/tmp/ls` could be any program at all.
const SYSTEM_DIRS: [&str; 5] = ["/bin", "/usr/bin", "/sbin", "/usr/sbin", "/usr/local/bin"];

/// Wrappers: commands judged by what they run. An allow entry cannot name
/// one (it would allow everything under it); a deny entry can.
pub(super) const WRAPPERS: [&str; 16] = [
    "env", "nice", "nohup", "timeout", "stdbuf", "setsid", "ionice", "chrt", "taskset", "time",
    "sudo", "xargs", "command", "builtin", "busybox", "toybox",
];

/// The judgement of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Class {
    /// Reads and reports; changes nothing on the host.
    ReadOnly,
    /// Changes the host, or may: the predicate says how ("writes a file").
    Changes(String),
    /// Runs code the policy cannot read (inline scripts, shells, pagers
    /// with shell escapes); the predicate says which.
    Opaque(String),
    /// Runs the commands in `targets`, which are judged on their own.
    Runs {
        /// A wrapper (`env`, `nice`, `sudo`...) that is looked through: the
        /// command is what it runs. `find -exec` is not transparent: `find`
        /// itself must be allowed too.
        transparent: bool,
        /// The argvs it runs.
        targets: Vec<Vec<String>>,
        /// More arguments are appended to the targets at run time (`xargs`
        /// reads them from its input), so a target whose options matter
        /// cannot be judged.
        appended: bool,
    },
}

/// What a command word names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Name<'a> {
    /// A plain name, or a path into one of [`SYSTEM_DIRS`]: judged by this
    /// name.
    Plain(&'a str),
    /// A path anywhere else (`./rm`, `/tmp/ls`): it could be any program.
    /// Its basename still meets deny lists, which err towards matching.
    Path(&'a str),
    /// Not a command name: odd characters, an empty word.
    Invalid,
}

/// What `word`, in command position or as a wrapper's target, names.
pub(super) fn program(word: &str) -> Name<'_> {
    match word.rsplit_once('/') {
        Some((dir, base)) if plain_name(base) && SYSTEM_DIRS.contains(&dir) => Name::Plain(base),
        Some((_, base)) if plain_name(base) => Name::Path(base),
        None if plain_name(word) => Name::Plain(word),
        _ => Name::Invalid,
    }
}

/// The predicate for a [`Name::Path`].
pub(super) fn elsewhere() -> String {
    format!(
        "is a path outside the system directories ({}), so it could be any program",
        SYSTEM_DIRS.join(", ")
    )
}

/// Letters, digits and `._+-`, not starting with `-`; or `[`.
fn plain_name(name: &str) -> bool {
    name == "["
        || (!name.is_empty()
            && !name.starts_with('-')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b)))
}

/// Judge `name` (as returned by [`program`]) run with `args`. `appended`
/// says more arguments will be appended at run time (under `xargs`).
pub(super) fn classify(name: &str, args: &[String], appended: bool) -> Class {
    let class = judge(name, args);
    // Appended arguments can be options (`-o FILE`, find's `-delete`) or,
    // for a wrapper with no command yet, the command itself.
    let options_matter = match &class {
        Class::ReadOnly => !any_args_read_only(name),
        Class::Runs { transparent, .. } => !transparent,
        Class::Changes(_) | Class::Opaque(_) => false,
    };
    if appended && options_matter {
        return Class::Changes(format!(
            "gets more arguments from xargs's input, and some arguments of `{name}` change \
             the host"
        ));
    }
    match class {
        Class::Runs {
            transparent,
            targets,
            appended: runs_appended,
        } => Class::Runs {
            transparent,
            targets,
            // What a wrapper runs gets the appended arguments too.
            appended: runs_appended || (transparent && appended),
        },
        other => other,
    }
}

fn judge(name: &str, args: &[String]) -> Class {
    match name {
        // Wrappers, looked through.
        "env" => env(args),
        "nice" => nice(args),
        "nohup" => nohup(args),
        "timeout" => timeout(args),
        "stdbuf" => wrapper(args, &STDBUF, 0),
        "setsid" => wrapper(args, &SETSID, 0),
        "ionice" => ionice(args),
        "chrt" => chrt(args),
        "taskset" => taskset(args),
        "time" => time(args),
        "sudo" => sudo(args),
        "xargs" => xargs(args),
        "command" => command(args),
        "builtin" => runs(args.to_vec()),
        "busybox" | "toybox" => busybox(args),

        // Shell builtins that run code, or change how later words are read.
        "eval" | "source" | "." | "exec" | "alias" | "unalias" | "hash" | "enable" | "trap"
        | "fc" | "bind" | "complete" | "compgen" | "coproc" | "export" | "declare" | "typeset"
        | "local" | "readonly" | "unset" | "read" | "let" | "mapfile" | "readarray" | "getopts"
        | "set" | "shopt" | "function" | "select" => Class::Opaque(
            "is a shell builtin that runs code or changes how later commands run".into(),
        ),

        // Interpreters: code given inline or on standard input is unreadable.
        "sh" | "bash" | "dash" | "zsh" | "ksh" | "mksh" | "ash" | "yash" | "fish" | "csh"
        | "tcsh" | "rbash" | "posh" | "ruby" | "node" | "nodejs" | "php" | "lua" | "luajit"
        | "tclsh" | "wish" | "expect" | "Rscript" | "julia" | "pwsh" | "deno" | "bun"
        | "osascript" | "guile" | "irb" | "ipython" | "groovy" | "jshell" => {
            interpreter(name, args)
        }
        _ if name.starts_with("python") || name.starts_with("perl") || name.starts_with("php") => {
            interpreter(name, args)
        }
        "awk" | "gawk" | "mawk" | "nawk" => Class::Opaque(
            "runs an awk program, and awk programs can run commands (system(), pipes)".into(),
        ),

        // Interactive programs with shell escapes (`!cmd` in less, `:!` in vim).
        "less" | "more" | "most" | "pg" | "vi" | "vim" | "nvim" | "view" | "vimdiff" | "ex"
        | "ed" | "red" | "nano" | "pico" | "emacs" | "emacsclient" | "mg" | "joe" | "man"
        | "info" | "w3m" | "lynx" | "mc" | "screen" | "tmux" => {
            Class::Opaque("is interactive and can start a shell (a pager's or editor's `!`)".into())
        }

        // Programs that run a command given in their arguments, with option
        // syntaxes not modelled here.
        "flock" | "watch" | "strace" | "ltrace" | "gdb" | "valgrind" | "chroot" | "nsenter"
        | "unshare" | "systemd-run" | "runuser" | "su" | "pkexec" | "doas" | "script"
        | "parallel" | "unbuffer" | "firejail" | "bwrap" | "at" | "batch" | "crontab"
        | "cgexec" | "prlimit" | "numactl" | "faketime" | "fakeroot" | "proot" | "sg"
        | "newgrp" => Class::Opaque(
            "runs a command given in its arguments in a way the policy does not model".into(),
        ),
        "ssh" | "scp" | "sftp" | "slogin" => Class::Opaque(
            "runs commands on other hosts, and locally through ProxyCommand or LocalCommand".into(),
        ),
        "rsync" => rsync(args),
        "tar" => tar(args),
        "dd" => match args.iter().find(|a| a.starts_with("of=")) {
            Some(of) => Class::Changes(format!("writes a file (`{of}`)")),
            None => not_read_only(),
        },
        "tee" => Class::Changes("writes its input to files".into()),
        "sed" => sed(args),
        "find" => find(args),
        "git" => git(args),
        "systemctl" => systemctl(args),
        "journalctl" => refuse_options(
            args,
            "",
            &[
                "rotate",
                "vacuum-size",
                "vacuum-time",
                "vacuum-files",
                "flush",
                "sync",
                "relinquish-var",
                "smart-relinquish-var",
                "setup-keys",
                "update-catalog",
                "cursor-file",
            ],
            "changes the journal",
        ),
        "dmesg" => refuse_options(
            args,
            "cCDEn",
            &[
                "clear",
                "read-clear",
                "console-off",
                "console-on",
                "console-level",
            ],
            "changes the kernel log or console",
        ),
        "date" => date(args),
        "sort" => refuse_options(
            args,
            "o",
            &["output", "compress-program"],
            "writes a file or runs a program",
        ),
        "file" => refuse_options(args, "C", &["compile"], "writes a compiled magic file"),
        "ss" => refuse_options(
            args,
            "KD",
            &["kill", "diag"],
            "kills sockets or writes a file",
        ),
        "rg" => refuse_options(
            args,
            "",
            &["pre", "hostname-bin"],
            "runs a command of its own choosing",
        ),
        "uniq" => uniq(args),
        "hostname" => hostname(args),
        "mount" => match args {
            [] => Class::ReadOnly,
            [flag] if flag == "-l" => Class::ReadOnly,
            _ => Class::Changes("mounts a file system (only `mount` alone lists)".into()),
        },
        "ip" => ip(args),
        "test" | "[" => test(args),
        "printf" => printf(args),
        _ if any_args_read_only(name) => Class::ReadOnly,
        _ => not_read_only(),
    }
}

/// Commands that stay read-only whatever their arguments: no option of
/// theirs writes a file, changes the system or runs a program.
pub(super) fn any_args_read_only(name: &str) -> bool {
    matches!(
        name,
        "ls" | "cat"
            | "head"
            | "tail"
            | "grep"
            | "egrep"
            | "fgrep"
            | "stat"
            | "df"
            | "du"
            | "ps"
            | "uname"
            | "id"
            | "whoami"
            | "groups"
            | "free"
            | "uptime"
            | "w"
            | "who"
            | "last"
            | "wc"
            | "cut"
            | "tr"
            | "nl"
            | "diff"
            | "cmp"
            | "comm"
            | "readlink"
            | "realpath"
            | "basename"
            | "dirname"
            | "md5sum"
            | "sha1sum"
            | "sha256sum"
            | "sha512sum"
            | "echo"
            | "pwd"
            | "cd"
            | "true"
            | "false"
            | "which"
            | "type"
            | "getent"
            | "printenv"
            | "lsblk"
            | "lscpu"
            | "lsmod"
            | "lsof"
            | "netstat"
            | "findmnt"
            | "locale"
            | "nproc"
            | "arch"
            | "tty"
            | "sleep"
            | "seq"
    )
}

fn not_read_only() -> Class {
    Class::Changes("is not in the built-in read-only set".into())
}

fn runs(target: Vec<String>) -> Class {
    if target.is_empty() {
        return Class::Opaque("names no command to run".into());
    }
    Class::Runs {
        transparent: true,
        targets: vec![target],
        appended: false,
    }
}

/// `has `-o`, which writes a file`.
pub(super) fn has(option: &str, effect: &str) -> String {
    format!("has `{option}`, which {effect}")
}

/// The letters of a short-option cluster (`-abc`), if `arg` is one.
pub(super) fn short_cluster(arg: &str) -> Option<&str> {
    arg.strip_prefix('-')
        .filter(|rest| !rest.is_empty() && !rest.starts_with('-'))
}

/// The name of a long option (`--name` or `--name=value`), if `arg` is one.
pub(super) fn long_name(arg: &str) -> Option<&str> {
    let rest = arg.strip_prefix("--")?;
    let name = rest.split_once('=').map_or(rest, |(name, _)| name);
    (!name.is_empty()).then_some(name)
}

/// The first argument that is, or could abbreviate, one of the options
/// given: a short cluster containing one of `shorts`, or a long option
/// whose name is a prefix of one of `longs`.
fn find_option<'a>(args: &'a [String], shorts: &str, longs: &[&str]) -> Option<&'a str> {
    args.iter().map(String::as_str).find(|arg| {
        short_cluster(arg).is_some_and(|cluster| cluster.chars().any(|c| shorts.contains(c)))
            || long_name(arg).is_some_and(|name| longs.iter().any(|long| long.starts_with(name)))
    })
}

/// Read-only unless one of the options given appears.
fn refuse_options(args: &[String], shorts: &str, longs: &[&str], effect: &str) -> Class {
    match find_option(args, shorts, longs) {
        Some(option) => Class::Changes(has(option, effect)),
        None => Class::ReadOnly,
    }
}

/// A wrapper's option syntax, enough to find where its command starts.
struct Options {
    /// Short options without a value.
    flags: &'static str,
    /// Short options that take a value (attached or the next argument).
    valued: &'static str,
    /// Long options without a value.
    long_flags: &'static [&'static str],
    /// Long options that take a value (`=value` or the next argument).
    long_valued: &'static [&'static str],
}

const STDBUF: Options = Options {
    flags: "",
    valued: "ioe",
    long_flags: &[],
    long_valued: &["input", "output", "error"],
};

const SETSID: Options = Options {
    flags: "cfw",
    valued: "",
    long_flags: &["ctty", "fork", "wait"],
    long_valued: &[],
};

/// The index of the first operand after the leading options, or the option
/// that is not understood. Wrappers stop at their first operand (their
/// getopt runs in `+` mode), so this is where their command starts.
fn skip_options(args: &[String], options: &Options) -> Result<usize, String> {
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        if arg == "--" {
            return Ok(i + 1);
        }
        if let Some(rest) = arg.strip_prefix("--") {
            let (name, inline) = match rest.split_once('=') {
                Some((name, _)) => (name, true),
                None => (rest, false),
            };
            // Exact names only: an abbreviation is not understood, which
            // refuses rather than guesses.
            if options.long_flags.contains(&name) && !inline {
                i += 1;
            } else if options.long_valued.contains(&name) {
                i += if inline { 1 } else { 2 };
            } else {
                return Err(arg.clone());
            }
            continue;
        }
        let Some(cluster) = short_cluster(arg) else {
            return Ok(i);
        };
        let mut step = 1;
        for (at, c) in cluster.char_indices() {
            if options.flags.contains(c) {
                continue;
            }
            if options.valued.contains(c) {
                if at + c.len_utf8() == cluster.len() {
                    step = 2;
                }
                break;
            }
            return Err(arg.clone());
        }
        i += step;
    }
    // A valued option at the end claims a value that is not there.
    Ok(i.min(args.len()))
}

/// A wrapper whose command starts `extra` operands after its options.
fn wrapper(args: &[String], options: &Options, extra: usize) -> Class {
    match skip_options(args, options) {
        Ok(start) => runs(args.get(start + extra..).unwrap_or_default().to_vec()),
        Err(option) => Class::Opaque(format!("has `{option}`, an option not understood here")),
    }
}

/// `env [-i] [-u NAME] [-C DIR] [NAME=VALUE]... [COMMAND [ARG]...]`.
fn env(args: &[String]) -> Class {
    if let Some(option) = find_option(args, "S", &["split-string"]) {
        return Class::Opaque(has(option, "splits a string into a command line"));
    }
    const ENV: Options = Options {
        flags: "i0v",
        valued: "uC",
        long_flags: &[
            "ignore-environment",
            "null",
            "debug",
            "list-signal-handling",
        ],
        long_valued: &["unset", "chdir"],
    };
    // `-` alone is an old spelling of `-i`.
    let lead = usize::from(args.first().is_some_and(|a| a == "-"));
    let start = match skip_options(&args[lead..], &ENV) {
        Ok(start) => lead + start,
        Err(option) => {
            return Class::Opaque(format!("has `{option}`, an option not understood here"));
        }
    };
    let rest = &args[start..];
    match rest.first() {
        None => Class::ReadOnly,
        Some(word) if word.contains('=') => Class::Opaque(format!(
            "sets `{word}` in the environment of what it runs (LD_PRELOAD, PATH and the like \
             change what runs)"
        )),
        Some(_) => runs(rest.to_vec()),
    }
}

/// `nice [-n N | -N] [COMMAND [ARG]...]`; alone it prints the niceness.
fn nice(args: &[String]) -> Class {
    const NICE: Options = Options {
        flags: "",
        valued: "n",
        long_flags: &[],
        long_valued: &["adjustment"],
    };
    // The old `nice -5 cmd` spelling.
    let lead = usize::from(args.first().is_some_and(|a| {
        a.strip_prefix('-')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    }));
    match skip_options(&args[lead..], &NICE) {
        Ok(start) if lead + start == args.len() => Class::ReadOnly,
        Ok(start) => runs(args[lead + start..].to_vec()),
        Err(option) => Class::Opaque(format!("has `{option}`, an option not understood here")),
    }
}

fn nohup(args: &[String]) -> Class {
    match args.first().map(String::as_str) {
        Some("--") => runs(args[1..].to_vec()),
        Some(first) if first.starts_with('-') => {
            Class::Opaque(format!("has `{first}`, an option not understood here"))
        }
        _ => runs(args.to_vec()),
    }
}

/// `timeout [OPTION]... DURATION COMMAND [ARG]...`.
fn timeout(args: &[String]) -> Class {
    const TIMEOUT: Options = Options {
        flags: "vp",
        valued: "sk",
        long_flags: &["preserve-status", "foreground", "verbose"],
        long_valued: &["signal", "kill-after"],
    };
    wrapper(args, &TIMEOUT, 1)
}

/// `ionice [-c CLASS] [-n LEVEL] [-t] [COMMAND]`; `-p`/`-P`/`-u` act on
/// other processes.
fn ionice(args: &[String]) -> Class {
    if let Some(option) = find_option(args, "pPu", &["pid", "pgid", "uid"]) {
        return Class::Changes(has(option, "changes other processes"));
    }
    const IONICE: Options = Options {
        flags: "t",
        valued: "cn",
        long_flags: &["ignore"],
        long_valued: &["class", "classdata"],
    };
    match skip_options(args, &IONICE) {
        Ok(start) if start == args.len() => Class::ReadOnly,
        _ => wrapper(args, &IONICE, 0),
    }
}

/// `chrt [OPTION]... PRIORITY COMMAND [ARG]...`; `-p` acts on another
/// process, `-m` only prints.
fn chrt(args: &[String]) -> Class {
    if let Some(option) = find_option(args, "p", &["pid"]) {
        return Class::Changes(has(option, "changes another process"));
    }
    if let [only] = args
        && (only == "-m" || only == "--max")
    {
        return Class::ReadOnly;
    }
    const CHRT: Options = Options {
        flags: "bdfioraRv",
        valued: "TPD",
        long_flags: &[
            "batch",
            "deadline",
            "fifo",
            "idle",
            "other",
            "rr",
            "all-tasks",
            "reset-on-fork",
            "verbose",
        ],
        long_valued: &["sched-runtime", "sched-period", "sched-deadline"],
    };
    match skip_options(args, &CHRT) {
        Ok(start)
            if args
                .get(start)
                .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) =>
        {
            runs(args[start + 1..].to_vec())
        }
        Ok(_) => Class::Opaque("has no priority where one belongs".into()),
        Err(option) => Class::Opaque(format!("has `{option}`, an option not understood here")),
    }
}

/// `taskset [-a] [-c] MASK COMMAND [ARG]...`; `-p` acts on another process.
fn taskset(args: &[String]) -> Class {
    if let Some(option) = find_option(args, "p", &["pid"]) {
        return Class::Changes(has(option, "changes another process"));
    }
    const TASKSET: Options = Options {
        flags: "ac",
        valued: "",
        long_flags: &["all-tasks", "cpu-list"],
        long_valued: &[],
    };
    wrapper(args, &TASKSET, 1)
}

/// GNU `time [-p] [-v] [-f FORMAT] COMMAND`; `-o FILE` writes a file.
fn time(args: &[String]) -> Class {
    if let Some(option) = find_option(args, "oa", &["output", "append"]) {
        return Class::Changes(has(option, "writes a file"));
    }
    const TIME: Options = Options {
        flags: "pvq",
        valued: "f",
        long_flags: &["portability", "verbose", "quiet"],
        long_valued: &["format"],
    };
    wrapper(args, &TIME, 0)
}

/// `sudo [OPTION]... [NAME=VALUE]... COMMAND [ARG]...`.
fn sudo(args: &[String]) -> Class {
    const SUDO: Options = Options {
        flags: "AbEHkKnPSlvVise",
        valued: "ugpCrtTDRUh",
        long_flags: &[
            "askpass",
            "background",
            "preserve-env",
            "set-home",
            "reset-timestamp",
            "remove-timestamp",
            "non-interactive",
            "preserve-groups",
            "stdin",
            "list",
            "validate",
            "version",
            "login",
            "shell",
            "edit",
        ],
        long_valued: &[
            "user",
            "group",
            "prompt",
            "close-from",
            "role",
            "type",
            "command-timeout",
            "chdir",
            "chroot",
            "other-user",
            "host",
        ],
    };
    let start = match skip_options(args, &SUDO) {
        Ok(start) => start,
        Err(option) => {
            return Class::Opaque(format!("has `{option}`, an option not understood here"));
        }
    };
    let options = &args[..start];
    if let Some(option) = find_option(options, "si", &["shell", "login"]) {
        return Class::Opaque(has(option, "starts a root shell"));
    }
    if let Some(option) = find_option(options, "R", &["chroot"]) {
        return Class::Opaque(has(option, "changes what every program name means"));
    }
    if let Some(option) = find_option(options, "e", &["edit"]) {
        return Class::Changes(has(option, "edits files"));
    }
    let rest = &args[start..];
    match rest.first() {
        None if find_option(options, "l", &["list"]).is_some() => Class::ReadOnly,
        None => Class::Changes("runs no command (it manages sudo's own state)".into()),
        Some(word) if word.contains('=') => {
            Class::Opaque(format!("sets `{word}` in the environment of what it runs"))
        }
        Some(_) => runs(rest.to_vec()),
    }
}

/// `xargs [OPTION]... [COMMAND [ARG]...]`: the command gets more arguments
/// from the input, so it is judged as taking any arguments at all.
fn xargs(args: &[String]) -> Class {
    if let Some(option) = find_option(args, "", &["process-slot-var"]) {
        return Class::Opaque(has(option, "sets an environment variable"));
    }
    // `-e[EOF]`, `-i[R]` and `-l[N]` take an optional value attached to
    // them: in a cluster, whatever follows them is that value.
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        if arg == "--" {
            i += 1;
            break;
        }
        if let Some(name) = long_name(arg) {
            const FLAGS: [&str; 7] = [
                "null",
                "interactive",
                "no-run-if-empty",
                "verbose",
                "exit",
                "show-limits",
                "open-tty",
            ];
            const OPTIONAL: [&str; 3] = ["replace", "max-lines", "eof"];
            const VALUED: [&str; 5] = [
                "arg-file",
                "delimiter",
                "max-args",
                "max-procs",
                "max-chars",
            ];
            let inline = arg.contains('=');
            if FLAGS.contains(&name) || OPTIONAL.contains(&name) {
                i += 1;
            } else if VALUED.contains(&name) {
                i += if inline { 1 } else { 2 };
            } else {
                return Class::Opaque(format!("has `{arg}`, an option not understood here"));
            }
            continue;
        }
        let Some(cluster) = short_cluster(arg) else {
            break;
        };
        let mut step = 1;
        for (at, c) in cluster.char_indices() {
            match c {
                '0' | 'p' | 'r' | 't' | 'x' | 'o' => continue,
                'e' | 'i' | 'l' => break,
                'a' | 'd' | 'E' | 'I' | 'L' | 'n' | 'P' | 's' => {
                    if at + 1 == cluster.len() {
                        step = 2;
                    }
                    break;
                }
                _ => return Class::Opaque(format!("has `{arg}`, an option not understood here")),
            }
        }
        i += step;
    }
    let target = args.get(i..).unwrap_or_default();
    if target.is_empty() {
        // xargs runs `echo` by default.
        return Class::ReadOnly;
    }
    Class::Runs {
        transparent: true,
        targets: vec![target.to_vec()],
        appended: true,
    }
}

/// `command [-p] NAME [ARG]...`; `command -v`/`-V` only print.
fn command(args: &[String]) -> Class {
    const COMMAND: Options = Options {
        flags: "pvV",
        valued: "",
        long_flags: &[],
        long_valued: &[],
    };
    if find_option(args, "vV", &[]).is_some() {
        return match skip_options(args, &COMMAND) {
            Ok(_) => Class::ReadOnly,
            Err(option) => Class::Opaque(format!("has `{option}`, an option not understood here")),
        };
    }
    wrapper(args, &COMMAND, 0)
}

/// `busybox APPLET [ARG]...` is the applet; `busybox` alone or `--list`
/// only print.
fn busybox(args: &[String]) -> Class {
    match args.first().map(String::as_str) {
        None | Some("--list" | "--help") => Class::ReadOnly,
        Some(first) if first.starts_with('-') => not_read_only(),
        Some(_) => runs(args.to_vec()),
    }
}

/// A shell or language interpreter: a script file is a program like any
/// other; code given inline, on standard input, or with any option the
/// policy does not model is unreadable.
fn interpreter(name: &str, args: &[String]) -> Class {
    match args.first().map(String::as_str) {
        None | Some("-") => Class::Opaque(format!(
            "runs whatever code reaches {name}'s standard input"
        )),
        Some(option) if option.starts_with('-') => Class::Opaque(format!(
            "has `{option}`, and `{name}` with options can run code given inline (`-c`, `-e`)"
        )),
        Some(script) => Class::Changes(format!("runs the script `{script}`")),
    }
}

fn rsync(args: &[String]) -> Class {
    match find_option(args, "e", &["rsh", "rsync-path"]) {
        Some(option) => Class::Opaque(has(option, "runs a command of its own choosing")),
        None => Class::Changes("copies files".into()),
    }
}

/// tar is never read-only here (the same options extract, and a
/// `host:file` archive runs a remote shell); the options that run programs
/// make it unreadable.
fn tar(args: &[String]) -> Class {
    let runs_program = find_option(
        args,
        "IF",
        &[
            "to-command",
            "use-compress-program",
            "checkpoint-action",
            "info-script",
            "new-volume-script",
            "rsh-command",
            "rmt-command",
        ],
    )
    .map(str::to_owned)
    // Old-style `tar xIf ...`: the first argument is a cluster without `-`.
    .or_else(|| {
        args.first()
            .filter(|first| !first.starts_with('-') && first.contains(['I', 'F']))
            .cloned()
    });
    match runs_program {
        Some(option) => Class::Opaque(has(&option, "runs a program")),
        None => not_read_only(),
    }
}

/// `sed` without `-i`, `-f` or a script that writes (`w`) or runs (`e`).
fn sed(args: &[String]) -> Class {
    let sed = match sed::invocation(args) {
        Ok(sed) => sed,
        Err(class) => return class,
    };
    if let Some((option, _)) = &sed.in_place {
        return Class::Changes(has(option, "edits files in place"));
    }
    for script in &sed.scripts {
        if let Err(class) = sed::check(script) {
            return class;
        }
    }
    Class::ReadOnly
}

/// `find` without actions that write; `-exec` and friends run commands
/// that are judged in turn.
fn find(args: &[String]) -> Class {
    let mut targets = Vec::new();
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        i += 1;
        match arg.as_str() {
            "-exec" | "-execdir" | "-ok" | "-okdir" => {
                let start = i;
                let end = args[start..].iter().enumerate().position(|(at, word)| {
                    word == ";" || (word == "+" && at > 0 && args[start + at - 1] == "{}")
                });
                let Some(end) = end else {
                    return Class::Opaque(format!("has `{arg}` without its `;` or `+`"));
                };
                if end == 0 {
                    return Class::Opaque(format!("has `{arg}` with no command"));
                }
                targets.push(args[start..start + end].to_vec());
                i = start + end + 1;
            }
            "-delete" => return Class::Changes(has(arg, "removes files")),
            "-fprint" | "-fprint0" | "-fprintf" | "-fls" => {
                return Class::Changes(has(arg, "writes a file"));
            }
            _ => {}
        }
    }
    if targets.is_empty() {
        return Class::ReadOnly;
    }
    Class::Runs {
        transparent: false,
        targets,
        appended: false,
    }
}

/// `git` with one of the subcommands that only read, and no option before
/// it except `--no-pager`: `-c`, `--config-env`, `--exec-path`, `-C` and
/// friends can make any subcommand run a program.
fn git(args: &[String]) -> Class {
    let lead = args
        .iter()
        .take_while(|a| *a == "--no-pager" || *a == "-P")
        .count();
    let Some(sub) = args.get(lead) else {
        return Class::ReadOnly;
    };
    if sub == "--version" && args.len() == lead + 1 {
        return Class::ReadOnly;
    }
    if sub.starts_with('-') {
        return Class::Opaque(has(
            sub,
            "comes before the subcommand, where options (-c, --config-env, --exec-path, -C) \
             can make git run a program",
        ));
    }
    let rest = &args[lead + 1..];
    if let Some(option) = find_option(
        rest,
        "",
        &[
            "output",
            "ext-diff",
            "textconv",
            "open-files-in-pager",
            "exec",
            "upload-pack",
            "receive-pack",
            "config-env",
        ],
    ) {
        return Class::Opaque(has(option, "writes a file or runs a program"));
    }
    match sub.as_str() {
        "status" | "log" | "diff" | "show" | "rev-parse" | "ls-files" | "blame" => Class::ReadOnly,
        "branch" => {
            const LISTING: [&str; 10] = [
                "-a",
                "-r",
                "-v",
                "-vv",
                "--all",
                "--remotes",
                "--verbose",
                "--show-current",
                "--no-color",
                "--color",
            ];
            // With `--list`, operands are patterns to list; without it,
            // names to create.
            let listing = rest.iter().any(|a| a == "--list" || a == "-l");
            if rest.iter().all(|a| {
                LISTING.contains(&a.as_str())
                    || a == "--list"
                    || a == "-l"
                    || (listing && !a.starts_with('-'))
            }) {
                Class::ReadOnly
            } else {
                Class::Changes("creates, moves or deletes a branch".into())
            }
        }
        _ => Class::Changes(
            "is not in the read-only git set (status, log, diff, show, branch, rev-parse, \
             ls-files, blame)"
                .into(),
        ),
    }
}

/// `systemctl` with a subcommand that only reports. Options before the
/// subcommand must be flags known to take no value, or a value could pass
/// for the subcommand (`systemctl -p status restart x`).
fn systemctl(args: &[String]) -> Class {
    const LEADING: [&str; 21] = [
        "--no-pager",
        "--user",
        "--system",
        "-l",
        "--full",
        "-a",
        "--all",
        "--no-legend",
        "--plain",
        "-q",
        "--quiet",
        "--failed",
        "-r",
        "--recursive",
        "--reverse",
        "--after",
        "--before",
        "--value",
        "--no-ask-password",
        "--runtime",
        "--show-types",
    ];
    const READS: [&str; 15] = [
        "status",
        "show",
        "cat",
        "list-units",
        "list-unit-files",
        "list-sockets",
        "list-timers",
        "list-dependencies",
        "list-jobs",
        "is-active",
        "is-enabled",
        "is-failed",
        "is-system-running",
        "get-default",
        "show-environment",
    ];
    if let Some(option) = find_option(args, "HM", &["host", "machine"]) {
        return Class::Opaque(has(option, "runs systemctl on another machine"));
    }
    let lead = args
        .iter()
        .take_while(|a| LEADING.contains(&a.as_str()))
        .count();
    match args.get(lead) {
        None => Class::ReadOnly,
        Some(sub) if READS.contains(&sub.as_str()) => Class::ReadOnly,
        Some(sub) if sub.starts_with('-') => Class::Changes(has(
            sub,
            "comes before the subcommand, where its value could pass for one",
        )),
        Some(_) => Class::Changes(format!(
            "changes the system: read-only runs systemctl {} only",
            READS.join(", ")
        )),
    }
}

/// `date` prints unless told `-s` or given an operand that is not a
/// `+FORMAT`: GNU date sets the clock from `MMDDhhmm[[CC]YY]`.
fn date(args: &[String]) -> Class {
    if let Some(option) = find_option(args, "s", &["set"]) {
        return Class::Changes(has(option, "sets the clock"));
    }
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        i += 1;
        if matches!(
            arg.as_str(),
            "-d" | "-f" | "-r" | "--date" | "--file" | "--reference"
        ) {
            i += 1;
        } else if !arg.starts_with(['-', '+']) {
            return Class::Changes(has(arg, "sets the clock"));
        }
    }
    Class::ReadOnly
}

/// `uniq [OPTION]... [INPUT [OUTPUT]]`: a second operand is written.
fn uniq(args: &[String]) -> Class {
    let mut operands = 0;
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        i += 1;
        if matches!(arg.as_str(), "-f" | "-s" | "-w") {
            i += 1;
        } else if !arg.starts_with('-') || arg == "-" {
            operands += 1;
        }
    }
    if operands > 1 {
        Class::Changes("has two file operands, and writes the second".into())
    } else {
        Class::ReadOnly
    }
}

/// `hostname` with display flags only; an operand or `-F` sets the name.
fn hostname(args: &[String]) -> Class {
    const SHOW: [&str; 14] = [
        "-f",
        "--fqdn",
        "--long",
        "-s",
        "--short",
        "-i",
        "--ip-address",
        "-I",
        "--all-ip-addresses",
        "-d",
        "--domain",
        "-A",
        "--all-fqdns",
        "-a",
    ];
    match args.iter().find(|a| !SHOW.contains(&a.as_str())) {
        Some(other) => Class::Changes(has(other, "sets the host name")),
        None => Class::ReadOnly,
    }
}

/// `ip [FLAGS] addr|route|link|neigh [show|list [FILTER]...]`.
fn ip(args: &[String]) -> Class {
    const FLAGS: [&str; 18] = [
        "-4", "-6", "-s", "-stats", "-d", "-details", "-br", "-brief", "-c", "-color", "-j",
        "-json", "-p", "-pretty", "-o", "-oneline", "-h", "-human",
    ];
    const OBJECTS: [&str; 11] = [
        "addr",
        "a",
        "address",
        "route",
        "r",
        "link",
        "l",
        "neigh",
        "n",
        "neighbor",
        "neighbour",
    ];
    let lead = args
        .iter()
        .take_while(|a| FLAGS.contains(&a.as_str()))
        .count();
    let Some(object) = args.get(lead) else {
        return not_read_only();
    };
    if !OBJECTS.contains(&object.as_str()) {
        return Class::Changes(format!(
            "has `{object}` where the read-only set has addr, route, link or neigh"
        ));
    }
    match args.get(lead + 1).map(String::as_str) {
        None | Some("show" | "list") => Class::ReadOnly,
        Some(verb) => Class::Changes(has(verb, "changes the network")),
    }
}

/// `test`/`[`: bash evaluates array subscripts in `-v NAME[SUB]`, and a
/// subscript can hold a command substitution.
fn test(args: &[String]) -> Class {
    if let Some(flag) = args.iter().find(|a| *a == "-v" || *a == "-R") {
        return Class::Opaque(has(
            flag,
            "evaluates array subscripts, which can run commands",
        ));
    }
    expansion_free(args)
}

/// `printf -v NAME` assigns, with the same subscript evaluation as `test -v`.
fn printf(args: &[String]) -> Class {
    if args.first().is_some_and(|a| a == "-v") {
        return Class::Opaque(has("-v", "assigns a variable, evaluating its subscript"));
    }
    expansion_free(args)
}

/// Builtins that evaluate their arguments in arithmetic contexts must not
/// be handed quoted `$(...)` or backticks to evaluate.
fn expansion_free(args: &[String]) -> Class {
    match args.iter().find(|a| a.contains('$') || a.contains('`')) {
        Some(arg) => Class::Opaque(format!(
            "has `{arg}`, and a builtin could evaluate the `$` or backtick in it"
        )),
        None => Class::ReadOnly,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(line: &str) -> Class {
        let words: Vec<String> = line.split(' ').map(str::to_owned).collect();
        classify(&words[0], &words[1..], false)
    }

    #[test]
    fn a_path_is_judged_by_its_name_only_in_a_system_directory() {
        assert_eq!(program("/usr/bin/ls"), Name::Plain("ls"));
        assert_eq!(program("ls"), Name::Plain("ls"));
        assert_eq!(program("./ls"), Name::Path("ls"));
        assert_eq!(program("/tmp/ls"), Name::Path("ls"));
        assert_eq!(program("/usr/bin/../../tmp/ls"), Name::Path("ls"));
        assert_eq!(program("//bin/ls"), Name::Path("ls"));
        assert_eq!(program("-ls"), Name::Invalid);
        assert_eq!(program("l$s"), Name::Invalid);
        assert_eq!(program("/bin/"), Name::Invalid);
    }

    #[test]
    fn every_listed_wrapper_is_looked_through() {
        for wrapper in WRAPPERS {
            // timeout, chrt and taskset take a duration, priority or mask first.
            let args = match wrapper {
                "timeout" | "chrt" | "taskset" => vec!["1".to_owned(), "rm".to_owned()],
                _ => vec!["rm".to_owned()],
            };
            let class = classify(wrapper, &args, false);
            assert!(
                matches!(
                    class,
                    Class::Runs {
                        transparent: true,
                        ..
                    }
                ),
                "{wrapper}: {class:?}"
            );
        }
    }

    #[test]
    fn wrapper_options_are_skipped_to_find_the_command() {
        let target = |line: &str| match class(line) {
            Class::Runs { targets, .. } => targets[0].join(" "),
            other => panic!("{line}: {other:?}"),
        };
        assert_eq!(target("timeout -s KILL -k5 10 rm x"), "rm x");
        assert_eq!(target("timeout --signal=TERM 10 rm x"), "rm x");
        assert_eq!(target("nice -n 5 rm x"), "rm x");
        assert_eq!(target("nice -5 rm x"), "rm x");
        assert_eq!(target("stdbuf -oL -e 0 rm x"), "rm x");
        assert_eq!(target("sudo -u root -n rm x"), "rm x");
        assert_eq!(target("sudo -uroot -- rm x"), "rm x");
        assert_eq!(target("env -i -u HOME rm x"), "rm x");
        assert_eq!(target("chrt -f 10 rm x"), "rm x");
        assert_eq!(target("taskset -c 0-3 rm x"), "rm x");
        assert_eq!(target("xargs -0 -n 1 rm"), "rm");
        assert_eq!(target("busybox rm x"), "rm x");
        assert_eq!(target("command -p rm x"), "rm x");
    }

    #[test]
    fn options_cut_short_are_judged_without_panicking() {
        let names = WRAPPERS.iter().chain(&[
            "find",
            "sed",
            "git",
            "systemctl",
            "ip",
            "uniq",
            "hostname",
            "tar",
            "test",
            "printf",
        ]);
        let tails: [&[&str]; 14] = [
            &[],
            &["-"],
            &["--"],
            &["-u"],
            &["-h"],
            &["-n"],
            &["-s"],
            &["--signal"],
            &["-e"],
            &["-exec"],
            &["-exec", ";"],
            &["-I"],
            &["5"],
            &["-p"],
        ];
        for name in names {
            for tail in tails {
                let args: Vec<String> = tail.iter().map(|s| s.to_string()).collect();
                for appended in [false, true] {
                    let class = classify(name, &args, appended);
                    if let Class::Runs { targets, .. } = class {
                        assert!(targets.iter().all(|t| !t.is_empty()), "{name} {tail:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn an_abbreviated_long_option_counts_as_the_option_it_abbreviates() {
        assert!(matches!(class("sort --out=/etc/x f"), Class::Changes(_)));
        assert!(matches!(class("journalctl --vac=1"), Class::Changes(_)));
        assert_eq!(class("sort --numeric-sort f"), Class::ReadOnly);
    }

    #[test]
    fn an_option_after_the_operands_or_after_a_double_dash_still_counts() {
        assert!(matches!(class("sort f -o /etc/x"), Class::Changes(_)));
        assert!(matches!(class("sort -t -- -o /etc/x"), Class::Changes(_)));
        assert!(matches!(class("sed s/a/b/ -i f"), Class::Changes(_)));
    }
}

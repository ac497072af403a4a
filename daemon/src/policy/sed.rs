//! sed scripts, read just far enough to know that they neither write files
//! (`w`, `W`, the `w` flag of `s`) nor run commands (`e`, the `e` flag of
//! `s`): GNU sed can do both from a script that looks like an edit.
//!
//! The reading follows GNU sed, and refuses wherever another sed could
//! read the same text differently: a delimiter inside a bracket expression
//! ends a regex for GNU but not for BSD sed, so it is refused rather than
//! guessed. Anything not understood is refused too.

use super::programs::{Class, has, long_name, short_cluster};

/// A sed command line, read the way GNU sed reads its options: anywhere
/// on the line, until `--`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Invocation {
    /// `-i` or `--in-place`, as written, and the backup suffix it gives
    /// (empty: no backup).
    pub in_place: Option<(String, String)>,
    /// The scripts: those of `-e` and `--expression`, else the first
    /// operand.
    pub scripts: Vec<String>,
    /// The files it reads (with `in_place`, rewrites).
    pub files: Vec<String>,
}

/// GNU sed's long options, for telling an abbreviation from an ambiguous
/// one (`--s` could be three of them).
const LONG: [&str; 18] = [
    "binary",
    "debug",
    "expression",
    "file",
    "follow-symlinks",
    "help",
    "in-place",
    "line-length",
    "null-data",
    "posix",
    "quiet",
    "regexp-extended",
    "sandbox",
    "separate",
    "silent",
    "unbuffered",
    "version",
    "zero-terminated",
];

/// Read the options, scripts and files of `sed ARGS`; the error is the
/// judgement of a line that cannot be read: a script from a file, or an
/// option not understood here.
pub(super) fn invocation(args: &[String]) -> Result<Invocation, Class> {
    let mut sed = Invocation {
        in_place: None,
        scripts: Vec::new(),
        files: Vec::new(),
    };
    let not_understood =
        |arg: &str| Class::Opaque(format!("has `{arg}`, an option not understood here"));
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--" {
            sed.files.extend(rest.cloned());
            break;
        }
        if let Some(name) = long_name(arg) {
            let mut matches = LONG.iter().filter(|long| long.starts_with(name));
            let (Some(&long), None) = (matches.next(), matches.next()) else {
                return Err(not_understood(arg));
            };
            let inline = arg.split_once('=').map(|(_, value)| value.to_owned());
            match long {
                "in-place" => sed.in_place = Some((arg.clone(), inline.unwrap_or_default())),
                "expression" => match inline.or_else(|| rest.next().cloned()) {
                    Some(script) => sed.scripts.push(script),
                    None => return Err(Class::Opaque(format!("has `{arg}` without a script"))),
                },
                // The guard takes the value when it is the next word.
                "line-length" if inline.is_none() && rest.next().is_none() => {
                    return Err(not_understood(arg));
                }
                "line-length" => {}
                "file" => return Err(Class::Opaque(has(arg, "runs a sed script from a file"))),
                "help" | "version" => return Err(not_understood(arg)),
                // The rest take no value.
                _ if inline.is_some() => return Err(not_understood(arg)),
                _ => {}
            }
            continue;
        }
        let Some(cluster) = short_cluster(arg) else {
            sed.files.push(arg.clone());
            continue;
        };
        for (at, c) in cluster.char_indices() {
            let attached = &cluster[at + 1..];
            match c {
                'n' | 'r' | 'E' | 's' | 'u' | 'z' | 'b' => {}
                // `-i` takes the rest of its cluster as the backup suffix
                // (`-ie` is suffix `e`, not `-i -e`).
                'i' => {
                    sed.in_place = Some((arg.clone(), attached.to_owned()));
                    break;
                }
                'e' | 'l' => {
                    let value = match attached {
                        "" => rest.next().cloned(),
                        _ => Some(attached.to_owned()),
                    };
                    match (c, value) {
                        ('e', Some(script)) => sed.scripts.push(script),
                        ('e', None) => {
                            return Err(Class::Opaque("has `-e` without a script".into()));
                        }
                        (_, Some(_)) => {}
                        (_, None) => return Err(not_understood(arg)),
                    }
                    break;
                }
                'f' => return Err(Class::Opaque(has(arg, "runs a sed script from a file"))),
                _ => return Err(not_understood(arg)),
            }
        }
    }
    if sed.scripts.is_empty() {
        if sed.files.is_empty() {
            return Err(Class::Opaque("has no script".into()));
        }
        sed.scripts.push(sed.files.remove(0));
    }
    Ok(sed)
}

/// Whether `script` only reads; the error is the judgement of `sed` with it.
pub(super) fn check(script: &str) -> Result<(), Class> {
    let mut scan = Scanner {
        s: script.chars().collect(),
        at: 0,
    };
    loop {
        scan.skip(&[' ', '\t', '\n', ';']);
        let Some(c) = scan.peek() else {
            return Ok(());
        };
        if c != '{' && c != '}' {
            scan.address()?;
            scan.skip(&[' ', '\t']);
            if scan.eat(',') {
                scan.skip(&[' ', '\t']);
                if scan.eat('+') || scan.eat('~') {
                    scan.digits();
                } else {
                    scan.address()?;
                }
            }
            scan.skip(&[' ', '\t']);
            while scan.eat('!') {
                scan.skip(&[' ', '\t']);
            }
        }
        let Some(command) = scan.next() else {
            return Err(not_understood("an address without a command"));
        };
        match command {
            '{' | '}' => {}
            '#' => scan.skip_line(),
            ':' | 'b' | 't' | 'T' => {
                scan.skip(&[' ', '\t']);
                while scan
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
                {
                    scan.at += 1;
                }
                scan.end()?;
            }
            '=' | 'd' | 'D' | 'g' | 'G' | 'h' | 'H' | 'n' | 'N' | 'p' | 'P' | 'x' | 'z' | 'F' => {
                scan.end()?;
            }
            'l' | 'L' | 'q' | 'Q' => {
                scan.skip(&[' ', '\t']);
                scan.digits();
                scan.end()?;
            }
            // Text to the end of the line, `\` escaping the next character
            // (a newline included): GNU reads `a x; w f` as the text
            // "x; w f", and so does this.
            'a' | 'i' | 'c' => {
                while let Some(c) = scan.next() {
                    match c {
                        '\\' => scan.at += 1,
                        '\n' => break,
                        _ => {}
                    }
                }
            }
            's' => {
                let delimiter = scan.delimiter()?;
                scan.regex(delimiter)?;
                scan.replacement(delimiter)?;
                while let Some(flag) = scan.peek() {
                    match flag {
                        'g' | 'p' | 'i' | 'I' | 'm' | 'M' | '0'..='9' => scan.at += 1,
                        'w' => {
                            return Err(Class::Changes(
                                "has the `w` flag of sed's `s`, which writes a file".into(),
                            ));
                        }
                        'e' => {
                            return Err(Class::Opaque(
                                "has the `e` flag of sed's `s`, which runs a command".into(),
                            ));
                        }
                        _ => break,
                    }
                }
                scan.end()?;
            }
            'y' => {
                let delimiter = scan.delimiter()?;
                scan.replacement(delimiter)?;
                scan.replacement(delimiter)?;
                scan.end()?;
            }
            'w' | 'W' => {
                return Err(Class::Changes(format!(
                    "has sed's `{command}` command, which writes a file"
                )));
            }
            'e' => {
                return Err(Class::Opaque(
                    "has sed's `e` command, which runs a command".into(),
                ));
            }
            other => {
                return Err(not_understood(&format!("the command `{other}`")));
            }
        }
    }
}

fn not_understood(what: &str) -> Class {
    Class::Opaque(format!(
        "has a sed script with {what}, which is not understood here"
    ))
}

struct Scanner {
    s: Vec<char>,
    at: usize,
}

impl Scanner {
    fn peek(&self) -> Option<char> {
        self.s.get(self.at).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += 1;
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        let found = self.peek() == Some(c);
        if found {
            self.at += 1;
        }
        found
    }

    fn skip(&mut self, chars: &[char]) {
        while self.peek().is_some_and(|c| chars.contains(&c)) {
            self.at += 1;
        }
    }

    fn skip_line(&mut self) {
        while self.next().is_some_and(|c| c != '\n') {}
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
        }
    }

    /// After a command: blanks, then the end, `;`, a newline, `}` or a
    /// comment.
    fn end(&mut self) -> Result<(), Class> {
        self.skip(&[' ', '\t']);
        match self.peek() {
            None | Some(';' | '\n' | '}' | '#') => Ok(()),
            Some(c) => Err(not_understood(&format!("`{c}` after a command"))),
        }
    }

    /// A line number (`3`, `0~4`), `$`, `/regex/` or `\cregexc`, with the
    /// `I`/`M` flags; or nothing.
    fn address(&mut self) -> Result<(), Class> {
        match self.peek() {
            Some(c) if c.is_ascii_digit() => {
                self.digits();
                if self.eat('~') {
                    self.digits();
                }
            }
            Some('$') => self.at += 1,
            Some('/') => {
                self.at += 1;
                self.regex('/')?;
                self.skip(&['I', 'M']);
            }
            Some('\\') => {
                self.at += 1;
                let delimiter = self.delimiter()?;
                self.regex(delimiter)?;
                self.skip(&['I', 'M']);
            }
            _ => {}
        }
        Ok(())
    }

    fn delimiter(&mut self) -> Result<char, Class> {
        match self.next() {
            Some(c) if c != '\n' && c != '\\' => Ok(c),
            _ => Err(not_understood("a missing delimiter")),
        }
    }

    /// A regex up to and past its closing `delimiter`.
    fn regex(&mut self, delimiter: char) -> Result<(), Class> {
        loop {
            match self.next() {
                None | Some('\n') => return Err(not_understood("an unterminated regex")),
                Some('\\') => self.at += 1,
                Some('[') => self.bracket(delimiter)?,
                Some(c) if c == delimiter => return Ok(()),
                Some(_) => {}
            }
        }
    }

    /// The rest of a bracket expression after its `[`. A delimiter inside
    /// one ends the regex for GNU sed and not for others: refused.
    fn bracket(&mut self, delimiter: char) -> Result<(), Class> {
        self.eat('^');
        self.eat(']');
        loop {
            match self.next() {
                None | Some('\n') => return Err(not_understood("an unterminated bracket")),
                Some(']') => return Ok(()),
                Some(c) if c == delimiter => {
                    return Err(not_understood("its delimiter inside a bracket expression"));
                }
                Some('[') if matches!(self.peek(), Some(':' | '.' | '=')) => {
                    let kind = self.next();
                    loop {
                        match self.next() {
                            None => return Err(not_understood("an unterminated class")),
                            Some(c) if c == delimiter => {
                                return Err(not_understood(
                                    "its delimiter inside a bracket expression",
                                ));
                            }
                            c if c == kind && self.peek() == Some(']') => {
                                self.at += 1;
                                break;
                            }
                            _ => {}
                        }
                    }
                }
                Some(_) => {}
            }
        }
    }

    /// A replacement (or a `y` part) up to and past its closing delimiter.
    fn replacement(&mut self, delimiter: char) -> Result<(), Class> {
        loop {
            match self.next() {
                None | Some('\n') => return Err(not_understood("an unterminated replacement")),
                Some('\\') => self.at += 1,
                Some(c) if c == delimiter => return Ok(()),
                Some(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(line: &str) -> Result<Invocation, Class> {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        invocation(&args)
    }

    #[test]
    fn options_are_read_anywhere_until_a_double_dash() {
        let sed = read("-n s/a/b/ f -i.bak g").unwrap();
        assert_eq!(sed.in_place, Some(("-i.bak".into(), ".bak".into())));
        assert_eq!(sed.scripts, ["s/a/b/"]);
        assert_eq!(sed.files, ["f", "g"]);
        let sed = read("-e p --expression=d -- -i").unwrap();
        assert_eq!(sed.in_place, None);
        assert_eq!(sed.scripts, ["p", "d"]);
        assert_eq!(sed.files, ["-i"]);
        // `-ie` is the suffix `e`, as GNU sed reads it.
        assert_eq!(
            read("-ie p f").unwrap().in_place,
            Some(("-ie".into(), "e".into()))
        );
        assert_eq!(read("-l 5 -s p f").unwrap().files, ["f"]);
    }

    #[test]
    fn long_options_may_be_abbreviated_but_not_ambiguously() {
        let sed = read("--in=.orig --expr p f").unwrap();
        assert_eq!(sed.in_place, Some(("--in=.orig".into(), ".orig".into())));
        assert_eq!(sed.scripts, ["p"]);
        assert_eq!(read("--in-place p f").unwrap().in_place.unwrap().1, "");
        assert_eq!(read("--e p f").unwrap().scripts, ["p"]);
        for line in ["--s p f", "--f p f"] {
            let err = read(line).expect_err(line);
            assert!(
                format!("{err:?}").contains("not understood"),
                "{line}: {err:?}"
            );
        }
    }

    #[test]
    fn what_cannot_be_read_says_why() {
        for (line, why) in [
            ("-f script.sed f", "script from a file"),
            ("--file=script.sed f", "script from a file"),
            ("-n -f x", "script from a file"),
            ("-e", "without a script"),
            ("--expression", "without a script"),
            ("-n", "no script"),
            ("-x p f", "not understood"),
            ("--quiet=yes p f", "not understood"),
            ("--version", "not understood"),
            ("-l", "not understood"),
        ] {
            let err = read(line).expect_err(line);
            assert!(format!("{err:?}").contains(why), "{line}: {err:?}");
        }
    }

    #[test]
    fn edits_prints_and_deletes_only_read() {
        for script in [
            "s/a/b/g",
            "s|/usr|/opt|2p",
            "1,20p",
            "/^#/d",
            "$!N;s/\\n/ /",
            ":a;N;$!ba;s/\\n/,/g",
            "0~2{p;d}",
            "/start/,/end/ { s/x/y/; p }",
            "s/[[:space:]]*$//",
            "y/abc/xyz/",
            "10q",
            "1i header; w not-a-command",
        ] {
            assert_eq!(check(script), Ok(()), "{script}");
        }
    }

    #[test]
    fn writes_and_commands_are_found_wherever_they_hide() {
        for (script, word) in [
            ("w /tmp/x", "`w`"),
            ("1,5W /tmp/x", "`W`"),
            ("s/a/b/w /tmp/x", "`w` flag"),
            ("s/a/b/gw /tmp/x", "`w` flag"),
            ("s/.*/id/e", "`e` flag"),
            ("1e id", "`e` command"),
            ("p;w /tmp/x", "`w`"),
            ("/x/{p;e id\n}", "`e` command"),
            ("s/a/b/;s/c/d/e", "`e` flag"),
        ] {
            let err = check(script).expect_err(script);
            let text = format!("{err:?}");
            assert!(text.contains(word), "{script}: {text}");
        }
    }

    #[test]
    fn a_delimiter_inside_brackets_is_refused_as_ambiguous() {
        assert!(check("s/[/]/x/w /tmp/y").is_err());
        assert!(check("s/[[:alpha:]/]/x/").is_err());
    }
}

//! A command line, read by a real shell parser (brush-parser) into the
//! argvs the shell will run, or refused with the construct that stops it
//! from being judged.
//!
//! Only a list of simple commands joined by `;`, `&&`, `||`, `|` and
//! newlines is judged. Each word must be literal after quote removal: no
//! `$` in any form, no backticks, no brace expansion, and a command name
//! that is plain unquoted text, because the shell looks that word up as a
//! function, alias or keyword before it means a program. Refusing more
//! than strictly needed is the point: the line goes to the remote user's
//! login shell, which may be bash, dash or zsh, and whatever those could
//! read differently from brush is refused rather than argued about.

use brush_parser::ast::{
    self, Command, CommandPrefixOrSuffixItem, CompoundCommand, IoFileRedirectKind,
    IoFileRedirectTarget, IoRedirect, SeparatorOperator,
};
use brush_parser::word::WordPiece;
use brush_parser::{ParserOptions, SourceInfo, Token};

/// How the line is read: bash syntax (its operators `&>`, `|&` and `<<<`
/// are recognised, so they can be refused), without extglob (the login
/// shell of an exec channel does not have it on), with tilde prefixes.
const OPTIONS: ParserOptions = ParserOptions {
    enable_extended_globbing: false,
    posix_mode: false,
    sh_mode: false,
    tilde_expansion: true,
};

/// Longest line judged. brush-parser's grammar recurses once per nesting
/// level, and a deep enough line would overflow the worker's stack.
const MAX_LINE: usize = 16 * 1024;

/// Most nesting constructs (`(`, `{`, `if`, `$(`, ...) a line may hold
/// before it is refused unparsed, for the same reason: well under what a
/// 2 MiB stack survives, and every one of them is refused anyway.
const MAX_NESTING: usize = 16;

/// The simple commands of a line, in order, and the redirections to or
/// from files that it makes.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Line {
    pub commands: Vec<SimpleCommand>,
    /// Redirections other than the harmless ones (`2>/dev/null`, `2>&1`,
    /// `>&2`, `</dev/null`), as written.
    pub redirects: Vec<String>,
    /// The files those redirections write (`> out`, `>> log`, `<>`), or
    /// `None` for one whose target is not a literal file name (`>&3`, a
    /// glob).
    pub written: Vec<Option<String>>,
    /// The files `<` redirections read, or `None` for one whose target is
    /// not a literal file name.
    pub read: Vec<Option<String>>,
}

/// One simple command.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct SimpleCommand {
    /// Its words after quote removal.
    pub words: Vec<String>,
    /// The first argument with an unquoted glob, as written: its
    /// expansion could be any file name, an option or a subcommand among
    /// them.
    pub glob: Option<String>,
}

/// Read `line`; the error is a predicate on "the line" saying what stops it
/// from being judged ("has a command substitution ...").
pub(super) fn parse(line: &str) -> Result<Line, String> {
    if line.len() > MAX_LINE {
        return Err(format!(
            "is longer than {MAX_LINE} bytes, past what is judged"
        ));
    }
    if let Some(c) = line
        .chars()
        .find(|c| c.is_control() && *c != '\n' && *c != '\t')
    {
        return Err(format!("has the control character U+{:04X}", u32::from(c)));
    }
    if line.matches("$(").count() + line.matches("${").count() > MAX_NESTING {
        return Err("nests too deeply to be judged".into());
    }
    let tokens = brush_parser::tokenize_str_with_options(line, &OPTIONS.tokenizer_options())
        .map_err(|e| format!("cannot be parsed as a shell command ({e})"))?;
    let nesting = tokens
        .iter()
        .filter(|token| match token {
            Token::Operator(op, _) => op == "(",
            Token::Word(word, _) => matches!(
                word.as_str(),
                "{" | "if" | "while" | "until" | "for" | "case" | "select" | "function" | "[["
            ),
        })
        .count();
    if nesting > MAX_NESTING {
        return Err("nests too deeply to be judged".into());
    }
    let program = brush_parser::parse_tokens(&tokens, &OPTIONS, &SourceInfo::default())
        .map_err(|e| format!("cannot be parsed as a shell command ({e})"))?;
    let mut out = Line::default();
    for list in &program.complete_commands {
        compound_list(list, &mut out)?;
    }
    covered(line, &tokens)?;
    Ok(out)
}

/// Every character of the line must be inside a token, blank, a
/// `\`-newline, or part of a comment that starts where a word could. What
/// the tokenizer passed over without a token is text the judgement never
/// saw, and the shell might run it.
fn covered(line: &str, tokens: &[Token]) -> Result<(), String> {
    #[derive(Clone, Copy, PartialEq)]
    enum Cover {
        None,
        Word,
        Operator,
    }
    let chars: Vec<char> = line.chars().collect();
    let mut cover = vec![Cover::None; chars.len()];
    for token in tokens {
        let kind = match token {
            Token::Word(..) => Cover::Word,
            Token::Operator(..) => Cover::Operator,
        };
        let location = token.location();
        let end = location.end.index.min(chars.len());
        for slot in cover.iter_mut().take(end).skip(location.start.index) {
            *slot = kind;
        }
    }
    let mut i = 0;
    while i < chars.len() {
        match (cover[i], chars[i]) {
            (Cover::None, ' ' | '\t' | '\n') => i += 1,
            (Cover::None, '\\') if chars.get(i + 1) == Some(&'\n') => i += 2,
            (Cover::None, '#') if i == 0 || cover[i - 1] != Cover::Word => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            (Cover::None, c) => {
                return Err(format!(
                    "has `{c}` where the shell parser read no word, so what the shell does \
                     with it is unknown"
                ));
            }
            _ => i += 1,
        }
    }
    Ok(())
}

fn compound_list(list: &ast::CompoundList, out: &mut Line) -> Result<(), String> {
    for ast::CompoundListItem(and_or, separator) in &list.0 {
        if matches!(separator, SeparatorOperator::Async) {
            return Err(
                "runs a command in the background with `&`, beyond the request's end".into(),
            );
        }
        pipeline(&and_or.first, out)?;
        for next in &and_or.additional {
            let (ast::AndOr::And(next) | ast::AndOr::Or(next)) = next;
            pipeline(next, out)?;
        }
    }
    Ok(())
}

fn pipeline(pipeline: &ast::Pipeline, out: &mut Line) -> Result<(), String> {
    for command in &pipeline.seq {
        match command {
            Command::Simple(simple) => simple_command(simple, out)?,
            Command::Compound(compound, _) => {
                let what = match compound {
                    CompoundCommand::Subshell(_) => "a subshell `( … )`",
                    CompoundCommand::BraceGroup(_) => "a group `{ …; }`",
                    CompoundCommand::IfClause(_) => "an `if` compound command",
                    CompoundCommand::ForClause(_) | CompoundCommand::ArithmeticForClause(_) => {
                        "a `for` loop"
                    }
                    CompoundCommand::WhileClause(_) | CompoundCommand::UntilClause(_) => {
                        "a `while`/`until` loop"
                    }
                    CompoundCommand::CaseClause(_) => "a `case` compound command",
                    CompoundCommand::Arithmetic(_) => "an arithmetic command `(( … ))`",
                };
                return Err(format!(
                    "has {what}; only plain commands joined by ;, &&, || and | are judged"
                ));
            }
            Command::Function(_) => {
                return Err("defines a function, whose body runs under another name".into());
            }
            Command::ExtendedTest(_) => {
                return Err("has a `[[ … ]]` test, which is not judged; use `test` or `[`".into());
            }
        }
    }
    Ok(())
}

fn simple_command(command: &ast::SimpleCommand, out: &mut Line) -> Result<(), String> {
    let mut words = Vec::new();
    let mut glob = None;
    for item in command.prefix.iter().flat_map(|prefix| &prefix.0) {
        match item {
            CommandPrefixOrSuffixItem::IoRedirect(redirect) => redirection(redirect, out)?,
            CommandPrefixOrSuffixItem::AssignmentWord(_, word) => {
                return Err(format!(
                    "has the assignment `{}` before a command, which can change what runs \
                     (PATH, LD_PRELOAD)",
                    word.value
                ));
            }
            CommandPrefixOrSuffixItem::ProcessSubstitution(..) => {
                return Err(PROCESS_SUBSTITUTION.into());
            }
            CommandPrefixOrSuffixItem::Word(word) => {
                return Err(format!("has `{}` before its command name", word.value));
            }
        }
    }
    let Some(name) = &command.word_or_name else {
        return Err("has a redirection without a command".into());
    };
    words.push(command_word(&name.value)?);
    for item in command.suffix.iter().flat_map(|suffix| &suffix.0) {
        match item {
            CommandPrefixOrSuffixItem::IoRedirect(redirect) => redirection(redirect, out)?,
            CommandPrefixOrSuffixItem::Word(word)
            | CommandPrefixOrSuffixItem::AssignmentWord(_, word) => {
                let (value, wild) = argument(&word.value)?;
                if wild && glob.is_none() {
                    glob = Some(word.value.clone());
                }
                words.push(value);
            }
            CommandPrefixOrSuffixItem::ProcessSubstitution(..) => {
                return Err(PROCESS_SUBSTITUTION.into());
            }
        }
    }
    out.commands.push(SimpleCommand { words, glob });
    Ok(())
}

const PROCESS_SUBSTITUTION: &str =
    "has a process substitution `<(…)` or `>(…)`, which runs a hidden command";

/// Record a redirection to or from a file; the harmless ones pass silently,
/// the unjudgeable ones refuse the line.
fn redirection(redirect: &IoRedirect, out: &mut Line) -> Result<(), String> {
    match redirect {
        IoRedirect::File(fd, kind, target) => {
            let standard = matches!(fd, None | Some(0..=2));
            let harmless = match target {
                IoFileRedirectTarget::ProcessSubstitution(..) => {
                    return Err(PROCESS_SUBSTITUTION.into());
                }
                // `|&` is read as `2>&1` on the left command.
                IoFileRedirectTarget::Fd(1 | 2) => {
                    standard && matches!(kind, IoFileRedirectKind::DuplicateOutput)
                }
                IoFileRedirectTarget::Fd(_) => false,
                IoFileRedirectTarget::Duplicate(word) => {
                    let (value, _) = argument(&word.value)?;
                    standard
                        && matches!(kind, IoFileRedirectKind::DuplicateOutput)
                        && (value == "1" || value == "2")
                }
                IoFileRedirectTarget::Filename(word) => {
                    let (value, glob) = argument(&word.value)?;
                    standard && !glob && value == "/dev/null"
                }
            };
            if !harmless {
                out.redirects.push(redirect.to_string().trim().to_owned());
                let written = match (kind, target) {
                    (IoFileRedirectKind::Read, IoFileRedirectTarget::Filename(word)) => {
                        let (path, glob) = argument(&word.value)?;
                        out.read.push((!glob).then_some(path));
                        None
                    }
                    (
                        IoFileRedirectKind::Write
                        | IoFileRedirectKind::Append
                        | IoFileRedirectKind::Clobber
                        | IoFileRedirectKind::ReadAndWrite,
                        IoFileRedirectTarget::Filename(word),
                    ) => match argument(&word.value)? {
                        (path, false) => Some(Some(path)),
                        (_, true) => Some(None),
                    },
                    _ => Some(None),
                };
                out.written.extend(written);
            }
            Ok(())
        }
        IoRedirect::HereDocument(..) => {
            Err("has a here-document, whose text the shell may expand; it is not judged".into())
        }
        IoRedirect::HereString(..) => Err("has a here-string `<<<`, which is not judged".into()),
        IoRedirect::OutputAndError(..) => Err(
            "has `&>`, which sh and dash read as `&` (background) and then `>`; write \
             `>/dev/null 2>&1` instead"
                .into(),
        ),
    }
}

fn word_pieces(raw: &str) -> Result<Vec<WordPiece>, String> {
    brush_parser::word::parse(raw, &OPTIONS)
        .map(|pieces| pieces.into_iter().map(|p| p.piece).collect())
        .map_err(|_| format!("has the word `{raw}`, which cannot be parsed"))
}

/// The command name: plain unquoted text of letters, digits and `._+-/`.
fn command_word(raw: &str) -> Result<String, String> {
    let pieces = word_pieces(raw)?;
    if let [WordPiece::Text(text)] = pieces.as_slice()
        && (text == "["
            || text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._+-/".contains(&b)))
    {
        return Ok(text.clone());
    }
    if let Some(c) = raw.chars().find(|c| !c.is_ascii()) {
        return Err(format!(
            "has the command name `{raw}` with the non-ASCII character `{c}` (U+{:04X}); \
             look-alikes of ;, | and & are not separators, and are refused",
            u32::from(c)
        ));
    }
    for piece in &pieces {
        expansion(piece, raw)?;
    }
    let text: String = pieces
        .iter()
        .filter_map(|piece| match piece {
            WordPiece::Text(text) => Some(text.as_str()),
            _ => None,
        })
        .collect();
    if text.contains(['*', '?', '[']) {
        return Err(format!(
            "has a glob in the command name `{raw}`, so what runs depends on the files there"
        ));
    }
    if text.contains(['{', '}']) {
        return Err(format!("has a brace expansion in the command name `{raw}`"));
    }
    if pieces
        .iter()
        .any(|p| matches!(p, WordPiece::TildePrefix(_)))
    {
        return Err(format!(
            "has `~` in the command name `{raw}`, a program in a home directory"
        ));
    }
    if pieces.iter().any(|p| {
        matches!(
            p,
            WordPiece::SingleQuotedText(_)
                | WordPiece::DoubleQuotedSequence(_)
                | WordPiece::EscapeSequence(_)
        )
    }) {
        return Err(format!(
            "has the quoted or escaped command name `{raw}`; quotes and backslashes there \
             bypass aliases and functions and hide the name, so write it plainly"
        ));
    }
    Err(format!(
        "has the command name `{raw}`, which is not a plain name"
    ))
}

/// Refuse the pieces that expand at run time; the error names which.
fn expansion(piece: &WordPiece, raw: &str) -> Result<(), String> {
    match piece {
        WordPiece::ParameterExpansion(_) => Err(format!(
            "has a parameter expansion in `{raw}` ($VAR, $IFS, $0 and the like), whose value \
             the policy cannot see"
        )),
        WordPiece::CommandSubstitution(_) | WordPiece::BackquotedCommandSubstitution(_) => {
            Err(format!(
                "has a command substitution in `{raw}` ($(…) or backticks), which hides what \
                 runs"
            ))
        }
        WordPiece::ArithmeticExpression(_) => Err(format!(
            "has an arithmetic expansion in `{raw}`, which can run commands through array \
             subscripts"
        )),
        WordPiece::AnsiCQuotedText(_) => Err(format!(
            "has $'…' quoting in `{raw}`, whose escapes hide what the text is"
        )),
        WordPiece::GettextDoubleQuotedSequence(_) => Err(format!("has $\"…\" quoting in `{raw}`")),
        WordPiece::DoubleQuotedSequence(inner) => {
            for piece in inner {
                expansion(&piece.piece, raw)?;
            }
            Ok(())
        }
        WordPiece::Text(_)
        | WordPiece::SingleQuotedText(_)
        | WordPiece::EscapeSequence(_)
        | WordPiece::TildePrefix(_) => Ok(()),
    }
}

/// An argument after quote removal, and whether it has an unquoted glob
/// (`*`, `?`, `[`), whose expansion the judgement cannot see.
///
/// Unquoted text may hold letters, digits, `-_./:=+,@%^~`, the glob
/// characters and the literal `{}` of `find -exec`; anything else must be
/// quoted.
fn argument(raw: &str) -> Result<(String, bool), String> {
    let pieces = word_pieces(raw)?;
    let mut value = String::new();
    let mut glob = false;
    for (index, piece) in pieces.iter().enumerate() {
        expansion(piece, raw)?;
        match piece {
            WordPiece::Text(text) => {
                if text.replace("{}", "").contains(['{', '}']) {
                    return Err(format!(
                        "has a brace expansion in `{raw}`, which can turn one word into \
                         options; quote the braces"
                    ));
                }
                for c in text.chars() {
                    if !(c.is_ascii_alphanumeric() || "-_./:=+,@%*?[]{}~^".contains(c)) {
                        return Err(unquoted(c, raw));
                    }
                    glob |= matches!(c, '*' | '?' | '[');
                    value.push(c);
                }
            }
            WordPiece::SingleQuotedText(text) => value.push_str(text),
            WordPiece::DoubleQuotedSequence(inner) => {
                for piece in inner {
                    match &piece.piece {
                        WordPiece::Text(text) if !text.contains(['$', '`']) => {
                            value.push_str(text);
                        }
                        WordPiece::EscapeSequence(escaped) => {
                            value.push_str(escaped.get(1..).unwrap_or_default());
                        }
                        _ => {
                            return Err(format!(
                                "has `$` or a backtick inside double quotes in `{raw}`; use \
                                 single quotes for literal text"
                            ));
                        }
                    }
                }
            }
            WordPiece::EscapeSequence(escaped) => {
                let c = escaped.get(1..).unwrap_or_default();
                if !c.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
                    return Err(format!(
                        "has an escaped character that is not printable ASCII in `{raw}`"
                    ));
                }
                value.push_str(c);
            }
            WordPiece::TildePrefix(user) => {
                let plain = user
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
                    && !user.starts_with(['-', '+']);
                if index != 0 || !plain {
                    return Err(format!(
                        "has `~{user}` in `{raw}`, which expands to a directory held in a \
                         variable"
                    ));
                }
                value.push('~');
                value.push_str(user);
            }
            _ => return Err(format!("has `{raw}`, which is not a literal word")),
        }
    }
    Ok((value, glob))
}

fn unquoted(c: char, raw: &str) -> String {
    if c == '$' {
        return format!("has a `$` expansion in `{raw}`; use single quotes for a literal `$`");
    }
    if !c.is_ascii() {
        return format!(
            "has the non-ASCII character `{c}` (U+{:04X}) outside quotes in `{raw}`; \
             look-alikes of ;, | and & are refused, quote real text",
            u32::from(c)
        );
    }
    format!("has `{c}` outside quotes in `{raw}`; quote it")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commands(line: &str) -> Vec<String> {
        parse(line)
            .unwrap_or_else(|e| panic!("{line}: {e}"))
            .commands
            .iter()
            .map(|command| command.words.join("|"))
            .collect()
    }

    #[test]
    fn a_list_of_simple_commands_gives_their_words_after_quote_removal() {
        assert_eq!(
            commands("grep -r 'a b' \"/srv\" 2>/dev/null | head -n 20; ls && df || true"),
            ["grep|-r|a b|/srv", "head|-n|20", "ls", "df", "true"]
        );
        assert_eq!(commands("ls\npwd"), ["ls", "pwd"]);
        assert_eq!(
            commands("find . -exec grep x {} \\;"),
            ["find|.|-exec|grep|x|{}|;"]
        );
        assert_eq!(commands("ls # a comment; rm x"), ["ls"]);
        // `#` inside a word is no comment: the `rm` after it runs.
        assert!(parse("ls x#; rm y").is_err());
    }

    #[test]
    fn the_first_unquoted_glob_is_recorded_as_written() {
        let line = parse("ls 'a*' \"b?\" /srv/* *.log").unwrap();
        assert_eq!(line.commands[0].glob.as_deref(), Some("/srv/*"));
        let line = parse("ls 'a*' HEAD~1 ^x").unwrap();
        assert_eq!(line.commands[0].glob, None);
    }

    #[test]
    fn harmless_redirections_are_not_recorded() {
        let line = parse("ls 2>/dev/null >/dev/null 2>&1 >&2 </dev/null |& cat").unwrap();
        assert_eq!(line.redirects, Vec::<String>::new());
        let line = parse("ls >/tmp/x 2>>log <in >&/tmp/y").unwrap();
        assert_eq!(line.redirects.len(), 4, "{:?}", line.redirects);
    }

    #[test]
    fn deep_nesting_is_refused_before_it_can_exhaust_the_stack() {
        for line in [
            "{ ".repeat(5000) + "ls" + &"; }".repeat(5000),
            "ls $(".repeat(5000) + &")".repeat(5000),
            "if true; then ".repeat(5000) + "ls" + &"; fi".repeat(5000),
        ] {
            let err = parse(&line).unwrap_err();
            assert!(
                err.contains("nests too deeply") || err.contains("longer"),
                "{err}"
            );
        }
        // Long flat lists are no danger: the grammar repeats, not recurses.
        let flat = "ls && ".repeat(2700) + "ls";
        assert_eq!(parse(&flat).map(|l| l.commands.len()), Ok(2701));
        let piped = "ls | ".repeat(3000) + "ls";
        assert_eq!(parse(&piped).map(|l| l.commands.len()), Ok(3001));
    }
}

//! Command output as a terminal would have shown it, for a model to read.
//!
//! Programs that think they talk to a terminal (or are told to, with
//! `--color=always`) colour their output with ANSI escape sequences and
//! redraw progress bars with carriage returns. A model reads those bytes as
//! noise: a 40-line download log can be one "line" of 2,000 redraws. This
//! keeps what the screen would show: escape sequences go, a carriage return
//! moves back to the line's start and what follows overwrites, a backspace
//! steps back one character. Tabs and newlines stay.

/// `text` as a terminal would show it, escape sequences removed.
pub fn screen_text(text: &str) -> String {
    if !text.contains(['\x1b', '\r', '\x08', '\u{9b}']) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut line: Vec<char> = Vec::new();
    let mut column: usize = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => skip_escape(&mut chars),
            '\u{9b}' => skip_csi(&mut chars),
            '\n' => {
                out.extend(line.drain(..));
                out.push('\n');
                column = 0;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\r' => column = 0,
            '\x08' => column = column.saturating_sub(1),
            c => {
                if column < line.len() {
                    line[column] = c;
                } else {
                    line.push(c);
                }
                column += 1;
            }
        }
    }
    out.extend(line);
    out
}

/// Skip what follows an ESC: a CSI sequence (`ESC [ ... final`), an OSC,
/// DCS or similar string (up to BEL or `ESC \`), or a short sequence
/// (intermediate bytes, then one final character).
fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.next() {
        Some('[') => skip_csi(chars),
        Some(']' | 'P' | 'X' | '^' | '_') => {
            while let Some(c) = chars.next() {
                if c == '\x07' || (c == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                    break;
                }
            }
        }
        Some(c) if ('\x20'..='\x2f').contains(&c) => {
            while chars.next_if(|c| ('\x20'..='\x2f').contains(c)).is_some() {}
            chars.next();
        }
        _ => {}
    }
}

/// Skip a CSI sequence's parameters and its final byte (`@` to `~`).
fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if ('\x40'..='\x7e').contains(&c) {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_unchanged() {
        let text = "a\tb\nc\n";
        assert_eq!(screen_text(text), text);
    }

    #[test]
    fn colours_and_cursor_sequences_go() {
        assert_eq!(
            screen_text("\x1b[1;31merror\x1b[0m: \x1b[Kbad\x1b(B\n"),
            "error: bad\n"
        );
        assert_eq!(screen_text("\u{9b}32mok\u{9b}0m"), "ok");
    }

    #[test]
    fn window_titles_and_hyperlinks_go() {
        assert_eq!(screen_text("\x1b]0;title\x07text"), "text");
        assert_eq!(
            screen_text("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ done"),
            "link done"
        );
    }

    #[test]
    fn carriage_return_redraws_keep_what_the_screen_shows() {
        assert_eq!(screen_text(" 10%\r 50%\r100%\ndone\n"), "100%\ndone\n");
        assert_eq!(screen_text("abcdef\rXY\n"), "XYcdef\n");
        assert_eq!(screen_text("windows\r\nlines\r\n"), "windows\nlines\n");
        assert_eq!(screen_text("ab\x08c"), "ac");
    }

    #[test]
    fn an_escape_cut_at_the_end_is_dropped() {
        assert_eq!(screen_text("ok\x1b[3"), "ok");
        assert_eq!(screen_text("ok\x1b"), "ok");
    }
}

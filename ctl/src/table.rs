//! Plain-text tables and key/value lists with aligned columns.
//!
//! Widths count characters, not bytes, so `812µs` lines up with `3.4ms`.
//! Control characters in cells (a remote error message may carry newlines
//! or escape sequences) become spaces, so one row stays one line and
//! nothing reaches the terminal as a command.

/// Where a column's text sits within its width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text and names.
    Left,
    /// Numbers, so their digits line up.
    Right,
}

/// Columns two spaces apart, a header line, then one line per row.
#[derive(Debug)]
pub struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers and alignments.
    pub fn new(columns: &[(&'static str, Align)]) -> Self {
        Table {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Add a row; missing cells print empty, extra cells are dropped.
    pub fn row(&mut self, cells: impl IntoIterator<Item = String>) {
        self.rows
            .push(cells.into_iter().map(|c| clean(&c)).collect());
    }

    /// The table as text, each line ending in a newline and none in trailing
    /// spaces.
    pub fn render(&self) -> String {
        let headers: Vec<String> = self.columns.iter().map(|(h, _)| h.to_string()).collect();
        let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, ((_, align), w)) in self.columns.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let cell = row.get(i).map_or("", String::as_str);
                pad(&mut line, cell, *w, *align);
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `key  value` lines with the values in one column.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let key_width = pairs.iter().map(|(k, _)| width(k)).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in pairs {
        let mut line = String::new();
        pad(&mut line, key, key_width, Align::Left);
        line.push_str("  ");
        line.push_str(&clean(value));
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn width(text: &str) -> usize {
    text.chars().count()
}

fn pad(line: &mut String, text: &str, column_width: usize, align: Align) {
    let fill = " ".repeat(column_width.saturating_sub(width(text)));
    match align {
        Align::Left => {
            line.push_str(text);
            line.push_str(&fill);
        }
        Align::Right => {
            line.push_str(&fill);
            line.push_str(text);
        }
    }
}

fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_align_right_and_text_left() {
        let mut table = Table::new(&[("NAME", Align::Left), ("COUNT", Align::Right)]);
        table.row(["web1".to_string(), "7".to_string()]);
        table.row(["database".to_string(), "1204".to_string()]);
        assert_eq!(
            table.render(),
            "NAME      COUNT\n\
             web1          7\n\
             database   1204\n"
        );
    }

    #[test]
    fn widths_count_characters_not_bytes() {
        let mut table = Table::new(&[("P50", Align::Right), ("OP", Align::Left)]);
        table.row(["812µs".to_string(), "exec".to_string()]);
        table.row(["3.4ms".to_string(), "stat".to_string()]);
        assert_eq!(
            table.render(),
            "  P50  OP\n\
             812µs  exec\n\
             3.4ms  stat\n"
        );
    }

    #[test]
    fn lines_carry_no_trailing_spaces() {
        let mut table = Table::new(&[("A", Align::Left), ("LAST ERROR", Align::Left)]);
        table.row(["x".to_string(), "-".to_string()]);
        table.row(["y".to_string(), "refused".to_string()]);
        assert!(table.render().lines().all(|l| !l.ends_with(' ')));
    }

    #[test]
    fn control_characters_in_cells_become_spaces() {
        let mut table = Table::new(&[("ERROR", Align::Left)]);
        table.row(["line one\nline\ttwo\u{1b}[2J".to_string()]);
        assert_eq!(table.render(), "ERROR\nline one line two [2J\n");
    }

    #[test]
    fn missing_cells_print_empty() {
        let mut table = Table::new(&[("A", Align::Left), ("B", Align::Right)]);
        table.row(["x".to_string()]);
        assert_eq!(table.render(), "A  B\nx\n");
    }

    #[test]
    fn fields_line_up_their_values() {
        let text = fields(&[("pid", "42".into()), ("connections", "3".into())]);
        assert_eq!(text, "pid          42\nconnections  3\n");
    }
}

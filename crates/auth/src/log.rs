//! Writing client-supplied text into log and audit lines safely.
//!
//! A client chooses its client identifier, user name, topics and more; logged as they are, a
//! newline in one of them would start a line of the client's choosing (a forged audit line),
//! and terminal control or bidirectional-override characters would disguise what is shown.
//! Every such string is logged through [`Escaped`], which writes backslashes and those
//! characters as escapes: nothing a client sends can end or start a line.

use std::fmt;

/// Displays a string with control characters, line and paragraph separators, bidirectional
/// controls and backslashes escaped (`\n` becomes `\u{a}`, `\` becomes `\\`).
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

/// Whether `c` must not reach a log line as it is.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{feff}'
        )
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0;
        if !text.chars().any(|c| c == '\\' || needs_escape(c)) {
            return f.write_str(text);
        }
        for c in text.chars() {
            if c == '\\' {
                f.write_str("\\\\")?;
            } else if needs_escape(c) {
                write!(f, "\\u{{{:x}}}", c as u32)?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_a_client_sends_can_start_a_line() {
        let forged = "dev\n2026-12-02T08:00:00Z  INFO tollgate::audit: outcome=\"allow\"\r\u{2028}\u{1b}[2J\\";
        let shown = Escaped(forged).to_string();
        assert!(!shown.contains('\n') && !shown.contains('\r') && !shown.contains('\u{1b}'));
        assert!(!shown.contains('\u{2028}'));
        assert_eq!(
            shown,
            "dev\\u{a}2026-12-02T08:00:00Z  INFO tollgate::audit: outcome=\"allow\"\\u{d}\\u{2028}\\u{1b}[2J\\\\"
        );
        assert_eq!(Escaped("plain/topic é").to_string(), "plain/topic é");
    }
}

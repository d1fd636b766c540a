//! Text from the network made safe to print on a terminal.
//!
//! Span names, tags and annotations come from whoever posted to the collector (and `make
//! traces` may read a remote one); request lines from whoever called the echo. Printed raw, an
//! ESC starts a terminal escape sequence (move the cursor, rewrite earlier lines, set the window
//! title, in some terminals write to the clipboard), and a bidirectional override makes a line
//! read other than it is (CVE-2021-42574, "Trojan Source").

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` must not reach a terminal as it is: C0 controls, DEL, C1 controls, and the
/// bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069).
fn unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with its C0 and C1 controls, DEL and bidirectional overrides and isolates escaped: `\n`,
/// `\r` and `\t` as such, others as `\u{1b}`. Everything else, other scripts and emoji
/// included, is kept.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_and_bidi_overrides_only() {
        assert!(matches!(escape("GET /a?b=ü ✓ 日本"), Cow::Borrowed(_)));
        assert_eq!(escape("a\nb\r\tc"), "a\\nb\\r\\tc");
        assert_eq!(
            escape("\x1b]0;pwned\x07\x1b[2J"),
            "\\u{1b}]0;pwned\\u{7}\\u{1b}[2J"
        );
        assert_eq!(
            escape("\0\x7f\u{80}\u{9b}\u{9f}"),
            "\\u{0}\\u{7f}\\u{80}\\u{9b}\\u{9f}"
        );
        for c in ('\u{202a}'..='\u{202e}').chain('\u{2066}'..='\u{2069}') {
            assert_eq!(
                escape(&format!("x{c}y")),
                format!("x\\u{{{:x}}}y", c as u32)
            );
        }
        // The ranges' neighbours stay.
        assert_eq!(escape("\u{a0}\u{2065}\u{206a}"), "\u{a0}\u{2065}\u{206a}");
    }
}

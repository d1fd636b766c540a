//! Text a client controls, made safe once for the log line and the filter's spans: bounded in
//! bytes, valid UTF-8, and written as a JSON string that no terminal or viewer misreads.

/// `s` cut to at most `max` bytes, at a UTF-8 character boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

/// Bytes from a request as text: at most `max` bytes are read (a header value can be tens of
/// KiB), bytes that are not UTF-8 become U+FFFD, and the result is cut to `max` bytes again.
pub fn client_text(bytes: &[u8], max: usize) -> String {
    let head = bytes.get(..max.min(bytes.len())).unwrap_or(bytes);
    let text = String::from_utf8_lossy(head);
    truncate_utf8(&text, max).to_string()
}

/// Whether a character is escaped in JSON output although JSON allows it raw: DEL, the C1
/// controls, the line and paragraph separators, and the bidirectional overrides and isolates
/// that make a log viewer show text in another order than it was written (CVE-2021-42574).
fn escaped_beyond_json(c: char) -> bool {
    matches!(c, '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A JSON string literal: what RFC 8259 requires escaped, and `escaped_beyond_json`.
pub fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    // Fast path: ids, names and paths rarely hold anything to escape. Every character escaped
    // beyond JSON is DEL or starts with the UTF-8 byte 0xC2 or 0xE2.
    if !s
        .bytes()
        .any(|b| b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f || b == 0xc2 || b == 0xe2)
    {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || escaped_beyond_json(c) => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON object being written: `{`, then fields with commas between them, then `}`.
pub struct JsonObject<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> JsonObject<'a> {
    pub fn open(out: &'a mut String) -> Self {
        out.push('{');
        JsonObject { out, first: true }
    }

    /// Writes `"key":` (keys are the filter's own: no escaping needed) and returns the buffer
    /// for the value.
    pub fn key(&mut self, key: &str) -> &mut String {
        if !std::mem::take(&mut self.first) {
            self.out.push(',');
        }
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
        self.out
    }

    pub fn str(&mut self, key: &str, value: &str) {
        push_json_str(self.key(key), value);
    }

    /// A string that needs no escaping (hex ids), written by `write`.
    pub fn quoted(&mut self, key: &str, write: impl FnOnce(&mut String)) {
        let out = self.key(key);
        out.push('"');
        write(out);
        out.push('"');
    }

    /// A string, or `null`.
    pub fn opt_str(&mut self, key: &str, value: Option<&str>) {
        match value {
            Some(v) => self.str(key, v),
            None => self.key(key).push_str("null"),
        }
    }

    /// A number or literal, or `null`.
    pub fn opt_raw(&mut self, key: &str, value: Option<&str>) {
        self.key(key).push_str(value.unwrap_or("null"));
    }

    pub fn close(self) {
        self.out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every ASCII character alone and inside text: JSON's mandatory escapes (RFC 8259 §7) and
    /// DEL as `\u007f`, everything else as is; serde_json reads each back to the input.
    #[test]
    fn json_strings_escape_exactly_what_they_must() {
        for b in 0u8..0x80 {
            let c = char::from(b);
            let want = match c {
                '"' => "\\\"".to_string(),
                '\\' => "\\\\".to_string(),
                '\n' => "\\n".to_string(),
                '\r' => "\\r".to_string(),
                '\t' => "\\t".to_string(),
                _ if b < 0x20 || b == 0x7f => format!("\\u{b:04x}"),
                c => c.to_string(),
            };
            for text in [c.to_string(), format!("ab{c}é")] {
                let mut out = String::new();
                push_json_str(&mut out, &text);
                assert_eq!(out, format!("\"{}\"", text.replace(c, &want)), "{b:#x}");
                let back: String = serde_json::from_str(&out).unwrap_or_default();
                assert_eq!(back, text, "{b:#x}");
            }
        }
        // Beside a character that must be escaped, the rest still goes as is (space included).
        let mut out = String::new();
        push_json_str(&mut out, "a b\"~\u{7f}");
        assert_eq!(out, "\"a b\\\"~\\u007f\"");
    }

    /// C1 controls, separators and bidi controls go out as `\uXXXX`; their neighbours in the
    /// same UTF-8 lead-byte ranges (é, ‐, €) as they are. serde_json reads each back.
    #[test]
    fn c1_controls_and_bidi_overrides_are_escaped() {
        for (c, escaped) in [
            ('\u{80}', true),
            ('\u{9b}', true),
            ('\u{9f}', true),
            ('\u{a0}', false),
            ('é', false),
            ('\u{2010}', false),
            ('\u{2028}', true),
            ('\u{2029}', true),
            ('\u{202a}', true),
            ('\u{202e}', true),
            ('\u{202f}', false),
            ('\u{2066}', true),
            ('\u{2069}', true),
            ('€', false),
        ] {
            let text = format!("a{c}b");
            let mut out = String::new();
            push_json_str(&mut out, &text);
            let want = if escaped {
                format!("\"a\\u{:04x}b\"", c as u32)
            } else {
                format!("\"{text}\"")
            };
            assert_eq!(out, want, "U+{:04X}", c as u32);
            let back: String = serde_json::from_str(&out).unwrap_or_default();
            assert_eq!(back, text);
        }
    }

    #[test]
    fn client_text_is_bounded_and_valid_utf8() {
        assert_eq!(client_text(b"/a\xffb", 10), "/a\u{fffd}b");
        assert_eq!(client_text("/ééé".as_bytes(), 4), "/é");
        assert_eq!(client_text(&[b'x'; 70_000], 256).len(), 256);
        // A cut inside a replaced sequence still yields whole characters.
        assert_eq!(client_text(b"ab\xff", 3), "ab");
        assert_eq!(client_text(b"", 5), "");
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate_utf8("aé", 2), "a");
        assert_eq!(truncate_utf8("aé", 3), "aé");
        assert_eq!(truncate_utf8("abc", 0), "");
    }
}

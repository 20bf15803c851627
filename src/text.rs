//! Outside values in messages: quoted, with control and bidirectional
//! formatting characters escaped, and truncated, so that an error line
//! stays one short line of what was really given.

/// How many characters of a value a message shows.
pub const SHOWN_CHARS: usize = 80;

/// Bidirectional formatting characters: embeddings and overrides
/// (U+202A–U+202E), isolates (U+2066–U+2069), the implicit marks
/// (U+200E, U+200F) and the Arabic letter mark (U+061C). Shown in text
/// they reorder what surrounds them.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Whether `c` must never appear in subject data or raw in a message: a
/// control character (C0, DEL, C1) or a bidirectional formatting character.
pub fn is_forbidden(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// `value` for a message: in double quotes, control and bidirectional
/// formatting characters escaped as `\u{…}` (and `"`/`\` escaped), cut
/// after [`SHOWN_CHARS`] characters with `…` and the full length.
pub fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len().min(SHOWN_CHARS * 4) + 32);
    out.push('"');
    let mut shown = 0;
    let mut chars = value.chars();
    for c in chars.by_ref() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_forbidden(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
        shown += 1;
        if shown == SHOWN_CHARS {
            break;
        }
    }
    out.push('"');
    if chars.next().is_some() {
        out.insert(out.len() - 1, '…');
        out.push_str(&format!(" ({} characters)", value.chars().count()));
    }
    out
}

/// `value` for a message where quotes would mislead (a system's reason
/// that names a path): control and bidirectional formatting characters
/// escaped, cut after four times [`SHOWN_CHARS`] characters.
pub fn escaped(value: &str) -> String {
    escape_where(value, is_forbidden, Some(SHOWN_CHARS * 4))
}

/// A value shown on one line of a report (a name or extension read from a
/// certificate someone handed us): every control character, the newline
/// included, and every bidirectional formatting character escaped as
/// `\u{…}`; nothing cut, so the value can still be read in full.
pub fn one_line(value: &str) -> String {
    escape_where(value, is_forbidden, None)
}

/// A whole message made safe for a terminal: every control character but
/// the newline, and every bidirectional formatting character, escaped as
/// `\u{…}`; nothing cut. The last guard before an error reaches stderr,
/// for values no error type quoted.
pub fn terminal_safe(message: &str) -> String {
    escape_where(message, |c| c != '\n' && is_forbidden(c), None)
}

/// Names for a message: the `shown` ones, then "and N more" when there
/// are `total` in all.
pub fn some_of(shown: &[String], total: usize) -> String {
    let mut text = shown.join(", ");
    if total > shown.len() {
        text.push_str(&format!(" and {} more", total - shown.len()));
    }
    text
}

/// `value` with every character `escape` picks written as `\u{…}`, cut
/// after `limit` characters (with `…` and the full length).
fn escape_where(value: &str, escape: impl Fn(char) -> bool, limit: Option<usize>) -> String {
    let mut out = String::with_capacity(value.len());
    for (shown, c) in value.chars().enumerate() {
        if limit == Some(shown) {
            out.push_str(&format!("… ({} characters)", value.chars().count()));
            break;
        }
        if escape(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    /// A value from a foreign certificate cannot start a new report line,
    /// move the cursor or reverse the text on the operator's terminal.
    #[test]
    fn one_line_escapes_newlines_escapes_and_bidi_but_keeps_the_rest() {
        assert_eq!(super::one_line("ÖRNEK A.Ş."), "ÖRNEK A.Ş.");
        assert_eq!(
            super::one_line("a\nb\u{1b}[2Jc\u{202e}d"),
            "a\\u{a}b\\u{1b}[2Jc\\u{202e}d"
        );
    }

    use super::*;

    #[test]
    fn short_values_are_quoted_whole() {
        assert_eq!(quoted("ÖRNEK A.Ş."), "\"ÖRNEK A.Ş.\"");
        assert_eq!(quoted("a\"b\\"), "\"a\\\"b\\\\\"");
    }

    #[test]
    fn control_and_bidi_characters_are_escaped() {
        assert_eq!(quoted("a\u{1b}[2Jb\0"), "\"a\\u{1b}[2Jb\\u{0}\"");
        assert_eq!(quoted("x\u{202e}y"), "\"x\\u{202e}y\"");
        assert!(!quoted("\u{9b}\u{7f}").chars().any(is_forbidden));
    }

    #[test]
    fn terminal_safe_keeps_newlines_and_escapes_the_rest() {
        assert_eq!(terminal_safe("a\nb"), "a\nb");
        assert_eq!(
            terminal_safe("a\u{1b}[2J\tb\u{202e}"),
            "a\\u{1b}[2J\\u{9}b\\u{202e}"
        );
    }

    #[test]
    fn long_values_are_cut_with_their_length() {
        let long = "A".repeat(20 * 1024 * 1024);
        let shown = quoted(&long);
        assert!(shown.len() < 120, "{shown}");
        assert!(shown.ends_with("…\" (20971520 characters)"), "{shown}");
        assert_eq!(quoted(&"B".repeat(SHOWN_CHARS)).len(), SHOWN_CHARS + 2);
    }
}

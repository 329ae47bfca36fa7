//! Safe rendering of untrusted strings (kid, issuer, audience, claim names) inside log messages.
//!
//! Values are truncated and control characters escaped, so a crafted claim cannot forge log lines or flood them.

use std::fmt;

/// Longest part of an untrusted value shown in a message.
pub const SHOWN_MAX_CHARS: usize = 96;

/// Displays an untrusted string quoted, escaped and truncated.
pub struct Shown<'a>(pub &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("'")?;
        for (i, c) in self.0.chars().enumerate() {
            if i == SHOWN_MAX_CHARS {
                f.write_str("...")?;
                break;
            }
            if c == '\'' || c == '\\' || c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        f.write_str("'")
    }
}

/// Displays a list of untrusted strings, at most a few of them.
pub struct ShownList<'a>(pub &'a [String]);

impl fmt::Display for ShownList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX_ITEMS: usize = 8;
        f.write_str("[")?;
        for (i, s) in self.0.iter().enumerate() {
            if i == MAX_ITEMS {
                write!(f, ", ... {} more", self.0.len() - MAX_ITEMS)?;
                break;
            }
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", Shown(s))?;
        }
        f.write_str("]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_and_quotes() {
        assert_eq!(Shown("a\nb'c\\").to_string(), r"'a\nb\'c\\'");
        assert_eq!(Shown("\u{1b}[31m").to_string(), r"'\u{1b}[31m'");
    }

    #[test]
    fn truncates_long_values() {
        let long = "x".repeat(500);
        let s = Shown(&long).to_string();
        assert_eq!(s.len(), SHOWN_MAX_CHARS + 5);
        assert!(s.ends_with("...'"));
    }

    #[test]
    fn lists_are_bounded() {
        let many: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        let s = ShownList(&many).to_string();
        assert!(s.contains("12 more"), "{s}");
        assert_eq!(ShownList(&[]).to_string(), "[]");
    }
}

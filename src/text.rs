//! Untrusted text at the edge: questions, comments, steward descriptions, query-log lines.
//! Each is checked once, where it enters, so that nothing one person writes can break a later
//! request of someone else (a NUL byte that the model's tokenizer cannot take, a terminal
//! escape in the audit log): `check` refuses NUL and control characters (tab, line feed and
//! carriage return excepted) and text over a length, naming the field and the fix.
//! `for_prompt` drops the same characters from text stored before the check existed;
//! `capitalise` is the casing helper the writers of questions and readings share.

use std::borrow::Cow;

/// Whether `c` may appear in text a person wrote.
fn allowed(c: char) -> bool {
    !c.is_control() || matches!(c, '\n' | '\t' | '\r')
}

/// Checks one field: at most `max_chars` characters, no NUL or other control characters.
/// `Err` is a message for the person who sent it, naming the field, the problem and the fix.
pub fn check(field: &str, text: &str, max_chars: usize) -> Result<(), String> {
    if let Some((at, c)) = text.chars().enumerate().find(|(_, c)| !allowed(*c)) {
        let name = if c == '\0' {
            "a NUL byte".to_string()
        } else {
            format!("the control character U+{:04X}", c as u32)
        };
        return Err(format!(
            "{field} contains {name} at character {}; remove it (only tab and line breaks are allowed among control characters)",
            at + 1
        ));
    }
    let chars = text.chars().count();
    if chars > max_chars {
        return Err(format!("{field} has {chars} characters, more than the {max_chars} allowed; shorten it"));
    }
    Ok(())
}

/// `text` without the characters `check` refuses (for text stored before it was checked).
pub fn for_prompt(text: &str) -> Cow<'_, str> {
    if text.chars().all(allowed) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.chars().filter(|c| allowed(*c)).collect())
    }
}

/// `text` with its first letter in upper case.
pub fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_and_control_characters_are_refused_with_the_field_and_the_fix() {
        let nul = check("comment", "great\0answer", 100).err().unwrap_or_default();
        assert!(nul.contains("comment") && nul.contains("NUL") && nul.contains("character 6"), "{nul}");
        let escape = check("question", "revenue \u{1b}[2J", 100).err().unwrap_or_default();
        assert!(escape.contains("U+001B") && escape.contains("remove it"), "{escape}");
        assert!(check("question", "line one\nline two\ttabbed\r\n", 100).is_ok());
        assert!(check("question", "Umsatz je Land — März", 100).is_ok());
        let long = check("question", &"x".repeat(11), 10).err().unwrap_or_default();
        assert!(long.contains("11 characters") && long.contains("10 allowed"), "{long}");
        assert_eq!(for_prompt("a\0b\u{7}c\nd"), "abc\nd");
        assert!(matches!(for_prompt("plain"), Cow::Borrowed(_)));
    }
}

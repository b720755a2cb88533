//! Rules for text that other people see: names of workspaces, flows, connections,
//! channels, tokens and members.

use super::validation::parse_name;

/// Characters that change how the text around them is displayed without being seen:
/// bidi embeddings and overrides (U+202A–U+202E) and isolates (U+2066–U+2069). In a name
/// they make `Invoice\u{202E}fdp.exe` read as `Invoiceexe.pdf`.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Refuses control characters (NUL, newlines, …) and bidi controls in text shown to
/// others.
pub fn check_display_text(value: &str, what: &str) -> Result<(), String> {
    if value.chars().any(char::is_control) {
        return Err(format!("A {what} cannot contain control characters."));
    }
    if value.chars().any(is_bidi_control) {
        return Err(format!(
            "A {what} cannot contain characters that reverse or isolate text direction (U+202A–U+202E, U+2066–U+2069)."
        ));
    }
    Ok(())
}

/// A name shown to others: [`parse_name`]'s rules (trimmed, 1..=max characters, no
/// control characters), and no bidi controls.
pub fn parse_display_name(raw: &str, what: &str, max: usize) -> Result<String, String> {
    let value = parse_name(raw, what, max)?;
    check_display_text(&value, what)?;
    Ok(value)
}

/// The full stop that ends a sentence ending in `name`: none when the name already
/// ends in one (so "Acme Inc." never reads "Acme Inc..").
pub fn full_stop(name: &str) -> &'static str {
    if name.trim_end().ends_with(['.', '!', '?', '…']) {
        ""
    } else {
        "."
    }
}

/// `name` at the end of a sentence, with the sentence's full stop.
pub fn ending(name: &str) -> String {
    format!("{name}{}", full_stop(name))
}

/// A count written for people, its thousands separated by commas (`12,500`), so
/// 10000 and 100000 are told apart at a glance.
pub trait Grouped {
    /// The digits in groups of three.
    fn grouped(&self) -> String;
}

macro_rules! grouped_integers {
    ($($t:ty),*) => {$(
        impl Grouped for $t {
            fn grouped(&self) -> String {
                group_digits(&self.to_string())
            }
        }
    )*};
}
grouped_integers!(i32, i64, u32, u64, usize);

fn group_digits(plain: &str) -> String {
    let (sign, digits) = plain.split_at(usize::from(plain.starts_with('-')));
    let mut out = String::with_capacity(plain.len() + digits.len() / 3);
    out.push_str(sign);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(0i64.grouped(), "0");
        assert_eq!(999i64.grouped(), "999");
        assert_eq!(1000i64.grouped(), "1,000");
        assert_eq!(12_500u64.grouped(), "12,500");
        assert_eq!(1_234_567usize.grouped(), "1,234,567");
        assert_eq!((-100_000i64).grouped(), "-100,000");
    }

    #[test]
    fn names_cannot_hide_or_reorder_text() {
        assert_eq!(
            parse_display_name("  Acme Ltd ", "name", 80),
            Ok("Acme Ltd".into())
        );
        assert_eq!(
            parse_display_name("Café → Zürich", "name", 80),
            Ok("Café → Zürich".into())
        );
        for bad in [
            "Invoice\u{202E}fdp.exe",
            "a\u{202A}b",
            "a\u{202D}b",
            "a\u{2066}b",
            "a\u{2069}b",
            "a\u{0}b",
            "a\nb",
            "a\u{85}b",
        ] {
            assert!(parse_display_name(bad, "name", 80).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_name_ending_a_sentence_keeps_one_full_stop() {
        assert_eq!(ending("Acme Inc."), "Acme Inc.");
        assert_eq!(ending("Acme"), "Acme.");
        assert_eq!(ending("Yahoo!"), "Yahoo!");
    }
}

//! The first line of defence: an expression's length and nesting are checked on its text,
//! before any parser sees it. The template engine's parser recurses once per unary
//! operator and per bracket, so a long enough chain of either overflows a thread's stack
//! and aborts the process; a scan that never recurses refuses such text first.

use super::Limits;

/// Refuses text that is too long or nested too deeply, with a message for the form.
pub fn check(source: &str, limits: &Limits) -> Result<(), String> {
    let chars = source.chars().count();
    if chars > limits.max_length {
        return Err(format!(
            "The expression is {chars} characters long; the limit is {}.",
            limits.max_length
        ));
    }
    if let Some(c) = source
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(format!(
            "The expression contains the control character U+{:04X}.",
            c as u32
        ));
    }
    let deepest = nesting(source);
    if deepest > limits.max_nesting {
        return Err(format!(
            "The expression is nested {deepest} levels deep; the limit is {}.",
            limits.max_nesting
        ));
    }
    Ok(())
}

/// The deepest nesting in the text: open brackets, plus prefix operators (`-`, `+`,
/// `not`) still waiting for their operand, plus `if … else` arms.
fn nesting(source: &str) -> usize {
    let bytes = source.as_bytes();
    let mut depth = 0usize;
    let mut deepest = 0usize;
    // Prefix operators stacked at each bracket level; they end with their operand.
    let mut pending: Vec<usize> = vec![0];
    let mut ternaries = 0usize;
    // Whether the next token stands where an operand is expected (so `-` is unary).
    let mut expect_operand = true;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'\'' | b'"' => {
                i = skip_string(bytes, i);
                expect_operand = false;
                close_operand(&mut pending);
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                pending.push(0);
                expect_operand = true;
                i += 1;
            }
            b')' | b']' | b'}' => {
                depth = depth.saturating_sub(1);
                if pending.len() > 1 {
                    pending.pop();
                }
                close_operand(&mut pending);
                expect_operand = false;
                i += 1;
            }
            b'-' | b'+' if expect_operand => {
                if let Some(p) = pending.last_mut() {
                    *p += 1;
                }
                i += 1;
            }
            _ if b.is_ascii_alphabetic() || b == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                match &source[start..i] {
                    "not" => {
                        if let Some(p) = pending.last_mut() {
                            *p += 1;
                        }
                        expect_operand = true;
                    }
                    "if" => {
                        ternaries += 1;
                        expect_operand = true;
                    }
                    "and" | "or" | "else" | "in" | "is" => expect_operand = true,
                    _ => {
                        expect_operand = false;
                        close_operand(&mut pending);
                    }
                }
            }
            _ if b.is_ascii_digit() => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                    i += 1;
                }
                expect_operand = false;
                close_operand(&mut pending);
            }
            b'.' => {
                expect_operand = false;
                i += 1;
            }
            _ => {
                // Any other punctuation is a binary operator, a separator or a pipe.
                expect_operand = true;
                i += 1;
            }
        }
        let stacked: usize = pending.iter().sum();
        deepest = deepest.max(depth + stacked + ternaries);
    }
    deepest
}

fn close_operand(pending: &mut [usize]) {
    if let Some(p) = pending.last_mut() {
        *p = 0;
    }
}

/// The index just past the string literal starting at `start`.
fn skip_string(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deep(source: &str) -> usize {
        nesting(source)
    }

    #[test]
    fn ordinary_expressions_are_shallow() {
        assert_eq!(deep("record.email | lower"), 0);
        assert_eq!(deep("record.a ~ ' ' ~ record.b"), 0);
        assert_eq!(deep("(record.a - 1) * -2"), 1);
        assert_eq!(
            deep("'((((((' ~ record.x"),
            0,
            "brackets in strings do not count"
        );
        assert_eq!(deep("[1, 2, [3]]"), 2);
    }

    #[test]
    fn chains_of_prefix_operators_and_ternaries_count_as_nesting() {
        assert_eq!(deep(&format!("{}1", "-".repeat(40))), 40);
        assert_eq!(deep(&format!("{}x", "not ".repeat(10))), 10);
        assert_eq!(deep("- - -(- 1)"), 5);
        assert_eq!(deep("1 - 1 - 1 - 1"), 0, "binary minus is not nesting");
        assert_eq!(deep("a if b else c if d else e"), 2);
    }

    #[test]
    fn long_or_deep_text_is_refused_before_parsing() {
        let limits = Limits::default();
        assert!(check(&"-".repeat(20_000), &limits).is_err());
        assert!(check(&format!("{}1", "-".repeat(100)), &limits).is_err());
        assert!(check(&format!("{}1{}", "(".repeat(100), ")".repeat(100)), &limits).is_err());
        assert!(check("record.a\u{0}", &limits).is_err());
        assert!(check("record.a | trim", &limits).is_ok());
    }
}

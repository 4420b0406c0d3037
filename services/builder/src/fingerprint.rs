//! Query fingerprints for deduplication: two queries that differ only in literals, spacing,
//! letter case of keywords or comments are the same query.

use sha2::{Digest, Sha256};

/// The query with comments removed, whitespace collapsed, unquoted words lowercased, and every
/// string and number literal replaced by `?`.
pub(crate) fn masked(sql: &str) -> String {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    let mut pending_space = false;
    let push = |out: &mut String, text: &str, pending_space: &mut bool| {
        if *pending_space && !out.is_empty() {
            out.push(' ');
        }
        *pending_space = false;
        out.push_str(text);
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            pending_space = true;
            i += 1;
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            pending_space = true;
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
            pending_space = true;
        } else if c == '\'' {
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
            push(&mut out, "?", &mut pending_space);
        } else if c == '"' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += 1;
            }
            i += 1;
            let quoted: String = chars[start..i.min(chars.len())].iter().collect();
            push(&mut out, &quoted, &mut pending_space);
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '.'
                    || ((chars[i] == '+' || chars[i] == '-') && matches!(chars[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
            push(&mut out, "?", &mut pending_space);
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect::<String>().to_lowercase();
            push(&mut out, &word, &mut pending_space);
        } else {
            let mut symbol = [0u8; 4];
            push(&mut out, c.encode_utf8(&mut symbol), &mut pending_space);
            i += 1;
        }
    }
    let trimmed = out.trim_end_matches([';', ' ']);
    trimmed.to_string()
}

/// A short stable hash of [`masked`].
pub(crate) fn fingerprint(sql: &str) -> String {
    hex::encode(&Sha256::digest(masked(sql).as_bytes())[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_spacing_case_and_comments_are_masked() {
        let a = "SELECT name FROM airports WHERE country = 'Norway' AND altitude > 100;";
        let b = "select  name\nfrom AIRPORTS -- the big ones\n where country = 'It''s'  and altitude > 2.5e3";
        assert_eq!(masked(a), masked(b));
        assert_eq!(fingerprint(a), fingerprint(b));
        assert_eq!(
            masked(a),
            "select name from airports where country = ? and altitude > ?"
        );
    }

    #[test]
    fn different_structure_differs() {
        assert_ne!(
            fingerprint("SELECT name FROM airports ORDER BY name"),
            fingerprint("SELECT name FROM airports ORDER BY name DESC")
        );
        // Quoted identifiers keep their case: they are different columns.
        assert_ne!(
            masked(r#"SELECT "Name" FROM t"#),
            masked(r#"SELECT "name" FROM t"#)
        );
    }

    #[test]
    fn identifiers_with_digits_are_not_literals() {
        assert_eq!(masked("SELECT col1 FROM t2"), "select col1 from t2");
        assert_eq!(masked("SELECT /* x */ 1"), "select ?");
    }
}

//! The shape of a query: its text with the literals it compares against turned into parameters.
//!
//! Point queries repeat their shape, not their text (`… WHERE airport_id = 3682`, then `= 507`).
//! A shape seen a second time is prepared once (`… WHERE airport_id = $1`) and every text of
//! that shape, seen before or not, runs from it with its own values bound, skipping the parse
//! (DuckDB 2.0 binds and plans a prepared statement that reads a table again on every run, so a
//! text's own plan would skip no more; [`crate::repeats`]).
//!
//! Only a literal that is a comparison's right-hand operand becomes a parameter: an unsigned
//! integer or a plain `'…'` string right after `=`, `==`, `<>`, `!=`, `<`, `>`, `<=` or `>=`, with a
//! column, a quoted name or a closing bracket before the operator, and after it nothing that
//! could bind tighter than the comparison (the end, `)`, `,`, `;` or a clause keyword). Every
//! other literal stays in the template, so `ORDER BY 1`, `LIMIT 5`, `IN (1, 2)` and `x = -1` keep
//! their meaning exactly.
//!
//! Why a bound value answers as its literal would: DuckDB binds an integer literal as an
//! INTEGER (or BIGINT) constant and a string literal as a VARCHAR constant, and a value bound
//! through the C API is the same constant. When the parameter's type, inferred from the other
//! operand, is not the bound value's own type, or its filter was pushed into a table scan,
//! DuckDB re-binds the statement with the value in place as a constant, exactly as the literal
//! was. It runs the kept plan only when the inferred type is the value's own, where the
//! comparison is made in that type either way. Column names derived from the text would show
//! the parameter, so a template whose result names hold a `$` is never used; nor is one that
//! DuckDB will not prepare as a single query with exactly these parameters. A text that already
//! holds parameters, or a quoting form this reader does not know, has no shape.

/// A literal lifted out of a query's text, in parameter order (`$1` first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Literal {
    /// An unsigned integer literal that fits 64 bits.
    Integer(i64),
    /// A plain single-quoted string, unescaped (`''` read as `'`).
    Text(String),
}

/// A query's template and the literals taken out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shape {
    /// The text with each lifted literal replaced by `$1`, `$2`, ….
    pub template: String,
    pub literals: Vec<Literal>,
}

/// Keywords that end a comparison's right-hand operand (each binds looser than `=`).
const OPERAND_ENDS: [&str; 25] = [
    "AND",
    "OR",
    "THEN",
    "ELSE",
    "END",
    "WHEN",
    "ORDER",
    "GROUP",
    "LIMIT",
    "OFFSET",
    "HAVING",
    "WINDOW",
    "QUALIFY",
    "UNION",
    "EXCEPT",
    "INTERSECT",
    "AS",
    "FROM",
    "WHERE",
    "JOIN",
    "INNER",
    "LEFT",
    "RIGHT",
    "FULL",
    "CROSS",
];

const COMPARISONS: [&str; 8] = ["=", "==", "<>", "!=", "<", ">", "<=", ">="];

/// Characters DuckDB's grammar reads as operators.
const OPERATOR_CHARS: &str = "+-*/<>=~!@#%^&|`";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An unquoted identifier or keyword.
    Word,
    /// A `"…"` identifier.
    QuotedName,
    /// A plain `'…'` string.
    Text,
    /// Digits only.
    Integer,
    /// Any other number (`1.5`, `1e3`, `1_000`, `0x1F`).
    Number,
    Operator,
    /// One of `( ) [ ] { } , ; . :`.
    Punctuation,
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

/// The shape of `sql`, when it has at least one literal to lift (see the module docs).
pub(crate) fn shape_of(sql: &str) -> Option<Shape> {
    let tokens = tokens(sql)?;
    let mut template = String::with_capacity(sql.len());
    let mut literals = Vec::new();
    let mut copied = 0;
    for (i, token) in tokens.iter().enumerate() {
        if !matches!(token.kind, Kind::Integer | Kind::Text) || i < 2 {
            continue;
        }
        let (left, operator) = (&tokens[i - 2], &tokens[i - 1]);
        let text = |t: &Token| &sql[t.start..t.end];
        let compared = operator.kind == Kind::Operator && COMPARISONS.contains(&text(operator));
        let left_is_operand = match left.kind {
            Kind::Word | Kind::QuotedName => true,
            Kind::Punctuation => matches!(text(left), ")" | "]"),
            _ => false,
        };
        let operand_ends = match tokens.get(i + 1) {
            None => true,
            Some(next) => match next.kind {
                Kind::Punctuation => matches!(text(next), ")" | "," | ";"),
                Kind::Word => OPERAND_ENDS
                    .iter()
                    .any(|end| text(next).eq_ignore_ascii_case(end)),
                _ => false,
            },
        };
        if !(compared && left_is_operand && operand_ends) {
            continue;
        }
        let literal = match token.kind {
            Kind::Integer => match text(token).parse() {
                Ok(value) => Literal::Integer(value),
                Err(_) => continue,
            },
            _ => Literal::Text(text(token)[1..token.end - token.start - 1].replace("''", "'")),
        };
        literals.push(literal);
        template.push_str(&sql[copied..token.start]);
        template.push('$');
        template.push_str(&literals.len().to_string());
        // `'a'AND` is two tokens, `$1AND` would be one.
        if sql[token.end..].starts_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$') {
            template.push(' ');
        }
        copied = token.end;
    }
    if literals.is_empty() {
        return None;
    }
    template.push_str(&sql[copied..]);
    Some(Shape { template, literals })
}

/// The tokens of `sql` (comments and spaces left out), or `None` when it holds a parameter, a
/// prefixed or dollar-quoted string, a nested comment, or anything unterminated: such texts
/// keep their literals.
fn tokens(sql: &str) -> Option<Vec<Token>> {
    let bytes = sql.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let kind = match c {
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => {
                i += 1;
                continue;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n + 1);
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let close = sql[i + 2..].find("*/")? + i + 2;
                if sql[i + 2..close].contains("/*") {
                    return None;
                }
                i = close + 2;
                continue;
            }
            b'\'' => {
                i = after_quoted(bytes, i, b'\'')?;
                // A backslash may be an escape in some dialect modes: leave such strings be.
                if sql[start..i].contains('\\') {
                    return None;
                }
                Kind::Text
            }
            b'"' => {
                i = after_quoted(bytes, i, b'"')?;
                Kind::QuotedName
            }
            b'0'..=b'9' => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || b"_.".contains(&bytes[i]))
                {
                    i += 1;
                }
                if bytes[start..i].iter().all(u8::is_ascii_digit) {
                    Kind::Integer
                } else {
                    Kind::Number
                }
            }
            b'?' | b'$' => return None,
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric()
                        || b"_$".contains(&bytes[i])
                        || bytes[i] >= 0x80)
                {
                    i += 1;
                }
                // E'…', X'…', B'…' and the like: a string with a prefix this reader leaves be.
                if bytes.get(i) == Some(&b'\'') {
                    return None;
                }
                Kind::Word
            }
            c if OPERATOR_CHARS.as_bytes().contains(&c) => {
                while i < bytes.len() && OPERATOR_CHARS.as_bytes().contains(&bytes[i]) {
                    if sql[i..].starts_with("--") || sql[i..].starts_with("/*") {
                        break;
                    }
                    i += 1;
                }
                Kind::Operator
            }
            b'.' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i += 1;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                Kind::Number
            }
            b'(' | b')' | b'[' | b']' | b'{' | b'}' | b',' | b';' | b'.' | b':' => {
                i += 1;
                Kind::Punctuation
            }
            _ => return None,
        };
        tokens.push(Token {
            kind,
            start,
            end: i,
        });
    }
    Some(tokens)
}

/// The index just past the quoted run opening at `open` (a doubled quote stays inside it).
fn after_quoted(bytes: &[u8], open: usize, quote: u8) -> Option<usize> {
    let mut i = open + 1;
    loop {
        match bytes.get(i) {
            None => return None,
            Some(&c) if c == quote => {
                if bytes.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    return Some(i + 1);
                }
            }
            Some(_) => i += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(sql: &str) -> Option<String> {
        shape_of(sql).map(|shape| shape.template)
    }

    #[test]
    fn a_compared_integer_or_string_becomes_a_parameter() {
        let shape =
            shape_of("SELECT name FROM airports WHERE airport_id = 3682 AND iata <> 'A''B'")
                .unwrap();
        assert_eq!(
            shape.template,
            "SELECT name FROM airports WHERE airport_id = $1 AND iata <> $2"
        );
        assert_eq!(
            shape.literals,
            [Literal::Integer(3682), Literal::Text("A'B".into())]
        );
        assert_eq!(
            template("SELECT * FROM t AS a WHERE a.\"x y\">=7;").as_deref(),
            Some("SELECT * FROM t AS a WHERE a.\"x y\">=$1;")
        );
        assert_eq!(
            template("SELECT count(*) FROM t GROUP BY k HAVING count(*) > 2 ORDER BY 1").as_deref(),
            Some("SELECT count(*) FROM t GROUP BY k HAVING count(*) > $1 ORDER BY 1")
        );
    }

    #[test]
    fn a_parameter_never_runs_into_the_word_after_it() {
        assert_eq!(
            template("SELECT * FROM t WHERE x = 'a'AND y = 1").as_deref(),
            Some("SELECT * FROM t WHERE x = $1 AND y = $2")
        );
    }

    #[test]
    fn literals_outside_a_plain_comparison_stay_in_the_text() {
        for sql in [
            "SELECT 1",
            "SELECT * FROM t ORDER BY 1 LIMIT 5 OFFSET 2",
            "SELECT * FROM t WHERE x IN (1, 2) AND y BETWEEN 3 AND 4",
            "SELECT * FROM t WHERE x = -1",
            "SELECT * FROM t WHERE x = 1.5",
            "SELECT * FROM t WHERE x = 1e3",
            "SELECT * FROM t WHERE x = 1_000",
            "SELECT * FROM t WHERE x = 1 + y",
            "SELECT * FROM t WHERE x = 1::BIGINT",
            "SELECT * FROM t WHERE x = 'a' || y",
            "SELECT * FROM t WHERE x = 'a' COLLATE nocase",
            "SELECT * FROM t WHERE 1 = 1",
            "SELECT * FROM t WHERE x = 99999999999999999999",
            "SELECT * FROM t WHERE x LIKE 'a%'",
            "SELECT * FROM t WHERE d = DATE '2020-01-01'",
        ] {
            assert_eq!(template(sql), None, "{sql}");
        }
    }

    #[test]
    fn texts_with_parameters_or_unknown_quoting_have_no_shape() {
        for sql in [
            "SELECT * FROM t WHERE x = ? AND y = 1",
            "SELECT * FROM t WHERE x = $1 AND y = 1",
            "SELECT * FROM t WHERE x = E'a\\n' AND y = 1",
            "SELECT * FROM t WHERE x = 'a\\' AND y = 1",
            "SELECT * FROM t WHERE x = $$a$$ AND y = 1",
            "SELECT * FROM t WHERE x = 'unterminated AND y = 1",
            "SELECT * FROM t /* a /* nested */ comment */ WHERE y = 1",
        ] {
            assert_eq!(template(sql), None, "{sql}");
        }
    }

    #[test]
    fn comments_strings_and_quoted_names_hide_what_looks_like_a_comparison() {
        assert_eq!(
            template("SELECT 'x = 1' AS \"y = 2\" FROM t -- z = 3\nWHERE w = 4 /* v = 5 */")
                .as_deref(),
            Some("SELECT 'x = 1' AS \"y = 2\" FROM t -- z = 3\nWHERE w = $1 /* v = 5 */")
        );
    }
}

//! DuckDB type names, parsed: what a column's cells mean.
//!
//! Result sets carry DuckDB's own type names (`DECIMAL(3,2)`, `VARCHAR[]`,
//! `STRUCT(a INTEGER, "b c" VARCHAR)`, `MAP(VARCHAR, INTEGER)`); comparison and rendering need to
//! know what kind of value a cell holds, including inside nested types.

use std::fmt;

/// A DuckDB logical type, as far as comparing and printing values needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DuckType {
    /// `BOOLEAN`.
    Boolean,
    /// Signed or unsigned integers of any width, including HUGEINT.
    Integer(IntegerKind),
    /// `FLOAT` (32-bit).
    Float,
    /// `DOUBLE` (64-bit).
    Double,
    /// `DECIMAL(width, scale)`: exact, so compared as an exact number.
    Decimal {
        /// Total digits.
        width: u8,
        /// Digits after the point.
        scale: u8,
    },
    /// `VARCHAR`.
    Varchar,
    /// `BLOB` (also `BYTEA`, `BINARY`, `VARBINARY`).
    Blob,
    /// `DATE`.
    Date,
    /// `TIME`.
    Time,
    /// `TIME WITH TIME ZONE`.
    TimeTz,
    /// `TIMESTAMP`, `TIMESTAMP_S`, `_MS` or `_NS`, by unit.
    Timestamp(TimestampUnit),
    /// `TIMESTAMP WITH TIME ZONE`.
    TimestampTz,
    /// `INTERVAL`.
    Interval,
    /// `UUID`.
    Uuid,
    /// `T[]` (LIST) or `T[n]` (ARRAY).
    List(Box<DuckType>),
    /// `STRUCT(name type, …)`: named fields in declared order.
    Struct(Vec<(String, DuckType)>),
    /// `MAP(key, value)`.
    Map(Box<DuckType>, Box<DuckType>),
    /// Any other type (ENUM, UNION, BIT, JSON, …): compared and printed as text.
    Other(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// Which integer type, for its range and signedness.
pub enum IntegerKind {
    /// `TINYINT` (i8).
    TinyInt,
    /// `SMALLINT` (i16).
    SmallInt,
    /// `INTEGER` (i32).
    Int,
    /// `BIGINT` (i64).
    BigInt,
    /// `HUGEINT` (i128).
    HugeInt,
    /// `UTINYINT` (u8).
    UTinyInt,
    /// `USMALLINT` (u16).
    USmallInt,
    /// `UINTEGER` (u32).
    UInt,
    /// `UBIGINT` (u64).
    UBigInt,
    /// `UHUGEINT` (u128).
    UHugeInt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// The precision of a `TIMESTAMP` variant.
pub enum TimestampUnit {
    /// `TIMESTAMP_S`.
    Seconds,
    /// `TIMESTAMP_MS`.
    Millis,
    /// `TIMESTAMP` (DuckDB's default).
    Micros,
    /// `TIMESTAMP_NS`.
    Nanos,
}

impl DuckType {
    /// Parses a DuckDB type name. Never fails: what it does not know becomes [`DuckType::Other`].
    pub fn parse(name: &str) -> DuckType {
        let name = name.trim();
        if let Some(inner) = strip_array_suffix(name) {
            return DuckType::List(Box::new(DuckType::parse(inner)));
        }
        let upper = name.to_ascii_uppercase();
        if let Some(args) = call_args(&upper, "DECIMAL").or_else(|| call_args(&upper, "NUMERIC")) {
            let mut parts = args.split(',').map(|p| p.trim().parse::<u8>().ok());
            if let (Some(Some(width)), Some(Some(scale))) = (parts.next(), parts.next()) {
                return DuckType::Decimal { width, scale };
            }
        }
        if let Some(args) = call_args(name, "STRUCT").or_else(|| call_args(name, "struct")) {
            return DuckType::Struct(
                split_top_level(args)
                    .into_iter()
                    .map(|field| {
                        let (field_name, field_type) = split_field(field);
                        (field_name, DuckType::parse(field_type))
                    })
                    .collect(),
            );
        }
        if let Some(args) = call_args(name, "MAP").or_else(|| call_args(name, "map")) {
            let parts = split_top_level(args);
            if parts.len() == 2 {
                return DuckType::Map(
                    Box::new(DuckType::parse(parts[0])),
                    Box::new(DuckType::parse(parts[1])),
                );
            }
        }
        match upper.as_str() {
            "BOOLEAN" | "BOOL" | "LOGICAL" => DuckType::Boolean,
            "TINYINT" | "INT1" => DuckType::Integer(IntegerKind::TinyInt),
            "SMALLINT" | "INT2" | "SHORT" => DuckType::Integer(IntegerKind::SmallInt),
            "INTEGER" | "INT" | "INT4" | "SIGNED" => DuckType::Integer(IntegerKind::Int),
            "BIGINT" | "INT8" | "LONG" => DuckType::Integer(IntegerKind::BigInt),
            "HUGEINT" | "INT128" => DuckType::Integer(IntegerKind::HugeInt),
            "UTINYINT" => DuckType::Integer(IntegerKind::UTinyInt),
            "USMALLINT" => DuckType::Integer(IntegerKind::USmallInt),
            "UINTEGER" => DuckType::Integer(IntegerKind::UInt),
            "UBIGINT" => DuckType::Integer(IntegerKind::UBigInt),
            "UHUGEINT" => DuckType::Integer(IntegerKind::UHugeInt),
            "FLOAT" | "FLOAT4" | "REAL" => DuckType::Float,
            "DOUBLE" | "FLOAT8" => DuckType::Double,
            "DECIMAL" | "NUMERIC" => DuckType::Decimal {
                width: 18,
                scale: 3,
            },
            "VARCHAR" | "TEXT" | "STRING" | "CHAR" | "BPCHAR" => DuckType::Varchar,
            "BLOB" | "BYTEA" | "BINARY" | "VARBINARY" => DuckType::Blob,
            "DATE" => DuckType::Date,
            "TIME" => DuckType::Time,
            "TIME WITH TIME ZONE" | "TIMETZ" => DuckType::TimeTz,
            "TIMESTAMP" | "DATETIME" => DuckType::Timestamp(TimestampUnit::Micros),
            "TIMESTAMP_S" => DuckType::Timestamp(TimestampUnit::Seconds),
            "TIMESTAMP_MS" => DuckType::Timestamp(TimestampUnit::Millis),
            "TIMESTAMP_NS" => DuckType::Timestamp(TimestampUnit::Nanos),
            "TIMESTAMP WITH TIME ZONE" | "TIMESTAMPTZ" => DuckType::TimestampTz,
            "INTERVAL" => DuckType::Interval,
            "UUID" => DuckType::Uuid,
            _ => DuckType::Other(name.to_string()),
        }
    }

    /// True for types whose values compare as numbers (integers, decimals, floats).
    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            DuckType::Integer(_) | DuckType::Float | DuckType::Double | DuckType::Decimal { .. }
        )
    }
}

impl fmt::Display for DuckType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DuckType::Boolean => f.write_str("BOOLEAN"),
            DuckType::Integer(kind) => f.write_str(match kind {
                IntegerKind::TinyInt => "TINYINT",
                IntegerKind::SmallInt => "SMALLINT",
                IntegerKind::Int => "INTEGER",
                IntegerKind::BigInt => "BIGINT",
                IntegerKind::HugeInt => "HUGEINT",
                IntegerKind::UTinyInt => "UTINYINT",
                IntegerKind::USmallInt => "USMALLINT",
                IntegerKind::UInt => "UINTEGER",
                IntegerKind::UBigInt => "UBIGINT",
                IntegerKind::UHugeInt => "UHUGEINT",
            }),
            DuckType::Float => f.write_str("FLOAT"),
            DuckType::Double => f.write_str("DOUBLE"),
            DuckType::Decimal { width, scale } => write!(f, "DECIMAL({width},{scale})"),
            DuckType::Varchar => f.write_str("VARCHAR"),
            DuckType::Blob => f.write_str("BLOB"),
            DuckType::Date => f.write_str("DATE"),
            DuckType::Time => f.write_str("TIME"),
            DuckType::TimeTz => f.write_str("TIME WITH TIME ZONE"),
            DuckType::Timestamp(unit) => f.write_str(match unit {
                TimestampUnit::Seconds => "TIMESTAMP_S",
                TimestampUnit::Millis => "TIMESTAMP_MS",
                TimestampUnit::Micros => "TIMESTAMP",
                TimestampUnit::Nanos => "TIMESTAMP_NS",
            }),
            DuckType::TimestampTz => f.write_str("TIMESTAMP WITH TIME ZONE"),
            DuckType::Interval => f.write_str("INTERVAL"),
            DuckType::Uuid => f.write_str("UUID"),
            DuckType::List(inner) => write!(f, "{inner}[]"),
            DuckType::Struct(fields) => {
                f.write_str("STRUCT(")?;
                for (i, (name, ty)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{name} {ty}")?;
                }
                f.write_str(")")
            }
            DuckType::Map(key, value) => write!(f, "MAP({key}, {value})"),
            DuckType::Other(name) => f.write_str(name),
        }
    }
}

/// `INTEGER[]` → `INTEGER`, `INTEGER[3]` → `INTEGER`.
fn strip_array_suffix(name: &str) -> Option<&str> {
    let body = name.strip_suffix(']')?;
    let open = body.rfind('[')?;
    let size = &body[open + 1..];
    if !size.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    // The bracket must belong to the outermost type, not to a nested one inside parentheses.
    let prefix = &body[..open];
    (depth_after(prefix) == 0).then_some(prefix)
}

fn depth_after(text: &str) -> i32 {
    text.chars().fold(0, |depth, c| match c {
        '(' => depth + 1,
        ')' => depth - 1,
        _ => depth,
    })
}

/// `DECIMAL(3,2)` with head `DECIMAL` → `3,2`.
fn call_args<'a>(name: &'a str, head: &str) -> Option<&'a str> {
    let rest = name.strip_prefix(head)?.trim_start();
    let inner = rest.strip_prefix('(')?.strip_suffix(')')?;
    (depth_after(inner) == 0).then_some(inner)
}

/// Splits on commas that are not inside parentheses or double quotes.
fn split_top_level(args: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut start) = (0, false, 0);
    for (i, c) in args.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                parts.push(args[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(args[start..].trim());
    parts
}

/// `"b c" VARCHAR` → (`b c`, `VARCHAR`); `a INTEGER` → (`a`, `INTEGER`).
fn split_field(field: &str) -> (String, &str) {
    if let Some(rest) = field.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = rest.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if matches!(chars.peek(), Some((_, '"'))) {
                    name.push('"');
                    chars.next();
                } else {
                    return (name, rest[i + 1..].trim());
                }
            } else {
                name.push(c);
            }
        }
        return (name, "");
    }
    match field.split_once(char::is_whitespace) {
        Some((name, ty)) => (name.to_string(), ty.trim()),
        None => (field.to_string(), ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_scalars_and_aliases() {
        assert_eq!(
            DuckType::parse("INTEGER"),
            DuckType::Integer(IntegerKind::Int)
        );
        assert_eq!(
            DuckType::parse("int8"),
            DuckType::Integer(IntegerKind::BigInt)
        );
        assert_eq!(
            DuckType::parse("DECIMAL(3,2)"),
            DuckType::Decimal { width: 3, scale: 2 }
        );
        assert_eq!(
            DuckType::parse("TIMESTAMP WITH TIME ZONE"),
            DuckType::TimestampTz
        );
        assert!(matches!(
            DuckType::parse("ENUM('a', 'b')"),
            DuckType::Other(_)
        ));
    }

    #[test]
    fn parses_nested_types() {
        assert_eq!(
            DuckType::parse("VARCHAR[]"),
            DuckType::List(Box::new(DuckType::Varchar))
        );
        assert_eq!(
            DuckType::parse("INTEGER[3][]"),
            DuckType::List(Box::new(DuckType::List(Box::new(DuckType::Integer(
                IntegerKind::Int
            )))))
        );
        assert_eq!(
            DuckType::parse("MAP(VARCHAR, INTEGER)"),
            DuckType::Map(
                Box::new(DuckType::Varchar),
                Box::new(DuckType::Integer(IntegerKind::Int))
            )
        );
        assert_eq!(
            DuckType::parse(r#"STRUCT(a INTEGER, "b, c" DECIMAL(3,2)[])"#),
            DuckType::Struct(vec![
                ("a".into(), DuckType::Integer(IntegerKind::Int)),
                (
                    "b, c".into(),
                    DuckType::List(Box::new(DuckType::Decimal { width: 3, scale: 2 }))
                ),
            ])
        );
        assert_eq!(
            DuckType::parse("STRUCT(x INTEGER[])[]"),
            DuckType::List(Box::new(DuckType::Struct(vec![(
                "x".into(),
                DuckType::List(Box::new(DuckType::Integer(IntegerKind::Int)))
            )])))
        );
    }

    #[test]
    fn display_round_trips_through_parse() {
        for name in [
            "BOOLEAN",
            "HUGEINT",
            "DECIMAL(18,3)",
            "VARCHAR[]",
            "MAP(VARCHAR, INTEGER)",
            "STRUCT(a INTEGER, b VARCHAR[])",
            "TIMESTAMP_NS",
        ] {
            let parsed = DuckType::parse(name);
            assert_eq!(DuckType::parse(&parsed.to_string()), parsed, "{name}");
        }
    }

    #[test]
    fn numeric_types_are_numeric() {
        assert!(DuckType::parse("HUGEINT").is_numeric());
        assert!(DuckType::parse("DECIMAL(10,0)").is_numeric());
        assert!(DuckType::parse("FLOAT").is_numeric());
        assert!(!DuckType::parse("VARCHAR").is_numeric());
        assert!(!DuckType::parse("INTEGER[]").is_numeric());
    }
}

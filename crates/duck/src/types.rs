//! DuckDB logical types as the cells and type names need them, whichever handle describes them:
//! duckdb-rs's [`LogicalTypeHandle`] or a raw C-API type from the pool's direct path.

use duckdb::core::{LogicalTypeHandle, LogicalTypeId};

/// What the result encoding reads from a logical type.
pub(crate) trait TypeView: Sized {
    fn id(&self) -> LogicalTypeId;
    /// A user-visible alias (`JSON`), when the type has one.
    fn alias(&self) -> Option<String>;
    fn decimal_width(&self) -> u8;
    fn decimal_scale(&self) -> u8;
    /// Children: a list's or array's element (0), a map's key (0) and value (1), a struct's
    /// fields or a union's members.
    fn num_children(&self) -> usize;
    fn child(&self, i: usize) -> Self;
    fn child_name(&self, i: usize) -> String;
}

impl TypeView for LogicalTypeHandle {
    fn id(&self) -> LogicalTypeId {
        LogicalTypeHandle::id(self)
    }
    fn alias(&self) -> Option<String> {
        self.get_alias()
    }
    fn decimal_width(&self) -> u8 {
        LogicalTypeHandle::decimal_width(self)
    }
    fn decimal_scale(&self) -> u8 {
        LogicalTypeHandle::decimal_scale(self)
    }
    fn num_children(&self) -> usize {
        LogicalTypeHandle::num_children(self)
    }
    fn child(&self, i: usize) -> Self {
        LogicalTypeHandle::child(self, i)
    }
    fn child_name(&self, i: usize) -> String {
        LogicalTypeHandle::child_name(self, i)
    }
}

/// DuckDB's name for a logical type, as `DESCRIBE` prints it (`DECIMAL(3,2)`, `VARCHAR[]`, …).
pub(crate) fn type_name<T: TypeView>(ty: &T) -> String {
    if let Some(alias) = ty.alias() {
        return alias;
    }
    match ty.id() {
        LogicalTypeId::Boolean => "BOOLEAN".into(),
        LogicalTypeId::Tinyint => "TINYINT".into(),
        LogicalTypeId::Smallint => "SMALLINT".into(),
        LogicalTypeId::Integer => "INTEGER".into(),
        LogicalTypeId::Bigint => "BIGINT".into(),
        LogicalTypeId::UTinyint => "UTINYINT".into(),
        LogicalTypeId::USmallint => "USMALLINT".into(),
        LogicalTypeId::UInteger => "UINTEGER".into(),
        LogicalTypeId::UBigint => "UBIGINT".into(),
        LogicalTypeId::Hugeint => "HUGEINT".into(),
        LogicalTypeId::UHugeint => "UHUGEINT".into(),
        LogicalTypeId::Float => "FLOAT".into(),
        LogicalTypeId::Double => "DOUBLE".into(),
        LogicalTypeId::Decimal => format!("DECIMAL({},{})", ty.decimal_width(), ty.decimal_scale()),
        LogicalTypeId::Varchar => "VARCHAR".into(),
        LogicalTypeId::Blob => "BLOB".into(),
        LogicalTypeId::Date => "DATE".into(),
        LogicalTypeId::Time => "TIME".into(),
        LogicalTypeId::TimeNs => "TIME_NS".into(),
        LogicalTypeId::TimeTZ => "TIME WITH TIME ZONE".into(),
        LogicalTypeId::Timestamp => "TIMESTAMP".into(),
        LogicalTypeId::TimestampS => "TIMESTAMP_S".into(),
        LogicalTypeId::TimestampMs => "TIMESTAMP_MS".into(),
        LogicalTypeId::TimestampNs => "TIMESTAMP_NS".into(),
        LogicalTypeId::TimestampTZ => "TIMESTAMP WITH TIME ZONE".into(),
        LogicalTypeId::Interval => "INTERVAL".into(),
        LogicalTypeId::Uuid => "UUID".into(),
        LogicalTypeId::Enum => "ENUM".into(),
        LogicalTypeId::Bit => "BIT".into(),
        LogicalTypeId::Bignum => "BIGNUM".into(),
        // DuckDB clients see a bare NULL literal as INTEGER (as mcp-server-motherduck prints it).
        LogicalTypeId::SqlNull => "INTEGER".into(),
        LogicalTypeId::List => format!("{}[]", type_name(&ty.child(0))),
        LogicalTypeId::Array => format!("{}[]", type_name(&ty.child(0))),
        LogicalTypeId::Map => format!(
            "MAP({}, {})",
            type_name(&ty.child(0)),
            type_name(&ty.child(1))
        ),
        LogicalTypeId::Struct | LogicalTypeId::Union => {
            let head = if ty.id() == LogicalTypeId::Struct {
                "STRUCT"
            } else {
                "UNION"
            };
            let fields: Vec<String> = (0..ty.num_children())
                .map(|i| {
                    format!(
                        "{} {}",
                        quote_field(&ty.child_name(i)),
                        type_name(&ty.child(i))
                    )
                })
                .collect();
            format!("{head}({})", fields.join(", "))
        }
        other => format!("{other:?}").to_uppercase(),
    }
}

/// DuckDB quotes struct field names that are not plain lower-case identifiers.
fn quote_field(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

//! The pool's direct path through DuckDB's C API: one parse, one bind and one execution per
//! query, as DuckDB's own clients run a query, with results read straight from DuckDB's vectors.
//!
//! The checked path ([`crate::gate::parse_select`] then duckdb-rs) parses a query three times,
//! runs `json_serialize_sql` as a query of its own and converts every result through Arrow; and
//! preparing a statement through the C API costs DuckDB 2.0 a second statement lifecycle
//! (`PREPARE`, then `EXECUTE`). So this path takes only text that is, by DuckDB's grammar, one
//! query: no `;` but a trailing one (statements are split at `;` tokens only), and a first word
//! (after spaces and opening parentheses) of SELECT, FROM or WITH, which start nothing but
//! queries, or, for WITH, writes that the read-only database refuses. The result's statement
//! type, from DuckDB, must then be SELECT. Everything else goes to the checked path, which
//! refuses it with its usual message; a query that fails here is classified by the gate too, so
//! answers and errors read as they always did.
//!
//! Text naming PRAGMA, IMPORT, COPY or ALTER anywhere also goes to the checked path: those are
//! the statements DuckDB rewrites into others before running them, and none may ever run.
//!
//! A text the connection has run before is the exception to running plain: from its second
//! sight it runs from a prepared plan ([`crate::repeats`]), whose statement type was SELECT; so
//! does a text whose shape (its text with compared literals as parameters, [`crate::shapes`])
//! the connection has seen before. A shaped run that fails for any reason but an interrupt is
//! run again plain, so its error reads as the text's own.

use std::ffi::{CStr, CString, c_char, c_void};
use std::path::Path;
use std::ptr;
use std::sync::{Arc, Mutex, PoisonError};

use duckdb::core::LogicalTypeId;
use duckdb::ffi;
use duckdb::types::{OrderedMap, TimeUnit, Value};
use sqlrft_core::ResultSet;

use crate::cells::{RowCollector, to_cell};
use crate::repeats::{Plan, Repeats};
use crate::types::{TypeView, type_name};
use crate::{Limits, QueryError};

/// Keywords of the statements DuckDB rewrites while preparing (see the module docs).
const REWRITTEN_WHEN_PREPARED: [&str; 4] = ["PRAGMA", "IMPORT", "COPY", "ALTER"];

/// A database opened through the C API, so that both duckdb-rs connections and this module's
/// raw connections can share it.
pub(crate) struct RawDatabase {
    ptr: ffi::duckdb_database,
}

// SAFETY: a duckdb_database is a handle to a thread-safe DatabaseInstance.
unsafe impl Send for RawDatabase {}
unsafe impl Sync for RawDatabase {}

impl RawDatabase {
    /// Opens `path` with `settings` (name, value) applied before the database starts.
    pub(crate) fn open(path: &Path, settings: &[(&str, &str)]) -> Result<Self, String> {
        let c_path = CString::new(path.to_string_lossy().as_bytes())
            .map_err(|_| "the path contains a NUL byte".to_string())?;
        // SAFETY: every pointer passed is valid for the call; config is destroyed on all paths.
        unsafe {
            let mut config: ffi::duckdb_config = ptr::null_mut();
            if ffi::duckdb_create_config(&mut config) != ffi::DuckDBSuccess {
                return Err("DuckDB could not create a configuration".into());
            }
            for (name, value) in settings {
                let (name, value) = (c_string(name), c_string(value));
                if ffi::duckdb_set_config(config, name.as_ptr(), value.as_ptr())
                    != ffi::DuckDBSuccess
                {
                    ffi::duckdb_destroy_config(&mut config);
                    return Err(format!("DuckDB rejected the setting {name:?} = {value:?}"));
                }
            }
            let mut db: ffi::duckdb_database = ptr::null_mut();
            let mut error: *mut c_char = ptr::null_mut();
            let state = ffi::duckdb_open_ext(c_path.as_ptr(), &mut db, config, &mut error);
            ffi::duckdb_destroy_config(&mut config);
            if state != ffi::DuckDBSuccess {
                let message = owned_text(error).unwrap_or_else(|| "unknown error".into());
                return Err(message);
            }
            Ok(RawDatabase { ptr: db })
        }
    }

    /// A duckdb-rs connection to this database (for the catalog calls and the checked path).
    ///
    /// The connection must be dropped before this database; [`DirectConnection`] keeps the
    /// database alive, so pair each one with it.
    pub(crate) fn rust_connection(&self) -> Result<duckdb::Connection, String> {
        // SAFETY: self.ptr is an open database; duckdb-rs does not close it (not its owner).
        unsafe { duckdb::Connection::open_from_raw(self.ptr) }
            .map_err(|e| crate::error::duckdb_message(&e))
    }
}

impl Drop for RawDatabase {
    fn drop(&mut self) {
        // SAFETY: opened by duckdb_open_ext and closed once, here.
        unsafe { ffi::duckdb_close(&mut self.ptr) }
    }
}

/// One C-API connection, used by one query at a time; any thread may interrupt it.
pub(crate) struct DirectConnection {
    ptr: ffi::duckdb_connection,
    /// Only the thread running this connection's queries locks it.
    repeats: Mutex<Repeats>,
    _database: Arc<RawDatabase>,
}

// SAFETY: the pool hands a connection to one worker at a time; the only call made from other
// threads is duckdb_interrupt, which DuckDB provides for exactly that.
unsafe impl Send for DirectConnection {}
unsafe impl Sync for DirectConnection {}

/// What the direct path did with a query.
pub(crate) enum Direct {
    /// It ran: this is the answer (or the result outgrew the limits).
    Answered(Result<ResultSet, QueryError>),
    /// DuckDB refused or failed it with this message. Whether it was a query at all is the
    /// gate's to say (a WITH … INSERT fails on the read-only database, and must read as refused).
    Failed(String),
    /// Not for this path (not plainly one query, or a column type this reader does not
    /// decode): ask the checked path, which decides and words the answer.
    NotHere,
}

impl DirectConnection {
    pub(crate) fn connect(database: &Arc<RawDatabase>) -> Result<Self, String> {
        let mut ptr: ffi::duckdb_connection = ptr::null_mut();
        // SAFETY: the database is open while `database` lives, and this connection holds it.
        if unsafe { ffi::duckdb_connect(database.ptr, &mut ptr) } != ffi::DuckDBSuccess {
            return Err("DuckDB could not open a connection".into());
        }
        Ok(DirectConnection {
            ptr,
            repeats: Mutex::new(Repeats::new()),
            _database: database.clone(),
        })
    }

    /// Cancels the query running on this connection, if any.
    pub(crate) fn interrupt(&self) {
        // SAFETY: the connection is open while self lives; interrupting is thread-safe.
        unsafe { ffi::duckdb_interrupt(self.ptr) }
    }

    /// Runs `sql` when it is plainly one query (see the module docs).
    pub(crate) fn select(&self, sql: &str, limits: &Limits) -> Direct {
        if mentions_rewritten_statement(sql) || !reads_as_one_query(sql) {
            return Direct::NotHere;
        }
        let Ok(text) = CString::new(sql) else {
            return Direct::NotHere;
        };
        let mut result = Executed::new();
        // Its prepared statement's type was SELECT; a prepared run's type reads EXECUTE.
        let executed = ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_EXECUTE;
        let mut repeats = self.repeats.lock().unwrap_or_else(PoisonError::into_inner);
        let (state, statement_type) = match repeats.plan(self.ptr, sql, &text) {
            Plan::Prepared(statement) => (statement.execute(&mut result.0), executed),
            Plan::Shaped(statement, literals) if statement.bind(&literals) => {
                match statement.execute(&mut result.0) {
                    ffi::DuckDBSuccess => (ffi::DuckDBSuccess, executed),
                    // A timeout stays a timeout; any other failure is reported as the text
                    // itself fails, in its own words (a message may quote the text).
                    failed if result.interrupted() => (failed, executed),
                    _ => {
                        result = Executed::new();
                        self.plain(&text, &mut result)
                    }
                }
            }
            Plan::Shaped(..) | Plan::Plain => self.plain(&text, &mut result),
        };
        drop(repeats);
        if state != ffi::DuckDBSuccess {
            // SAFETY: a failed query carries its error in the result.
            let message = unsafe { borrowed_text(ffi::duckdb_result_error(&mut result.0)) };
            return Direct::Failed(message.unwrap_or_else(|| "query failed".into()));
        }
        // SAFETY: a successful result.
        if unsafe { ffi::duckdb_result_statement_type(result.0) } != statement_type {
            return Direct::NotHere;
        }
        match result.read(limits) {
            Some(answer) => Direct::Answered(answer),
            None => Direct::NotHere,
        }
    }

    /// Runs `text` as a plain query into `result` (which must be empty); its state and the
    /// statement type a query's result reads.
    fn plain(
        &self,
        text: &CStr,
        result: &mut Executed,
    ) -> (ffi::duckdb_state, ffi::duckdb_statement_type) {
        (
            // SAFETY: an open connection and NUL-terminated text; `result` is destroyed by
            // Executed.
            unsafe { ffi::duckdb_query(self.ptr, text.as_ptr(), &mut result.0) },
            ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_SELECT,
        )
    }
}

impl Drop for DirectConnection {
    fn drop(&mut self) {
        self.repeats
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        // SAFETY: connected in `connect` and disconnected once, here.
        unsafe { ffi::duckdb_disconnect(&mut self.ptr) }
    }
}

/// True when `sql` holds, as a word in any case, a keyword of a statement DuckDB rewrites
/// while preparing. Literals and identifiers count too: a false alarm only costs speed.
fn mentions_rewritten_statement(sql: &str) -> bool {
    sql.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|word| {
            REWRITTEN_WHEN_PREPARED
                .iter()
                .any(|keyword| word.eq_ignore_ascii_case(keyword))
        })
}

/// Words a statement that is, in DuckDB's grammar, a query (WITH also prefixes writes, which
/// the read-only database refuses).
const QUERY_FIRST_WORDS: [&str; 3] = ["SELECT", "FROM", "WITH"];

/// True when `sql` is one statement (no `;` but a trailing one) whose first word, after spaces
/// and opening parentheses, is one of [`QUERY_FIRST_WORDS`]. Comments before it, or anything
/// unusual, make it false: the checked path takes those.
fn reads_as_one_query(sql: &str) -> bool {
    let body = sql.trim_end();
    let body = body.strip_suffix(';').unwrap_or(body);
    if body.contains(';') {
        return false;
    }
    let start = body.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
    let word: String = start
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    let after = start[word.len()..].chars().next();
    let word_ends = after.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
    word_ends
        && QUERY_FIRST_WORDS
            .iter()
            .any(|first| word.eq_ignore_ascii_case(first))
}

/// A materialised result, destroyed on drop.
struct Executed(ffi::duckdb_result);

impl Executed {
    fn new() -> Self {
        // SAFETY: duckdb_result is a plain C struct; all-zero is its documented empty state.
        Executed(unsafe { std::mem::zeroed() })
    }

    /// True when the query failed because it was interrupted.
    fn interrupted(&mut self) -> bool {
        // SAFETY: a result DuckDB filled in (a failed one carries its error type).
        let kind = unsafe { ffi::duckdb_result_error_type(&mut self.0) };
        kind == ffi::duckdb_error_type_DUCKDB_ERROR_INTERRUPT
    }

    /// The result set within `limits`; `None` when a column has a type this reader leaves to
    /// duckdb-rs.
    fn read(&mut self, limits: &Limits) -> Option<Result<ResultSet, QueryError>> {
        // SAFETY: a successfully executed result; column indexes are below its column count.
        let count = unsafe { ffi::duckdb_column_count(&mut self.0) } as usize;
        let mut columns = Vec::with_capacity(count);
        let mut types = Vec::with_capacity(count);
        for i in 0..count {
            // SAFETY: as above; the logical type is owned by RawType.
            let ty = unsafe { RawType(ffi::duckdb_column_logical_type(&mut self.0, i as u64)) };
            if !decodable(&ty) {
                return None;
            }
            columns.push(
                unsafe { borrowed_text(ffi::duckdb_column_name(&mut self.0, i as u64)) }
                    .unwrap_or_default(),
            );
            types.push(ty);
        }
        let names = types.iter().map(type_name).collect();
        let mut collected = RowCollector::new(limits);
        loop {
            // SAFETY: fetching from a materialised result; each chunk is destroyed by Chunk.
            let chunk = Chunk(unsafe { ffi::duckdb_fetch_chunk(self.0) });
            if chunk.0.is_null() {
                break;
            }
            let rows = unsafe { ffi::duckdb_data_chunk_get_size(chunk.0) } as usize;
            let vectors: Vec<ffi::duckdb_vector> = (0..count)
                .map(|i| unsafe { ffi::duckdb_data_chunk_get_vector(chunk.0, i as u64) })
                .collect();
            for row in 0..rows {
                if !collected.wants_row() {
                    continue;
                }
                let cells = vectors
                    .iter()
                    .zip(&types)
                    .map(|(&vector, ty)| to_cell(unsafe { value_at(vector, ty, row) }, ty))
                    .collect();
                if let Err(too_large) = collected.push(cells) {
                    return Some(Err(too_large));
                }
            }
        }
        Some(Ok(collected.finish(columns, names)))
    }
}

impl Drop for Executed {
    fn drop(&mut self) {
        // SAFETY: zeroed or filled by DuckDB; destroying either is allowed.
        unsafe { ffi::duckdb_destroy_result(&mut self.0) }
    }
}

struct Chunk(ffi::duckdb_data_chunk);

impl Drop for Chunk {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: a chunk from duckdb_fetch_chunk, destroyed once.
            unsafe { ffi::duckdb_destroy_data_chunk(&mut self.0) }
        }
    }
}

/// An owned C-API logical type.
struct RawType(ffi::duckdb_logical_type);

impl Drop for RawType {
    fn drop(&mut self) {
        // SAFETY: every RawType owns its handle.
        unsafe { ffi::duckdb_destroy_logical_type(&mut self.0) }
    }
}

impl TypeView for RawType {
    fn id(&self) -> LogicalTypeId {
        // SAFETY: a valid logical type.
        LogicalTypeId::from(unsafe { ffi::duckdb_get_type_id(self.0) })
    }
    fn alias(&self) -> Option<String> {
        // SAFETY: the alias, if any, is ours to free.
        unsafe { owned_text(ffi::duckdb_logical_type_get_alias(self.0)) }
    }
    fn decimal_width(&self) -> u8 {
        unsafe { ffi::duckdb_decimal_width(self.0) }
    }
    fn decimal_scale(&self) -> u8 {
        unsafe { ffi::duckdb_decimal_scale(self.0) }
    }
    fn num_children(&self) -> usize {
        // SAFETY: each call matches the type's id.
        unsafe {
            match self.id() {
                LogicalTypeId::List | LogicalTypeId::Array => 1,
                LogicalTypeId::Map => 2,
                LogicalTypeId::Struct => ffi::duckdb_struct_type_child_count(self.0) as usize,
                LogicalTypeId::Union => ffi::duckdb_union_type_member_count(self.0) as usize,
                _ => 0,
            }
        }
    }
    fn child(&self, i: usize) -> Self {
        // SAFETY: each call matches the type's id; the child is owned by the new RawType.
        RawType(unsafe {
            match self.id() {
                LogicalTypeId::List => ffi::duckdb_list_type_child_type(self.0),
                LogicalTypeId::Array => ffi::duckdb_array_type_child_type(self.0),
                LogicalTypeId::Map if i == 0 => ffi::duckdb_map_type_key_type(self.0),
                LogicalTypeId::Map => ffi::duckdb_map_type_value_type(self.0),
                LogicalTypeId::Union => ffi::duckdb_union_type_member_type(self.0, i as u64),
                _ => ffi::duckdb_struct_type_child_type(self.0, i as u64),
            }
        })
    }
    fn child_name(&self, i: usize) -> String {
        // SAFETY: the name is ours to free.
        unsafe {
            owned_text(match self.id() {
                LogicalTypeId::Union => ffi::duckdb_union_type_member_name(self.0, i as u64),
                _ => ffi::duckdb_struct_type_child_name(self.0, i as u64),
            })
        }
        .unwrap_or_default()
    }
}

/// Whether [`value_at`] decodes every value of this type (nested types included); the rest
/// (UNION, BIT, BIGNUM, TIME WITH TIME ZONE, …) go through duckdb-rs.
fn decodable(ty: &RawType) -> bool {
    use LogicalTypeId as Id;
    match ty.id() {
        Id::Boolean
        | Id::Tinyint
        | Id::Smallint
        | Id::Integer
        | Id::Bigint
        | Id::UTinyint
        | Id::USmallint
        | Id::UInteger
        | Id::UBigint
        | Id::Hugeint
        | Id::UHugeint
        | Id::Uuid
        | Id::Float
        | Id::Double
        | Id::Varchar
        | Id::Blob
        | Id::Date
        | Id::Time
        | Id::Timestamp
        | Id::TimestampS
        | Id::TimestampMs
        | Id::TimestampNs
        | Id::TimestampTZ
        | Id::Interval
        | Id::SqlNull => true,
        Id::Decimal => matches!(
            unsafe { ffi::duckdb_decimal_internal_type(ty.0) },
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_SMALLINT
                | ffi::DUCKDB_TYPE_DUCKDB_TYPE_INTEGER
                | ffi::DUCKDB_TYPE_DUCKDB_TYPE_BIGINT
                | ffi::DUCKDB_TYPE_DUCKDB_TYPE_HUGEINT
        ),
        Id::Enum => matches!(
            unsafe { ffi::duckdb_enum_internal_type(ty.0) },
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_UTINYINT
                | ffi::DUCKDB_TYPE_DUCKDB_TYPE_USMALLINT
                | ffi::DUCKDB_TYPE_DUCKDB_TYPE_UINTEGER
        ),
        Id::List | Id::Array | Id::Map | Id::Struct => {
            (0..ty.num_children()).all(|i| decodable(&ty.child(i)))
        }
        _ => false,
    }
}

/// Reads element `row` of `vector`, whose type is `ty` (one [`decodable`] accepted).
///
/// # Safety
/// `vector` must be a valid vector of type `ty` with more than `row` entries.
unsafe fn value_at(vector: ffi::duckdb_vector, ty: &RawType, row: usize) -> Value {
    use LogicalTypeId as Id;
    unsafe {
        let validity = ffi::duckdb_vector_get_validity(vector);
        if !validity.is_null() && !ffi::duckdb_validity_row_is_valid(validity, row as u64) {
            return Value::Null;
        }
        let data = ffi::duckdb_vector_get_data(vector);
        let at = |size: usize| data.cast::<u8>().add(row * size).cast::<c_void>();
        match ty.id() {
            Id::Boolean => Value::Boolean(read::<bool>(at(1))),
            Id::Tinyint => Value::TinyInt(read(at(1))),
            Id::Smallint => Value::SmallInt(read(at(2))),
            Id::Integer => Value::Int(read(at(4))),
            Id::Bigint => Value::BigInt(read(at(8))),
            Id::UTinyint => Value::UTinyInt(read(at(1))),
            Id::USmallint => Value::USmallInt(read(at(2))),
            Id::UInteger => Value::UInt(read(at(4))),
            Id::UBigint => Value::UBigInt(read(at(8))),
            Id::Hugeint | Id::Uuid => Value::HugeInt(hugeint(at(16))),
            Id::UHugeint => {
                let parts: ffi::duckdb_uhugeint = read(at(16));
                Value::UHugeInt((u128::from(parts.upper) << 64) | u128::from(parts.lower))
            }
            Id::Float => Value::Float(read(at(4))),
            Id::Double => Value::Double(read(at(8))),
            Id::Varchar => Value::Text(String::from_utf8_lossy(string_bytes(at(16))).into_owned()),
            Id::Blob => Value::Blob(string_bytes(at(16)).to_vec()),
            Id::Date => Value::Date32(read(at(4))),
            Id::Time => Value::Time64(TimeUnit::Microsecond, read(at(8))),
            Id::Timestamp | Id::TimestampTZ => Value::Timestamp(TimeUnit::Microsecond, read(at(8))),
            Id::TimestampS => Value::Timestamp(TimeUnit::Second, read(at(8))),
            Id::TimestampMs => Value::Timestamp(TimeUnit::Millisecond, read(at(8))),
            Id::TimestampNs => Value::Timestamp(TimeUnit::Nanosecond, read(at(8))),
            Id::Interval => {
                let interval: ffi::duckdb_interval = read(at(16));
                Value::Interval {
                    months: interval.months,
                    days: interval.days,
                    nanos: interval.micros.saturating_mul(1_000),
                }
            }
            Id::Decimal => decimal(ty, data, row),
            Id::Enum => enum_label(ty, data, row),
            Id::List | Id::Map => {
                let entry: ffi::duckdb_list_entry = read(at(16));
                let child_vector = ffi::duckdb_list_vector_get_child(vector);
                let range = entry.offset as usize..(entry.offset + entry.length) as usize;
                if ty.id() == Id::Map {
                    // A map is a list of {key, value} structs.
                    let (key_type, value_type) = (ty.child(0), ty.child(1));
                    let keys = ffi::duckdb_struct_vector_get_child(child_vector, 0);
                    let values = ffi::duckdb_struct_vector_get_child(child_vector, 1);
                    let pairs: Vec<(Value, Value)> = range
                        .map(|i| {
                            (
                                value_at(keys, &key_type, i),
                                value_at(values, &value_type, i),
                            )
                        })
                        .collect();
                    Value::Map(OrderedMap::from(pairs))
                } else {
                    let child = ty.child(0);
                    Value::List(range.map(|i| value_at(child_vector, &child, i)).collect())
                }
            }
            Id::Array => {
                let size = ffi::duckdb_array_type_array_size(ty.0) as usize;
                let child_vector = ffi::duckdb_array_vector_get_child(vector);
                let child = ty.child(0);
                Value::Array(
                    (row * size..(row + 1) * size)
                        .map(|i| value_at(child_vector, &child, i))
                        .collect(),
                )
            }
            Id::Struct => {
                let fields: Vec<(String, Value)> = (0..ty.num_children())
                    .map(|i| {
                        let field = ffi::duckdb_struct_vector_get_child(vector, i as u64);
                        (ty.child_name(i), value_at(field, &ty.child(i), row))
                    })
                    .collect();
                Value::Struct(OrderedMap::from(fields))
            }
            _ => Value::Null,
        }
    }
}

/// # Safety
/// `at` points to a readable `T`.
unsafe fn read<T: Copy>(at: *const c_void) -> T {
    unsafe { at.cast::<T>().read_unaligned() }
}

/// Element `row` of a vector's data holding `T`s.
///
/// # Safety
/// `data` holds more than `row` values of `T`.
unsafe fn element<T: Copy>(data: *mut c_void, row: usize) -> T {
    unsafe { data.cast::<T>().add(row).read_unaligned() }
}

/// # Safety
/// `at` points to a readable duckdb_hugeint.
unsafe fn hugeint(at: *const c_void) -> i128 {
    let parts: ffi::duckdb_hugeint = unsafe { read(at) };
    (i128::from(parts.upper) << 64) | i128::from(parts.lower)
}

/// The bytes of the duckdb_string_t at `at`, valid while its chunk lives.
///
/// # Safety
/// `at` points to a duckdb_string_t in a live vector.
unsafe fn string_bytes<'a>(at: *const c_void) -> &'a [u8] {
    unsafe {
        let string = at.cast::<ffi::duckdb_string_t>().cast_mut();
        let length = ffi::duckdb_string_t_length(*string) as usize;
        let data = ffi::duckdb_string_t_data(string);
        std::slice::from_raw_parts(data.cast::<u8>(), length)
    }
}

/// # Safety
/// `data` is a DECIMAL vector's data with more than `row` entries.
unsafe fn decimal(ty: &RawType, data: *mut c_void, row: usize) -> Value {
    unsafe {
        let payload: i128 = match ffi::duckdb_decimal_internal_type(ty.0) {
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_SMALLINT => element::<i16>(data, row).into(),
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_INTEGER => element::<i32>(data, row).into(),
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_BIGINT => element::<i64>(data, row).into(),
            _ => hugeint(data.cast::<u8>().add(row * 16).cast()),
        };
        match duckdb::types::Decimal::new(ty.decimal_width(), ty.decimal_scale(), payload) {
            Ok(decimal) => Value::Decimal(decimal),
            Err(_) => Value::HugeInt(payload),
        }
    }
}

/// # Safety
/// `data` is an ENUM vector's data with more than `row` entries.
unsafe fn enum_label(ty: &RawType, data: *mut c_void, row: usize) -> Value {
    unsafe {
        let index: u64 = match ffi::duckdb_enum_internal_type(ty.0) {
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_UTINYINT => element::<u8>(data, row).into(),
            ffi::DUCKDB_TYPE_DUCKDB_TYPE_USMALLINT => element::<u16>(data, row).into(),
            _ => element::<u32>(data, row).into(),
        };
        Value::Enum(owned_text(ffi::duckdb_enum_dictionary_value(ty.0, index)).unwrap_or_default())
    }
}

fn c_string(text: &str) -> CString {
    CString::new(text.replace('\0', "")).expect("NUL bytes removed")
}

/// Text DuckDB allocated for us: copied, then freed.
///
/// # Safety
/// `text` is null or a NUL-terminated string from DuckDB's allocator.
unsafe fn owned_text(text: *mut c_char) -> Option<String> {
    if text.is_null() {
        return None;
    }
    unsafe {
        let owned = CStr::from_ptr(text).to_string_lossy().into_owned();
        ffi::duckdb_free(text.cast());
        Some(owned)
    }
}

/// Text DuckDB keeps (freed with its owner): copied.
///
/// # Safety
/// `text` is null or a NUL-terminated string that lives for this call.
unsafe fn borrowed_text(text: *const c_char) -> Option<String> {
    (!text.is_null()).then(|| {
        unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database file with `setup` run on it, and both paths open on it.
    struct Paths {
        _dir: tempfile::TempDir,
        direct: DirectConnection,
        checked: duckdb::Connection,
    }

    fn open(setup: &str) -> Paths {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.duckdb");
        duckdb::Connection::open(&path)
            .unwrap()
            .execute_batch(setup)
            .unwrap();
        let database = Arc::new(
            RawDatabase::open(&path, &crate::scratch::lockdown(crate::scratch::READ_ONLY)).unwrap(),
        );
        let direct = DirectConnection::connect(&database).unwrap();
        let checked = crate::open_read_only(&path).unwrap();
        Paths {
            _dir: dir,
            direct,
            checked,
        }
    }

    /// The direct path's answer as the pool gives it (a failure classified by the gate).
    fn direct(paths: &Paths, sql: &str, limits: &Limits) -> Result<ResultSet, QueryError> {
        match paths.direct.select(sql, limits) {
            Direct::Answered(answer) => answer,
            Direct::Failed(message) => {
                crate::gate::parse_select(&paths.checked, sql)?;
                Err(QueryError::Sql(message))
            }
            Direct::NotHere => panic!("`{sql}` was not answered on the direct path"),
        }
    }

    fn checked(paths: &Paths, sql: &str, limits: &Limits) -> Result<ResultSet, QueryError> {
        crate::gate::parse_select(&paths.checked, sql)?;
        crate::cells::run_query(&paths.checked, sql, limits)
    }

    const SETUP: &str = "
        CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
        CREATE TABLE t AS SELECT
            range AS i,
            (range % 7)::TINYINT AS ti, (range * 3)::SMALLINT AS si, (range * 1000)::BIGINT AS bi,
            (range % 256)::UTINYINT AS ut, range::USMALLINT AS us, range::UINTEGER AS ui, range::UBIGINT AS ub,
            range::HUGEINT * 12345678901234567890 AS hi, range::UHUGEINT AS uh,
            (range / 3)::FLOAT AS fl, (range / 7)::DOUBLE AS db,
            (range / 10)::DECIMAL(4,1) AS d4, (range / 100)::DECIMAL(9,2) AS d9,
            (range / 1000)::DECIMAL(18,3) AS d18, (range / 3)::DECIMAL(38,10) AS d38,
            'short' || range AS short_text, repeat('long text that is not inlined ', 2) || range AS long_text,
            ('\\x00\\xff' || range)::BLOB AS bl,
            DATE '2024-01-01' + range::INTEGER AS dt, TIME '01:02:03.456789' AS tm,
            TIMESTAMP '2024-01-02 03:04:05.123456' + to_seconds(range) AS ts,
            TIMESTAMP_S '2024-01-02 03:04:05' AS ts_s, TIMESTAMP_MS '2024-01-02 03:04:05.123' AS ts_ms,
            TIMESTAMP_NS '2024-01-02 03:04:05.123456789' AS ts_ns,
            TIMESTAMPTZ '2024-01-02 03:04:05+00' AS tz,
            INTERVAL (range) MINUTE + INTERVAL 2 MONTH AS iv,
            '123e4567-e89b-12d3-a456-426614174000'::UUID AS u,
            (['sad', 'ok', 'happy'])[range % 3 + 1]::mood AS md,
            CASE WHEN range % 5 = 0 THEN NULL ELSE range END AS sometimes_null,
            [range, NULL, range + 1] AS li,
            [{'k': range, 'v': [1.5::DECIMAL(3,1)]}] AS nested,
            {'a': range, 'b': 'x' || range, 'c': [true, NULL]} AS st,
            MAP {'one': range, 'two': NULL} AS mp,
            [range, range + 1, range + 2]::INTEGER[3] AS ar
        FROM range(3000);
    ";

    #[test]
    fn answers_every_decodable_type_exactly_as_the_checked_path() {
        let paths = open(SETUP);
        let limits = Limits::default();
        for sql in [
            "SELECT * FROM t ORDER BY i",
            "SELECT * FROM t WHERE i = 1234",
            "SELECT * FROM t WHERE false",
            "SELECT NULL AS n, 1 AS one",
            "SELECT list(i) AS all_of_them FROM t",
            "  (SELECT i FROM t WHERE i < 3) ORDER BY i;  ",
            "FROM t SELECT i, st WHERE i = 7",
            "WITH x AS (SELECT * FROM t WHERE i > 2990) SELECT * FROM x ORDER BY i",
            // Failures read as they do on the checked path, whatever failed.
            "SELECT missing FROM t",
            "SELECT short_text::INTEGER FROM t",
            "SELECT 1 FROM FROM t",
            "SELECT * FROM read_csv('/etc/hostname')",
            "WITH x AS (SELECT 1 AS i) INSERT INTO t (i) SELECT i FROM x",
        ] {
            assert_alike_on_every_sight(&paths, sql, &limits);
        }
    }

    /// The direct path answers `sql` as the checked path does on its first sight (run plain),
    /// its second (prepared) and its third (run from the plan).
    fn assert_alike_on_every_sight(paths: &Paths, sql: &str, limits: &Limits) {
        for sight in 1..=3 {
            assert_eq!(
                direct(paths, sql, limits),
                checked(paths, sql, limits),
                "sight {sight}: {sql}"
            );
        }
    }

    #[test]
    fn a_text_seen_twice_runs_from_its_plan_and_volatile_functions_still_vary() {
        let paths = open(SETUP);
        let limits = Limits::default();
        let prepared = |sql: &str| paths.direct.repeats.lock().unwrap().is_prepared(sql);
        let shaped = |sql: &str| paths.direct.repeats.lock().unwrap().is_shaped(sql);
        // The same text, then texts of one shape (`i < 3`, `i < 4`, …).
        let texts: [&dyn Fn(usize) -> String; 2] = [
            &|_| "SELECT random() AS r, i FROM t WHERE i IN (0, 1, 2) ORDER BY i".into(),
            &|sight| {
                format!(
                    "SELECT random() AS r, i FROM t WHERE i < {} ORDER BY i",
                    sight + 2
                )
            },
        ];
        for (text, from_plan) in texts
            .into_iter()
            .zip([&prepared as &dyn Fn(&str) -> bool, &shaped])
        {
            let mut draws = Vec::new();
            for sight in 1..=4 {
                let sql = text(sight);
                let answer = direct(&paths, &sql, &limits).unwrap();
                assert_eq!(from_plan(&sql), sight >= 2, "sight {sight}: {sql}");
                draws.push(answer.rows[0][0].clone());
            }
            draws.sort_by_key(|draw| draw.to_string());
            draws.dedup();
            assert_eq!(
                draws.len(),
                4,
                "random() was folded into the plan: {draws:?}"
            );
        }
        // A text seen before whose shape has a template runs from it, with no plan of its own.
        let repeated = texts[1](1);
        direct(&paths, &repeated, &limits).unwrap();
        assert!(shaped(&repeated) && !prepared(&repeated), "{repeated}");
        // What DuckDB cannot prepare as a parameterless SELECT keeps running plain.
        for sql in ["SELECT ? AS parameter", "SELECT missing FROM t"] {
            for _ in 1..=3 {
                let _ = direct(&paths, sql, &limits);
            }
            assert!(!prepared(sql), "{sql}");
        }
    }

    #[test]
    fn texts_of_one_shape_answer_as_their_own_text_on_every_sight() {
        let paths = open(SETUP);
        let limits = Limits::default();
        // Each template with `{}` standing for literals of several values, kinds and fits.
        let mut texts = Vec::new();
        for (template, values) in [
            (
                "SELECT i, ti FROM t WHERE ti = {} ORDER BY i LIMIT 3",
                &["3", "300", "2147483648"][..],
            ),
            (
                "SELECT i FROM t WHERE si < {} AND bi >= {} ORDER BY i",
                &["100", "3000000000"],
            ),
            (
                "SELECT i, ut, ub FROM t WHERE ut = {} OR ub = {} ORDER BY i",
                &["255", "256"],
            ),
            (
                "SELECT i, fl, db FROM t WHERE fl = {} OR db = {} ORDER BY i",
                &["5", "16777217"],
            ),
            (
                "SELECT i FROM t WHERE d4 = {} OR d9 = {} OR d38 > {} ORDER BY i LIMIT 4",
                &["5", "12"],
            ),
            (
                "SELECT i FROM t WHERE short_text = {} ORDER BY i",
                &["'short7'", "'it''s'", "12"],
            ),
            (
                "SELECT i FROM t WHERE short_text COLLATE nocase = {}",
                &["'SHORT7'", "'short8'"],
            ),
            (
                "SELECT i, dt FROM t WHERE dt > {} ORDER BY i LIMIT 2",
                &["'2024-03-01'", "'bad'"],
            ),
            (
                "SELECT count(*) AS n FROM t WHERE md = {}",
                &["'ok'", "'nope'"],
            ),
            (
                "SELECT i FROM t WHERE sometimes_null = {} OR hi = {} OR uh = {}",
                &["10", "0"],
            ),
            (
                "SELECT i FROM t WHERE st.a = {} OR li[1] = {} ORDER BY i",
                &["3", "4"],
            ),
            (
                "SELECT i = {} AS flag, i FROM t ORDER BY i LIMIT 3",
                &["1", "2"],
            ),
            ("SELECT i = {} FROM t ORDER BY i LIMIT 3", &["1", "2"]),
            (
                "SELECT ti, count(*) AS n FROM t GROUP BY ti HAVING count(*) > {} ORDER BY ti",
                &["428", "1"],
            ),
            (
                "SELECT i FROM t WHERE i = {} AND short_text::INTEGER = 5",
                &["1", "2"],
            ),
            (
                "WITH f AS (SELECT 16777216::FLOAT AS x) SELECT x FROM f WHERE x = {}",
                &["16777217", "16777216"],
            ),
            (
                "SELECT CASE WHEN u = {} THEN 'yes' END AS yes FROM t LIMIT 1",
                &["'123e4567-e89b-12d3-a456-426614174000'", "'x'"],
            ),
        ] {
            for n in 0..values.len() {
                // Every `{}` gets a value: this one, then the others in turn.
                let mut parts = template.split("{}");
                let mut sql = parts.next().unwrap_or_default().to_string();
                for (j, part) in parts.enumerate() {
                    sql.push_str(values[(n + j) % values.len()]);
                    sql.push_str(part);
                }
                texts.push(sql);
            }
        }
        // Each text once (all but the first of a template run from its shape), then each on
        // every sight (a text whose template DuckDB refused runs from its own plan from the
        // second).
        for sql in &texts {
            assert_eq!(
                direct(&paths, sql, &limits),
                checked(&paths, sql, &limits),
                "{sql}"
            );
        }
        for sql in &texts {
            assert_alike_on_every_sight(&paths, sql, &limits);
        }
        let shaped = |sql: &str| paths.direct.repeats.lock().unwrap().is_shaped(sql);
        for sql in [
            "SELECT i, ti FROM t WHERE ti = 9 ORDER BY i LIMIT 3",
            "SELECT i FROM t WHERE short_text = 'short9' ORDER BY i",
            "SELECT i = 9 AS flag, i FROM t ORDER BY i LIMIT 3",
        ] {
            assert!(shaped(sql), "{sql} does not run from its shape");
        }
        // A result column named after the parameter would change the answer's names.
        assert!(!shaped("SELECT i = 9 FROM t ORDER BY i LIMIT 3"));
    }

    #[test]
    fn keeps_the_limits_of_the_checked_path() {
        let paths = open(SETUP);
        let few_rows = Limits {
            max_rows: 7,
            ..Limits::default()
        };
        let few_bytes = Limits {
            max_bytes: 10_000,
            ..Limits::default()
        };
        for limits in [few_rows, few_bytes] {
            assert_alike_on_every_sight(&paths, "SELECT i, long_text FROM t ORDER BY i", &limits);
        }
    }

    #[test]
    fn leaves_everything_but_plainly_one_query_to_the_checked_path() {
        let paths = open("CREATE TABLE t AS SELECT 1 AS x");
        let limits = Limits::default();
        for sql in [
            "SELECT 1; SELECT 2",
            "SELECT 1; ATTACH ':memory:' AS m",
            "SELECT ';' AS semicolon",
            "",
            "SELEC 1",
            "/* a comment */ SELECT 1",
            "SELECTED 1",
            "VALUES (1)",
            "INSERT INTO t VALUES (2)",
            "SET threads = 2",
            "EXPLAIN SELECT 1",
            "CALL pragma_version()",
            "ATTACH ':memory:' AS m",
            "PRAGMA show_tables",
            "SELECT 'copy' AS word",
            "SELECT 1::UNION(a INT, b VARCHAR) AS u",
            "SELECT '101'::BIT AS b",
        ] {
            assert!(
                matches!(paths.direct.select(sql, &limits), Direct::NotHere),
                "`{sql}` was answered on the direct path"
            );
        }
    }

    #[test]
    fn a_write_behind_with_fails_and_reads_as_refused() {
        let paths = open("CREATE TABLE t AS SELECT 1 AS x");
        let sql = "WITH y AS (SELECT 2 AS x) INSERT INTO t SELECT x FROM y";
        assert!(matches!(
            paths.direct.select(sql, &Limits::default()),
            Direct::Failed(_)
        ));
        assert!(matches!(
            direct(&paths, sql, &Limits::default()),
            Err(QueryError::Refused(_))
        ));
    }

    #[test]
    fn any_mention_of_a_rewritten_statement_keyword_is_noticed() {
        for sql in [
            "PRAGMA version",
            "pragma version",
            "/* x */ Import Database 'd'",
            "SELECT 1;copy t TO 'f'",
            "ALTER TABLE t ADD c INT",
        ] {
            assert!(mentions_rewritten_statement(sql), "{sql}");
        }
        for sql in ["SELECT copying, pragmatic FROM altered", "SELECT 1"] {
            assert!(!mentions_rewritten_statement(sql), "{sql}");
        }
    }

    #[test]
    fn one_query_is_told_by_its_first_word_and_its_semicolons() {
        for sql in [
            "select 1",
            "  ((SELECT 1))",
            "FROM t",
            "with x as (select 1) select * from x",
            "SELECT 1;",
            "SELECT 1 ;  \n",
        ] {
            assert!(reads_as_one_query(sql), "{sql}");
        }
        for sql in [
            "SELECT 1; SELECT 2",
            "SELECT 1;;",
            "SELECTX",
            "SELECT_1",
            "-- c\nSELECT 1",
            "ATTACH 'x'",
            "",
        ] {
            assert!(!reads_as_one_query(sql), "{sql}");
        }
    }
}

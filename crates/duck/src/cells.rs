//! DuckDB values and types → the typed cells and type names of [`ResultSet`].

use std::sync::mpsc;
use std::thread;

use duckdb::core::LogicalTypeId;
use duckdb::types::{TimeUnit, Value};
use serde_json::{Map, Value as Json};
use sqlrft_core::ResultSet;

use crate::types::{TypeView, type_name};
use crate::{Limits, QueryError};

/// Largest integer a JSON number (an f64 in most readers) holds exactly.
const MAX_EXACT_JSON_INT: i128 = 1 << 53;

/// One DuckDB value as a typed JSON cell (see [`sqlrft_core::result`] for the encoding).
pub(crate) fn to_cell<T: TypeView>(value: Value, ty: &T) -> Json {
    let id = ty.id();
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(b),
        Value::TinyInt(i) => i.into(),
        Value::SmallInt(i) => i.into(),
        Value::Int(i) => i.into(),
        Value::BigInt(i) => integer(i128::from(i)),
        Value::HugeInt(i) if id == LogicalTypeId::Uuid => Json::String(uuid_from_hugeint(i)),
        Value::HugeInt(i) => integer(i),
        Value::UTinyInt(i) => i.into(),
        Value::USmallInt(i) => i.into(),
        Value::UInt(i) => i.into(),
        Value::UBigInt(i) => integer(i128::from(i)),
        Value::UHugeInt(i) => match i128::try_from(i) {
            Ok(i) => integer(i),
            Err(_) => Json::String(i.to_string()),
        },
        Value::Float(f) => float(f64::from(f)),
        Value::Double(f) => float(f),
        Value::Decimal(d) => Json::String(d.to_string()),
        Value::Timestamp(unit, ticks) => {
            Json::String(timestamp(unit, ticks, id == LogicalTypeId::TimestampTZ))
        }
        Value::Text(s) => Json::String(s),
        Value::Enum(s) => Json::String(s),
        Value::Blob(bytes) | Value::Geometry(bytes) => Json::String(blob_text(&bytes)),
        Value::Date32(days) => Json::String(date(days)),
        Value::Time64(unit, ticks) => Json::String(time_of_day(micros(unit, ticks))),
        Value::Interval {
            months,
            days,
            nanos,
        } => Json::String(interval(months, days, nanos)),
        Value::List(items) | Value::Array(items) => {
            let child = ty.child(0);
            Json::Array(items.into_iter().map(|v| to_cell(v, &child)).collect())
        }
        Value::Struct(fields) => {
            let mut object = Map::new();
            for (i, (name, v)) in fields.iter().enumerate() {
                let cell = match i < ty.num_children() {
                    true => to_cell(v.clone(), &ty.child(i)),
                    // A field the type does not describe: its text, as for unknown types.
                    false => Json::String(format!("{v:?}")),
                };
                object.insert(name.clone(), cell);
            }
            Json::Object(object)
        }
        Value::Map(entries) => {
            let (key_type, value_type) = (ty.child(0), ty.child(1));
            Json::Array(
                entries
                    .iter()
                    .map(|(k, v)| {
                        let mut entry = Map::new();
                        entry.insert("key".into(), to_cell(k.clone(), &key_type));
                        entry.insert("value".into(), to_cell(v.clone(), &value_type));
                        Json::Object(entry)
                    })
                    .collect(),
            )
        }
        Value::Union(inner) => Json::String(format!("{inner:?}")),
        other => Json::String(format!("{other:?}")),
    }
}

fn integer(i: i128) -> Json {
    if i.abs() <= MAX_EXACT_JSON_INT {
        Json::Number((i as i64).into())
    } else {
        Json::String(i.to_string())
    }
}

fn float(f: f64) -> Json {
    match serde_json::Number::from_f64(f) {
        Some(n) => Json::Number(n),
        None if f.is_nan() => Json::String("NaN".into()),
        None if f > 0.0 => Json::String("Infinity".into()),
        None => Json::String("-Infinity".into()),
    }
}

fn micros(unit: TimeUnit, ticks: i64) -> i64 {
    match unit {
        TimeUnit::Second => ticks.saturating_mul(1_000_000),
        TimeUnit::Millisecond => ticks.saturating_mul(1_000),
        TimeUnit::Microsecond => ticks,
        TimeUnit::Nanosecond => ticks.div_euclid(1_000),
    }
}

fn timestamp(unit: TimeUnit, ticks: i64, with_zone: bool) -> String {
    let Some(at) = chrono::DateTime::from_timestamp_micros(micros(unit, ticks)) else {
        return ticks.to_string();
    };
    let text = at.naive_utc().format("%Y-%m-%dT%H:%M:%S%.f").to_string();
    if with_zone {
        format!("{text}+00:00")
    } else {
        text
    }
}

fn date(days: i32) -> String {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid epoch");
    match epoch.checked_add_signed(chrono::TimeDelta::days(i64::from(days))) {
        Some(d) => d.format("%Y-%m-%d").to_string(),
        None => days.to_string(),
    }
}

fn time_of_day(micros: i64) -> String {
    let seconds = micros.div_euclid(1_000_000);
    let fraction = micros.rem_euclid(1_000_000);
    let (h, m, s) = (seconds / 3600, (seconds / 60) % 60, seconds % 60);
    if fraction == 0 {
        format!("{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}.{fraction:06}")
    }
}

/// ISO 8601 duration with DuckDB's three parts kept apart: `P{months}M{days}DT{seconds}S`.
fn interval(months: i32, days: i32, nanos: i64) -> String {
    let seconds = nanos as f64 / 1e9;
    let mut text = String::from("P");
    if months != 0 {
        text.push_str(&format!("{months}M"));
    }
    if days != 0 {
        text.push_str(&format!("{days}D"));
    }
    if nanos != 0 || text == "P" {
        text.push_str(&format!("T{seconds}S"));
    }
    text
}

/// DuckDB's own BLOB text: printable ASCII as is, other bytes as `\xNN`.
fn blob_text(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) && b != b'\\' {
                (b as char).to_string()
            } else {
                format!("\\x{b:02X}")
            }
        })
        .collect()
}

/// DuckDB stores a UUID as a HUGEINT with the top bit flipped (so they sort as text).
fn uuid_from_hugeint(value: i128) -> String {
    let bits = (value as u128) ^ (1u128 << 127);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Runs `sql` on `conn` and collects a typed result set within `limits`.
///
/// This does not check what kind of statement `sql` is: call [`crate::parse_select`] first for
/// untrusted input. The timeout interrupts the connection from a watchdog thread.
pub fn collect_result_set(
    conn: &duckdb::Connection,
    sql: &str,
    limits: &Limits,
) -> Result<ResultSet, QueryError> {
    let interrupt = conn.interrupt_handle();
    let (done, finished) = mpsc::channel::<()>();
    let timeout = limits.timeout;
    let watchdog = thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(timeout) {
            interrupt.interrupt();
            return true;
        }
        false
    });
    let result = run_query(conn, sql, limits);
    let _ = done.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    match result {
        Err(QueryError::Sql(_)) if timed_out => Err(QueryError::Timeout(timeout)),
        other => other,
    }
}

/// Executes and converts, without any timeout of its own (callers arrange interruption).
pub(crate) fn run_query(
    conn: &duckdb::Connection,
    sql: &str,
    limits: &Limits,
) -> Result<ResultSet, QueryError> {
    let mut statement = conn.prepare(sql)?;
    let mut rows = statement.query([])?;
    let executed = rows
        .as_ref()
        .ok_or_else(|| QueryError::Internal("statement produced no result".into()))?;
    let columns: Vec<String> = executed.column_names();
    let logical: Vec<_> = (0..columns.len())
        .map(|i| executed.column_logical_type(i))
        .collect();
    let types: Vec<String> = logical.iter().map(type_name).collect();

    let mut collected = RowCollector::new(limits);
    while let Some(row) = rows.next()? {
        if !collected.wants_row() {
            continue;
        }
        let mut cells = Vec::with_capacity(columns.len());
        for (i, ty) in logical.iter().enumerate() {
            // An untyped `NULL` column has no Rust value type (duckdb-rs panics reading it).
            if ty.id() == LogicalTypeId::SqlNull {
                cells.push(Json::Null);
                continue;
            }
            let value: Value = row.get(i)?;
            cells.push(to_cell(value, ty));
        }
        collected.push(cells)?;
    }
    Ok(collected.finish(columns, types))
}

/// Keeps a result's rows within [`Limits`]: counts every row, keeps the first `max_rows`, and
/// stops with [`QueryError::TooLarge`] once the kept cells pass `max_bytes`.
pub(crate) struct RowCollector<'a> {
    limits: &'a Limits,
    kept: Vec<Vec<Json>>,
    row_count: usize,
    bytes: usize,
}

impl<'a> RowCollector<'a> {
    pub(crate) fn new(limits: &'a Limits) -> Self {
        RowCollector {
            limits,
            kept: Vec::new(),
            row_count: 0,
            bytes: 0,
        }
    }

    /// Counts one more row; true when it is to be kept (then convert it and [`Self::push`] it).
    pub(crate) fn wants_row(&mut self) -> bool {
        self.row_count += 1;
        self.kept.len() < self.limits.max_rows
    }

    pub(crate) fn push(&mut self, cells: Vec<Json>) -> Result<(), QueryError> {
        self.bytes += cells.iter().map(approximate_size).sum::<usize>();
        if self.bytes > self.limits.max_bytes {
            return Err(QueryError::TooLarge {
                limit: self.limits.max_bytes,
            });
        }
        self.kept.push(cells);
        Ok(())
    }

    pub(crate) fn finish(self, columns: Vec<String>, types: Vec<String>) -> ResultSet {
        ResultSet {
            columns,
            types,
            truncated: self.row_count > self.kept.len(),
            rows: self.kept,
            row_count: self.row_count,
        }
    }
}

fn approximate_size(cell: &Json) -> usize {
    match cell {
        Json::Null | Json::Bool(_) => 4,
        Json::Number(_) => 8,
        Json::String(s) => s.len() + 2,
        Json::Array(items) => items.iter().map(approximate_size).sum::<usize>() + 2,
        Json::Object(fields) => {
            fields
                .iter()
                .map(|(k, v)| k.len() + 3 + approximate_size(v))
                .sum::<usize>()
                + 2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_round_trips_duckdb_bit_flip() {
        let text = "123e4567-e89b-12d3-a456-426614174000";
        let bits = u128::from_str_radix(&text.replace('-', ""), 16).unwrap();
        let stored = (bits ^ (1u128 << 127)) as i128;
        assert_eq!(uuid_from_hugeint(stored), text);
    }

    #[test]
    fn integers_beyond_f64_precision_become_strings() {
        assert_eq!(integer(42), Json::from(42));
        assert_eq!(integer((1 << 53) + 1), Json::from("9007199254740993"));
    }

    #[test]
    fn time_and_interval_text() {
        assert_eq!(
            time_of_day(3 * 3600 * 1_000_000 + 4 * 60_000_000 + 5_000_000),
            "03:04:05"
        );
        assert_eq!(time_of_day(1_500_000), "00:00:01.500000");
        assert_eq!(interval(0, 1, 0), "P1D");
        assert_eq!(interval(14, 0, 1_500_000_000), "P14MT1.5S");
        assert_eq!(interval(0, 0, 0), "PT0S");
    }

    #[test]
    fn blob_escapes_non_printable_bytes() {
        assert_eq!(blob_text(b"ab\x00\xff"), "ab\\x00\\xFF");
    }
}

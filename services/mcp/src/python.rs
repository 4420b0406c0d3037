//! How mcp-server-motherduck prints a value: Python's `str()` of what the duckdb Python client
//! returns for it. Reproduced from our typed cells so the tutorial's text parser sees the same
//! bytes as it did from the Python server.

use serde_json::Value as Json;
use sqlrft_core::DuckType;

/// `str(value)` as Python prints it, or `None` for SQL NULL (an empty table cell).
pub fn python_str(cell: &Json, ty: &DuckType) -> Option<String> {
    if cell.is_null() {
        return None;
    }
    Some(match ty {
        DuckType::Varchar | DuckType::Uuid | DuckType::Blob | DuckType::Other(_) => text(cell),
        DuckType::Decimal { .. } => decimal_str(&text(cell)),
        DuckType::List(_) | DuckType::Struct(_) | DuckType::Map(..) => python_repr(cell, ty),
        _ => scalar(cell, ty),
    })
}

/// Python's `repr()` of the value, as it appears inside lists and dicts.
fn python_repr(cell: &Json, ty: &DuckType) -> String {
    if cell.is_null() {
        return "None".into();
    }
    match ty {
        DuckType::Varchar | DuckType::Other(_) => quote(&text(cell)),
        DuckType::Blob => format!("b{}", quote(&text(cell))),
        DuckType::Uuid => format!("UUID({})", quote(&text(cell))),
        DuckType::Decimal { .. } => format!("Decimal({})", quote(&text(cell))),
        DuckType::Date => date_repr(&text(cell)),
        DuckType::Timestamp(_) | DuckType::TimestampTz => datetime_repr(&text(cell)),
        DuckType::Time | DuckType::TimeTz => time_repr(&text(cell)),
        DuckType::Interval => timedelta_repr(&text(cell)),
        DuckType::List(inner) => {
            let items: Vec<String> = cell
                .as_array()
                .map(|items| items.iter().map(|v| python_repr(v, inner)).collect())
                .unwrap_or_default();
            format!("[{}]", items.join(", "))
        }
        DuckType::Struct(fields) => {
            let object = cell.as_object();
            let entries: Vec<String> = fields
                .iter()
                .map(|(name, field_type)| {
                    let value = object.and_then(|o| o.get(name)).unwrap_or(&Json::Null);
                    format!("{}: {}", quote(name), python_repr(value, field_type))
                })
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
        DuckType::Map(key_type, value_type) => {
            let entries: Vec<String> = cell
                .as_array()
                .map(|entries| {
                    entries
                        .iter()
                        .map(|entry| {
                            format!(
                                "{}: {}",
                                python_repr(&entry["key"], key_type),
                                python_repr(&entry["value"], value_type)
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!("{{{}}}", entries.join(", "))
        }
        _ => scalar(cell, ty),
    }
}

/// Scalars whose `str()` and `repr()` agree (numbers, booleans) or that have a fixed text form.
fn scalar(cell: &Json, ty: &DuckType) -> String {
    match (ty, cell) {
        (_, Json::Bool(b)) => if *b { "True" } else { "False" }.into(),
        (DuckType::Float | DuckType::Double, Json::Number(n)) => {
            float_repr(n.as_f64().unwrap_or(f64::NAN))
        }
        (DuckType::Float | DuckType::Double, Json::String(s)) => match s.as_str() {
            "NaN" => "nan".into(),
            "Infinity" => "inf".into(),
            "-Infinity" => "-inf".into(),
            other => other.into(),
        },
        (DuckType::Timestamp(_) | DuckType::TimestampTz, Json::String(s)) => datetime_str(s),
        (DuckType::Interval, Json::String(s)) => timedelta_str(s),
        (_, Json::Number(n)) => n.to_string(),
        (_, other) => text(other),
    }
}

fn text(cell: &Json) -> String {
    match cell {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Python's `repr(float)`: the shortest digits that round-trip, fixed notation for exponents
/// in [-4, 16), scientific (`1e+16`, `1e-05`) outside it, and always a `.0` on whole numbers.
pub fn float_repr(value: f64) -> String {
    if value.is_nan() {
        return "nan".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.into();
    }
    // Rust's `{:e}` gives the same shortest round-trip digits Python uses.
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').expect("`{:e}` has an exponent");
    let exponent: i32 = exponent.parse().expect("integer exponent");
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    if (-4..16).contains(&exponent) {
        let point = exponent + 1;
        let body = if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if point as usize >= digits.len() {
            format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
        } else {
            format!(
                "{}.{}",
                &digits[..point as usize],
                &digits[point as usize..]
            )
        };
        format!("{sign}{body}")
    } else {
        let mantissa = if digits.len() == 1 {
            digits
        } else {
            format!("{}.{}", &digits[..1], &digits[1..])
        };
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}e{exponent_sign}{:02}", exponent.abs())
    }
}

/// Python's `str(Decimal)` for a plain decimal string: scientific once the adjusted exponent
/// drops below -6 (`Decimal('0.0000001')` prints `1E-7`).
fn decimal_str(plain: &str) -> String {
    let (sign, unsigned) = match plain.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", plain),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let coefficient = format!("{whole}{fraction}");
    let significant = coefficient.trim_start_matches('0');
    let exponent = -(fraction.len() as i64);
    let adjusted = exponent + significant.len() as i64 - 1;
    if significant.is_empty() || adjusted >= -6 {
        return plain.to_string();
    }
    let mantissa = if significant.len() == 1 {
        significant.to_string()
    } else {
        format!("{}.{}", &significant[..1], &significant[1..])
    };
    format!("{sign}{mantissa}E{adjusted}")
}

/// Python's `repr(str)`: single quotes unless the text has a single quote and no double quote.
pub fn quote(text: &str) -> String {
    let delimiter = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push(delimiter);
    for c in text.chars() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            c if c == delimiter => {
                quoted.push('\\');
                quoted.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                quoted.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => quoted.push(c),
        }
    }
    quoted.push(delimiter);
    quoted
}

/// Splits our ISO text `2024-01-02T03:04:05.123+00:00` into date, time, fraction and zone.
fn split_timestamp(iso: &str) -> (&str, &str, &str, &str) {
    let (date, rest) = iso.split_once('T').unwrap_or((iso, ""));
    let (clock, zone) = match rest.find(['+', 'Z']).or_else(|| rest.rfind('-')) {
        Some(at) if at >= 8 => (&rest[..at], &rest[at..]),
        _ => (rest, ""),
    };
    let (time, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    (date, time, fraction, zone)
}

/// Six-digit microseconds, as Python's datetime prints them; empty when zero.
fn micros_text(fraction: &str) -> String {
    let micros: String = fraction
        .chars()
        .chain(std::iter::repeat('0'))
        .take(6)
        .collect();
    if micros.chars().all(|c| c == '0') {
        String::new()
    } else {
        micros
    }
}

fn datetime_str(iso: &str) -> String {
    let (date, time, fraction, zone) = split_timestamp(iso);
    let micros = micros_text(fraction);
    let fraction = if micros.is_empty() {
        String::new()
    } else {
        format!(".{micros}")
    };
    format!("{date} {time}{fraction}{zone}")
}

fn numbers(text: &str, separator: char) -> Vec<i64> {
    text.split(separator)
        .filter_map(|part| part.parse().ok())
        .collect()
}

fn date_repr(iso: &str) -> String {
    let parts = numbers(iso, '-');
    match parts.as_slice() {
        [y, m, d] => format!("datetime.date({y}, {m}, {d})"),
        _ => quote(iso),
    }
}

fn time_fields(time: &str, fraction: &str) -> Vec<i64> {
    let mut fields = numbers(time, ':');
    let micros = micros_text(fraction);
    if !micros.is_empty() {
        fields.push(micros.parse().unwrap_or(0));
    }
    // Python's repr drops trailing zero seconds/microseconds, but keeps hour and minute.
    while fields.len() > 2 && fields.last() == Some(&0) {
        fields.pop();
    }
    fields
}

fn datetime_repr(iso: &str) -> String {
    let (date, time, fraction, zone) = split_timestamp(iso);
    let mut fields = numbers(date, '-');
    fields.extend(time_fields(time, fraction));
    let list: Vec<String> = fields.iter().map(i64::to_string).collect();
    let zone = if zone.is_empty() {
        String::new()
    } else {
        ", tzinfo=datetime.timezone.utc".into()
    };
    format!("datetime.datetime({}{zone})", list.join(", "))
}

fn time_repr(text: &str) -> String {
    let (time, fraction) = text.split_once('.').unwrap_or((text, ""));
    let list: Vec<String> = time_fields(time, fraction)
        .iter()
        .map(i64::to_string)
        .collect();
    format!("datetime.time({})", list.join(", "))
}

/// Our interval text `P{months}M{days}DT{seconds}S` as (days, seconds, microseconds), the way
/// the duckdb Python client builds a timedelta (a month counts as 30 days).
fn interval_parts(iso: &str) -> (i64, i64, i64) {
    let body = iso.trim_start_matches('P');
    let (date_part, time_part) = body.split_once('T').unwrap_or((body, ""));
    let (mut months, mut days) = (0i64, 0i64);
    let mut number = String::new();
    for c in date_part.chars() {
        match c {
            'M' => months = number.parse().unwrap_or(0),
            'D' => days = number.parse().unwrap_or(0),
            _ => {
                number.push(c);
                continue;
            }
        }
        number.clear();
    }
    let seconds: f64 = time_part.trim_end_matches('S').parse().unwrap_or(0.0);
    let total_micros = ((months * 30 + days) as f64 * 86_400e6 + seconds * 1e6).round() as i64;
    let days = total_micros.div_euclid(86_400_000_000);
    let rest = total_micros.rem_euclid(86_400_000_000);
    (days, rest / 1_000_000, rest % 1_000_000)
}

fn timedelta_str(iso: &str) -> String {
    let (days, seconds, micros) = interval_parts(iso);
    let mut text = String::new();
    if days != 0 {
        let plural = if days.abs() == 1 { "" } else { "s" };
        text.push_str(&format!("{days} day{plural}, "));
    }
    text.push_str(&format!(
        "{}:{:02}:{:02}",
        seconds / 3600,
        (seconds / 60) % 60,
        seconds % 60
    ));
    if micros != 0 {
        text.push_str(&format!(".{micros:06}"));
    }
    text
}

fn timedelta_repr(iso: &str) -> String {
    let (days, seconds, micros) = interval_parts(iso);
    let parts: Vec<String> = [
        ("days", days),
        ("seconds", seconds),
        ("microseconds", micros),
    ]
    .into_iter()
    .filter(|(_, v)| *v != 0)
    .map(|(name, v)| format!("{name}={v}"))
    .collect();
    if parts.is_empty() {
        "datetime.timedelta(0)".into()
    } else {
        format!("datetime.timedelta({})", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn show(cell: Json, ty: &str) -> Option<String> {
        python_str(&cell, &DuckType::parse(ty))
    }

    #[test]
    fn floats_print_like_python_repr() {
        let cases = [
            (2.0, "2.0"),
            (2.5, "2.5"),
            (1e16, "1e+16"),
            (1e-5, "1e-05"),
            (123456789.123, "123456789.123"),
            (-0.0, "-0.0"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (1.5e-7, "1.5e-07"),
            (-2.5e300, "-2.5e+300"),
            (f64::from(0.1f32), "0.10000000149011612"),
        ];
        for (value, expected) in cases {
            assert_eq!(float_repr(value), expected, "{value:e}");
        }
    }

    #[test]
    fn reference_types_print_like_motherduck() {
        // Values and expected text from ../shared/reference/motherduck-0.8.1/v08_more_types.txt.
        assert_eq!(
            show(json!("2024-01-02T03:04:05.123"), "TIMESTAMP").unwrap(),
            "2024-01-02 03:04:05.123000"
        );
        assert_eq!(show(json!("P1D"), "INTERVAL").unwrap(), "1 day, 0:00:00");
        assert_eq!(show(json!("ab"), "BLOB").unwrap(), "ab");
        assert_eq!(show(json!("03:04:05"), "TIME").unwrap(), "03:04:05");
        assert_eq!(show(json!(["x", "y"]), "VARCHAR[]").unwrap(), "['x', 'y']");
        assert_eq!(
            show(json!([{"key": "k", "value": 1}]), "MAP(VARCHAR, INTEGER)").unwrap(),
            "{'k': 1}"
        );
        assert_eq!(
            show(
                json!("2024-01-02T03:04:05+00:00"),
                "TIMESTAMP WITH TIME ZONE"
            )
            .unwrap(),
            "2024-01-02 03:04:05+00:00"
        );
        assert_eq!(show(json!(-0.0), "DOUBLE").unwrap(), "-0.0");
        assert_eq!(
            show(json!("123456789012345678901234567890"), "HUGEINT").unwrap(),
            "123456789012345678901234567890"
        );
        assert_eq!(show(json!("3.14"), "DECIMAL(3,2)").unwrap(), "3.14");
        assert_eq!(show(json!(true), "BOOLEAN").unwrap(), "True");
        assert_eq!(show(json!("NaN"), "DOUBLE").unwrap(), "nan");
        assert_eq!(show(json!(null), "INTEGER"), None);
    }

    #[test]
    fn nested_values_use_python_repr() {
        assert_eq!(
            show(
                json!({"a": 1, "b": "it's", "c": null}),
                "STRUCT(a INTEGER, b VARCHAR, c DOUBLE)"
            )
            .unwrap(),
            "{'a': 1, 'b': \"it's\", 'c': None}"
        );
        assert_eq!(
            show(json!(["1.50"]), "DECIMAL(3,2)[]").unwrap(),
            "[Decimal('1.50')]"
        );
        assert_eq!(
            show(json!(["2024-01-02"]), "DATE[]").unwrap(),
            "[datetime.date(2024, 1, 2)]"
        );
        assert_eq!(
            show(json!(["2024-01-02T03:04:00"]), "TIMESTAMP[]").unwrap(),
            "[datetime.datetime(2024, 1, 2, 3, 4)]"
        );
        assert_eq!(show(json!([1.0, null]), "DOUBLE[]").unwrap(), "[1.0, None]");
    }

    #[test]
    fn decimals_switch_to_scientific_like_python() {
        assert_eq!(decimal_str("0.0000001"), "1E-7");
        assert_eq!(decimal_str("-0.00000010"), "-1.0E-7");
        assert_eq!(decimal_str("0.000001"), "0.000001");
        assert_eq!(decimal_str("0.000"), "0.000");
        assert_eq!(decimal_str("12.50"), "12.50");
    }

    #[test]
    fn intervals_print_like_timedelta() {
        assert_eq!(timedelta_str("P2DT3723.5S"), "2 days, 1:02:03.500000");
        assert_eq!(timedelta_str("P1M"), "30 days, 0:00:00");
        assert_eq!(timedelta_str("PT0S"), "0:00:00");
        assert_eq!(timedelta_str("P-1D"), "-1 day, 0:00:00");
    }
}

//! The seeded row generator: plausible, key-respecting rows for every table of a schema,
//! without a language model and without reading production.
//!
//! Values follow column names and types (names, cities, countries, codes, dates, coordinates,
//! amounts); primary keys are unique; child rows point at existing parent rows, with a skew so
//! that some parents are popular and aggregates have something to rank. The same seed always
//! gives the same rows.

use std::collections::{BTreeMap, HashMap, HashSet};

use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use sqlrft_core::DuckType;
use sqlrft_core::types::IntegerKind;

use crate::schema::{Column, Schema, Table, singular};
use crate::vocabulary::{self as vocab, Place};

/// One generated value, before it is appended to DuckDB (which casts text to the column type).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Cell {
    /// A key for equality and uniqueness checks (floats by their bits).
    pub(crate) fn key(&self) -> String {
        match self {
            Cell::Null => "\u{0}null".into(),
            Cell::Bool(b) => b.to_string(),
            Cell::Int(i) => i.to_string(),
            Cell::Float(f) => {
                if f.fract() == 0.0 && f.abs() < 1e15 {
                    (*f as i64).to_string()
                } else {
                    f.to_string()
                }
            }
            Cell::Text(s) => s.clone(),
        }
    }
}

/// Rows generated for one table, columns in schema order.
#[derive(Debug, Clone)]
pub(crate) struct GeneratedTable {
    pub(crate) name: String,
    pub(crate) columns: Vec<String>,
    pub(crate) rows: Vec<Vec<Cell>>,
}

/// How many rows each table gets.
#[derive(Debug, Clone)]
pub(crate) struct RowPlan {
    pub(crate) default_rows: usize,
    /// Per-table overrides, by table name (case-insensitive).
    pub(crate) per_table: BTreeMap<String, usize>,
}

impl RowPlan {
    /// `rows` rows in every table.
    #[cfg(test)]
    pub(crate) fn uniform(rows: usize) -> Self {
        Self {
            default_rows: rows,
            per_table: BTreeMap::new(),
        }
    }

    pub(crate) fn rows_for(&self, table: &str) -> usize {
        self.per_table
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(table))
            .map(|(_, rows)| *rows)
            .unwrap_or(self.default_rows)
    }
}

/// What kind of value a column holds, guessed from its name and type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Semantic {
    PersonName,
    FirstName,
    LastName,
    AirportName,
    AirlineName,
    AircraftName,
    CompanyName,
    City,
    Country,
    CountryCode,
    Iata,
    AirlineIata,
    Icao,
    Code,
    Callsign,
    Email,
    Phone,
    YesNo,
    Dst,
    TzName,
    Category,
    Status,
    Text,
    Alias,
    Equipment,
    Latitude,
    Longitude,
    Altitude,
    UtcOffset,
    Money,
    Quantity,
    Stops,
    Year,
    Age,
    Rating,
    Number,
    Boolean,
    Date,
    Timestamp,
    Time,
    Uuid,
    Unsupported,
}

fn semantic_of(table: &Table, column: &Column) -> Semantic {
    let name = column.name.to_ascii_lowercase();
    let entity = singular(&table.name);
    let ty = column.duck_type();
    let has = |w: &str| name.split('_').any(|part| part == w);
    match ty {
        DuckType::Boolean => return Semantic::Boolean,
        DuckType::Date => return Semantic::Date,
        DuckType::Timestamp(_) | DuckType::TimestampTz => return Semantic::Timestamp,
        DuckType::Time | DuckType::TimeTz => return Semantic::Time,
        DuckType::Uuid => return Semantic::Uuid,
        DuckType::Varchar => {}
        t if t.is_numeric() => {
            return if name.starts_with("lat") {
                Semantic::Latitude
            } else if name.starts_with("lon") || name.starts_with("lng") {
                Semantic::Longitude
            } else if has("altitude") || has("elevation") {
                Semantic::Altitude
            } else if has("timezone") || has("tz") || name == "utc_offset" {
                Semantic::UtcOffset
            } else if has("stops") {
                Semantic::Stops
            } else if has("year") {
                Semantic::Year
            } else if has("age") {
                Semantic::Age
            } else if has("rating") || has("score") || has("stars") {
                Semantic::Rating
            } else if [
                "price", "amount", "cost", "total", "revenue", "salary", "fare", "fee", "balance",
                "budget",
            ]
            .iter()
            .any(|w| has(w))
            {
                Semantic::Money
            } else if [
                "quantity", "qty", "count", "seats", "capacity", "num", "number",
            ]
            .iter()
            .any(|w| has(w))
            {
                Semantic::Quantity
            } else {
                Semantic::Number
            };
        }
        _ => return Semantic::Unsupported,
    }
    // Text columns.
    let person_table = [
        "customer",
        "user",
        "employee",
        "passenger",
        "person",
        "people",
        "student",
        "author",
        "member",
        "pilot",
        "staff",
    ]
    .iter()
    .any(|w| entity.contains(w));
    if has("email") {
        Semantic::Email
    } else if has("phone") {
        Semantic::Phone
    } else if name == "first_name" || name == "firstname" {
        Semantic::FirstName
    } else if name == "last_name" || name == "lastname" || name == "surname" {
        Semantic::LastName
    } else if name == "iso_code" || name == "iso" || name == "country_code" || name == "iso2" {
        Semantic::CountryCode
    } else if has("iata") && entity.contains("airline") {
        Semantic::AirlineIata
    } else if has("iata") {
        Semantic::Iata
    } else if has("icao") {
        Semantic::Icao
    } else if has("callsign") {
        Semantic::Callsign
    } else if has("country") {
        Semantic::Country
    } else if has("city") {
        Semantic::City
    } else if name == "dst" {
        Semantic::Dst
    } else if name == "tz_db" || has("timezone") || name == "tz" {
        Semantic::TzName
    } else if name == "active"
        || name.starts_with("is_")
        || name.starts_with("has_")
        || name == "codeshare"
    {
        Semantic::YesNo
    } else if has("status") {
        Semantic::Status
    } else if has("type") || has("category") || has("class") || has("source") || has("kind") {
        Semantic::Category
    } else if has("alias") {
        Semantic::Alias
    } else if has("equipment") || has("aircraft") {
        Semantic::Equipment
    } else if has("code") || name.ends_with("_id") {
        Semantic::Code
    } else if has("name") || name == "title" || name == "model" {
        if person_table {
            Semantic::PersonName
        } else if entity.contains("airport") {
            Semantic::AirportName
        } else if entity.contains("airline") || entity.contains("carrier") {
            Semantic::AirlineName
        } else if entity.contains("plane") || entity.contains("aircraft") {
            Semantic::AircraftName
        } else if entity.contains("countr") {
            Semantic::Country
        } else if entity.contains("city") {
            Semantic::City
        } else {
            Semantic::CompanyName
        }
    } else {
        Semantic::Text
    }
}

/// How a column gets its values.
#[derive(Debug, Clone)]
enum Source {
    /// 1, 2, 3, … (an integer primary key).
    Serial,
    /// A column of a foreign key: copied from a chosen parent row.
    Parent {
        fk: usize,
        position: usize,
    },
    /// A code column beside a foreign key (`routes.airline` beside `routes.airline_id`): the
    /// parent's code, as denormalised schemas like OpenFlights store it.
    ParentCode {
        fk: usize,
        parent_column: usize,
    },
    Value(Semantic),
}

/// Generates every table of `schema`, parents first, deterministically from `seed`.
pub(crate) fn generate(schema: &Schema, plan: &RowPlan, seed: u64) -> Vec<GeneratedTable> {
    let mut done: HashMap<String, GeneratedTable> = HashMap::new();
    let mut order = Vec::new();
    for table in schema.tables_parents_first() {
        let generated = generate_table(schema, table, plan.rows_for(&table.name), seed, &done);
        order.push(table.name.to_ascii_lowercase());
        done.insert(table.name.to_ascii_lowercase(), generated);
    }
    // Back in schema order, which is how users listed them.
    schema
        .tables
        .iter()
        .filter_map(|t| done.remove(&t.name.to_ascii_lowercase()))
        .collect()
}

fn table_rng(seed: u64, table: &str) -> ChaCha8Rng {
    let digest = Sha256::digest(format!("{seed}:{}", table.to_ascii_lowercase()));
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(&digest);
    ChaCha8Rng::from_seed(bytes)
}

fn generate_table(
    schema: &Schema,
    table: &Table,
    rows: usize,
    seed: u64,
    done: &HashMap<String, GeneratedTable>,
) -> GeneratedTable {
    let mut rng = table_rng(seed, &table.name);
    let column_index = |name: &str| {
        table
            .columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    };

    // Foreign keys whose parent rows exist (self-references and cycles may not have any yet).
    struct ParentRef<'a> {
        parent: &'a GeneratedTable,
        parent_columns: Vec<usize>,
        /// Parent rows in popularity order: a random permutation so that popularity does not
        /// simply follow ids.
        ranking: Vec<usize>,
    }
    let parents: Vec<Option<ParentRef>> = table
        .foreign_keys
        .iter()
        .map(|fk| {
            let parent = done.get(&fk.references_table.to_ascii_lowercase())?;
            let parent_columns = fk
                .references_columns
                .iter()
                .map(|c| {
                    parent
                        .columns
                        .iter()
                        .position(|p| p.eq_ignore_ascii_case(c))
                })
                .collect::<Option<Vec<_>>>()?;
            // Only parent rows whose key is complete can be referenced.
            let mut ranking: Vec<usize> = (0..parent.rows.len())
                .filter(|&r| {
                    parent_columns
                        .iter()
                        .all(|&c| parent.rows[r][c] != Cell::Null)
                })
                .collect();
            if ranking.is_empty() {
                return None;
            }
            ranking.shuffle(&mut rng);
            Some(ParentRef {
                parent,
                parent_columns,
                ranking,
            })
        })
        .collect();

    let pk_columns: HashSet<usize> = table
        .primary_key
        .iter()
        .filter_map(|c| column_index(c))
        .collect();
    // Columns other tables point at must be unique, or the references would be ambiguous.
    let mut unique_columns: HashSet<usize> = pk_columns.clone();
    for other in &schema.tables {
        for fk in &other.foreign_keys {
            if fk.references_table.eq_ignore_ascii_case(&table.name)
                && fk.references_columns.len() == 1
                && let Some(i) = column_index(&fk.references_columns[0])
            {
                unique_columns.insert(i);
            }
        }
    }

    let sources: Vec<Source> = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            for (f, fk) in table.foreign_keys.iter().enumerate() {
                if let Some(position) = fk
                    .columns
                    .iter()
                    .position(|c| c.eq_ignore_ascii_case(&column.name))
                {
                    return Source::Parent { fk: f, position };
                }
            }
            if pk_columns.len() == 1
                && pk_columns.contains(&i)
                && matches!(column.duck_type(), DuckType::Integer(_))
            {
                return Source::Serial;
            }
            if column.duck_type() == DuckType::Varchar
                && let Some(f) = table.foreign_keys.iter().position(|fk| {
                    fk.columns.len() == 1
                        && fk.columns[0].eq_ignore_ascii_case(&format!("{}_id", column.name))
                })
                && let Some(Some(parent)) = parents.get(f)
            {
                let code = ["iata", "code", "icao", "name"].iter().find_map(|want| {
                    parent
                        .parent
                        .columns
                        .iter()
                        .position(|p| p.eq_ignore_ascii_case(want))
                });
                if let Some(parent_column) = code {
                    return Source::ParentCode {
                        fk: f,
                        parent_column,
                    };
                }
            }
            Source::Value(semantic_of(table, column))
        })
        .collect();

    let mut seen: Vec<HashSet<String>> = vec![HashSet::new(); table.columns.len()];
    let mut out = Vec::with_capacity(rows);
    // Tables of places (countries, cities) walk the place list so that names repeat late.
    let mut place_cursor: Vec<usize> = (0..vocab::PLACES.len())
        .filter(|&i| {
            vocab::PLACES[..i]
                .iter()
                .all(|p| p.country != vocab::PLACES[i].country)
        })
        .collect();
    place_cursor.shuffle(&mut rng);
    let country_table = singular(&table.name).contains("countr");

    for row_number in 0..rows {
        let mut row = vec![Cell::Null; table.columns.len()];
        let mut chosen_parents: Vec<Option<usize>> = vec![None; table.foreign_keys.len()];
        for (f, parent) in parents.iter().enumerate() {
            let Some(parent) = parent else { continue };
            let all_nullable = table.foreign_keys[f]
                .columns
                .iter()
                .all(|c| table.column(c).is_some_and(|c| c.nullable));
            if all_nullable && rng.random_bool(0.02) {
                continue;
            }
            // Quadratic skew: the first parents in the ranking get most children.
            let u: f64 = rng.random();
            let pick = ((u * u) * parent.ranking.len() as f64) as usize;
            chosen_parents[f] = Some(parent.ranking[pick.min(parent.ranking.len() - 1)]);
        }

        // The row's place: taken from a country or city the row already references, else drawn.
        let mut place: Option<Place> = None;
        for (i, source) in sources.iter().enumerate() {
            if let Source::Parent { fk, position } = source
                && let (Some(parent), Some(r)) = (&parents[*fk], chosen_parents[*fk])
            {
                let cell = parent.parent.rows[r][parent.parent_columns[*position]].clone();
                if let Cell::Text(text) = &cell
                    && place.is_none()
                {
                    let matching: Vec<&Place> = vocab::PLACES
                        .iter()
                        .filter(|p| p.country == text || p.city == text || p.iso2 == text)
                        .collect();
                    place = matching.choose(&mut rng).map(|p| **p);
                }
                row[i] = cast_to(cell, &table.columns[i]);
            }
        }
        let place = place.unwrap_or_else(|| {
            if country_table {
                vocab::PLACES[place_cursor[row_number % place_cursor.len()]]
            } else {
                *vocab::PLACES.choose(&mut rng).expect("places")
            }
        });

        for (i, source) in sources.iter().enumerate() {
            let column = &table.columns[i];
            let cell = match source {
                Source::Parent { .. } => continue,
                Source::Serial => Cell::Int(row_number as i64 + 1),
                Source::ParentCode { fk, parent_column } => {
                    match (&parents[*fk], chosen_parents[*fk]) {
                        (Some(parent), Some(r)) => parent.parent.rows[r][*parent_column].clone(),
                        _ => Cell::Null,
                    }
                }
                Source::Value(semantic) => {
                    let key_like = unique_columns.contains(&i);
                    if column.nullable && !key_like && rng.random_bool(null_rate(*semantic)) {
                        Cell::Null
                    } else {
                        let mut value = value_for(*semantic, &place, &mut rng);
                        if key_like {
                            value = make_unique(
                                value, &seen[i], row_number, &mut rng, *semantic, &place,
                            );
                        }
                        value
                    }
                }
            };
            row[i] = cast_to(cell, column);
        }
        for (i, cell) in row.iter().enumerate() {
            if unique_columns.contains(&i) {
                seen[i].insert(cell.key());
            }
        }
        out.push(row);
    }

    GeneratedTable {
        name: table.name.clone(),
        columns: table.columns.iter().map(|c| c.name.clone()).collect(),
        rows: out,
    }
}

fn null_rate(semantic: Semantic) -> f64 {
    match semantic {
        Semantic::Alias => 0.6,
        Semantic::YesNo => 0.05,
        Semantic::Unsupported => 1.0,
        _ => 0.03,
    }
}

fn make_unique(
    mut value: Cell,
    seen: &HashSet<String>,
    row_number: usize,
    rng: &mut ChaCha8Rng,
    semantic: Semantic,
    place: &Place,
) -> Cell {
    for _ in 0..8 {
        if !seen.contains(&value.key()) {
            return value;
        }
        value = value_for(semantic, place, rng);
    }
    // Still taken: make it unique by construction.
    match value {
        Cell::Int(_) => Cell::Int(row_number as i64 + 1),
        Cell::Float(_) => Cell::Float(row_number as f64 + 1.0),
        Cell::Text(text) => Cell::Text(match semantic {
            Semantic::Iata
            | Semantic::AirlineIata
            | Semantic::Icao
            | Semantic::Code
            | Semantic::CountryCode => {
                format!(
                    "{}{}",
                    text.chars().take(1).collect::<String>(),
                    base36(row_number)
                )
            }
            _ => format!("{text} {}", row_number + 1),
        }),
        other => other,
    }
}

fn base36(mut n: usize) -> String {
    let digits = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut out = Vec::new();
    loop {
        out.push(digits[n % 36]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

fn letters(rng: &mut ChaCha8Rng, n: usize) -> String {
    (0..n)
        .map(|_| rng.random_range(b'A'..=b'Z') as char)
        .collect()
}

fn value_for(semantic: Semantic, place: &Place, rng: &mut ChaCha8Rng) -> Cell {
    let pick =
        |rng: &mut ChaCha8Rng, list: &[&str]| list.choose(rng).expect("non-empty list").to_string();
    let text = match semantic {
        Semantic::PersonName => format!(
            "{} {}",
            pick(rng, vocab::FIRST_NAMES),
            pick(rng, vocab::LAST_NAMES)
        ),
        Semantic::FirstName => pick(rng, vocab::FIRST_NAMES),
        Semantic::LastName => pick(rng, vocab::LAST_NAMES),
        Semantic::AirportName => {
            if rng.random_bool(0.5) {
                format!("{} {}", place.city, pick(rng, vocab::AIRPORT_SUFFIXES))
            } else {
                format!(
                    "{} {} {}",
                    place.city,
                    pick(rng, vocab::LAST_NAMES),
                    pick(rng, vocab::AIRPORT_SUFFIXES)
                )
            }
        }
        Semantic::AirlineName => {
            if rng.random_bool(0.3) {
                format!("{} {}", place.country, pick(rng, vocab::AIRLINE_SUFFIXES))
            } else {
                format!(
                    "{} {}",
                    pick(rng, vocab::BRAND_WORDS),
                    pick(rng, vocab::AIRLINE_SUFFIXES)
                )
            }
        }
        Semantic::AircraftName => vocab::AIRCRAFT.choose(rng).expect("aircraft").0.to_string(),
        Semantic::CompanyName => format!(
            "{} {}",
            pick(rng, vocab::BRAND_WORDS),
            pick(rng, vocab::LOREM)
        ),
        Semantic::City => place.city.to_string(),
        Semantic::Country => place.country.to_string(),
        Semantic::CountryCode => place.iso2.to_string(),
        Semantic::Iata => letters(rng, 3),
        Semantic::AirlineIata => letters(rng, 2),
        Semantic::Icao => letters(rng, 4),
        Semantic::Code => letters(rng, 3),
        Semantic::Callsign => pick(rng, vocab::BRAND_WORDS).to_ascii_uppercase(),
        Semantic::Email => format!(
            "{}.{}@example.com",
            pick(rng, vocab::FIRST_NAMES).to_ascii_lowercase(),
            pick(rng, vocab::LAST_NAMES).to_ascii_lowercase()
        ),
        Semantic::Phone => format!("+1-555-{:04}", rng.random_range(0..10_000)),
        Semantic::YesNo => if rng.random_bool(0.7) { "Y" } else { "N" }.to_string(),
        Semantic::Dst => pick(rng, &["E", "A", "S", "O", "Z", "N", "U"]),
        Semantic::TzName => place.tz.to_string(),
        Semantic::Category => pick(rng, vocab::CATEGORY_WORDS),
        Semantic::Status => pick(rng, vocab::STATUS_WORDS),
        Semantic::Text => format!("{} {}", pick(rng, vocab::LOREM), pick(rng, vocab::LOREM)),
        Semantic::Alias => pick(rng, vocab::BRAND_WORDS),
        Semantic::Equipment => {
            let n = rng.random_range(1..=2);
            (0..n)
                .map(|_| vocab::AIRCRAFT.choose(rng).expect("aircraft").1)
                .collect::<Vec<_>>()
                .join(" ")
        }
        Semantic::Latitude => {
            return Cell::Float(round(place.latitude + rng.random_range(-0.5..0.5), 6));
        }
        Semantic::Longitude => {
            return Cell::Float(round(place.longitude + rng.random_range(-0.5..0.5), 6));
        }
        Semantic::Altitude => {
            return Cell::Int(rng.random_range(0..2500) * if rng.random_bool(0.1) { 3 } else { 1 });
        }
        Semantic::UtcOffset => return Cell::Float(place.utc_offset),
        Semantic::Money => return Cell::Float(round(rng.random_range(5.0..2000.0), 2)),
        Semantic::Quantity => return Cell::Int(rng.random_range(1..500)),
        Semantic::Stops => return Cell::Int(if rng.random_bool(0.9) { 0 } else { 1 }),
        Semantic::Year => return Cell::Int(rng.random_range(1950..=2025)),
        Semantic::Age => return Cell::Int(rng.random_range(18..=90)),
        Semantic::Rating => return Cell::Int(rng.random_range(1..=5)),
        Semantic::Number => return Cell::Int(rng.random_range(0..1000)),
        Semantic::Boolean => return Cell::Bool(rng.random_bool(0.5)),
        Semantic::Date => {
            let day = rng.random_range(0..365 * 6);
            let date = chrono::NaiveDate::from_ymd_opt(2019, 1, 1).expect("date")
                + chrono::Duration::days(day);
            date.format("%Y-%m-%d").to_string()
        }
        Semantic::Timestamp => {
            let seconds = rng.random_range(0..86_400 * 365 * 6);
            let at = chrono::NaiveDate::from_ymd_opt(2019, 1, 1)
                .expect("date")
                .and_hms_opt(0, 0, 0)
                .expect("time")
                + chrono::Duration::seconds(seconds);
            at.format("%Y-%m-%d %H:%M:%S").to_string()
        }
        Semantic::Time => format!(
            "{:02}:{:02}:00",
            rng.random_range(0..24),
            rng.random_range(0..60) / 5 * 5
        ),
        Semantic::Uuid => {
            let bytes: [u8; 16] = rng.random();
            let hex = hex::encode(bytes);
            format!(
                "{}-{}-4{}-a{}-{}",
                &hex[0..8],
                &hex[8..12],
                &hex[13..16],
                &hex[17..20],
                &hex[20..32]
            )
        }
        Semantic::Unsupported => return Cell::Null,
    };
    Cell::Text(text)
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// Fits a cell to its column's type: numbers into integer or decimal ranges, anything into
/// text for text columns.
pub(crate) fn cast_to(cell: Cell, column: &Column) -> Cell {
    let ty = column.duck_type();
    match (cell, &ty) {
        (Cell::Null, _) => Cell::Null,
        (Cell::Float(f), DuckType::Integer(kind)) => Cell::Int(clamp_int(f.round() as i64, *kind)),
        (Cell::Int(i), DuckType::Integer(kind)) => Cell::Int(clamp_int(i, *kind)),
        (Cell::Int(i), DuckType::Float | DuckType::Double) => Cell::Float(i as f64),
        (Cell::Float(f), DuckType::Decimal { width, scale }) => decimal_text(f, *width, *scale),
        (Cell::Int(i), DuckType::Decimal { width, scale }) => {
            decimal_text(i as f64, *width, *scale)
        }
        (Cell::Int(i), DuckType::Varchar) => Cell::Text(i.to_string()),
        (Cell::Float(f), DuckType::Varchar) => Cell::Text(f.to_string()),
        (Cell::Bool(b), DuckType::Varchar) => Cell::Text(if b { "Y" } else { "N" }.into()),
        (Cell::Text(t), DuckType::Integer(kind)) => Cell::Int(clamp_int(t.len() as i64, *kind)),
        (Cell::Text(t), DuckType::Float | DuckType::Double) => Cell::Float(t.len() as f64),
        (cell, _) => cell,
    }
}

fn decimal_text(value: f64, width: u8, scale: u8) -> Cell {
    let max = 10f64.powi(width as i32 - scale as i32) - 1.0;
    let clamped = value.clamp(-max, max);
    Cell::Text(format!("{:.*}", scale as usize, clamped))
}

fn clamp_int(value: i64, kind: IntegerKind) -> i64 {
    let (lo, hi) = match kind {
        IntegerKind::TinyInt => (i8::MIN as i64, i8::MAX as i64),
        IntegerKind::SmallInt => (i16::MIN as i64, i16::MAX as i64),
        IntegerKind::Int => (i32::MIN as i64, i32::MAX as i64),
        IntegerKind::UTinyInt => (0, u8::MAX as i64),
        IntegerKind::USmallInt => (0, u16::MAX as i64),
        IntegerKind::UInt => (0, u32::MAX as i64),
        IntegerKind::UBigInt | IntegerKind::UHugeInt => (0, i64::MAX),
        IntegerKind::BigInt | IntegerKind::HugeInt => (i64::MIN, i64::MAX),
    };
    value.clamp(lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::tests::openflights;
    use crate::schema::{ForeignKey, KeyOrigin};

    fn keyed_openflights() -> Schema {
        let mut schema = openflights();
        schema.infer_keys();
        schema
    }

    fn column_values<'a>(table: &'a GeneratedTable, name: &str) -> Vec<&'a Cell> {
        let i = table.columns.iter().position(|c| c == name).unwrap();
        table.rows.iter().map(|r| &r[i]).collect()
    }

    #[test]
    fn same_seed_same_rows_other_seed_other_rows() {
        let schema = keyed_openflights();
        let a = generate(&schema, &RowPlan::uniform(50), 7);
        let b = generate(&schema, &RowPlan::uniform(50), 7);
        let c = generate(&schema, &RowPlan::uniform(50), 8);
        for ((x, y), z) in a.iter().zip(&b).zip(&c) {
            assert_eq!(x.rows, y.rows, "{}", x.name);
            assert_ne!(x.rows, z.rows, "{}", x.name);
        }
    }

    #[test]
    fn primary_keys_are_unique_and_children_point_at_parents() {
        let schema = keyed_openflights();
        let plan = RowPlan {
            default_rows: 200,
            per_table: [("routes".to_string(), 1000)].into(),
        };
        let tables = generate(&schema, &plan, 1);
        let by_name: HashMap<&str, &GeneratedTable> =
            tables.iter().map(|t| (t.name.as_str(), t)).collect();
        assert_eq!(by_name["routes"].rows.len(), 1000);
        for table in &schema.tables {
            let generated = by_name[table.name.as_str()];
            for key in &table.primary_key {
                let values = column_values(generated, key);
                let distinct: HashSet<String> = values.iter().map(|c| c.key()).collect();
                assert_eq!(
                    distinct.len(),
                    values.len(),
                    "{}.{key} has duplicates",
                    table.name
                );
                assert!(values.iter().all(|c| **c != Cell::Null));
            }
            for fk in &table.foreign_keys {
                let parent = by_name[fk.references_table.as_str()];
                let parent_keys: HashSet<String> = column_values(parent, &fk.references_columns[0])
                    .into_iter()
                    .map(Cell::key)
                    .collect();
                let children = column_values(generated, &fk.columns[0]);
                let dangling: Vec<_> = children
                    .iter()
                    .filter(|c| ***c != Cell::Null && !parent_keys.contains(&c.key()))
                    .collect();
                assert!(
                    dangling.is_empty(),
                    "{}.{} dangling: {dangling:?}",
                    table.name,
                    fk.columns[0]
                );
                assert!(children.iter().any(|c| **c != Cell::Null));
            }
        }
    }

    #[test]
    fn parents_have_uneven_popularity() {
        let schema = keyed_openflights();
        let tables = generate(&schema, &RowPlan::uniform(300), 3);
        let routes = tables.iter().find(|t| t.name == "routes").unwrap();
        let mut counts: HashMap<String, usize> = HashMap::new();
        for cell in column_values(routes, "airline_id") {
            *counts.entry(cell.key()).or_default() += 1;
        }
        let max = counts.values().max().unwrap();
        let min = counts.values().min().unwrap();
        assert!(max > min, "all airlines equally popular: {counts:?}");
    }

    #[test]
    fn values_look_like_their_column_names() {
        let schema = keyed_openflights();
        let tables = generate(&schema, &RowPlan::uniform(100), 11);
        let airports = tables.iter().find(|t| t.name == "airports").unwrap();
        for row in &airports.rows {
            let get = |name: &str| &row[airports.columns.iter().position(|c| c == name).unwrap()];
            if let (Cell::Text(city), Cell::Text(country)) = (get("city"), get("country"))
                && vocab::PLACES.iter().any(|p| p.country == country)
            {
                // A coherent place: the airport's city is in the airport's country.
                let place = vocab::PLACES
                    .iter()
                    .find(|p| p.city == city && p.country == country)
                    .unwrap_or_else(|| panic!("{city} is not in {country}"));
                if let Cell::Float(lat) = get("latitude") {
                    assert!((lat - place.latitude).abs() <= 0.5 + 1e-9, "{city}: {lat}");
                }
            }
            if let Cell::Text(iata) = get("iata") {
                assert!(
                    iata.len() == 3 && iata.chars().all(|c| c.is_ascii_alphanumeric()),
                    "{iata}"
                );
            }
        }
        // Route codes are the referenced airline's code, as in OpenFlights.
        let airlines = tables.iter().find(|t| t.name == "airlines").unwrap();
        let routes = tables.iter().find(|t| t.name == "routes").unwrap();
        let id_of = |t: &GeneratedTable, c: &str| t.columns.iter().position(|x| x == c).unwrap();
        for route in &routes.rows {
            let Cell::Float(id) = route[id_of(routes, "airline_id")] else {
                continue;
            };
            let airline = airlines
                .rows
                .iter()
                .find(|a| a[id_of(airlines, "airline_id")] == Cell::Int(id as i64))
                .unwrap();
            assert_eq!(
                route[id_of(routes, "airline")],
                airline[id_of(airlines, "iata")]
            );
        }
    }

    #[test]
    fn composite_foreign_keys_copy_one_parent_row() {
        let mut schema = Schema {
            name: "t".into(),
            source: String::new(),
            tables: vec![
                Table {
                    primary_key: vec!["a".into(), "b".into()],
                    ..crate::schema::tests::table("parent", &[("a", "INTEGER"), ("b", "VARCHAR")])
                },
                Table {
                    foreign_keys: vec![ForeignKey {
                        columns: vec!["x".into(), "y".into()],
                        references_table: "parent".into(),
                        references_columns: vec!["a".into(), "b".into()],
                        origin: KeyOrigin::Declared,
                    }],
                    ..crate::schema::tests::table("child", &[("x", "INTEGER"), ("y", "VARCHAR")])
                },
            ],
        };
        schema.tables[1]
            .columns
            .iter_mut()
            .for_each(|c| c.nullable = false);
        let tables = generate(&schema, &RowPlan::uniform(40), 5);
        let pairs: HashSet<(String, String)> = tables[0]
            .rows
            .iter()
            .map(|r| (r[0].key(), r[1].key()))
            .collect();
        assert_eq!(pairs.len(), 40);
        for row in &tables[1].rows {
            assert!(pairs.contains(&(row[0].key(), row[1].key())), "{row:?}");
        }
    }

    #[test]
    fn decimals_fit_their_width() {
        let column = crate::schema::tests::column("price", "DECIMAL(5,2)");
        assert_eq!(
            cast_to(Cell::Float(123456.789), &column),
            Cell::Text("999.00".into())
        );
        assert_eq!(
            cast_to(Cell::Float(12.3456), &column),
            Cell::Text("12.35".into())
        );
        let tiny = crate::schema::tests::column("n", "TINYINT");
        assert_eq!(cast_to(Cell::Int(1000), &tiny), Cell::Int(127));
    }
}

//! LLM-written sandbox rows, the tutorial's method done well: a JSON schema built from the
//! table's columns (foreign keys as enums of existing parent keys), small chunks, recent rows in
//! the prompt to avoid repeats, concurrent requests, each chunk journaled as it arrives; then
//! type coercion, deduplication and foreign-key repair. Cells the model got wrong or left out
//! keep the seeded generator's value, so the sandbox always has every row and valid keys.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::Result;
use futures::StreamExt;
use rand::SeedableRng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sqlrft_core::DuckType;
use sqlrft_llm::{ChatRequest, JsonSchemaFormat, Message};

use crate::schema::{Column, Table};
use crate::stage::{LlmRun, count_failure, open_journal};
use crate::synthetic::{Cell, GeneratedTable, cast_to};

/// One answered chunk, as journaled.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RowChunk {
    pub(crate) table: String,
    pub(crate) chunk: usize,
    pub(crate) rows: Vec<Map<String, Value>>,
}

impl RowChunk {
    fn id(&self) -> String {
        format!("{}#{}", self.table, self.chunk)
    }
}

#[derive(Deserialize)]
struct ChunkAnswer {
    rows: Vec<Map<String, Value>>,
}

/// What the LLM sandbox stage did.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct LlmRowStats {
    pub(crate) chunks: usize,
    pub(crate) failed_chunks: usize,
    /// Rows whose cells came from the model.
    pub(crate) llm_rows: usize,
    /// Cells the model got wrong (type, NULL in NOT NULL) or left out, kept from the generator.
    pub(crate) fallback_cells: usize,
    /// Rows that repeated an earlier row, replaced by generated ones.
    pub(crate) duplicate_rows: usize,
    /// Foreign-key cells pointing at no parent, repointed at an existing parent.
    pub(crate) repaired_foreign_keys: usize,
    pub(crate) first_error: Option<String>,
}

/// Columns the model writes: all but an integer primary key, which we number ourselves.
fn asked_columns(table: &Table) -> Vec<&Column> {
    table
        .columns
        .iter()
        .filter(|c| {
            !(table.primary_key.len() == 1
                && table.primary_key[0] == c.name
                && matches!(c.duck_type(), DuckType::Integer(_)))
        })
        .collect()
}

fn json_type(column: &Column) -> &'static str {
    match column.duck_type() {
        DuckType::Boolean => "boolean",
        DuckType::Integer(_) => "integer",
        DuckType::Float | DuckType::Double | DuckType::Decimal { .. } => "number",
        _ => "string",
    }
}

/// The structured-output schema for one chunk of `table`.
pub(crate) fn chunk_schema(table: &Table, parent_keys: &HashMap<String, Vec<Value>>) -> Value {
    let mut properties = Map::new();
    for column in asked_columns(table) {
        let mut property = json!({"type": [json_type(column), "null"]});
        if !column.nullable {
            property["type"] = json!(json_type(column));
        }
        if let Some(keys) = parent_keys.get(&column.name)
            && keys.len() <= 200
        {
            property["enum"] = Value::Array(keys.clone());
        }
        match column.duck_type() {
            DuckType::Date => property["description"] = json!("a date, YYYY-MM-DD"),
            DuckType::Timestamp(_) | DuckType::TimestampTz => {
                property["description"] = json!("a timestamp, YYYY-MM-DD HH:MM:SS")
            }
            _ => {}
        }
        properties.insert(column.name.clone(), property);
    }
    let required: Vec<&str> = asked_columns(table)
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    json!({
        "type": "object",
        "properties": {
            "rows": {
                "type": "array",
                "items": {"type": "object", "properties": properties, "required": required, "additionalProperties": false}
            }
        },
        "required": ["rows"],
        "additionalProperties": false
    })
}

fn chunk_prompt(
    schema_text: &str,
    table: &Table,
    rows: usize,
    parent_keys: &HashMap<String, Vec<Value>>,
    recent: &[Map<String, Value>],
) -> String {
    let mut prompt = format!(
        "You are a highly intelligent AI data generator. Your task is to create realistic, synthetic rows for a database, consistent with its schema.\n\
         You must answer with a single JSON object that strictly adheres to the provided JSON schema.\n\n\
         The database schema is as follows:\n{schema_text}\n\n\
         Generate {rows} NEW rows for the table `{}`. Values must look real for their column names (names, cities, countries, codes, dates, coordinates, amounts), and each row must be internally consistent.",
        table.name
    );
    for (column, keys) in parent_keys {
        let shown: Vec<String> = keys.iter().take(50).map(Value::to_string).collect();
        prompt.push_str(&format!(
            "\nColumn `{column}` references an existing row: use one of {}.",
            shown.join(", ")
        ));
    }
    if !recent.is_empty() {
        prompt.push_str(
            "\n\nRows already generated for this table (do NOT repeat or closely imitate them):\n",
        );
        for row in recent {
            prompt.push_str(&Value::Object(row.clone()).to_string());
            prompt.push('\n');
        }
    }
    prompt
}

/// Turns a model's JSON value into a cell of `column`'s type, or `None` when it does not fit.
pub(crate) fn coerce(value: &Value, column: &Column) -> Option<Cell> {
    let ty = column.duck_type();
    let cell = match (value, &ty) {
        (Value::Null, _) => return column.nullable.then_some(Cell::Null),
        (Value::Bool(b), DuckType::Boolean) => Cell::Bool(*b),
        (Value::String(s), DuckType::Boolean) => match s.to_ascii_lowercase().as_str() {
            "true" | "y" | "yes" | "1" => Cell::Bool(true),
            "false" | "n" | "no" | "0" => Cell::Bool(false),
            _ => return None,
        },
        (Value::Number(n), DuckType::Integer(_)) => Cell::Int(
            n.as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))?,
        ),
        (Value::String(s), DuckType::Integer(_)) => Cell::Int(s.trim().parse().ok()?),
        (Value::Number(n), t) if t.is_numeric() => Cell::Float(n.as_f64()?),
        (Value::String(s), t) if t.is_numeric() => Cell::Float(s.trim().parse().ok()?),
        (Value::String(s), DuckType::Date) => {
            chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()?;
            Cell::Text(s.trim().to_string())
        }
        (Value::String(s), DuckType::Timestamp(_) | DuckType::TimestampTz) => {
            let s = s.trim().replace('T', " ");
            let ok = [
                "%Y-%m-%d %H:%M:%S",
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%d %H:%M",
            ]
            .iter()
            .any(|f| chrono::NaiveDateTime::parse_from_str(s.trim_end_matches('Z'), f).is_ok());
            if !ok {
                return None;
            }
            Cell::Text(s.trim_end_matches('Z').to_string())
        }
        (Value::String(s), DuckType::Varchar) => Cell::Text(s.clone()),
        (Value::Number(n), DuckType::Varchar) => Cell::Text(n.to_string()),
        (Value::String(s), DuckType::Uuid)
            if s.len() == 36 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-') =>
        {
            Cell::Text(s.clone())
        }
        (Value::String(s), DuckType::Time | DuckType::TimeTz) => {
            chrono::NaiveTime::parse_from_str(s.trim(), "%H:%M:%S")
                .or_else(|_| chrono::NaiveTime::parse_from_str(s.trim(), "%H:%M"))
                .ok()?;
            Cell::Text(s.trim().to_string())
        }
        _ => return None,
    };
    Some(cast_to(cell, column))
}

fn cell_json(cell: &Cell) -> Value {
    match cell {
        Cell::Null => Value::Null,
        Cell::Bool(b) => json!(b),
        Cell::Int(i) => json!(i),
        Cell::Float(f) => json!(f),
        Cell::Text(s) => json!(s),
    }
}

/// Replaces the generator's rows in `tables` with the model's, table by table (parents
/// first, so children see their parents' final keys).
pub(crate) async fn fill(
    run: LlmRun<'_>,
    tables: &mut [GeneratedTable],
    rows_per_call: usize,
    seed: u64,
    journal_path: &Path,
    key: &str,
) -> Result<LlmRowStats> {
    let LlmRun {
        client,
        schema,
        progress,
        ..
    } = run;
    let (mut journal, mut done) = open_journal::<RowChunk>(journal_path, key, RowChunk::id)?;
    let schema_text = schema.to_prompt_text();
    let concurrency = client.config().max_concurrency.max(1);
    let mut stats = LlmRowStats::default();
    let total_chunks: usize = tables
        .iter()
        .map(|t| t.rows.len().div_ceil(rows_per_call))
        .sum();
    progress.set_length(total_chunks as u64);
    let mut finished = 0;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x11aa);

    for table in schema.tables_parents_first() {
        let Some(index) = tables.iter().position(|t| t.name == table.name) else {
            continue;
        };
        let n_rows = tables[index].rows.len();
        let chunks = n_rows.div_ceil(rows_per_call);
        // Parent keys as they finally are (parents were filled before).
        let mut parent_keys: HashMap<String, Vec<Value>> = HashMap::new();
        let mut parent_sets: HashMap<String, Vec<Cell>> = HashMap::new();
        for fk in table.foreign_keys.iter().filter(|fk| fk.columns.len() == 1) {
            let Some(parent) = tables
                .iter()
                .find(|t| t.name.eq_ignore_ascii_case(&fk.references_table))
            else {
                continue;
            };
            let Some(pc) = parent
                .columns
                .iter()
                .position(|c| c.eq_ignore_ascii_case(&fk.references_columns[0]))
            else {
                continue;
            };
            let mut seen = HashSet::new();
            let keys: Vec<Cell> = parent
                .rows
                .iter()
                .map(|r| r[pc].clone())
                .filter(|c| *c != Cell::Null && seen.insert(c.key()))
                .collect();
            parent_keys.insert(fk.columns[0].clone(), keys.iter().map(cell_json).collect());
            parent_sets.insert(fk.columns[0].clone(), keys);
        }
        let format = JsonSchemaFormat::new(
            format!("{}Rows", table.name),
            chunk_schema(table, &parent_keys),
        );

        // Waves of concurrent chunks; each wave sees the rows of the waves before it.
        let todo: Vec<usize> = (0..chunks)
            .filter(|c| !done.contains_key(&format!("{}#{c}", table.name)))
            .collect();
        progress.inc((chunks - todo.len()) as u64);
        for wave in todo.chunks(concurrency) {
            let recent: Vec<Map<String, Value>> = {
                let mut answered: Vec<&RowChunk> =
                    done.values().filter(|c| c.table == table.name).collect();
                answered.sort_by_key(|c| c.chunk);
                answered
                    .iter()
                    .rev()
                    .flat_map(|c| c.rows.iter().cloned())
                    .take(20)
                    .collect()
            };
            let mut stream = futures::stream::iter(wave.iter().copied())
                .map(|chunk| {
                    let rows = rows_per_call.min(n_rows - chunk * rows_per_call);
                    let prompt = chunk_prompt(&schema_text, table, rows, &parent_keys, &recent);
                    let format = format.clone();
                    async move {
                        let request =
                            ChatRequest::new(vec![Message::user(prompt)]).with_temperature(0.7);
                        (
                            chunk,
                            client.chat_json::<ChunkAnswer>(request, format).await,
                        )
                    }
                })
                .buffer_unordered(concurrency);
            while let Some((chunk, answer)) = stream.next().await {
                run.answered(&mut finished)?;
                stats.chunks += 1;
                match answer {
                    Ok(answer) => {
                        let item = RowChunk {
                            table: table.name.clone(),
                            chunk,
                            rows: answer.value.rows,
                        };
                        journal.append(&item)?;
                        done.insert(item.id(), item);
                    }
                    Err(e) => count_failure(&mut stats.failed_chunks, &mut stats.first_error, e),
                }
            }
            journal.sync()?;
        }
        apply(
            table,
            &mut tables[index],
            &done,
            rows_per_call,
            &parent_sets,
            &mut rng,
            &mut stats,
        );
    }
    journal.remove()?;
    if stats.llm_rows == 0 && stats.chunks > 0 {
        anyhow::bail!(
            "the LLM answered none of {} row requests: {}",
            stats.chunks,
            stats.first_error.clone().unwrap_or_default()
        );
    }
    Ok(stats)
}

/// Writes the model's rows over the generator's, keeping generator cells where the model's
/// do not fit, then removes duplicates and repairs foreign keys.
fn apply(
    table: &Table,
    generated: &mut GeneratedTable,
    done: &HashMap<String, RowChunk>,
    rows_per_call: usize,
    parent_keys: &HashMap<String, Vec<Cell>>,
    rng: &mut ChaCha8Rng,
    stats: &mut LlmRowStats,
) {
    let fallback = generated.rows.clone();
    let asked: Vec<usize> = asked_columns(table)
        .iter()
        .filter_map(|c| generated.columns.iter().position(|g| *g == c.name))
        .collect();
    for chunk in done.values().filter(|c| c.table == table.name) {
        for (j, row) in chunk.rows.iter().enumerate() {
            let r = chunk.chunk * rows_per_call + j;
            if j >= rows_per_call || r >= generated.rows.len() {
                break;
            }
            stats.llm_rows += 1;
            for &i in &asked {
                let column = &table.columns[i];
                match row.get(&column.name).and_then(|v| coerce(v, column)) {
                    Some(cell) => generated.rows[r][i] = cell,
                    None => stats.fallback_cells += 1,
                }
            }
        }
    }
    // Duplicates and unique columns: a repeat falls back to the generator's row.
    let unique: Vec<usize> = table
        .primary_key
        .iter()
        .filter_map(|k| generated.columns.iter().position(|c| c == k))
        .collect();
    let mut seen_rows = HashSet::new();
    let mut seen_keys = HashSet::new();
    #[allow(clippy::needless_range_loop)] // rows are replaced by index from `fallback`
    for r in 0..generated.rows.len() {
        let row_key: Vec<String> = asked.iter().map(|&i| generated.rows[r][i].key()).collect();
        let pk: Vec<String> = unique.iter().map(|&i| generated.rows[r][i].key()).collect();
        if !seen_rows.insert(row_key) || (!unique.is_empty() && seen_keys.contains(&pk)) {
            stats.duplicate_rows += 1;
            generated.rows[r] = fallback[r].clone();
            let pk: Vec<String> = unique.iter().map(|&i| generated.rows[r][i].key()).collect();
            if !unique.is_empty() && seen_keys.contains(&pk) {
                // The generator's key is taken too: make it unique by construction.
                for &i in &unique {
                    if let Cell::Text(text) = &generated.rows[r][i] {
                        generated.rows[r][i] = Cell::Text(format!("{text}-{r}"));
                    } else if let Cell::Int(_) = generated.rows[r][i] {
                        generated.rows[r][i] = Cell::Int(r as i64 + 1);
                    }
                }
            }
        }
        seen_keys.insert(
            unique
                .iter()
                .map(|&i| generated.rows[r][i].key())
                .collect::<Vec<_>>(),
        );
    }
    // Foreign keys must point at a parent row.
    for (column, keys) in parent_keys {
        let Some(i) = generated.columns.iter().position(|c| c == column) else {
            continue;
        };
        let valid: HashSet<String> = keys.iter().map(Cell::key).collect();
        let nullable = table.column(column).is_some_and(|c| c.nullable);
        for row in &mut generated.rows {
            let ok = match &row[i] {
                Cell::Null => nullable,
                cell => valid.contains(&cell.key()),
            };
            if !ok && let Some(key) = keys.choose(rng) {
                row[i] = cast_to(key.clone(), &table.columns[i]);
                stats.repaired_foreign_keys += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::tests::column;

    #[test]
    fn coercion_accepts_fitting_values_and_rejects_the_rest() {
        let int = column("n", "INTEGER");
        assert_eq!(coerce(&json!(3), &int), Some(Cell::Int(3)));
        assert_eq!(coerce(&json!("4"), &int), Some(Cell::Int(4)));
        assert_eq!(coerce(&json!(3.5), &int), None);
        assert_eq!(coerce(&json!("x"), &int), None);
        let date = column("d", "DATE");
        assert_eq!(
            coerce(&json!("2024-02-29"), &date),
            Some(Cell::Text("2024-02-29".into()))
        );
        assert_eq!(coerce(&json!("yesterday"), &date), None);
        let mut not_null = column("name", "VARCHAR");
        not_null.nullable = false;
        assert_eq!(coerce(&Value::Null, &not_null), None);
        assert_eq!(
            coerce(&Value::Null, &column("a", "VARCHAR")),
            Some(Cell::Null)
        );
        assert_eq!(
            coerce(&json!("yes"), &column("b", "BOOLEAN")),
            Some(Cell::Bool(true))
        );
    }

    #[test]
    fn chunk_schema_lists_columns_and_parent_keys() {
        let mut schema = crate::schema::tests::openflights();
        schema.infer_keys();
        let routes = schema.table("routes").unwrap();
        let keys = HashMap::from([("airline_id".to_string(), vec![json!(1), json!(2)])]);
        let s = chunk_schema(routes, &keys);
        let props = &s["properties"]["rows"]["items"]["properties"];
        assert_eq!(props["airline_id"]["enum"], json!([1, 2]));
        assert_eq!(props["stops"]["type"], json!(["integer", "null"]));
        let airports = schema.table("airports").unwrap();
        let s = chunk_schema(airports, &HashMap::new());
        assert!(
            s["properties"]["rows"]["items"]["properties"]
                .get("airport_id")
                .is_none(),
            "integer keys are numbered by us"
        );
    }
}

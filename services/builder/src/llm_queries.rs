//! LLM-written queries: the tutorial's prompt, asked in batches concurrently, each batch
//! steered to one complexity class and a few focus tables, each answer journaled as it
//! arrives; answers are then offered to the [`Acceptor`] in batch order, so a resumed run
//! accepts exactly what an uninterrupted one would.

use std::path::Path;

use anyhow::{Result, bail};
use futures::StreamExt;
use rand::SeedableRng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlrft_core::dataset::Complexity;
use sqlrft_llm::{ChatRequest, JsonSchemaFormat, Message};

use crate::queries::Acceptor;
use crate::records::Origin;
use crate::stage::{LlmRun, count_failure, open_journal};

/// One answered batch, as journaled.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct QueryBatch {
    pub(crate) batch: usize,
    pub(crate) class: Complexity,
    pub(crate) queries: Vec<String>,
}

#[derive(Deserialize)]
struct BatchAnswer {
    queries: Vec<String>,
}

/// What the LLM query stage did.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct LlmQueryStats {
    pub(crate) batches: usize,
    pub(crate) failed_batches: usize,
    pub(crate) returned: usize,
    pub(crate) first_error: Option<String>,
}

fn class_description(class: Complexity) -> &'static str {
    match class {
        Complexity::Easy => {
            "EASY: one table, at most one of WHERE / ORDER BY / LIMIT, selecting one column or one aggregate"
        }
        Complexity::Medium => {
            "MEDIUM: two or three clauses, e.g. a join with a filter, or GROUP BY with ORDER BY, several selected columns or conditions"
        }
        Complexity::Hard => {
            "HARD: one nested subquery (IN / EXISTS / scalar) or one set operation (UNION / INTERSECT / EXCEPT), or three clauses such as JOIN + GROUP BY + ORDER BY"
        }
        Complexity::Extra => {
            "EXTRA HARD: several of joins, subqueries, CTEs (WITH), window functions, HAVING and set operations combined"
        }
    }
}

/// The tutorial's query prompt, steered to a class and focus tables.
pub(crate) fn batch_prompt(
    schema_text: &str,
    per_call: usize,
    class: Complexity,
    focus: &[&str],
) -> String {
    format!(
        "You are an expert SQL data analyst. Your task is to generate unique and diverse SQL queries based on the database schema provided.\n\
         The queries should be realistic and cover a range of SQL features (JOINs, GROUP BY, aggregates, subqueries, window functions, CTEs, set operations).\n\
         Ensure you break ties with ORDER BY clauses so that the same queries produce the same results when executed against the database: when a query orders rows, its ORDER BY must end with columns that make the order total. Never use LIMIT without ORDER BY, random() or the current date/time.\n\
         Each query must be a single SELECT statement, valid for DuckDB.\n\n\
         **Database Schema:**\n{schema_text}\n\n\
         Now generate {per_call} new, unique SQL queries of this difficulty — {} — mostly about the tables {}. \
         Return a JSON object {{\"queries\": [...]}} with the SQL texts only.",
        class_description(class),
        focus.join(", ")
    )
}

fn batch_format() -> JsonSchemaFormat {
    JsonSchemaFormat::new(
        "SqlQueryBatch",
        json!({
            "type": "object",
            "properties": {"queries": {"type": "array", "items": {"type": "string"}, "description": "Unique and diverse SQL queries."}},
            "required": ["queries"],
            "additionalProperties": false
        }),
    )
}

/// The class batch `i` asks for: classes in proportion to their quotas, interleaved.
fn class_of(batch: usize, quotas: &[(Complexity, usize)]) -> Complexity {
    let total: usize = quotas.iter().map(|(_, q)| q).sum();
    if total == 0 {
        return Complexity::Medium;
    }
    // Spread the batches of each class evenly over a cycle of `total` slots.
    let slot = (batch * 7919) % total;
    let mut acc = 0;
    for (class, quota) in quotas {
        acc += quota;
        if slot < acc {
            return *class;
        }
    }
    Complexity::Medium
}

/// Generates queries with the LLM until `acceptor` is full or three rounds have run.
pub(crate) async fn generate(
    run: LlmRun<'_>,
    acceptor: &mut Acceptor<'_>,
    count: usize,
    per_call: usize,
    journal_path: &Path,
    key: &str,
) -> Result<LlmQueryStats> {
    let LlmRun {
        client,
        schema,
        progress,
        ..
    } = run;
    let (mut journal, mut done) =
        open_journal::<QueryBatch>(journal_path, key, |b| b.batch.to_string())?;
    let schema_text = schema.to_prompt_text();
    let quotas: Vec<(Complexity, usize)> = acceptor
        .stats
        .quotas
        .iter()
        .map(|(c, q)| (*c, *q))
        .collect();
    let table_names: Vec<&str> = schema.tables.iter().map(|t| t.name.as_str()).collect();
    let mut stats = LlmQueryStats::default();
    let mut next_batch = 0;
    let mut finished = 0;
    for _round in 0..3 {
        let remaining = count.saturating_sub(acceptor.accepted.len());
        if remaining == 0 {
            break;
        }
        let n_batches = (remaining * 3 / 2).div_ceil(per_call).max(1);
        let batches: Vec<usize> = (next_batch..next_batch + n_batches).collect();
        next_batch += n_batches;
        progress.inc_length(n_batches as u64);
        let todo: Vec<usize> = batches
            .iter()
            .copied()
            .filter(|b| !done.contains_key(&b.to_string()))
            .collect();
        progress.inc((n_batches - todo.len()) as u64);
        let mut stream = futures::stream::iter(todo)
            .map(|batch| {
                let class = class_of(batch, &quotas);
                let mut rng = ChaCha8Rng::seed_from_u64(batch as u64);
                let focus: Vec<&str> = table_names
                    .choose_multiple(&mut rng, 3.min(table_names.len()))
                    .copied()
                    .collect();
                let prompt = batch_prompt(&schema_text, per_call, class, &focus);
                async move {
                    let request =
                        ChatRequest::new(vec![Message::user(prompt)]).with_temperature(0.8);
                    (
                        batch,
                        class,
                        client
                            .chat_json::<BatchAnswer>(request, batch_format())
                            .await,
                    )
                }
            })
            .buffer_unordered(client.config().max_concurrency.max(1));
        while let Some((batch, class, answer)) = stream.next().await {
            run.answered(&mut finished)?;
            stats.batches += 1;
            match answer {
                Ok(answer) => {
                    let item = QueryBatch {
                        batch,
                        class,
                        queries: answer.value.queries,
                    };
                    journal.append(&item)?;
                    done.insert(batch.to_string(), item);
                }
                Err(e) => count_failure(&mut stats.failed_batches, &mut stats.first_error, e),
            }
        }
        journal.sync()?;
        for batch in &batches {
            if let Some(item) = done.get(&batch.to_string()) {
                stats.returned += item.queries.len();
                for sql in &item.queries {
                    acceptor.offer(sql, Origin::Llm, None, None);
                }
            }
        }
        if batches.iter().all(|b| !done.contains_key(&b.to_string())) {
            bail!(
                "the LLM answered none of {} query batches: {}",
                batches.len(),
                stats.first_error.clone().unwrap_or_default()
            );
        }
    }
    // Top up classes the model would not write with whatever it wrote.
    if !acceptor.full() {
        acceptor.overflow = true;
        let mut batches: Vec<&QueryBatch> = done.values().collect();
        batches.sort_by_key(|b| b.batch);
        for item in batches {
            for sql in &item.queries {
                acceptor.offer(sql, Origin::Llm, None, None);
            }
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn classes_follow_quotas() {
        let quotas = vec![
            (Complexity::Easy, 25),
            (Complexity::Medium, 30),
            (Complexity::Hard, 25),
            (Complexity::Extra, 20),
        ];
        let mut counts: HashMap<Complexity, usize> = HashMap::new();
        for b in 0..100 {
            *counts.entry(class_of(b, &quotas)).or_default() += 1;
        }
        assert_eq!(counts[&Complexity::Medium], 30);
        assert_eq!(counts[&Complexity::Extra], 20);
    }

    #[test]
    fn prompt_names_class_and_tables() {
        let p = batch_prompt("schema", 30, Complexity::Hard, &["routes", "airlines"]);
        assert!(p.contains("HARD") && p.contains("routes, airlines") && p.contains("generate 30"));
    }
}

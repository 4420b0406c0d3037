//! What the stages hand each other (queries, ground truths, questions) and how they become
//! dataset records: prompts, the seeded stratified split, the two ground-truth forms and the
//! `<think>/<sql>` reasoning variant.

use std::collections::BTreeMap;

use clap::ValueEnum;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sqlrft_core::dataset::{
    ChatMessage, Complexity, DatasetRecord, QueryTag, RecordGroundTruth, TypedGroundTruth,
};

use crate::schema::Schema;

/// Where a query came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Origin {
    Grammar,
    Llm,
}

/// One accepted query (`queries.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct QueryItem {
    pub(crate) id: String,
    pub(crate) sql: String,
    pub(crate) complexity: Complexity,
    pub(crate) tags: Vec<QueryTag>,
    /// Tables the query reads.
    #[serde(default)]
    pub(crate) tables: Vec<String>,
    /// True when the outermost query has ORDER BY.
    pub(crate) ordered: bool,
    pub(crate) origin: Origin,
    /// The grammar family, for grammar queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) family: Option<String>,
    /// The question written together with the SQL (grammar queries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) template_question: Option<String>,
}

/// Why a query was dropped at the ground-truth stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum DropReason {
    /// DuckDB refused or failed to run it.
    Error,
    Timeout,
    /// No rows.
    Empty,
    /// More rows than the ground-truth row limit.
    TooLarge,
    /// Two runs disagreed.
    Nondeterministic,
    /// LIMIT without ORDER BY: which rows come back is up to the engine.
    LimitWithoutOrder,
    /// random(), now(), current_date and friends.
    VolatileFunction,
}

impl DropReason {
    pub(crate) fn name(self) -> &'static str {
        match self {
            DropReason::Error => "error",
            DropReason::Timeout => "timeout",
            DropReason::Empty => "empty",
            DropReason::TooLarge => "too-large",
            DropReason::Nondeterministic => "nondeterministic",
            DropReason::LimitWithoutOrder => "limit-without-order",
            DropReason::VolatileFunction => "volatile-function",
        }
    }
}

/// The outcome of one query at the ground-truth stage (`truth.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub(crate) enum TruthItem {
    Kept {
        id: String,
        ground_truth: TypedGroundTruth,
    },
    Dropped {
        id: String,
        reason: DropReason,
        detail: String,
    },
}

impl TruthItem {
    pub(crate) fn id(&self) -> &str {
        match self {
            TruthItem::Kept { id, .. } | TruthItem::Dropped { id, .. } => id,
        }
    }
}

/// One question (`questions.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct QuestionItem {
    pub(crate) id: String,
    pub(crate) question: String,
    /// `template`, or the LLM style asked for (formal, colloquial, …).
    pub(crate) style: String,
}

/// How `ground_truth` is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroundTruthFormat {
    /// `{columns, types, rows_json, ordered, sql}`: typed cells, the rows as one JSON string.
    #[default]
    Typed,
    /// The tutorial's list of `{column: value}` row objects.
    Tutorial,
}

/// Which prompt/answer variant a dataset file holds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum, Serialize, Deserialize,
)]
pub enum PromptFormat {
    /// The tutorial's: the assistant answers with the SQL only (`train.jsonl`, `test.jsonl`).
    #[serde(alias = "plain")]
    Plain,
    /// Think in `<think>…</think>`, answer in `<sql>…</sql>`, for GRPO training
    /// (`train.reasoning.jsonl`, `test.reasoning.jsonl`).
    #[serde(alias = "reasoning")]
    Reasoning,
}

impl PromptFormat {
    pub(crate) fn file_names(self) -> (&'static str, &'static str) {
        match self {
            PromptFormat::Plain => ("train.jsonl", "test.jsonl"),
            PromptFormat::Reasoning => ("train.reasoning.jsonl", "test.reasoning.jsonl"),
        }
    }
}

/// The system prompt: instructions plus the schema, as the tutorial's RFT records carry it.
pub(crate) fn system_prompt(schema: &Schema, format: PromptFormat) -> String {
    let instructions = match format {
        PromptFormat::Plain => {
            "You are an expert SQL data analyst. Your task is to write a single, valid DuckDB SQL query to answer the user's question, based on the provided database schema. Do not provide any explanation or text other than the SQL query itself."
        }
        PromptFormat::Reasoning => {
            "You are an expert SQL data analyst. Your task is to write a single, valid DuckDB SQL query to answer the user's question, based on the provided database schema. First reason briefly inside <think>...</think>, then give only the final query inside <sql>...</sql>."
        }
    };
    format!(
        "{instructions}\n\n**Database Schema:**\n{}",
        schema.to_prompt_text()
    )
}

/// The reference answer of the reasoning variant: a short plan, then the SQL.
pub(crate) fn reasoning_answer(query: &QueryItem) -> String {
    let tables = if query.tables.is_empty() {
        "the schema".to_string()
    } else {
        query.tables.join(", ")
    };
    let features: Vec<&str> = query
        .tags
        .iter()
        .map(|t| match t {
            QueryTag::Filter => "filter the rows",
            QueryTag::Join => "join the tables on their keys",
            QueryTag::Aggregate => "aggregate",
            QueryTag::GroupBy => "group",
            QueryTag::Having => "filter the groups",
            QueryTag::Subquery => "use a subquery",
            QueryTag::SetOp => "combine two queries with a set operation",
            QueryTag::Window => "use a window function",
            QueryTag::Cte => "name an intermediate result with WITH",
            QueryTag::OrderBy => "order the result",
            QueryTag::Limit => "keep only the first rows",
            QueryTag::Distinct => "remove duplicates",
        })
        .collect();
    let plan = if features.is_empty() {
        format!("The answer comes from {tables}.")
    } else {
        format!(
            "The answer comes from {tables}. I need to {}.",
            features.join(", ")
        )
    };
    format!("<think>\n{plan}\n</think>\n<sql>\n{}\n</sql>", query.sql)
}

/// One dataset record.
pub(crate) fn record(
    schema: &Schema,
    query: &QueryItem,
    truth: &TypedGroundTruth,
    question: &str,
    ground_truth_format: GroundTruthFormat,
    prompt: PromptFormat,
) -> DatasetRecord {
    let answer = match prompt {
        PromptFormat::Plain => query.sql.clone(),
        PromptFormat::Reasoning => reasoning_answer(query),
    };
    DatasetRecord {
        messages: vec![
            ChatMessage::system(system_prompt(schema, prompt)),
            ChatMessage::user(question.trim()),
            ChatMessage::assistant(answer),
        ],
        ground_truth: match ground_truth_format {
            GroundTruthFormat::Typed => RecordGroundTruth::Typed(truth.clone()),
            GroundTruthFormat::Tutorial => RecordGroundTruth::Rows(truth.to_row_objects()),
        },
        id: query.id.clone(),
        sql: query.sql.clone(),
        complexity: query.complexity,
        tags: query.tags.clone(),
        db: Some(schema.name.clone()),
    }
}

/// Splits ids into (train, test), stratified by class: every class keeps about
/// `test_fraction` of its items for test. Deterministic for a seed, whatever the input order.
pub(crate) fn split<K: Ord + Copy>(
    mut items: Vec<(String, K)>,
    test_fraction: f64,
    seed: u64,
) -> (Vec<String>, Vec<String>) {
    items.sort();
    let mut by_class: BTreeMap<K, Vec<String>> = BTreeMap::new();
    for (id, class) in items {
        by_class.entry(class).or_default().push(id);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (_, mut ids) in by_class {
        ids.shuffle(&mut rng);
        let n_test = ((ids.len() as f64) * test_fraction).round() as usize;
        let n_test = if ids.len() >= 2 {
            n_test.clamp(usize::from(test_fraction > 0.0), ids.len() - 1)
        } else {
            n_test.min(ids.len())
        };
        test.extend(ids.drain(..n_test));
        train.extend(ids);
    }
    train.shuffle(&mut rng);
    test.shuffle(&mut rng);
    (train, test)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn query() -> QueryItem {
        QueryItem {
            id: "q1".into(),
            sql: "SELECT name FROM airports ORDER BY name".into(),
            complexity: Complexity::Easy,
            tags: vec![QueryTag::OrderBy],
            tables: vec!["airports".into()],
            ordered: true,
            origin: Origin::Grammar,
            family: None,
            template_question: None,
        }
    }

    fn truth() -> TypedGroundTruth {
        TypedGroundTruth {
            columns: vec!["name".into()],
            types: vec!["VARCHAR".into()],
            rows: vec![vec![json!("Oslo Airport")]],
            ordered: true,
            sql: query().sql,
        }
    }

    #[test]
    fn split_is_stratified_and_deterministic() {
        let mut items = Vec::new();
        for i in 0..100 {
            items.push((format!("e{i}"), Complexity::Easy));
        }
        for i in 0..10 {
            items.push((format!("x{i}"), Complexity::Extra));
        }
        let (train, test) = split(items.clone(), 0.2, 42);
        assert_eq!(train.len() + test.len(), 110);
        assert_eq!(test.iter().filter(|id| id.starts_with('e')).count(), 20);
        assert_eq!(test.iter().filter(|id| id.starts_with('x')).count(), 2);
        items.reverse();
        assert_eq!(split(items.clone(), 0.2, 42), (train.clone(), test.clone()));
        assert_ne!(split(items, 0.2, 43).1, test);
    }

    #[test]
    fn tiny_classes_keep_a_training_example() {
        let (train, test) = split(vec![("a".into(), 1), ("b".into(), 1)], 0.9, 1);
        assert_eq!((train.len(), test.len()), (1, 1));
        let (train, test) = split(vec![("a".into(), 1)], 0.2, 1);
        assert_eq!((train.len(), test.len()), (1, 0));
    }

    #[test]
    fn records_carry_schema_question_and_typed_truth() {
        let mut schema = crate::schema::tests::openflights();
        schema.infer_keys();
        let r = record(
            &schema,
            &query(),
            &truth(),
            " Which airports? ",
            GroundTruthFormat::Typed,
            PromptFormat::Plain,
        );
        assert_eq!(r.messages.len(), 3);
        assert!(r.messages[0].content.contains("| airport_id | BIGINT |"));
        assert_eq!(r.messages[1].content, "Which airports?");
        assert_eq!(r.messages[2].content, query().sql);
        assert_eq!(r.ground_truth, RecordGroundTruth::Typed(truth()));
        let value = serde_json::to_value(&r).unwrap();
        assert_eq!(value["ground_truth"]["ordered"], json!(true));
        assert_eq!(value["complexity"], json!("easy"));
        assert_eq!(value["db"], json!("openflights"));
    }

    #[test]
    fn tutorial_format_and_reasoning_variant() {
        let schema = crate::schema::tests::openflights();
        let r = record(
            &schema,
            &query(),
            &truth(),
            "q",
            GroundTruthFormat::Tutorial,
            PromptFormat::Reasoning,
        );
        assert_eq!(
            serde_json::to_value(&r.ground_truth).unwrap(),
            json!([{"name": "Oslo Airport"}])
        );
        let answer = &r.messages[2].content;
        assert!(
            answer.starts_with("<think>")
                && answer.contains(&format!("<sql>\n{}\n</sql>", query().sql)),
            "{answer}"
        );
        assert!(r.messages[0].content.contains("<sql>"));
    }
}

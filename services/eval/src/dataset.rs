//! The test set: records `{messages, ground_truth, ...}` as `sqlrft build` writes them (or the
//! tutorial's, with row-object ground truth), and the subset an evaluation runs on.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use anyhow::{Context, Result, bail};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sqlrft_core::dataset::{Complexity, QueryTag};
use sqlrft_core::ground_truth::GroundTruth;
use sqlrft_llm::Message;

/// One test question.
#[derive(Debug, Clone)]
pub struct EvalItem {
    /// The record's `id`, or `line-N` when it has none; unique within the file.
    pub id: String,
    /// The prompt sent to every model: the record's messages up to (not including) the trailing
    /// assistant answer, as they are.
    pub messages: Vec<Message>,
    /// The user's question, for the report.
    pub question: String,
    /// The gold SQL, when the record has it.
    pub gold_sql: Option<String>,
    /// Spider hardness class, when the record has one.
    pub complexity: Option<Complexity>,
    /// SQL features of the gold query.
    pub tags: Vec<QueryTag>,
    /// What the answer's result is compared with.
    pub ground_truth: GroundTruth,
    /// The record's fields as written, for scoring through the reward service.
    pub record: Map<String, Value>,
}

/// A loaded test set and the fingerprint of its file.
#[derive(Debug, Clone)]
pub struct TestSet {
    pub items: Vec<EvalItem>,
    /// SHA-256 of the file: journals made from another file are not reused.
    pub sha256: String,
}

/// Reads a test JSONL; every error names the file and line.
pub fn load(path: &Path) -> Result<TestSet> {
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "could not read the test set `{}`; pass the test.jsonl that `sqlrft build` wrote",
            path.display()
        )
    })?;
    let text = String::from_utf8(bytes.clone())
        .with_context(|| format!("`{}` is not UTF-8 text", path.display()))?;
    let mut items = Vec::new();
    let mut seen = HashSet::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let item = parse_record(line, index + 1)
            .with_context(|| format!("`{}` line {}", path.display(), index + 1))?;
        if !seen.insert(item.id.clone()) {
            bail!(
                "`{}` line {}: the id `{}` appears twice; ids must be unique",
                path.display(),
                index + 1,
                item.id
            );
        }
        items.push(item);
    }
    if items.is_empty() {
        bail!("the test set `{}` has no records", path.display());
    }
    Ok(TestSet {
        items,
        sha256: hex::encode(Sha256::digest(&bytes)),
    })
}

fn parse_record(line: &str, line_no: usize) -> Result<EvalItem> {
    let value: Value = serde_json::from_str(line).context("not a JSON object")?;
    let Value::Object(record) = value else {
        bail!("expected a JSON object with `messages` and `ground_truth`");
    };
    let messages: Vec<Message> = match record.get("messages") {
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, m)| {
                serde_json::from_value(m.clone()).with_context(|| {
                    format!("`messages[{i}]` is not a {{role, content}} chat message")
                })
            })
            .collect::<Result<_>>()?,
        _ => bail!("`messages` is missing or not a list of chat messages"),
    };
    let prompt_len = messages
        .iter()
        .rposition(|m| m.role != sqlrft_llm::Role::Assistant)
        .map_or(0, |i| i + 1);
    let messages = messages[..prompt_len].to_vec();
    if messages.is_empty() {
        bail!("`messages` has no system or user message to ask");
    }
    let ground_truth = GroundTruth::parse(record.get("ground_truth"), &record)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let question = messages
        .iter()
        .rev()
        .find(|m| m.role == sqlrft_llm::Role::User)
        .map(|m| m.content.clone())
        .unwrap_or_default();
    let id = match record.get("id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => format!("line-{line_no}"),
    };
    let complexity = match record.get("complexity") {
        Some(Value::String(s)) => Some(s.parse().map_err(|e: String| anyhow::anyhow!(e))?),
        _ => None,
    };
    let tags = match record.get("tags") {
        Some(tags @ Value::Array(_)) => serde_json::from_value(tags.clone())
            .context("`tags` holds an unknown tag; see `sqlrft build` for the tag names")?,
        _ => Vec::new(),
    };
    Ok(EvalItem {
        id,
        messages,
        question,
        gold_sql: ground_truth.sql().map(str::to_string),
        complexity,
        tags,
        ground_truth,
        record,
    })
}

/// Which items to evaluate.
#[derive(Debug, Clone, Copy, Default)]
pub struct Selection {
    /// At most this many items (all when `None`).
    pub limit: Option<usize>,
    /// Keep each complexity class's share of the test set in the subset.
    pub stratify: bool,
    /// Seeds the random subset.
    pub seed: u64,
}

/// The items `selection` picks, in file order. A limit draws a seeded random subset (stratified
/// by complexity when asked, with largest-remainder quotas), so two runs with the same seed
/// evaluate the same items.
pub fn select(items: &[EvalItem], selection: Selection) -> Vec<EvalItem> {
    let Some(limit) = selection.limit.filter(|&l| l < items.len()) else {
        return items.to_vec();
    };
    let mut rng = ChaCha8Rng::seed_from_u64(selection.seed);
    let mut chosen: Vec<usize> = if selection.stratify {
        let mut classes: BTreeMap<Option<Complexity>, Vec<usize>> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            classes.entry(item.complexity).or_default().push(i);
        }
        let total = items.len() as f64;
        let mut quotas: Vec<(Option<Complexity>, usize, f64)> = classes
            .iter()
            .map(|(class, members)| {
                let exact = limit as f64 * members.len() as f64 / total;
                (*class, exact.floor() as usize, exact - exact.floor())
            })
            .collect();
        let mut left = limit - quotas.iter().map(|q| q.1).sum::<usize>();
        let mut by_remainder: Vec<usize> = (0..quotas.len()).collect();
        by_remainder.sort_by(|&a, &b| quotas[b].2.total_cmp(&quotas[a].2));
        for i in by_remainder {
            if left == 0 {
                break;
            }
            quotas[i].1 += 1;
            left -= 1;
        }
        quotas
            .into_iter()
            .flat_map(|(class, quota, _)| {
                let mut members = classes[&class].clone();
                members.shuffle(&mut rng);
                members.truncate(quota);
                members
            })
            .collect()
    } else {
        let mut all: Vec<usize> = (0..items.len()).collect();
        all.shuffle(&mut rng);
        all.truncate(limit);
        all
    };
    chosen.sort_unstable();
    chosen.into_iter().map(|i| items[i].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(id: &str, complexity: &str) -> String {
        json!({
            "id": id,
            "messages": [
                {"role": "system", "content": "schema"},
                {"role": "user", "content": format!("question {id}")},
                {"role": "assistant", "content": "<sql>SELECT 1</sql>"}
            ],
            "ground_truth": {"columns": ["x"], "types": ["INTEGER"], "rows": [[1]], "ordered": false, "sql": "SELECT 1"},
            "sql": "SELECT 1",
            "complexity": complexity,
            "tags": ["filter"]
        })
        .to_string()
    }

    #[test]
    fn the_prompt_is_the_record_without_its_answer() {
        let item = parse_record(&line("q1", "easy"), 1).unwrap();
        assert_eq!(item.messages.len(), 2);
        assert_eq!(item.question, "question q1");
        assert_eq!(item.complexity, Some(Complexity::Easy));
        assert_eq!(item.tags, vec![QueryTag::Filter]);
        assert_eq!(item.gold_sql.as_deref(), Some("SELECT 1"));
    }

    #[test]
    fn tutorial_records_with_row_objects_load() {
        let text = json!({
            "messages": [{"role": "user", "content": "How many?"}],
            "ground_truth": [{"n": 5}]
        })
        .to_string();
        let item = parse_record(&text, 7).unwrap();
        assert_eq!(item.id, "line-7");
        assert!(item.complexity.is_none());
        assert!(matches!(item.ground_truth, GroundTruth::Result { .. }));
    }

    #[test]
    fn bad_records_name_the_problem() {
        let err = parse_record(r#"{"ground_truth": []}"#, 1).unwrap_err();
        assert!(err.to_string().contains("messages"), "{err:#}");
        let err = parse_record(
            r#"{"messages": [{"role": "user", "content": "q"}], "ground_truth": 5}"#,
            1,
        )
        .unwrap_err();
        assert!(err.to_string().contains("ground_truth"), "{err:#}");
    }

    #[test]
    fn a_stratified_limit_keeps_class_shares_and_is_seeded() {
        let classes = [
            "easy", "easy", "easy", "easy", "easy", "easy", "hard", "hard", "extra", "extra",
        ];
        let items: Vec<EvalItem> = classes
            .iter()
            .enumerate()
            .map(|(i, c)| parse_record(&line(&format!("q{i}"), c), i + 1).unwrap())
            .collect();
        let pick = |seed| {
            select(
                &items,
                Selection {
                    limit: Some(5),
                    stratify: true,
                    seed,
                },
            )
        };
        let a = pick(1);
        let count = |class| a.iter().filter(|i| i.complexity == Some(class)).count();
        assert_eq!(a.len(), 5);
        assert_eq!(count(Complexity::Easy), 3);
        assert_eq!(count(Complexity::Hard), 1);
        assert_eq!(count(Complexity::Extra), 1);
        let ids = |v: &[EvalItem]| v.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&a), ids(&pick(1)));
        assert!(
            (0..20).any(|s| ids(&pick(s)) != ids(&a)),
            "the seed changes the subset"
        );
        assert_eq!(select(&items, Selection::default()).len(), 10);
    }
}

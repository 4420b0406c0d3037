//! Training prompts from a dataset JSONL made by `sqlrft build` (Fireworks RFT records:
//! `messages` + `ground_truth`) or `sqlrft distill` (`prompt` messages + `sql`, and the source's
//! `sql_context` when it had one; the seed project's rows may say `answer` for `sql`), served in a
//! seeded per-epoch order with a cursor that a checkpoint can record and restore.

use crate::rollout::{ChatMessage, Prompt, PromptBatch};
use anyhow::{Context, Result, bail};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A chat message as a dataset row spells it (content may be null or structured).
#[derive(Deserialize)]
pub(crate) struct RawMessage {
    role: String,
    #[serde(default)]
    content: serde_json::Value,
}

#[derive(Deserialize)]
struct RawRecord {
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    messages: Option<Vec<RawMessage>>,
    #[serde(default)]
    prompt: Option<serde_json::Value>,
    #[serde(default)]
    ground_truth: Option<serde_json::Value>,
    #[serde(default)]
    sql: Option<String>,
    /// The seed project's name for the SQL to compare with (read when `sql` is absent).
    #[serde(default)]
    answer: Option<String>,
    #[serde(default)]
    sql_context: Option<String>,
}

/// Messages as the chat template takes them: null content is empty, structured content its JSON.
pub(crate) fn to_messages(raw: Vec<RawMessage>) -> Vec<ChatMessage> {
    raw.into_iter()
        .map(|m| ChatMessage {
            role: m.role,
            content: match m.content {
                serde_json::Value::String(s) => s,
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            },
        })
        .collect()
}

/// Parses one JSONL record into a prompt: `prompt` (messages or a plain user string) when
/// present, else `messages` without the trailing assistant turn(s).
pub fn parse_record(line: &str, line_no: usize) -> Result<Prompt> {
    let rec: RawRecord = serde_json::from_str(line)?;
    let mut messages = match (rec.prompt, rec.messages) {
        (Some(serde_json::Value::String(s)), _) => vec![ChatMessage {
            role: "user".into(),
            content: s,
        }],
        (Some(p @ serde_json::Value::Array(_)), _) => to_messages(serde_json::from_value(p)?),
        (_, Some(m)) => to_messages(m),
        _ => bail!("record has neither `messages` nor `prompt`"),
    };
    while messages.last().is_some_and(|m| m.role == "assistant") {
        messages.pop();
    }
    if messages.is_empty() {
        bail!("record has no prompt messages before the answer");
    }
    let id = match rec.id {
        Some(serde_json::Value::String(s)) => s,
        Some(v) if !v.is_null() => v.to_string(),
        _ => line_no.to_string(),
    };
    Ok(Prompt {
        id,
        messages,
        ground_truth_json: rec
            .ground_truth
            .map(|g| g.to_string())
            .unwrap_or_else(|| "null".into()),
        sql: rec.sql.or(rec.answer).unwrap_or_default(),
        sql_context: rec.sql_context.unwrap_or_default(),
    })
}

/// Reads every record of a JSONL file.
pub fn load_jsonl(path: &Path) -> Result<Vec<Prompt>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "could not read dataset `{}`; run `sqlrft build` (or `sqlrft distill`) first",
            path.display()
        )
    })?;
    let prompts: Vec<Prompt> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            parse_record(l, i + 1).with_context(|| format!("`{}` line {}", path.display(), i + 1))
        })
        .collect::<Result<_>>()?;
    if prompts.is_empty() {
        bail!("dataset `{}` has no records", path.display());
    }
    Ok(prompts)
}

/// Where the prompt stream stands: restoring it continues the same order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataCursor {
    /// Passes over the whole dataset completed.
    pub epoch: u64,
    /// Index into the epoch's order of the next prompt.
    pub position: u64,
}

/// Prompts in a seeded order that is reshuffled every epoch.
pub struct PromptStream {
    prompts: Vec<Prompt>,
    seed: u64,
    order: Vec<usize>,
    /// The next prompt's place (checkpoints save it).
    pub cursor: DataCursor,
}

impl PromptStream {
    /// A stream over `prompts` in the order `seed` gives, starting at `cursor`.
    pub fn new(prompts: Vec<Prompt>, seed: u64, cursor: DataCursor) -> Self {
        let mut s = Self {
            order: vec![],
            prompts,
            seed,
            cursor,
        };
        s.order = s.epoch_order(cursor.epoch);
        s
    }

    fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.prompts.len()).collect();
        let mut rng =
            ChaCha8Rng::seed_from_u64(self.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        order.shuffle(&mut rng);
        order
    }

    /// Continues from `cursor` (restoring a checkpoint).
    pub fn seek(&mut self, cursor: DataCursor) {
        self.cursor = cursor;
        self.order = self.epoch_order(cursor.epoch);
    }

    /// Prompts in the dataset.
    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    /// Whether the dataset has no prompts.
    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }

    /// The next `n` prompts, crossing into the next epoch when this one runs out.
    pub fn next_batch(&mut self, n: usize) -> PromptBatch {
        let start = self.cursor;
        let mut prompts = Vec::with_capacity(n);
        for _ in 0..n {
            if self.cursor.position as usize >= self.order.len() {
                self.cursor = DataCursor {
                    epoch: self.cursor.epoch + 1,
                    position: 0,
                };
                self.order = self.epoch_order(self.cursor.epoch);
            }
            prompts.push(self.prompts[self.order[self.cursor.position as usize]].clone());
            self.cursor.position += 1;
        }
        PromptBatch {
            cursor: start.position,
            epoch: start.epoch,
            prompts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fireworks_record_drops_the_assistant_answer() {
        let p = parse_record(
            r#"{"messages":[{"role":"system","content":"s"},{"role":"user","content":"q"},{"role":"assistant","content":"a"}],"ground_truth":[{"n":1}],"sql":"SELECT 1"}"#,
            3,
        )
        .unwrap();
        assert_eq!(
            p.messages
                .iter()
                .map(|m| m.role.as_str())
                .collect::<Vec<_>>(),
            ["system", "user"]
        );
        assert_eq!(
            (p.id.as_str(), p.sql.as_str(), p.ground_truth_json.as_str()),
            ("3", "SELECT 1", r#"[{"n":1}]"#)
        );
    }

    #[test]
    fn seed_rows_give_their_context_and_answer() {
        let p = parse_record(
            r#"{"prompt":"q","sql_context":"CREATE TABLE t (a INT);","answer":"SELECT a FROM t"}"#,
            1,
        )
        .unwrap();
        assert_eq!(
            (p.sql.as_str(), p.sql_context.as_str()),
            ("SELECT a FROM t", "CREATE TABLE t (a INT);")
        );
    }

    #[test]
    fn distill_record_uses_its_prompt() {
        let p = parse_record(r#"{"prompt":[{"role":"system","content":"s"},{"role":"user","content":"q"}],"sql":"SELECT 2"}"#, 1).unwrap();
        assert_eq!(p.messages.len(), 2);
        assert_eq!(p.ground_truth_json, "null");
    }

    #[test]
    fn stream_resumes_in_the_same_order_across_epochs() {
        let prompts: Vec<Prompt> = (0..5)
            .map(|i| Prompt {
                id: i.to_string(),
                ..Default::default()
            })
            .collect();
        let mut a = PromptStream::new(prompts.clone(), 7, DataCursor::default());
        let first: Vec<String> = a.next_batch(3).prompts.into_iter().map(|p| p.id).collect();
        let cursor = a.cursor;
        let rest: Vec<String> = a.next_batch(6).prompts.into_iter().map(|p| p.id).collect();
        let mut b = PromptStream::new(prompts, 7, cursor);
        let resumed: Vec<String> = b.next_batch(6).prompts.into_iter().map(|p| p.id).collect();
        assert_eq!(rest, resumed);
        let mut seen = first.clone();
        seen.extend(rest[..2].iter().cloned());
        seen.sort();
        assert_eq!(
            seen,
            ["0", "1", "2", "3", "4"],
            "an epoch visits every prompt once"
        );
    }
}

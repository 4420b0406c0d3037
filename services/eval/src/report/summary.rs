//! The numbers of a finished run (`results.json`): accuracy with Wilson intervals overall, per
//! complexity class and per tag; outcome rates; paired McNemar comparisons; latency, tokens and
//! cost; and the items where the models disagree.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::answer::Sampling;
use crate::run::{EvalRun, ModelRun};
use crate::stats::{Z95, mcnemar_exact, pass_at_k, percentile, wilson};
use crate::verdict::{ItemRecord, Outcome};

/// `results.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// When the report was written (RFC 3339, UTC).
    pub generated_at: String,
    /// The test set.
    pub dataset: DatasetInfo,
    /// What scored the answers.
    pub scorer: String,
    /// How answers were sampled.
    pub sampling: Sampling,
    /// The model the others' lift is measured against.
    pub base: String,
    /// One entry per model, in `--model` order.
    pub models: Vec<ModelSummary>,
    /// Accuracy per complexity class.
    pub by_complexity: Vec<Slice>,
    /// Accuracy per SQL feature tag.
    pub by_tag: Vec<Slice>,
    /// Every pair of models on their common items.
    pub pairs: Vec<Pair>,
    /// Items the models answered differently.
    pub disagreements: Vec<Disagreement>,
    /// Wall time of the run.
    pub wall_seconds: f64,
    /// Wall time during which scoring was in progress.
    pub scoring_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
/// Which test set was evaluated.
pub struct DatasetInfo {
    /// The JSONL file.
    pub path: String,
    /// SHA-256 of the file.
    pub sha256: String,
    /// Records in the file.
    pub items_in_file: usize,
    /// Items evaluated (after `--limit`).
    pub evaluated: usize,
}

/// Whether a model answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every item answered and scored.
    Complete,
    /// Some items have no answer (or no score); accuracy is over the rest.
    Partial,
    /// The endpoint never answered: no accuracy at all.
    Unreachable,
}

/// Correct out of scored, with its 95% Wilson interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Accuracy {
    /// Items answered correctly.
    pub correct: u64,
    /// Items answered and scored.
    pub total: u64,
    /// `correct / total`.
    pub accuracy: f64,
    /// Lower end of the 95% Wilson interval.
    pub ci_low: f64,
    /// Upper end of the 95% Wilson interval.
    pub ci_high: f64,
}

impl Accuracy {
    fn of(correct: u64, total: u64) -> Option<Accuracy> {
        (total > 0).then(|| {
            let (ci_low, ci_high) = wilson(correct, total, Z95);
            Accuracy {
                correct,
                total,
                accuracy: correct as f64 / total as f64,
                ci_low,
                ci_high,
            }
        })
    }
}

#[derive(Debug, Clone, Serialize)]
/// One model's results.
pub struct ModelSummary {
    /// The model's NAME.
    pub name: String,
    /// Its spec, without secrets.
    pub spec: String,
    /// Whether it answered.
    pub status: Status,
    /// The first reason an item got no answer, when any did.
    pub error: Option<String>,
    /// Execution accuracy over scored items (pass@k with `--samples k`).
    pub accuracy: Option<Accuracy>,
    /// Accuracy minus the base model's, in percentage points.
    pub lift_pp: Option<f64>,
    /// Mean share of correct samples per item (only with `--samples` above 1).
    pub pass_at_1: Option<f64>,
    /// Items it gave no answer to.
    pub not_answered: usize,
    /// Answered items whose scoring failed.
    pub not_scored: usize,
    /// First-sample outcomes over answered items.
    pub outcomes: BTreeMap<Outcome, u64>,
    /// Share of answered items in exactly `<think>…</think><sql>…</sql>`.
    pub format_valid_rate: Option<f64>,
    /// Share of answered items whose SQL failed or was refused.
    pub sql_error_rate: Option<f64>,
    /// Share of answered items whose SQL ran past the time limit.
    pub timeout_rate: Option<f64>,
    /// Median request latency, seconds.
    pub latency_p50_s: Option<f64>,
    /// 95th-percentile request latency, seconds.
    pub latency_p95_s: Option<f64>,
    /// Prompt tokens over all answers (this and earlier runs).
    pub prompt_tokens: u64,
    /// Completion tokens over all answers.
    pub completion_tokens: u64,
    /// Estimated dollars, when the spec has `price=`.
    pub cost_usd: Option<f64>,
    /// Items answered from the journal of an earlier run.
    pub resumed: usize,
    /// Retried requests in this run.
    pub retries: Option<u64>,
}

/// Accuracy of every model on one group of items.
#[derive(Debug, Clone, Serialize)]
pub struct Slice {
    /// The class or tag.
    pub name: String,
    /// Items in the group.
    pub items: usize,
    /// Per model NAME: its accuracy on the group (`None`: nothing scored).
    pub models: BTreeMap<String, Option<Accuracy>>,
}

/// Two models on the items both have scored.
#[derive(Debug, Clone, Serialize)]
pub struct Pair {
    /// First model.
    pub a: String,
    /// Second model.
    pub b: String,
    /// Items both models have scored.
    pub items: u64,
    /// Items both got right.
    pub both_right: u64,
    /// Items only `a` got right.
    pub a_only: u64,
    /// Items only `b` got right.
    pub b_only: u64,
    /// Items both got wrong.
    pub both_wrong: u64,
    /// McNemar's exact two-sided p-value.
    pub p_value: f64,
    /// `p_value` below 5%.
    pub significant: bool,
}

impl Pair {
    /// One sentence: who won how many items, and whether it could be chance.
    pub fn verdict(&self) -> String {
        let (winner, loser, won, lost) = if self.b_only >= self.a_only {
            (&self.b, &self.a, self.b_only, self.a_only)
        } else {
            (&self.a, &self.b, self.a_only, self.b_only)
        };
        if won == lost {
            return format!("no difference ({won} items each way)");
        }
        let strength = if self.significant {
            "significant at 5%"
        } else {
            "could be chance"
        };
        format!(
            "{winner} better on {won} items, {loser} on {lost} ({}, {strength})",
            p_phrase(self.p_value)
        )
    }
}

/// "p = 0.0123", or "p < 0.0001".
pub fn p_phrase(p: f64) -> String {
    if p < 1e-4 {
        "p < 0.0001".into()
    } else {
        format!("p = {p:.4}")
    }
}

/// A p-value to four decimals, or "< 0.0001".
pub fn format_p(p: f64) -> String {
    if p < 1e-4 {
        "< 0.0001".into()
    } else {
        format!("{p:.4}")
    }
}

/// An item the models answered differently.
#[derive(Debug, Clone, Serialize)]
pub struct Disagreement {
    /// The item's id.
    pub item: String,
    /// The question asked.
    pub question: String,
    /// The gold SQL, when known.
    pub gold_sql: Option<String>,
    /// Its complexity class, when known.
    pub complexity: Option<String>,
    /// Per model NAME: its answer.
    pub answers: BTreeMap<String, DisagreementAnswer>,
}

#[derive(Debug, Clone, Serialize)]
/// One model's answer to a disputed item.
pub struct DisagreementAnswer {
    /// Whether the item counts as solved.
    pub correct: bool,
    /// What happened to the first sample.
    pub outcome: Outcome,
    /// The SQL found in it.
    pub sql: Option<String>,
    /// The reward engine's reason.
    pub reason: String,
}

const SIGNIFICANCE: f64 = 0.05;

/// Computes the summary of `run`, lifts measured against `base` (default: the first model).
pub fn summarize(run: &EvalRun, base: Option<&str>) -> anyhow::Result<Summary> {
    let base = match base {
        Some(name) => {
            if !run.models.iter().any(|m| m.spec.name == name) {
                anyhow::bail!(
                    "--base `{name}` is not one of the models ({})",
                    run.models
                        .iter()
                        .map(|m| m.spec.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            name.to_string()
        }
        None => run.models[0].spec.name.clone(),
    };
    let mut models: Vec<ModelSummary> = run
        .models
        .iter()
        .map(|m| model_summary(m, &run.sampling))
        .collect();
    let base_accuracy = models
        .iter()
        .find(|m| m.name == base)
        .and_then(|m| m.accuracy)
        .map(|a| a.accuracy);
    for m in &mut models {
        m.lift_pp = match (m.accuracy, base_accuracy) {
            (Some(a), Some(b)) if m.name != base => Some(100.0 * (a.accuracy - b)),
            _ => None,
        };
    }

    let mut by_complexity = Vec::new();
    let classes: BTreeSet<_> = run.items.iter().filter_map(|i| i.complexity).collect();
    for class in classes {
        let ids: Vec<&str> = run
            .items
            .iter()
            .filter(|i| i.complexity == Some(class))
            .map(|i| i.id.as_str())
            .collect();
        by_complexity.push(slice(class.name(), &ids, &run.models));
    }
    let mut by_tag = Vec::new();
    let tags: BTreeSet<_> = run
        .items
        .iter()
        .flat_map(|i| i.tags.iter().copied())
        .collect();
    for tag in tags {
        let ids: Vec<&str> = run
            .items
            .iter()
            .filter(|i| i.tags.contains(&tag))
            .map(|i| i.id.as_str())
            .collect();
        by_tag.push(slice(tag.name(), &ids, &run.models));
    }

    let mut pairs = Vec::new();
    for (i, a) in run.models.iter().enumerate() {
        for b in &run.models[i + 1..] {
            pairs.push(pair(a, b));
        }
    }

    let disagreements = run
        .items
        .iter()
        .filter_map(|item| {
            let answers: BTreeMap<String, DisagreementAnswer> = run
                .models
                .iter()
                .filter_map(|m| {
                    let record = m.records.get(&item.id).filter(|r| r.scored())?;
                    let first = record.first()?;
                    Some((
                        m.spec.name.clone(),
                        DisagreementAnswer {
                            correct: record.correct(),
                            outcome: first.outcome,
                            sql: first.sql.clone(),
                            reason: first.reason.clone(),
                        },
                    ))
                })
                .collect();
            let verdicts: BTreeSet<bool> = answers.values().map(|a| a.correct).collect();
            (answers.len() >= 2 && verdicts.len() == 2).then(|| Disagreement {
                item: item.id.clone(),
                question: item.question.clone(),
                gold_sql: item.gold_sql.clone(),
                complexity: item.complexity.map(|c| c.name().to_string()),
                answers,
            })
        })
        .collect();

    Ok(Summary {
        generated_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        dataset: DatasetInfo {
            path: run.dataset.display().to_string(),
            sha256: run.dataset_sha256.clone(),
            items_in_file: run.dataset_items,
            evaluated: run.items.len(),
        },
        scorer: run.scorer.clone(),
        sampling: run.sampling,
        base,
        models,
        by_complexity,
        by_tag,
        pairs,
        disagreements,
        wall_seconds: run.wall.as_secs_f64(),
        scoring_seconds: run.scoring_busy.as_secs_f64(),
    })
}

fn scored(m: &ModelRun) -> impl Iterator<Item = &ItemRecord> {
    m.records.values().filter(|r| r.scored())
}

fn model_summary(m: &ModelRun, sampling: &Sampling) -> ModelSummary {
    let scored_records: Vec<&ItemRecord> = scored(m).collect();
    let total = scored_records.len() as u64;
    let correct = scored_records.iter().filter(|r| r.correct()).count() as u64;
    let not_scored = m.records.len() - scored_records.len();
    let mut outcomes: BTreeMap<Outcome, u64> = BTreeMap::new();
    for r in m.records.values() {
        if let Some(first) = r.first() {
            *outcomes.entry(first.outcome).or_default() += 1;
        }
    }
    let answered = m.records.len() as f64;
    let rate = |count: u64| (answered > 0.0).then(|| count as f64 / answered);
    let format_valid = m
        .records
        .values()
        .filter(|r| r.first().is_some_and(|s| s.format_valid))
        .count() as u64;
    let latencies: Vec<f64> = m
        .records
        .values()
        .flat_map(|r| r.latencies.iter().copied())
        .collect();
    let prompt_tokens = m.records.values().map(|r| r.prompt_tokens).sum();
    let completion_tokens = m.records.values().map(|r| r.completion_tokens).sum();
    let pass_at_1 = (sampling.samples > 1 && total > 0).then(|| {
        scored_records
            .iter()
            .map(|r| {
                let n = r.samples.len() as u64;
                let c = r
                    .samples
                    .iter()
                    .filter(|s| s.outcome == Outcome::Correct)
                    .count() as u64;
                pass_at_k(n, c, 1)
            })
            .sum::<f64>()
            / total as f64
    });
    let status = if m.unreachable() {
        Status::Unreachable
    } else if m.failures.is_empty() && not_scored == 0 {
        Status::Complete
    } else {
        Status::Partial
    };
    let error = m
        .failures
        .first()
        .map(|(_, f)| f.message.clone())
        .or_else(|| {
            m.records
                .values()
                .find(|r| !r.scored())
                .and_then(|r| r.samples.iter().find(|s| s.outcome == Outcome::Unscored))
                .map(|s| format!("scoring failed: {}", s.reason))
        });
    ModelSummary {
        name: m.spec.name.clone(),
        spec: m.spec.describe(),
        status,
        error,
        accuracy: Accuracy::of(correct, total),
        lift_pp: None,
        pass_at_1,
        not_answered: m.failures.len(),
        not_scored,
        format_valid_rate: rate(format_valid),
        sql_error_rate: rate(outcomes.get(&Outcome::SqlError).copied().unwrap_or(0)),
        timeout_rate: rate(outcomes.get(&Outcome::Timeout).copied().unwrap_or(0)),
        outcomes,
        latency_p50_s: percentile(&latencies, 0.5),
        latency_p95_s: percentile(&latencies, 0.95),
        prompt_tokens,
        completion_tokens,
        cost_usd: m
            .spec
            .pricing
            .map(|p| p.cost(prompt_tokens, completion_tokens)),
        resumed: m.resumed,
        retries: m.usage.map(|u| u.retries),
    }
}

fn slice(name: &str, ids: &[&str], models: &[ModelRun]) -> Slice {
    Slice {
        name: name.to_string(),
        items: ids.len(),
        models: models
            .iter()
            .map(|m| {
                let records: Vec<&ItemRecord> = ids
                    .iter()
                    .filter_map(|id| m.records.get(*id))
                    .filter(|r| r.scored())
                    .collect();
                let correct = records.iter().filter(|r| r.correct()).count() as u64;
                (
                    m.spec.name.clone(),
                    Accuracy::of(correct, records.len() as u64),
                )
            })
            .collect(),
    }
}

fn pair(a: &ModelRun, b: &ModelRun) -> Pair {
    let (mut both_right, mut a_only, mut b_only, mut both_wrong) = (0, 0, 0, 0);
    for (id, ra) in a.records.iter().filter(|(_, r)| r.scored()) {
        let Some(rb) = b.records.get(id).filter(|r| r.scored()) else {
            continue;
        };
        match (ra.correct(), rb.correct()) {
            (true, true) => both_right += 1,
            (true, false) => a_only += 1,
            (false, true) => b_only += 1,
            (false, false) => both_wrong += 1,
        }
    }
    let p_value = mcnemar_exact(a_only, b_only);
    Pair {
        a: a.spec.name.clone(),
        b: b.spec.name.clone(),
        items: both_right + a_only + b_only + both_wrong,
        both_right,
        a_only,
        b_only,
        both_wrong,
        p_value,
        significant: p_value < SIGNIFICANCE,
    }
}

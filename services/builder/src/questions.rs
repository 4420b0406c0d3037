//! Natural-language questions: the template question written with each grammar query, or,
//! with an LLM, the tutorial's translation prompt asked in a chosen style, concurrently, each
//! answer journaled as it arrives.

use std::collections::HashMap;

use anyhow::Result;
use futures::StreamExt;
use rand::SeedableRng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use serde_json::json;
use sqlrft_llm::{ChatRequest, JsonSchemaFormat, Message};

use crate::records::{QueryItem, QuestionItem};
use crate::stage::{LlmRun, count_failure};
use sqlrft_files::Journal;

/// Styles the LLM is asked to write in, so questions do not all sound alike.
pub(crate) const STYLES: &[(&str, &str)] = &[
    ("formal", "a formal business request"),
    (
        "colloquial",
        "a casual, conversational question, as a colleague would ask it in chat",
    ),
    (
        "imperative",
        "an instruction that starts with a verb (List…, Show…, Find…)",
    ),
    (
        "concise",
        "a short question of at most 15 words that still pins down every detail",
    ),
    (
        "analyst",
        "the way a data analyst would phrase it in a ticket",
    ),
    ("curious", "a curious question from someone new to the data"),
];

/// The template question of a grammar query.
pub(crate) fn template_question(query: &QueryItem) -> Option<QuestionItem> {
    query.template_question.as_ref().map(|q| QuestionItem {
        id: query.id.clone(),
        question: q.clone(),
        style: "template".into(),
    })
}

/// The style for query `id`: a seeded choice, stable across runs.
pub(crate) fn style_for(id: &str, seed: u64, styles: &[String]) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(
        seed ^ crate::stage::key_of(id)
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64)),
    );
    styles
        .choose(&mut rng)
        .cloned()
        .unwrap_or_else(|| "formal".into())
}

fn style_description(style: &str) -> String {
    STYLES
        .iter()
        .find(|(name, _)| *name == style)
        .map(|(_, d)| d.to_string())
        .unwrap_or_else(|| style.to_string())
}

/// The tutorial's translation prompt, plus the style.
pub(crate) fn question_prompt(schema_text: &str, sql: &str, style: &str) -> String {
    format!(
        "You are an expert data analyst who is great at translating SQL queries into plain English.\n\
         Based on the database schema and the provided SQL query, what is a natural language question a business user would ask to get this information?\n\
         Ensure that the question is precise enough to accurately map to the corresponding SQL query: mention every filter value, the ordering and any limit.\n\
         Write it as {}.\n\n\
         **Database Schema:**\n{schema_text}\n\n\
         **SQL Query:**\n{sql}\n\n\
         Answer with a JSON object {{\"question\": \"...\"}} holding only the user's question, without any preamble or explanation.",
        style_description(style)
    )
}

#[derive(Deserialize)]
struct QuestionAnswer {
    question: String,
}

fn question_format() -> JsonSchemaFormat {
    JsonSchemaFormat::new(
        "Question",
        json!({
            "type": "object",
            "properties": {"question": {"type": "string", "description": "The user's question."}},
            "required": ["question"],
            "additionalProperties": false
        }),
    )
}

/// What the LLM question stage did.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct LlmQuestionStats {
    pub(crate) asked: usize,
    pub(crate) answered: usize,
    pub(crate) failed: usize,
    /// The first failure, to show in the report.
    pub(crate) first_error: Option<String>,
}

/// Asks the LLM for a question for every query not in `done`, journaling each answer.
pub(crate) async fn ask_llm(
    run: LlmRun<'_>,
    queries: &[QueryItem],
    styles: &[String],
    seed: u64,
    journal: &mut Journal,
    mut done: HashMap<String, QuestionItem>,
) -> Result<(HashMap<String, QuestionItem>, LlmQuestionStats)> {
    let LlmRun {
        client,
        schema,
        progress,
        ..
    } = run;
    let schema_text = schema.to_prompt_text();
    let todo: Vec<&QueryItem> = queries
        .iter()
        .filter(|q| !done.contains_key(&q.id))
        .collect();
    progress.set_length(queries.len() as u64);
    progress.set_position((queries.len() - todo.len()) as u64);
    let mut stats = LlmQuestionStats {
        asked: todo.len(),
        ..Default::default()
    };
    let concurrency = client.config().max_concurrency.max(1);
    let mut stream = futures::stream::iter(todo)
        .map(|query| {
            let style = style_for(&query.id, seed, styles);
            let prompt = question_prompt(&schema_text, &query.sql, &style);
            async move {
                let request = ChatRequest::new(vec![Message::user(prompt)]).with_temperature(0.5);
                let answer = client
                    .chat_json::<QuestionAnswer>(request, question_format())
                    .await;
                (query, style, answer)
            }
        })
        .buffer_unordered(concurrency);
    let mut finished = 0;
    while let Some((query, style, answer)) = stream.next().await {
        run.answered(&mut finished)?;
        match answer {
            Ok(answer) if !answer.value.question.trim().is_empty() => {
                let item = QuestionItem {
                    id: query.id.clone(),
                    question: answer.value.question.trim().to_string(),
                    style,
                };
                journal.append(&item)?;
                done.insert(item.id.clone(), item);
                stats.answered += 1;
            }
            Ok(_) => count_failure(
                &mut stats.failed,
                &mut stats.first_error,
                "the model returned an empty question",
            ),
            Err(e) => count_failure(&mut stats.failed, &mut stats.first_error, e),
        }
    }
    journal.sync()?;
    Ok((done, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn styles_are_stable_per_id_and_varied_across_ids() {
        let styles: Vec<String> = STYLES.iter().map(|(s, _)| s.to_string()).collect();
        assert_eq!(style_for("q1", 7, &styles), style_for("q1", 7, &styles));
        let distinct: std::collections::HashSet<String> = (0..50)
            .map(|i| style_for(&format!("q{i}"), 7, &styles))
            .collect();
        assert!(distinct.len() >= 3, "{distinct:?}");
    }

    #[test]
    fn prompt_holds_schema_sql_and_style() {
        let prompt = question_prompt("| a | INTEGER |", "SELECT a FROM t", "imperative");
        assert!(prompt.contains("SELECT a FROM t") && prompt.contains("| a | INTEGER |"));
        assert!(prompt.contains("starts with a verb"));
    }
}

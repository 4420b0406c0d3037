//! The teacher's prompt, and the ready-to-train prompt stored with every distilled row.

use sqlrft_core::dataset::ChatMessage;
use sqlrft_llm::Message;

use crate::source::SourceItem;

/// The system prompt a trained model sees: the format it must follow (the seed project's
/// wording), then the database context.
pub const STUDENT_INSTRUCTIONS: &str = "You are an expert in writing optimized SQL queries.\n\
Think about the problem and provide your working out.\n\
Place it between <think> and </think>.\n\
Then, provide your solution between <sql></sql>";

const TEACHER_SYSTEM: &str = "You are an expert SQL data analyst who teaches by showing your reasoning.\n\
You receive a database context (DDL and data), a question, the correct SQL query (the objective) \
and an explanation of it. Write the step-by-step reasoning that leads from the question and the \
schema to that query, as if you were discovering it: which tables and columns matter, how they \
join, which filters, groupings, aggregates and ordering the question needs. Do not mention that \
you were given the answer.\n\
Place the reasoning between <think> and </think>. Then give the final query, which must run on \
DuckDB and return the same result as the objective, between <sql> and </sql>. Write nothing \
outside these two blocks.";

/// Messages asking the teacher to reason its way to the item's gold SQL.
pub fn teacher_messages(item: &SourceItem) -> Vec<Message> {
    let mut user = format!(
        "## Instruction\n{}\n\n## Context\n{}\n\n## Objective\n{}\n",
        item.question.trim(),
        item.context.trim(),
        item.gold_sql.trim()
    );
    if let Some(explanation) = &item.explanation {
        user.push_str(&format!("\n## Explanation\n{}\n", explanation.trim()));
    }
    vec![Message::system(TEACHER_SYSTEM), Message::user(user)]
}

/// The `[system, user]` prompt a student model is trained on.
pub fn student_prompt(item: &SourceItem) -> Vec<ChatMessage> {
    vec![
        ChatMessage::system(format!(
            "{STUDENT_INSTRUCTIONS}\n\n## Context\n{}",
            item.context.trim()
        )),
        ChatMessage::user(item.question.trim()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::item_id;

    fn item(explanation: Option<&str>) -> SourceItem {
        SourceItem {
            id: item_id(
                "How many?",
                "CREATE TABLE t(a INT);",
                "SELECT count(*) FROM t",
                explanation,
            ),
            index: 0,
            question: "How many?".into(),
            context: "CREATE TABLE t(a INT);".into(),
            gold_sql: "SELECT count(*) FROM t".into(),
            explanation: explanation.map(str::to_string),
            task_type: None,
            row: Default::default(),
        }
    }

    #[test]
    fn teacher_sees_question_context_objective_and_explanation() {
        let m = teacher_messages(&item(Some("Counts rows.")));
        assert!(m[0].content.contains("<think>") && m[0].content.contains("<sql>"));
        for part in [
            "How many?",
            "CREATE TABLE t(a INT);",
            "SELECT count(*) FROM t",
            "Counts rows.",
        ] {
            assert!(m[1].content.contains(part), "{part}");
        }
        assert!(
            !teacher_messages(&item(None))[1]
                .content
                .contains("Explanation")
        );
    }

    #[test]
    fn student_prompt_has_instructions_and_context_then_the_question() {
        let p = student_prompt(&item(None));
        assert_eq!(p[0].role, "system");
        assert!(p[0].content.starts_with(STUDENT_INSTRUCTIONS));
        assert!(p[0].content.contains("CREATE TABLE t(a INT);"));
        assert_eq!(
            (p[1].role.as_str(), p[1].content.as_str()),
            ("user", "How many?")
        );
    }
}

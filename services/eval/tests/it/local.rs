//! A local checkpoint (a tiny seeded Hugging Face directory) evaluated through sqlrft's own
//! engine, greedy.

use rand::SeedableRng;
use sqlrft_eval::{ModelSpec, Outcome, Target};
use sqlrft_model::backend::{Backend, CpuBackend};
use sqlrft_model::config::ModelConfig;
use sqlrft_model::cpu::model::CpuModel;
use sqlrft_model::params::{ModelLayout, load_weights};
use sqlrft_model::sampling::SamplingParams;
use sqlrft_trainer::rollout::ChatMessage;
use sqlrft_trainer::tokenizer::ChatTokenizer;

use crate::support::{fixture, plan_on};

/// The trainer's tiny-model writer, shared rather than copied.
#[allow(dead_code)]
#[path = "../../../trainer/tests/it/tiny.rs"]
mod tiny;

const MAX_TOKENS: u32 = 10;

fn questions() -> Vec<String> {
    [
        "How many airlines are there?",
        "List every country.",
        "Which airport is busiest?",
    ]
    .map(String::from)
    .to_vec()
}

/// Greedy completion of `question` computed with the trainer's API directly.
fn trainer_greedy(dir: &std::path::Path, question: &str) -> String {
    let config = ModelConfig::load(dir).unwrap();
    let weights = load_weights(dir, &ModelLayout::new(&config).layout).unwrap();
    let tokenizer = ChatTokenizer::load(dir, &config.eos_token_ids).unwrap();
    let mut backend = CpuBackend::new(CpuModel::new(config, weights, None), false);
    let chat = [
        ChatMessage {
            role: "system".into(),
            content: "Answer with SQL.".into(),
        },
        ChatMessage {
            role: "user".into(),
            content: question.into(),
        },
    ];
    let prompt = tokenizer
        .encode(&tokenizer.render(&chat, true).unwrap())
        .unwrap();
    let params = SamplingParams {
        temperature: 0.0,
        top_p: 1.0,
        top_k: 0,
        max_new_tokens: MAX_TOKENS as usize,
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let sampled = backend
        .generate(&[&prompt], 1, &params, &tokenizer.eos_ids, &mut rng)
        .unwrap();
    tokenizer.decode(&sampled[0][0].tokens).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_checkpoint_answers_greedily_through_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("tiny-qwen");
    tiny::write_model(&model_dir, tiny::Family::Qwen2, 17);
    // The tutorial's record shape: row-object ground truth.
    let dataset = dir.path().join("test.jsonl");
    let lines: Vec<String> = questions()
        .iter()
        .map(|q| {
            serde_json::json!({
                "messages": [
                    {"role": "system", "content": "Answer with SQL."},
                    {"role": "user", "content": q},
                    {"role": "assistant", "content": "<sql>SELECT 1 AS n</sql>"}
                ],
                "ground_truth": [{"n": 1}]
            })
            .to_string()
        })
        .collect();
    std::fs::write(&dataset, lines.join("\n") + "\n").unwrap();
    let spec: ModelSpec = format!("tiny=local:{}", model_dir.display())
        .parse()
        .unwrap();
    assert!(matches!(spec.target, Target::Local { .. }));
    let mut plan = plan_on(
        &dataset,
        &fixture().sandbox,
        &dir.path().join("eval"),
        vec![spec],
    );
    plan.sampling.max_tokens = MAX_TOKENS;

    let run = sqlrft_eval::run(&plan).await.unwrap();
    let model = &run.models[0];
    assert!(model.failures.is_empty(), "{:?}", model.failures);
    assert_eq!(model.records.len(), 3);
    for (i, question) in questions().iter().enumerate() {
        let record = &model.records[&format!("line-{}", i + 1)];
        assert_eq!(record.samples.len(), 1);
        assert!(record.prompt_tokens > 0);
        assert!((1..=u64::from(MAX_TOKENS)).contains(&record.completion_tokens));
        assert_ne!(record.samples[0].outcome, Outcome::Unscored, "{record:?}");
        assert_eq!(
            record.samples[0].completion,
            trainer_greedy(&model_dir, question),
            "item {i}"
        );
    }
    let summary = sqlrft_eval::report::summarize(&run, None).unwrap();
    assert!(summary.models[0].spec.starts_with("local:"));
    assert!(summary.models[0].latency_p50_s.unwrap() > 0.0);
}

#[test]
fn a_missing_model_directory_is_a_clear_error() {
    let err = sqlrft_eval::LocalModel::load(std::path::Path::new("/no/such/model"))
        .err()
        .unwrap();
    assert!(err.to_string().contains("sqlrft train export"), "{err}");
}

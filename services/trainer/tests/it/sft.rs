//! Supervised fine-tuning on tiny models: the cross-entropy gradient against finite
//! differences, the assistant-token mask, and a run whose loss falls and resumes.

use crate::tiny::{self, Family};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlrft_model::backend::{Backend, CpuBackend, Sequence};
use sqlrft_model::config::ModelConfig;
use sqlrft_model::cpu::layers::token_logprob_forward;
use sqlrft_model::cpu::model::CpuModel;
use sqlrft_trainer::rollout::ChatMessage;
use sqlrft_trainer::sft::{self, SftExample};
use sqlrft_trainer::tokenizer::ChatTokenizer;
use sqlrft_trainer::train::TrainConfig;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// The SFT loss as its definition says, in f64: −Σ_targets log p(token) / N at temperature 1.
fn mean_nll(model: &CpuModel, e: &SftExample, n: usize) -> f64 {
    let acts = model.forward(&e.tokens[..e.tokens.len() - 1], 0, true);
    let (lp, _) = token_logprob_forward(&acts.logits, &e.tokens[1..], 1.0, model.config.vocab_size);
    -lp.iter()
        .zip(&e.targets[1..])
        .filter(|(_, t)| **t)
        .map(|(l, _)| *l as f64)
        .sum::<f64>()
        / n as f64
}

#[test]
fn sft_cross_entropy_gradient_matches_finite_differences() {
    let cfg = ModelConfig::parse(&tiny::config_json(Family::Llama, 40, 3).to_string()).unwrap();
    let model = CpuModel::new(cfg.clone(), tiny::random_weights(&cfg, 8, 0.3), None);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let tokens: Vec<u32> = (0..10).map(|_| rng.random_range(0..40)).collect();
    // Context, two assistant tokens, a user token, three more assistant tokens.
    let targets = [
        false, false, false, true, true, false, false, true, true, true,
    ];
    let e = SftExample {
        tokens,
        targets: targets.to_vec(),
    };
    let n = 5;
    let prompt_len = 3;
    let mut backend = CpuBackend::new(model.clone(), false);
    backend
        .forward_backward(
            &[Sequence {
                tokens: &e.tokens,
                prompt_len,
            }],
            1.0,
            &mut |_, _| sft::token_weights(&e, prompt_len, n),
        )
        .unwrap();
    let grads = backend.grads().to_vec();
    let layout = backend.trainable_layout().clone();
    let eps = 1e-2f32;
    let mut checked = 0;
    for t in &layout.tensors {
        for k in 0..2 {
            let idx = if t.name.contains("embed_tokens") {
                t.offset + e.tokens[k + 3] as usize * cfg.hidden_size + k
            } else {
                t.offset + rng.random_range(0..t.len())
            };
            let eval = |delta: f32| {
                let mut m = model.clone();
                m.base[idx] += delta;
                mean_nll(&m, &e, n)
            };
            let numeric = (eval(eps) - eval(-eps)) / (2.0 * eps as f64);
            let analytic = grads[idx] as f64;
            assert!(
                (numeric - analytic).abs() <= 2e-3 + 3e-2 * numeric.abs(),
                "{}[{}]: numeric {numeric} vs analytic {analytic}",
                t.name,
                idx - t.offset
            );
            checked += 1;
        }
    }
    assert!(checked >= 2 * layout.tensors.len());
}

fn conversation(question: &str, answer: &str) -> Vec<ChatMessage> {
    [
        ("system", "Answer with SQL."),
        ("user", question),
        ("assistant", answer),
    ]
    .map(|(role, content)| ChatMessage {
        role: role.into(),
        content: content.into(),
    })
    .to_vec()
}

#[test]
fn only_the_assistant_turn_and_its_end_token_are_targets() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny::write_model(dir.path(), Family::Qwen2, 1);
    let tok = ChatTokenizer::load(dir.path(), &cfg.eos_token_ids).unwrap();
    let mut messages = conversation("How many orders?", "<think>\ncount\n</think>");
    messages.push(ChatMessage {
        role: "user".into(),
        content: "And customers?".into(),
    });
    messages.push(ChatMessage {
        role: "assistant".into(),
        content: "<sql>\nSELECT 1\n</sql>".into(),
    });
    let e = sft::tokenize(&tok, &messages, 10_000).unwrap().unwrap();
    let whole = tok.render(&messages, false).unwrap();
    assert_eq!(
        tok.decode(&e.tokens).unwrap(),
        tok.decode(&tok.encode(&whole).unwrap()).unwrap(),
        "piecewise tokenization spells the rendered conversation"
    );
    // The targets, token by token, spell both answers each with its <|im_end|> (kept as an id).
    let im_end = cfg.eos_token_ids[0];
    let target_ids: Vec<u32> = e
        .tokens
        .iter()
        .zip(&e.targets)
        .filter(|(_, t)| **t)
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(target_ids.iter().filter(|&&t| t == im_end).count(), 2);
    assert_eq!(
        tok.decode(&target_ids).unwrap(),
        "<think>\ncount\n</think><sql>\nSELECT 1\n</sql>"
    );
    // Truncation keeps the start; a conversation cut before its answer has nothing to learn.
    assert!(sft::tokenize(&tok, &messages, 4).unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sft_loss_falls_and_a_resumed_run_ends_where_a_straight_one_does() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    let mcfg = tiny::write_model(&model, Family::Qwen2, 4);
    let rows = vec![
        conversation("How many orders?", "<sql>SELECT count(*) FROM orders</sql>"),
        conversation("Open orders?", "<sql>SELECT 1</sql>"),
    ];
    let mut cfg = TrainConfig {
        seed: 5,
        ..TrainConfig::default()
    };
    cfg.lora.rank = 4;
    cfg.lora.alpha = 8.0;
    cfg.sft.learning_rate = 5e-2;
    cfg.sft.batch_size = 2;
    cfg.sft.save_steps = 3;
    cfg.sft.lr_scheduler_type = sqlrft_model::optim::LrSchedule::Constant;
    let run = |out: &std::path::Path, epochs: u64, resume: bool| {
        let (mut backend, tok) = sqlrft_trainer::train::load_cpu_backend(&model, &cfg).unwrap();
        let examples = sft::prepare(&tok, &rows, &cfg.sft).unwrap();
        sft::run_sft(
            &mut backend,
            &examples,
            &sft::SftRun {
                output_dir: out,
                model: "m",
                config: &cfg,
                epochs,
                max_grad_norm: 1.0,
                resume,
                quiet: true,
                stop: Arc::new(AtomicBool::new(false)),
            },
        )
        .unwrap();
        backend.trainable_state().unwrap().params
    };
    let straight = dir.path().join("straight");
    let end = run(&straight, 8, false);
    let m = sft::read_metrics(&straight.join("metrics.jsonl")).unwrap();
    assert_eq!(m.len(), 8);
    assert!(
        m[7].loss < 0.8 * m[0].loss,
        "loss {} → {}",
        m[0].loss,
        m[7].loss
    );
    // 3 epochs, then 5 more from its checkpoint: the same weights as 8 straight.
    let split = dir.path().join("split");
    run(&split, 3, false);
    let resumed = run(&split, 8, true);
    assert_eq!(resumed, end);
    let losses = |path: &std::path::Path| -> Vec<f64> {
        sft::read_metrics(&path.join("metrics.jsonl"))
            .unwrap()
            .iter()
            .map(|x| x.loss)
            .collect()
    };
    assert_eq!(losses(&split), losses(&straight));

    // `train export` makes the SFT run a model directory that GRPO can start from.
    let exported = dir.path().join("exported");
    sqlrft_trainer::run_export(sqlrft_trainer::ExportArgs {
        output_dir: straight.clone(),
        checkpoint: None,
        model: Some(model.display().to_string()),
        out: exported.clone(),
        dtype: None,
        adapter: false,
        max_shard_bytes: sqlrft_trainer::export::DEFAULT_MAX_SHARD_BYTES,
        hub: Default::default(),
    })
    .await
    .unwrap();
    let (merged, _) =
        sqlrft_trainer::train::load_cpu_backend(&exported, &TrainConfig::default()).unwrap();
    let (base, _) =
        sqlrft_trainer::train::load_cpu_backend(&model, &TrainConfig::default()).unwrap();
    assert_eq!(merged.config().vocab_size, mcfg.vocab_size);
    assert_ne!(
        merged.merged_weights().unwrap(),
        base.merged_weights().unwrap(),
        "the exported model carries the SFT update"
    );
}

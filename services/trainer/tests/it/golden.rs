//! GRPO maths against golden values produced by TRL 1.16's own code
//! (`scripts/trl_golden.py` → `tests/fixtures/trl_grpo_golden.json`).

use serde::Deserialize;
use sqlrft_model::cpu::layers::{token_logprob_backward, token_logprob_forward};
use sqlrft_trainer::grpo::{self, Aggregation, GrpoParams, LossType, ScaleRewards, TokenInput};

#[derive(Deserialize)]
struct Fixture {
    trl_version: String,
    advantages: Vec<AdvCase>,
    losses: Vec<LossCase>,
}

#[derive(Deserialize)]
struct AdvCase {
    name: String,
    rewards_per_func: Vec<Vec<Option<f64>>>,
    weights: Vec<f64>,
    num_generations: usize,
    scale_rewards: ScaleRewards,
    expected_advantages: Vec<f64>,
}

#[derive(Deserialize)]
struct LossCase {
    name: String,
    loss_type: LossType,
    beta: f64,
    epsilon: f64,
    epsilon_high: f64,
    grad_accum: usize,
    max_completion_length: usize,
    temperature: f32,
    num_items_in_batch: usize,
    completion_logits: Vec<Vec<Vec<f32>>>,
    completion_ids: Vec<Vec<u32>>,
    completion_mask: Vec<Vec<u8>>,
    advantages: Vec<f64>,
    old_logps: Option<Vec<Vec<f64>>>,
    ref_logps: Vec<Vec<f64>>,
    expected: Expected,
}

#[derive(Deserialize)]
struct Expected {
    loss: f64,
    logps: Vec<Vec<f32>>,
    entropies: Vec<Vec<f32>>,
    dloss_dlogits: Vec<Vec<Vec<f32>>>,
    kl: Option<f64>,
    clip_ratio_region: Option<f64>,
}

fn fixture() -> Fixture {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/trl_grpo_golden.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

const TOL: f64 = 1e-5;

fn close(name: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= TOL * (1.0 + want.abs()),
        "{name}: got {got}, TRL has {want}"
    );
}

#[test]
fn fixture_comes_from_trl_1_16() {
    assert_eq!(fixture().trl_version, "1.16.0");
}

#[test]
fn advantages_match_trl() {
    for c in fixture().advantages {
        let n_funcs = c.weights.len();
        let per_reward: Vec<Vec<f64>> = (0..n_funcs)
            .map(|k| {
                c.rewards_per_func
                    .iter()
                    .map(|row| row[k].unwrap_or(f64::NAN))
                    .collect()
            })
            .collect();
        let rewards = grpo::combine_rewards(&per_reward, &c.weights);
        let adv = grpo::advantages(&rewards, c.num_generations, c.scale_rewards);
        for (i, (a, e)) in adv.iter().zip(&c.expected_advantages).enumerate() {
            close(&format!("{} advantage {i}", c.name), *a, *e);
        }
    }
}

#[test]
fn losses_logps_and_logit_gradients_match_trl() {
    for c in fixture().losses {
        let p = GrpoParams {
            beta: c.beta,
            epsilon: c.epsilon,
            epsilon_high: Some(c.epsilon_high),
            loss_type: c.loss_type,
            ..Default::default()
        };
        let v = c.completion_logits[0][0].len();
        let masks: Vec<usize> = c
            .completion_mask
            .iter()
            .map(|m| m.iter().map(|&x| x as usize).sum())
            .collect();
        let agg = Aggregation {
            loss_type: c.loss_type,
            sequences: c.completion_ids.len(),
            tokens: masks.iter().sum(),
            grad_accum: c.grad_accum,
            max_completion_length: c.max_completion_length,
            num_items_in_batch: c.num_items_in_batch,
        };
        let (mut loss, mut kl_sum, mut clipped) = (0.0, 0.0, 0usize);
        for i in 0..c.completion_ids.len() {
            let n = masks[i];
            let logits: Vec<f32> = c.completion_logits[i][..n]
                .iter()
                .flatten()
                .copied()
                .collect();
            let ids = &c.completion_ids[i][..n];
            let (lp, ent) = token_logprob_forward(&logits, ids, c.temperature, v);
            let w = agg.token_weight(n);
            let mut dlogp = vec![0.0f32; n];
            for t in 0..n {
                close(
                    &format!("{} logp[{i}][{t}]", c.name),
                    lp[t] as f64,
                    c.expected.logps[i][t] as f64,
                );
                close(
                    &format!("{} entropy[{i}][{t}]", c.name),
                    ent[t] as f64,
                    c.expected.entropies[i][t] as f64,
                );
                let x = TokenInput {
                    logp: lp[t] as f64,
                    old_logp: c.old_logps.as_ref().map_or(lp[t] as f64, |o| o[i][t]),
                    ref_logp: c.ref_logps[i][t],
                    advantage: c.advantages[i],
                    sampling_weight: 1.0,
                };
                let tl = grpo::token_loss(x, &p);
                loss += w * tl.loss;
                kl_sum += tl.kl;
                clipped += (tl.clipped_low || tl.clipped_high) as usize;
                dlogp[t] = (w * tl.dloss_dlogp) as f32;
            }
            let mut dlogits = vec![0.0f32; n * v];
            token_logprob_backward(&mut dlogits, &dlogp, &logits, ids, c.temperature, v);
            for t in 0..c.completion_ids[i].len() {
                for j in 0..v {
                    let got = if t < n {
                        dlogits[t * v + j] as f64
                    } else {
                        0.0
                    };
                    close(
                        &format!("{} dloss/dlogit[{i}][{t}][{j}]", c.name),
                        got,
                        c.expected.dloss_dlogits[i][t][j] as f64,
                    );
                }
            }
        }
        close(&format!("{} loss", c.name), loss, c.expected.loss);
        if let Some(kl) = c.expected.kl {
            close(&format!("{} kl", c.name), kl_sum / agg.tokens as f64, kl);
        }
        if let Some(r) = c.expected.clip_ratio_region {
            close(
                &format!("{} clip ratio", c.name),
                clipped as f64 / agg.tokens as f64,
                r,
            );
        }
    }
}

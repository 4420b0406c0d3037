//! The GPU forward pass held to the model contract's CPU reference (`sqlrft-model`'s
//! `CpuModel` / `CpuBackend`, the same reference the trainer's tests hold to TRL), on a tiny
//! random Qwen2-shaped model. Skips (and says why) without a GPU.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlrft_cuda::{Attention, Gpu, GpuModel, ModelDims, probe};
use sqlrft_model::backend::{Backend, CpuBackend, Policy, Sequence};
use sqlrft_model::config::ModelConfig;
use sqlrft_model::cpu::model::CpuModel;
use sqlrft_model::lora::{LoraConfig, LoraLayout};
use sqlrft_model::params::{Layout, ModelLayout};
use sqlrft_model::sampling::SamplingParams;

/// A two-layer Qwen2 shape: grouped-query attention, q/k/v biases, tied embeddings.
pub(crate) fn tiny_config() -> ModelConfig {
    ModelConfig::parse(
        r#"{"model_type":"qwen2","vocab_size":301,"hidden_size":64,"intermediate_size":96,
            "num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,
            "rms_norm_eps":1e-6,"rope_theta":10000.0,"tie_word_embeddings":true}"#,
    )
    .unwrap()
}

fn bf16_round(x: f32) -> f32 {
    half::bf16::from_f32(x).to_f32()
}

/// Random base weights in the contract's layout, rounded to bf16 so the CPU sees exactly what
/// the GPU holds (norm weights near 1, the rest small).
pub(crate) fn tiny_weights(config: &ModelConfig, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let layout = ModelLayout::new(config).layout;
    let mut data = vec![0.0; layout.len];
    for t in &layout.tensors {
        let (offset, scale) = if t.name.contains("norm") {
            (1.0, 0.2)
        } else if t.name.contains("embed") {
            (0.0, 1.0)
        } else {
            (0.0, 0.2)
        };
        for v in &mut data[t.range()] {
            *v = bf16_round(offset + rng.random_range(-scale..scale));
        }
    }
    data
}

/// Adapters on every projection with B non-zero (PEFT starts it at 0), so A has a gradient too.
pub(crate) fn tiny_lora(
    config: &ModelConfig,
    rng: &mut ChaCha8Rng,
) -> (LoraConfig, LoraLayout, Vec<f32>) {
    let cfg = LoraConfig {
        rank: 4,
        alpha: 8.0,
        ..LoraConfig::default()
    };
    let layout = LoraLayout::new(&cfg, config).unwrap();
    let data = (0..layout.layout.len)
        .map(|_| bf16_round(rng.random_range(-0.2..0.2)))
        .collect();
    (cfg, layout, data)
}

/// A reader of one tensor of `data` (laid out as `layout`) by name, for the upload functions.
pub(crate) fn reader<'a>(
    layout: &'a Layout,
    data: &'a [f32],
) -> impl FnMut(&str, usize) -> anyhow::Result<Vec<f32>> + 'a {
    move |name, _| Ok(data[layout.get(name).expect("a layout name").range()].to_vec())
}

pub(crate) fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    let den: f64 = want.iter().map(|b| (*b as f64).powi(2)).sum();
    (squared_error(got, want) / den).sqrt()
}

fn squared_error(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    got.iter()
        .zip(want)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum()
}

pub(crate) fn gpu_or_skip(test: &str) -> Option<(tempfile::TempDir, Gpu)> {
    if let Err(why) = probe(0) {
        eprintln!("skipped {test}: {why}");
        return None;
    }
    let cache = tempfile::tempdir().unwrap();
    let gpu = Gpu::new(0, cache.path()).unwrap();
    Some((cache, gpu))
}

#[test]
fn gpu_forward_matches_the_cpu_reference_model() {
    let Some((_cache, gpu)) = gpu_or_skip("gpu_forward_matches_the_cpu_reference_model") else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let config = tiny_config();
    let base = tiny_weights(&config, &mut rng);
    let layout = ModelLayout::new(&config).layout;
    let dims = ModelDims::from_config(config.clone()).unwrap();
    let mut model = GpuModel::upload(&gpu, dims, &mut reader(&layout, &base)).unwrap();
    let cpu = CpuModel::new(config.clone(), base.clone(), None);
    let (b, t) = (2, 9);
    let tokens: Vec<u32> = (0..b * t)
        .map(|_| rng.random_range(0..config.vocab_size as u32))
        .collect();
    let want: Vec<f32> = tokens
        .chunks(t)
        .flat_map(|s| cpu.forward(s, 0, false).logits)
        .collect();
    let ids: Vec<i32> = tokens.iter().map(|&x| x as i32).collect();
    let mut logits = Vec::new();
    for kind in [Attention::Materialised, Attention::Flash] {
        model.attention = kind;
        logits = model.logits(&gpu, &ids, b, t).unwrap();
        // bf16 activations through two layers: a few bf16 roundings deep.
        let err = rel_err(&logits, &want);
        assert!(err < 3e-2, "{kind:?}: logits relative error {err:.3e}");
    }

    let temperature = 0.9;
    let scores = model.score(&gpu, &ids, b, t, temperature, 5).unwrap();
    // Scoring itself (the chunked lm head, temperature, log-softmax, entropy) held tightly to
    // the same sums in f64 over the GPU's own logits, so bf16 noise in the forward pass does
    // not hide a scoring error.
    let (own_lp, own_ent) = scores_of_logits(&logits, &tokens, t, config.vocab_size, temperature);
    let (lp_err, ent_err) = (
        rel_err(&scores.logps, &own_lp),
        rel_err(&scores.entropies, &own_ent),
    );
    assert!(
        lp_err < 1e-2 && ent_err < 1e-2,
        "scores of the GPU's own logits: logp {lp_err:.3e}, entropy {ent_err:.3e}"
    );

    // And end to end against the contract's CPU backend. Entropies are measured on their own
    // scale, ln(vocab) nats: on this tiny random model many positions are nearly certain
    // (entropy near 0), where a relative error only magnifies bf16 rounding (first GPU run:
    // 3.1e-2 relative on entropies while log-probs were within 3.6e-3).
    let seqs: Vec<Sequence> = tokens
        .chunks(t)
        .map(|s| Sequence {
            tokens: s,
            prompt_len: 1,
        })
        .collect();
    let want = CpuBackend::new(cpu, false)
        .score(&seqs, temperature, Policy::Trained)
        .unwrap();
    let want_lp: Vec<f32> = want.iter().flat_map(|s| s.logps.clone()).collect();
    let want_ent: Vec<f32> = want.iter().flat_map(|s| s.entropies.clone()).collect();
    let lp_err = rel_err(&scores.logps, &want_lp);
    let ent_rms = rms_diff(&scores.entropies, &want_ent) / (config.vocab_size as f64).ln();
    assert!(
        lp_err < 3e-2 && ent_rms < 2e-2,
        "logp relative error {lp_err:.3e}; entropy RMS error {ent_rms:.3e} of ln(vocab) \
         (relative {:.3e})",
        rel_err(&scores.entropies, &want_ent)
    );
}

/// Log-prob of each next token and entropy at each position but the last of every sequence of
/// `t` tokens, at `temperature`, from row-major `[tokens, vocab]` logits, summed in f64.
fn scores_of_logits(
    logits: &[f32],
    tokens: &[u32],
    t: usize,
    vocab: usize,
    temperature: f32,
) -> (Vec<f32>, Vec<f32>) {
    let (mut logps, mut entropies) = (Vec::new(), Vec::new());
    for (row, z) in logits.chunks(vocab).enumerate() {
        if (row + 1) % t == 0 {
            continue;
        }
        let z: Vec<f64> = z.iter().map(|&x| x as f64 / temperature as f64).collect();
        let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + z.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
        logps.push((z[tokens[row + 1] as usize] - lse) as f32);
        let mean: f64 = z.iter().map(|x| (x - lse).exp() * x).sum();
        entropies.push((lse - mean) as f32);
    }
    (logps, entropies)
}

fn rms_diff(got: &[f32], want: &[f32]) -> f64 {
    (squared_error(got, want) / want.len() as f64).sqrt()
}

#[test]
fn greedy_decoding_with_the_kv_cache_matches_full_forwards() {
    let Some((_cache, gpu)) =
        gpu_or_skip("greedy_decoding_with_the_kv_cache_matches_full_forwards")
    else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let config = tiny_config();
    let base = tiny_weights(&config, &mut rng);
    let layout = ModelLayout::new(&config).layout;
    let dims = ModelDims::from_config(config.clone()).unwrap();
    let mut model = GpuModel::upload(&gpu, dims, &mut reader(&layout, &base)).unwrap();
    // Rows of different prompt lengths decode together.
    let prompts: Vec<Vec<i32>> = [3, 6, 1]
        .iter()
        .map(|&n| {
            (0..n)
                .map(|_| rng.random_range(0..config.vocab_size as i32))
                .collect()
        })
        .collect();
    let greedy = SamplingParams {
        temperature: 0.0,
        max_new_tokens: 5,
        ..SamplingParams::default()
    };
    for kind in [Attention::Materialised, Attention::Flash] {
        model.attention = kind;
        greedy_matches_full_forwards(&gpu, &model, &prompts, &greedy);
    }
}

fn greedy_matches_full_forwards(
    gpu: &Gpu,
    model: &GpuModel,
    prompts: &[Vec<i32>],
    greedy: &SamplingParams,
) {
    let vocab = model.dims.vocab;
    let out = model
        .generate(gpu, prompts, greedy, &[], &mut || 0.5)
        .unwrap();
    for (p, o) in prompts.iter().zip(&out) {
        assert_eq!(o.tokens.len(), greedy.max_new_tokens);
        assert!(o.truncated);
        let seq: Vec<i32> = p.iter().chain(&o.tokens).copied().collect();
        let logits = model.logits(gpu, &seq, 1, seq.len()).unwrap();
        for (j, &tok) in o.tokens.iter().enumerate() {
            let row = &logits[(p.len() - 1 + j) * vocab..(p.len() + j) * vocab];
            let best = (0..vocab).fold(0, |b, v| if row[v] > row[b] { v } else { b });
            assert_eq!(
                tok as usize, best,
                "{:?}: prompt {p:?}, token {j}",
                model.attention
            );
        }
    }
}

//! The whole forward pass on the GPU against the CPU references composed into the same model,
//! on a tiny random Qwen2-shaped model. Skips (and says why) without a GPU.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlrft_cuda::model::lora_name;
use sqlrft_cuda::reference as cpu;
use sqlrft_cuda::{Attention, GemmShape, Gpu, GpuModel, LoraSpec, ModelDims, probe};
use std::collections::HashMap;

pub(crate) fn dims() -> ModelDims {
    ModelDims {
        vocab: 301,
        hidden: 64,
        intermediate: 96,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        head_dim: 16,
        rms_norm_eps: 1e-6,
        qkv_bias: true,
        tie_word_embeddings: true,
        inv_freq: (0..8)
            .map(|i| 1.0 / 10000f32.powf(i as f32 / 8.0))
            .collect(),
    }
}

/// Random weights, rounded to bf16 so the CPU sees exactly what the GPU holds.
pub(crate) fn weights(d: &ModelDims, rng: &mut ChaCha8Rng) -> HashMap<String, Vec<f32>> {
    let mut w = HashMap::new();
    let mut put = |name: String, len: usize, scale: f32, offset: f32| {
        let v = (0..len)
            .map(|_| half::bf16::from_f32(offset + rng.random_range(-scale..scale)).to_f32())
            .collect();
        w.insert(name, v);
    };
    let (c, i, qd, kvd) = (
        d.hidden,
        d.intermediate,
        d.heads * d.head_dim,
        d.kv_heads * d.head_dim,
    );
    put("model.embed_tokens.weight".into(), d.vocab * c, 1.0, 0.0);
    put("model.norm.weight".into(), c, 0.2, 1.0);
    for l in 0..d.layers {
        let p = format!("model.layers.{l}.");
        put(format!("{p}input_layernorm.weight"), c, 0.2, 1.0);
        put(format!("{p}post_attention_layernorm.weight"), c, 0.2, 1.0);
        for (n, rows) in [("q", qd), ("k", kvd), ("v", kvd)] {
            put(format!("{p}self_attn.{n}_proj.weight"), rows * c, 0.2, 0.0);
            put(format!("{p}self_attn.{n}_proj.bias"), rows, 0.2, 0.0);
        }
        put(format!("{p}self_attn.o_proj.weight"), c * qd, 0.2, 0.0);
        put(format!("{p}mlp.gate_proj.weight"), i * c, 0.2, 0.0);
        put(format!("{p}mlp.up_proj.weight"), i * c, 0.2, 0.0);
        put(format!("{p}mlp.down_proj.weight"), c * i, 0.2, 0.0);
    }
    w
}

fn linear(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    n: usize,
    out: usize,
    inp: usize,
) -> Vec<f32> {
    let mut y = vec![0.0; n * out];
    cpu::gemm(GemmShape::linear(n, out, inp), x, w, &mut y);
    if let Some(b) = bias {
        y.iter_mut().enumerate().for_each(|(j, v)| *v += b[j % out]);
    }
    y
}

/// The model's logits for one sequence, from the CPU references.
pub(crate) fn cpu_logits(d: &ModelDims, w: &HashMap<String, Vec<f32>>, tokens: &[i32]) -> Vec<f32> {
    cpu_logits_lora(d, w, tokens, None)
}

/// The model's logits for one sequence, from the CPU references, with LoRA adapters when given.
pub(crate) fn cpu_logits_lora(
    d: &ModelDims,
    w: &HashMap<String, Vec<f32>>,
    tokens: &[i32],
    lora: Option<&LoraSpec>,
) -> Vec<f32> {
    let t = tokens.len();
    let (c, i, qd, kvd) = (
        d.hidden,
        d.intermediate,
        d.heads * d.head_dim,
        d.kv_heads * d.head_dim,
    );
    let positions: Vec<i32> = (0..t as i32).collect();
    let mut x = cpu::embedding_forward(tokens, &w["model.embed_tokens.weight"], c);
    let shape = cpu::Attn {
        b: 1,
        tq: t,
        s: t,
        nh: d.heads,
        nkv: d.kv_heads,
        hd: d.head_dim,
    };
    for l in 0..d.layers {
        let p = format!("model.layers.{l}.");
        let g = |n: &str| &w[&format!("{p}{n}")];
        let proj = |name: &str, x: &[f32], bias: bool, out: usize, inp: usize| {
            let parent = if matches!(name, "gate_proj" | "up_proj" | "down_proj") {
                "mlp"
            } else {
                "self_attn"
            };
            let b = bias.then(|| g(&format!("{parent}.{name}.bias")).as_slice());
            let mut y = linear(x, g(&format!("{parent}.{name}.weight")), b, t, out, inp);
            // The adapter adds `s · (x Aᵀ) Bᵀ` where `lora` targets this projection.
            if let Some(spec) = lora.filter(|s| s.targets.iter().any(|p| p == name)) {
                let adapter = |ab: char| &w[&lora_name(l, name, ab)];
                let u = linear(x, adapter('A'), None, t, spec.rank, inp);
                let z = linear(&u, adapter('B'), None, t, out, spec.rank);
                y.iter_mut()
                    .zip(&z)
                    .for_each(|(a, b)| *a += spec.scale() * b);
            }
            y
        };
        let (h, _) = cpu::rmsnorm_forward(&x, g("input_layernorm.weight"), c, d.rms_norm_eps);
        let mut q = proj("q_proj", &h, true, qd, c);
        let mut k = proj("k_proj", &h, true, kvd, c);
        let v = proj("v_proj", &h, true, kvd, c);
        cpu::rope(&mut q, &positions, &d.inv_freq, d.heads, d.head_dim, 1.0);
        cpu::rope(&mut k, &positions, &d.inv_freq, d.kv_heads, d.head_dim, 1.0);
        let (y, _) = cpu::attention_forward(&q, &k, &v, &[0], shape);
        let o = proj("o_proj", &y, false, c, qd);
        x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
        let (h, _) =
            cpu::rmsnorm_forward(&x, g("post_attention_layernorm.weight"), c, d.rms_norm_eps);
        let gate = proj("gate_proj", &h, false, i, c);
        let up = proj("up_proj", &h, false, i, c);
        let a = cpu::swiglu_forward(&gate, &up);
        let down = proj("down_proj", &a, false, c, i);
        x.iter_mut().zip(&down).for_each(|(a, b)| *a += b);
    }
    let (h, _) = cpu::rmsnorm_forward(&x, &w["model.norm.weight"], c, d.rms_norm_eps);
    linear(&h, &w["model.embed_tokens.weight"], None, t, d.vocab, c)
}

pub(crate) fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    let num: f64 = got
        .iter()
        .zip(want)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum();
    let den: f64 = want.iter().map(|b| (*b as f64).powi(2)).sum();
    (num / den).sqrt()
}

#[test]
fn gpu_forward_matches_the_cpu_reference_model() {
    if let Err(why) = probe(0) {
        eprintln!("skipped gpu_forward_matches_the_cpu_reference_model: {why}");
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let gpu = Gpu::new(0, cache.path()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let d = dims();
    let w = weights(&d, &mut rng);
    let mut model = GpuModel::upload(&gpu, d.clone(), &mut |name, _| Ok(w[name].clone())).unwrap();
    let (b, t) = (2, 9);
    let tokens: Vec<i32> = (0..b * t)
        .map(|_| rng.random_range(0..d.vocab as i32))
        .collect();
    let mut want = vec![];
    for s in tokens.chunks(t) {
        want.extend(cpu_logits(&d, &w, s));
    }
    for kind in [Attention::Materialised, Attention::Flash] {
        model.attention = kind;
        let got = model.logits(&gpu, &tokens, b, t).unwrap();
        // bf16 activations through two layers: a few bf16 roundings deep.
        let err = rel_err(&got, &want);
        assert!(err < 3e-2, "{kind:?}: logits relative error {err:.3e}");
    }

    let scores = model.score(&gpu, &tokens, b, t, 0.9, 5).unwrap();
    let targets: Vec<i32> = tokens.chunks(t).flat_map(|s| s[1..].to_vec()).collect();
    let rows: Vec<f32> = want
        .chunks(d.vocab * t)
        .flat_map(|s| s[..d.vocab * (t - 1)].to_vec())
        .collect();
    let (want_lp, want_ent) = cpu::logprob_forward(&rows, &targets, d.vocab, 1.0 / 0.9);
    let lp_err = rel_err(&scores.logps, &want_lp);
    let ent_err = rel_err(&scores.entropies, &want_ent);
    assert!(
        lp_err < 3e-2 && ent_err < 3e-2,
        "logp {lp_err:.3e}, entropy {ent_err:.3e}"
    );
}

#[test]
fn greedy_decoding_with_the_kv_cache_matches_full_forwards() {
    if let Err(why) = probe(0) {
        eprintln!("skipped greedy_decoding_with_the_kv_cache_matches_full_forwards: {why}");
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let gpu = Gpu::new(0, cache.path()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let d = dims();
    let w = weights(&d, &mut rng);
    let mut model = GpuModel::upload(&gpu, d.clone(), &mut |name, _| Ok(w[name].clone())).unwrap();
    // Rows of different prompt lengths decode together.
    let prompts: Vec<Vec<i32>> = [3, 6, 1]
        .iter()
        .map(|&n| {
            (0..n)
                .map(|_| rng.random_range(0..d.vocab as i32))
                .collect()
        })
        .collect();
    let greedy = sqlrft_cuda::SampleParams {
        temperature: 0.0,
        top_k: 0,
        top_p: 1.0,
    };
    for kind in [Attention::Materialised, Attention::Flash] {
        model.attention = kind;
        greedy_matches_full_forwards(&gpu, &model, &prompts, greedy);
    }
}

fn greedy_matches_full_forwards(
    gpu: &Gpu,
    model: &GpuModel,
    prompts: &[Vec<i32>],
    greedy: sqlrft_cuda::SampleParams,
) {
    let d = &model.dims;
    let out = model
        .generate(gpu, prompts, greedy, 5, &[], &mut || 0.5)
        .unwrap();
    for (p, o) in prompts.iter().zip(&out) {
        assert_eq!(o.tokens.len(), 5);
        assert!(o.truncated);
        let seq: Vec<i32> = p.iter().chain(&o.tokens).copied().collect();
        let logits = model.logits(gpu, &seq, 1, seq.len()).unwrap();
        for (j, &tok) in o.tokens.iter().enumerate() {
            let row = &logits[(p.len() - 1 + j) * d.vocab..(p.len() + j) * d.vocab];
            let best = (0..d.vocab).fold(0, |b, v| if row[v] > row[b] { v } else { b });
            assert_eq!(
                tok as usize, best,
                "{:?}: prompt {p:?}, token {j}",
                model.attention
            );
        }
    }
}

//! Full fine-tuning on the GPU: gradients against central differences of the CPU reference
//! model, and one AdamW step against its definition. Skips (and says why) without a GPU.

use crate::model::{cpu_logits, cpu_logits_lora, dims, rel_err, weights};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlrft_cuda::reference as cpu;
use sqlrft_cuda::{AdamW, Attention, Gpu, GpuTrainer, LoraSpec, Scoring, probe};
use std::collections::HashMap;

/// `Σ dlogp · logp` of the CPU reference model.
fn cpu_loss(
    d: &sqlrft_cuda::ModelDims,
    w: &HashMap<String, Vec<f32>>,
    tokens: &[i32],
    t: usize,
    inv_temp: f32,
    dlogp: &[f32],
) -> f64 {
    cpu_loss_lora(d, w, None, tokens, t, inv_temp, dlogp)
}

fn cpu_loss_lora(
    d: &sqlrft_cuda::ModelDims,
    w: &HashMap<String, Vec<f32>>,
    lora: Option<&LoraSpec>,
    tokens: &[i32],
    t: usize,
    inv_temp: f32,
    dlogp: &[f32],
) -> f64 {
    let mut loss = 0.0;
    for (s, g) in tokens.chunks(t).zip(dlogp.chunks(t - 1)) {
        let logits = cpu_logits_lora(d, w, s, lora);
        let (lp, _) =
            cpu::logprob_forward(&logits[..d.vocab * (t - 1)], &s[1..], d.vocab, inv_temp);
        loss += lp
            .iter()
            .zip(g)
            .map(|(a, b)| *a as f64 * *b as f64)
            .sum::<f64>();
    }
    loss
}

#[test]
fn gpu_gradients_match_finite_differences_of_the_cpu_model() {
    if let Err(why) = probe(0) {
        eprintln!("skipped gpu_gradients_match_finite_differences_of_the_cpu_model: {why}");
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let gpu = Gpu::new(0, cache.path()).unwrap();
    for kind in [Attention::Materialised, Attention::Flash] {
        full_gradients_match(&gpu, kind);
    }
}

fn full_gradients_match(gpu: &Gpu, kind: Attention) {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let d = dims();
    let w = weights(&d, &mut rng);
    let mut trainer = GpuTrainer::upload(gpu, d.clone(), &mut |n, _| Ok(w[n].clone())).unwrap();
    trainer.model.attention = kind;
    let (b, t, temperature) = (2, 7, 0.9f32);
    let tokens: Vec<i32> = (0..b * t)
        .map(|_| rng.random_range(0..d.vocab as i32))
        .collect();
    let dlogp: Vec<f32> = (0..b * (t - 1))
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let (saved, scores) = trainer.forward(gpu, &tokens, b, t, temperature, 5).unwrap();
    trainer.backward(gpu, saved, &dlogp).unwrap();

    // The forward's log-probs agree with the CPU model.
    let mut want_lp = vec![];
    for s in tokens.chunks(t) {
        let logits = cpu_logits(&d, &w, s);
        want_lp.extend(
            cpu::logprob_forward(
                &logits[..d.vocab * (t - 1)],
                &s[1..],
                d.vocab,
                1.0 / temperature,
            )
            .0,
        );
    }
    let lp_err = rel_err(&scores.logps, &want_lp);
    assert!(
        lp_err < 3e-2,
        "{kind:?}: log-probs relative error {lp_err:.3e}"
    );

    // Gradients at a few random elements of every kind of tensor.
    let h = 1e-2f32;
    let (mut got, mut want) = (vec![], vec![]);
    for name in [
        "model.embed_tokens.weight",
        "model.norm.weight",
        "model.layers.0.input_layernorm.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.self_attn.q_proj.bias",
        "model.layers.0.self_attn.k_proj.weight",
        "model.layers.1.self_attn.v_proj.bias",
        "model.layers.0.self_attn.o_proj.weight",
        "model.layers.1.post_attention_layernorm.weight",
        "model.layers.0.mlp.gate_proj.weight",
        "model.layers.1.mlp.up_proj.weight",
        "model.layers.1.mlp.down_proj.weight",
    ] {
        let g = trainer.grad_host(gpu, name).unwrap();
        // Embedding rows of tokens in the batch carry gradient; pick among those for it.
        let picks: Vec<usize> = if name == "model.embed_tokens.weight" {
            (0..3)
                .map(|j| tokens[j * 3] as usize * d.hidden + rng.random_range(0..d.hidden))
                .collect()
        } else {
            (0..3).map(|_| rng.random_range(0..g.len())).collect()
        };
        for i in picks {
            let mut wp = w.clone();
            wp.get_mut(name).unwrap()[i] += h;
            let up = cpu_loss(&d, &wp, &tokens, t, 1.0 / temperature, &dlogp);
            wp.get_mut(name).unwrap()[i] -= 2.0 * h;
            let down = cpu_loss(&d, &wp, &tokens, t, 1.0 / temperature, &dlogp);
            want.push(((up - down) / (2.0 * h as f64)) as f32);
            got.push(g[i]);
        }
    }
    let err = rel_err(&got, &want);
    assert!(
        err < 0.1,
        "{kind:?}: gradient relative error {err:.3e}\ngot  {got:?}\nwant {want:?}"
    );
}

#[test]
fn first_adamw_step_moves_each_weight_by_lr_and_spares_norms_from_decay() {
    if let Err(why) = probe(0) {
        eprintln!(
            "skipped first_adamw_step_moves_each_weight_by_lr_and_spares_norms_from_decay: {why}"
        );
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let gpu = Gpu::new(0, cache.path()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    let d = dims();
    let w = weights(&d, &mut rng);
    let mut trainer = GpuTrainer::upload(&gpu, d.clone(), &mut |n, _| Ok(w[n].clone())).unwrap();
    let (b, t) = (2, 6);
    let tokens: Vec<i32> = (0..b * t)
        .map(|_| rng.random_range(0..d.vocab as i32))
        .collect();
    let dlogp: Vec<f32> = (0..b * (t - 1))
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let (saved, _) = trainer.forward(&gpu, &tokens, b, t, 1.0, 64).unwrap();
    trainer.backward(&gpu, saved, &dlogp).unwrap();
    let opt = AdamW {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.1,
    };
    for name in [
        "model.layers.0.mlp.up_proj.weight",
        "model.layers.0.input_layernorm.weight",
        "model.layers.1.self_attn.k_proj.bias",
    ] {
        let g = trainer.grad_host(&gpu, name).unwrap();
        assert!(g.iter().any(|g| g.abs() > 1e-6), "{name} has no gradient");
    }
    let grads: HashMap<&str, Vec<f32>> = [
        "model.layers.0.mlp.up_proj.weight",
        "model.layers.0.input_layernorm.weight",
    ]
    .into_iter()
    .map(|n| (n, trainer.grad_host(&gpu, n).unwrap()))
    .collect();
    // No clipping (max_norm 0): the step sees the raw gradients.
    let norm = trainer.clip_grad_norm(&gpu, 0.0).unwrap();
    assert!(norm > 0.0 && norm.is_finite(), "norm {norm}");
    trainer.optimizer_step(&gpu, opt).unwrap();
    for (name, wd) in [
        ("model.layers.0.mlp.up_proj.weight", 0.1f32),
        ("model.layers.0.input_layernorm.weight", 0.0),
    ] {
        let after = trainer.master_host(&gpu, name).unwrap();
        for ((&g, &w0), &w1) in grads[name].iter().zip(&w[name]).zip(&after) {
            if g.abs() < 1e-4 {
                continue;
            }
            // Step 1 of Adam moves by lr · g / (|g| + eps') ≈ lr · sign(g), after the decay.
            let want = w0 * (1.0 - 1e-3 * wd) - 1e-3 * g.signum();
            assert!(
                (w1 - want).abs() < 2e-5,
                "{name}: {w0} → {w1}, expected {want}"
            );
        }
    }
}

#[test]
fn lora_gradients_match_finite_differences_and_the_base_stays_frozen() {
    if let Err(why) = probe(0) {
        eprintln!(
            "skipped lora_gradients_match_finite_differences_and_the_base_stays_frozen: {why}"
        );
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let gpu = Gpu::new(0, cache.path()).unwrap();
    for kind in [Attention::Materialised, Attention::Flash] {
        lora_gradients_match(&gpu, kind);
    }
}

fn lora_gradients_match(gpu: &Gpu, kind: Attention) {
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let d = dims();
    let w = weights(&d, &mut rng);
    let spec = LoraSpec {
        rank: 4,
        alpha: 8.0,
        targets: [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ]
        .map(String::from)
        .to_vec(),
    };
    // B is non-zero (PEFT starts it at 0) so that A has a gradient too.
    let mut all = w.clone();
    for (name, len) in spec.tensors(&d) {
        let v = (0..len)
            .map(|_| half::bf16::from_f32(rng.random_range(-0.2..0.2)).to_f32())
            .collect();
        all.insert(name, v);
    }
    let mut trainer = GpuTrainer::upload_lora(
        gpu,
        d.clone(),
        &mut |n, _| Ok(w[n].clone()),
        spec.clone(),
        &mut |n, _| Ok(all[n].clone()),
    )
    .unwrap();
    trainer.model.attention = kind;
    assert!(trainer.trainable().iter().all(|(n, _)| n.contains("lora_")));
    assert!(
        trainer.grad_host(gpu, "model.norm.weight").is_err(),
        "the base is frozen"
    );

    let (b, t, temperature) = (2, 6, 1.0f32);
    let tokens: Vec<i32> = (0..b * t)
        .map(|_| rng.random_range(0..d.vocab as i32))
        .collect();
    let dlogp: Vec<f32> = (0..b * (t - 1))
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();

    // Adapters off: the base model, i.e. the reference policy.
    let (_, base) = trainer
        .forward_with(
            gpu,
            &tokens,
            b,
            t,
            Scoring {
                temperature,
                chunk_rows: 4,
                adapters: false,
            },
        )
        .unwrap();
    let mut want_base = vec![];
    for s in tokens.chunks(t) {
        let logits = cpu_logits(&d, &w, s);
        want_base
            .extend(cpu::logprob_forward(&logits[..d.vocab * (t - 1)], &s[1..], d.vocab, 1.0).0);
    }
    let err = rel_err(&base.logps, &want_base);
    assert!(
        err < 3e-2,
        "{kind:?}: reference log-probs relative error {err:.3e}"
    );

    let (saved, _) = trainer.forward(gpu, &tokens, b, t, temperature, 4).unwrap();
    trainer.backward(gpu, saved, &dlogp).unwrap();
    let h = 1e-2f32;
    let (mut got, mut want) = (vec![], vec![]);
    for name in [
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
        "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight",
        "base_model.model.model.layers.1.self_attn.o_proj.lora_A.weight",
        "base_model.model.model.layers.0.mlp.gate_proj.lora_B.weight",
        "base_model.model.model.layers.1.mlp.down_proj.lora_A.weight",
        "base_model.model.model.layers.1.mlp.up_proj.lora_B.weight",
    ] {
        let g = trainer.grad_host(gpu, name).unwrap();
        for _ in 0..3 {
            let i = rng.random_range(0..g.len());
            let mut wp = all.clone();
            wp.get_mut(name).unwrap()[i] += h;
            let up = cpu_loss_lora(&d, &wp, Some(&spec), &tokens, t, 1.0, &dlogp);
            wp.get_mut(name).unwrap()[i] -= 2.0 * h;
            let down = cpu_loss_lora(&d, &wp, Some(&spec), &tokens, t, 1.0, &dlogp);
            want.push(((up - down) / (2.0 * h as f64)) as f32);
            got.push(g[i]);
        }
    }
    let err = rel_err(&got, &want);
    assert!(
        err < 0.1,
        "{kind:?}: adapter gradient relative error {err:.3e}\ngot  {got:?}\nwant {want:?}"
    );
}

#[test]
fn trainable_state_round_trips_through_the_host() {
    if let Err(why) = probe(0) {
        eprintln!("skipped trainable_state_round_trips_through_the_host: {why}");
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let gpu = Gpu::new(0, cache.path()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(24);
    let d = dims();
    let w = weights(&d, &mut rng);
    let mut trainer = GpuTrainer::upload(&gpu, d.clone(), &mut |n, _| Ok(w[n].clone())).unwrap();
    let name = "model.layers.1.mlp.gate_proj.weight";
    let mut state = trainer.read_state(&gpu, name).unwrap();
    assert_eq!(state.master, w[name]);
    state.master.iter_mut().for_each(|x| *x *= 2.0);
    state.m.iter_mut().for_each(|x| *x = 0.5);
    trainer.write_state(&gpu, name, &state).unwrap();
    assert_eq!(trainer.read_state(&gpu, name).unwrap(), state);
    let err = trainer.write_state(
        &gpu,
        name,
        &sqlrft_cuda::TensorState {
            master: vec![0.0; 3],
            m: vec![],
            v: vec![],
        },
    );
    assert!(err.unwrap_err().to_string().contains("has 3 values"));
}

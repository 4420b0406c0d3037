//! The CUDA backend against the CPU backend through the one `Backend` contract: scores,
//! accumulated gradients (full fine-tuning and LoRA), the reference policy, sampling
//! log-probs, AdamW and the trainable state. Skips (and says why) without a GPU.

use crate::model::{gpu_or_skip, rel_err, tiny_config, tiny_lora, tiny_weights};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlrft_cuda::{Attention, CudaBackend, CudaOptions, Gpu};
use sqlrft_model::backend::{Backend, CpuBackend, Policy, Sequence, TokenScores};
use sqlrft_model::cpu::model::CpuModel;
use sqlrft_model::optim::OptimParams;
use sqlrft_model::sampling::SamplingParams;

/// The same model on both backends: every weight trained, or adapters on every projection.
fn both(gpu: Gpu, lora: bool, attention: Attention, seed: u64) -> (CpuBackend, CudaBackend) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let config = tiny_config();
    let base = tiny_weights(&config, &mut rng);
    let (model, cfg) = if lora {
        let (cfg, layout, data) = tiny_lora(&config, &mut rng);
        (CpuModel::new(config, base, Some((layout, data))), Some(cfg))
    } else {
        (CpuModel::new(config, base, None), None)
    };
    let options = CudaOptions {
        // Two micro-batches for three sequences: the padding and reassembly run too.
        micro_batch: 2,
        chunk_rows: 5,
        attention,
    };
    let cuda = CudaBackend::new(gpu, model.clone(), cfg.as_ref(), true, options).unwrap();
    (CpuBackend::new(model, true), cuda)
}

/// Three sequences of different prompt and completion lengths.
fn sequences(vocab: usize, rng: &mut ChaCha8Rng) -> Vec<(Vec<u32>, usize)> {
    [(3, 4), (5, 2), (2, 6)]
        .iter()
        .map(|&(p, c)| {
            let tokens = (0..p + c)
                .map(|_| rng.random_range(0..vocab as u32))
                .collect();
            (tokens, p)
        })
        .collect()
}

fn as_seqs(owned: &[(Vec<u32>, usize)]) -> Vec<Sequence<'_>> {
    owned
        .iter()
        .map(|(t, p)| Sequence {
            tokens: t,
            prompt_len: *p,
        })
        .collect()
}

fn flat(scores: &[TokenScores]) -> (Vec<f32>, Vec<f32>) {
    (
        scores.iter().flat_map(|s| s.logps.clone()).collect(),
        scores.iter().flat_map(|s| s.entropies.clone()).collect(),
    )
}

/// Fixed pseudo-random `∂loss/∂logp` per completion token, the same on both backends.
fn dloss(i: usize, s: &TokenScores) -> Vec<f32> {
    (0..s.logps.len())
        .map(|j| (((i * 7 + j * 3) % 11) as f32 - 5.0) / 5.0)
        .collect()
}

fn scores_and_gradients_match(gpu: Gpu, lora: bool, attention: Attention) {
    let what = format!("{attention:?}, {}", if lora { "LoRA" } else { "full" });
    let (mut cpu, mut cuda) = both(gpu, lora, attention, 21);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let owned = sequences(cpu.config().vocab_size, &mut rng);
    let seqs = as_seqs(&owned);
    for policy in [Policy::Trained, Policy::Reference] {
        let (want_lp, want_ent) = flat(&cpu.score(&seqs, 0.9, policy).unwrap());
        let (got_lp, got_ent) = flat(&cuda.score(&seqs, 0.9, policy).unwrap());
        let (e1, e2) = (rel_err(&got_lp, &want_lp), rel_err(&got_ent, &want_ent));
        assert!(
            e1 < 3e-2 && e2 < 3e-2,
            "{what}, {policy:?}: logp {e1:.3e}, entropy {e2:.3e}"
        );
    }
    cpu.zero_grad().unwrap();
    cuda.zero_grad().unwrap();
    let want = cpu.forward_backward(&seqs, 0.9, &mut dloss).unwrap();
    let got = cuda.forward_backward(&seqs, 0.9, &mut dloss).unwrap();
    assert!(rel_err(&flat(&got).0, &flat(&want).0) < 3e-2, "{what}");
    let err = rel_err(&cuda.grads().unwrap(), cpu.grads());
    assert!(err < 0.1, "{what}: gradient relative error {err:.3e}");
    let (n_cpu, n_cuda) = (
        cpu.clip_grad_norm(0.0).unwrap(),
        cuda.clip_grad_norm(0.0).unwrap(),
    );
    assert!(
        ((n_cuda - n_cpu) / n_cpu).abs() < 0.1,
        "{what}: gradient norm {n_cuda} vs {n_cpu}"
    );
}

#[test]
fn cuda_backend_scores_and_gradients_match_the_cpu_backend() {
    for lora in [false, true] {
        for attention in [Attention::Materialised, Attention::Flash] {
            let Some((_cache, gpu)) =
                gpu_or_skip("cuda_backend_scores_and_gradients_match_the_cpu_backend")
            else {
                return;
            };
            scores_and_gradients_match(gpu, lora, attention);
        }
    }
}

#[test]
fn sampled_log_probs_are_what_the_cpu_backend_scores() {
    let Some((_cache, gpu)) = gpu_or_skip("sampled_log_probs_are_what_the_cpu_backend_scores")
    else {
        return;
    };
    let (mut cpu, mut cuda) = both(gpu, true, Attention::Flash, 31);
    let prompts: Vec<Vec<u32>> = vec![vec![1, 2, 3], vec![7, 8, 9, 10, 11]];
    let refs: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
    let params = SamplingParams {
        temperature: 0.8,
        top_k: 50,
        max_new_tokens: 6,
        ..SamplingParams::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let done = cuda.generate(&refs, 3, &params, &[], &mut rng).unwrap();
    assert_eq!((done.len(), done[0].len()), (2, 3));
    let owned: Vec<(Vec<u32>, usize)> = prompts
        .iter()
        .zip(&done)
        .flat_map(|(p, group)| {
            group.iter().map(move |s| {
                assert_eq!(s.tokens.len(), 6);
                assert!(s.truncated);
                (p.iter().chain(&s.tokens).copied().collect(), p.len())
            })
        })
        .collect();
    let want = cpu.score(&as_seqs(&owned), 0.8, Policy::Trained).unwrap();
    let got: Vec<f32> = done
        .iter()
        .flatten()
        .flat_map(|s| s.logprobs.clone())
        .collect();
    let err = rel_err(&got, &flat(&want).0);
    assert!(err < 3e-2, "sampling log-probs relative error {err:.3e}");
    // The same seed draws the same completions.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    assert_eq!(
        cuda.generate(&refs, 3, &params, &[], &mut rng).unwrap(),
        done
    );
}

#[test]
fn first_adamw_step_moves_each_weight_by_lr_and_spares_norms_from_decay() {
    let Some((_cache, gpu)) =
        gpu_or_skip("first_adamw_step_moves_each_weight_by_lr_and_spares_norms_from_decay")
    else {
        return;
    };
    let (_, mut cuda) = both(gpu, false, Attention::Flash, 22);
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let owned = sequences(cuda.config().vocab_size, &mut rng);
    cuda.forward_backward(&as_seqs(&owned), 1.0, &mut dloss)
        .unwrap();
    let before = cuda.trainable_state().unwrap();
    let grads = cuda.grads().unwrap();
    let layout = cuda.trainable_layout().clone();
    // No clipping (max_norm 0): the step sees the raw gradients.
    cuda.clip_grad_norm(0.0).unwrap();
    let opt = OptimParams {
        weight_decay: 0.1,
        ..OptimParams::default()
    };
    cuda.optimizer_step(1e-3, &opt).unwrap();
    let after = cuda.trainable_state().unwrap();
    assert_eq!(after.adam_t, before.adam_t + 1);
    for (name, wd) in [
        ("model.layers.0.mlp.up_proj.weight", 0.1f32),
        ("model.layers.0.input_layernorm.weight", 0.0),
    ] {
        let r = layout.get(name).unwrap().range();
        let mut moved = 0;
        for i in r {
            if grads[i].abs() < 1e-4 {
                continue;
            }
            // Step 1 of Adam moves by lr · g / (|g| + eps') ≈ lr · sign(g), after the decay.
            let want = before.params[i] * (1.0 - 1e-3 * wd) - 1e-3 * grads[i].signum();
            assert!(
                (after.params[i] - want).abs() < 2e-5,
                "{name}[{i}]: {} → {}, expected {want}",
                before.params[i],
                after.params[i]
            );
            moved += 1;
        }
        assert!(moved > 0, "{name} has no gradient");
    }
}

#[test]
fn trainable_state_round_trips_through_the_backend() {
    let Some((_cache, gpu)) = gpu_or_skip("trainable_state_round_trips_through_the_backend") else {
        return;
    };
    let (cpu, mut cuda) = both(gpu, true, Attention::Flash, 24);
    let mut state = cuda.trainable_state().unwrap();
    assert_eq!(state, cpu.trainable_state().unwrap(), "uploaded as loaded");
    state.params.iter_mut().for_each(|x| *x *= 2.0);
    state.adam_m.iter_mut().for_each(|x| *x = 0.5);
    state.adam_t = 7;
    cuda.load_trainable_state(state.clone()).unwrap();
    assert_eq!(cuda.trainable_state().unwrap(), state);
    // Merged weights fold the (doubled) adapters in as the CPU reference does.
    let mut host = cpu;
    host.load_trainable_state(state.clone()).unwrap();
    let err = rel_err(
        &cuda.merged_weights().unwrap(),
        &host.merged_weights().unwrap(),
    );
    assert!(err < 1e-6, "merged weights differ: {err:.3e}");
    let short = sqlrft_model::backend::TrainableState {
        params: vec![0.0; 3],
        ..state
    };
    let err = cuda.load_trainable_state(short).unwrap_err().to_string();
    assert!(err.contains("3 trainable values"), "{err}");
}

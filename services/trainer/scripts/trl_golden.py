"""Golden values for sqlrft-trainer's GRPO maths, produced by TRL's own code.

Writes tests/fixtures/trl_grpo_golden.json. Run once (CI uses the committed fixture):

    python -m venv /tmp/venv && /tmp/venv/bin/pip install torch trl==1.16.0 transformers
    /tmp/venv/bin/python services/trainer/scripts/trl_golden.py

Loss, per-token log-probs, entropies and d(loss)/d(logits) come from calling
`GRPOTrainer._compute_loss` itself, on a stub model patched with TRL's `add_fused_lm_head`
whose backbone returns a fixed tensor and whose LM head is the identity, so that tensor *is*
the logits and its gradient is the logit gradient. Advantages come from the statements of
`GRPOTrainer._generate_and_score_completions` (TRL 1.16, "sum_then_normalize"), which are
inline there and so are transcribed below with TRL's own `nanstd`.
"""

import json
import pathlib
import types
from collections import defaultdict
from contextlib import nullcontext

import torch
import trl
from transformers import PretrainedConfig
from trl import GRPOTrainer
from trl.trainer.utils import add_fused_lm_head, nanstd

torch.manual_seed(0)
OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "trl_grpo_golden.json"


class Backbone(torch.nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.hidden = hidden

    def forward(self, *args, **kwargs):
        return types.SimpleNamespace(last_hidden_state=self.hidden)


class StubLM(torch.nn.Module):
    """A causal LM whose logits are a fixed tensor: backbone output -> identity LM head."""

    def __init__(self, logits):
        super().__init__()
        vocab = logits.size(-1)
        self.config = PretrainedConfig()
        self.hidden = torch.nn.Parameter(logits.clone())
        self.base_model_ = Backbone(self.hidden)
        self.head = torch.nn.Linear(vocab, vocab, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(torch.eye(vocab))
        self.head.weight.requires_grad_(False)

    @property
    def base_model(self):
        return self.base_model_

    def get_output_embeddings(self):
        return self.head

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        raise RuntimeError("only the fused forward is used")


class Accel:
    num_processes = 1
    sync_gradients = True
    is_main_process = True

    def autocast(self):
        return nullcontext()

    def gather(self, x):
        return x

    def reduce(self, x, reduction="sum"):
        return x


def trainer_stub(case, temperature):
    t = object.__new__(GRPOTrainer)
    t.accelerator = Accel()
    t.temperature = temperature
    t.top_entropy_quantile = 1.0
    t.off_policy_mask_threshold = None
    t.importance_sampling_level = "token"
    t.beta = case["beta"]
    t.loss_type = case["loss_type"]
    t.epsilon_low = case["epsilon"]
    t.epsilon_high = case["epsilon_high"]
    t.use_vllm = False
    t.vllm_importance_sampling_correction = False
    t.current_gradient_accumulation_steps = case["grad_accum"]
    t.max_completion_length = case["max_completion_length"]
    t.aux_loss_enabled = False
    t._entropy_bonus_enabled = False
    t.args = types.SimpleNamespace(use_bias_correction_kl=False, delta=None, steps_per_generation=case["grad_accum"])
    t._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
    t.model = types.SimpleNamespace(training=True)
    return t


def loss_case(name, loss_type, beta, epsilon, epsilon_high, temperature, grad_accum, num_items, off_policy):
    B, P, C, V = 4, 3, 5, 7
    logits = torch.randn(B, P + C, V)
    prompt_ids = torch.randint(0, V, (B, P))
    completion_ids = torch.randint(0, V, (B, C))
    completion_mask = torch.ones(B, C, dtype=torch.long)
    completion_mask[1, 3:] = 0  # a completion that ended early (right padding)
    completion_mask[3, 1:] = 0
    advantages = torch.randn(B)
    model = StubLM(logits)
    add_fused_lm_head(model, temperature=temperature, outputs=("log_probs", "entropy"))
    with torch.no_grad():
        shifted = logits[:, P - 1 : P + C - 1] / temperature
        cur = torch.log_softmax(shifted, -1).gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)
    old = (cur + 0.3 * torch.randn(B, C)) if off_policy else None
    ref = cur + 0.2 * torch.randn(B, C)
    case = dict(loss_type=loss_type, beta=beta, epsilon=epsilon, epsilon_high=epsilon_high,
                grad_accum=grad_accum, max_completion_length=C + 1)
    inputs = {
        "prompt_ids": prompt_ids,
        "prompt_mask": torch.ones(B, P, dtype=torch.long),
        "completion_ids": completion_ids,
        "completion_mask": completion_mask,
        "advantages": advantages,
        "ref_per_token_logps": ref,
        "num_items_in_batch": torch.tensor(float(num_items)),
    }
    if old is not None:
        inputs["old_per_token_logps"] = old
    trainer = trainer_stub(case, temperature)
    loss = GRPOTrainer._compute_loss(trainer, model, inputs)
    loss.backward()
    grad = model.hidden.grad[:, P - 1 : P + C - 1]
    # The logps/entropies TRL's fused head computes, for the fixture's per-token checks.
    logps, entropies, _ = trainer._get_per_token_logps_and_entropies(
        model, torch.cat([prompt_ids, completion_ids], 1),
        torch.cat([inputs["prompt_mask"], completion_mask], 1), C, compute_entropy=True)
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    return {
        "name": name,
        **case,
        "temperature": temperature,
        "num_items_in_batch": num_items,
        "completion_logits": logits[:, P - 1 : P + C - 1].tolist(),
        "completion_ids": completion_ids.tolist(),
        "completion_mask": completion_mask.tolist(),
        "advantages": advantages.tolist(),
        "old_logps": None if old is None else old.tolist(),
        "ref_logps": ref.tolist(),
        "expected": {
            "loss": loss.item(),
            "logps": logps.detach().tolist(),
            "entropies": entropies.detach().tolist(),
            "dloss_dlogits": grad.tolist(),
            "kl": metrics.get("kl"),
            "clip_ratio_region": metrics.get("clip_ratio/region_mean"),
        },
    }


def advantages_case(name, rewards_per_func, weights, num_generations, scale_rewards):
    # Transcribed from GRPOTrainer._generate_and_score_completions (TRL 1.16, sum_then_normalize).
    rewards_per_func = torch.tensor(rewards_per_func, dtype=torch.float32)
    reward_weights = torch.tensor(weights, dtype=torch.float32)
    unscorable_mask = torch.isnan(rewards_per_func).all(dim=1)
    rewards = (rewards_per_func * reward_weights.unsqueeze(0)).nansum(dim=1)
    rewards[unscorable_mask] = torch.nan
    mean_grouped_rewards = torch.nanmean(rewards.view(-1, num_generations), dim=1)
    mean_grouped_rewards = mean_grouped_rewards.repeat_interleave(num_generations, dim=0)
    if scale_rewards in ["group", "none"]:
        std_rewards = nanstd(rewards.view(-1, num_generations), dim=1).repeat_interleave(num_generations, dim=0)
    else:
        std_rewards = nanstd(rewards).expand_as(rewards)
    advantages = rewards - mean_grouped_rewards
    if scale_rewards != "none":
        advantages = advantages / (std_rewards + 1e-4)
    advantages = torch.nan_to_num(advantages, nan=0.0)
    return {
        "name": name,
        "rewards_per_func": [[None if v != v else v for v in row] for row in rewards_per_func.tolist()],
        "weights": weights,
        "num_generations": num_generations,
        "scale_rewards": scale_rewards,
        "expected_advantages": advantages.tolist(),
    }


def main():
    nan = float("nan")
    rpf = [[1.0, 0.5], [0.0, 0.25], [1.0, nan], [0.0, 1.0], [0.5, 0.5], [nan, nan], [1.0, 0.0], [0.25, 0.75]]
    fixture = {
        "trl_version": trl.__version__,
        "torch_version": torch.__version__,
        "advantages": [
            advantages_case("group", rpf, [1.0, 0.5], 4, "group"),
            advantages_case("batch", rpf, [1.0, 0.5], 4, "batch"),
            advantages_case("none", rpf, [2.0, 1.0], 2, "none"),
        ],
        "losses": [
            loss_case("dapo_on_policy", "dapo", 0.0, 0.2, 0.2, 1.0, 1, 11, False),
            loss_case("dapo_off_policy_kl", "dapo", 0.04, 0.2, 0.28, 0.6, 2, 23, True),
            loss_case("grpo_off_policy_kl", "grpo", 0.1, 0.2, 0.2, 0.7, 2, 0, True),
            loss_case("bnpo_off_policy", "bnpo", 0.0, 0.1, 0.3, 1.0, 1, 0, True),
            loss_case("dr_grpo_off_policy_kl", "dr_grpo", 0.05, 0.2, 0.2, 0.9, 3, 0, True),
        ],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

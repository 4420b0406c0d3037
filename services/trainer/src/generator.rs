//! Sampling a round's completions on an OpenAI-compatible inference server — vLLM, SGLang, or
//! `sqlrft model serve` — instead of in the trainer's own process, the way TRL's vLLM server
//! mode splits generation from the update.
//!
//! The weights travel as LoRA adapters: before a round, when the policy has changed since the
//! last one, the trainer writes its adapter in PEFT's layout under the adapter folder (a path
//! the server can read) and loads it with vLLM's `POST /v1/load_lora_adapter` under a name that
//! carries the policy version (`sqlrft-policy-step-000007`), then unloads the version before
//! it. Completions name that adapter as their model, so every completion of a round comes from
//! the policy of that round. Prompts go as token ids and completions come back as token ids
//! (`return_tokens_as_token_ids`), so nothing is lost to detokenising and the trainer scores
//! exactly the tokens that were sampled.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlrft_llm::{LlmClient, LlmConfig, Provider};

use crate::export::export_adapter_dir;
use sqlrft_model::config::ModelConfig;
use sqlrft_model::lora::{LoraConfig, LoraLayout};
use sqlrft_model::sampling::{Sampled, SamplingParams};

/// Where a run's completions are sampled when not in the trainer's process (`[train.generator]`,
/// `--generator URL`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    /// The server's OpenAI base URL, `/v1` included (`http://gpu-node:8000/v1`).
    pub url: String,
    /// The base model's name on the server (vLLM's `--served-model-name`); unset, the first
    /// model `/v1/models` lists without a parent.
    #[serde(default)]
    pub model: Option<String>,
    /// Environment variable holding the server's API key (vLLM's `--api-key`); unset, no key
    /// is sent.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Folder the policy adapters are written to; the server must be able to read it at the
    /// same path. Unset: `<output_dir>/policy-adapters`.
    #[serde(default)]
    pub adapter_dir: Option<PathBuf>,
    /// Seconds one request may take before it is retried.
    #[serde(default = "default_timeout")]
    pub timeout: f64,
}

fn default_timeout() -> f64 {
    600.0
}

impl GeneratorConfig {
    /// A generator at `url` with every other setting at its default.
    pub fn at(url: impl Into<String>) -> Self {
        GeneratorConfig {
            url: url.into(),
            model: None,
            api_key_env: None,
            adapter_dir: None,
            timeout: default_timeout(),
        }
    }
}

/// The adapter name of policy version `step` on the server.
pub fn adapter_name(step: u64) -> String {
    format!("sqlrft-policy-step-{step:06}")
}

/// The policy version an adapter name carries, if it is one of ours.
pub fn policy_version(adapter: &str) -> Option<u64> {
    adapter.strip_prefix("sqlrft-policy-step-")?.parse().ok()
}

/// A connection to an OpenAI-compatible generation server: what rollout workers sample with.
pub struct GeneratorClient {
    client: LlmClient,
    /// The server's `/v1` base URL, as configured.
    pub url: String,
    /// The base model's name on the server.
    pub base_model: String,
}

impl GeneratorClient {
    /// Connects to `config.url` and finds the base model's name there.
    pub async fn connect(config: &GeneratorConfig) -> Result<Self> {
        let mut llm = LlmConfig::new(Provider::Vllm, config.model.clone().unwrap_or_default());
        llm.base_url = Some(config.url.clone());
        llm.api_key_env = config.api_key_env.clone();
        llm.timeout = Duration::from_secs_f64(config.timeout);
        let client = LlmClient::new(llm).context("--generator")?;
        let base_model = match &config.model {
            Some(name) => name.clone(),
            None => base_model_of(&client, &config.url).await?,
        };
        Ok(GeneratorClient {
            client,
            url: config.url.clone(),
            base_model,
        })
    }

    /// The policy versions whose adapters the server holds, oldest first.
    pub async fn policies(&self) -> Result<Vec<u64>> {
        let list: Value = self
            .client
            .get_json("/models")
            .await
            .with_context(|| format!("--generator {}: could not list its models", self.url))?;
        let mut versions: Vec<u64> = list["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["id"].as_str().and_then(policy_version))
            .collect();
        versions.sort_unstable();
        Ok(versions)
    }

    /// Samples `n` completions of each prompt from `model` (the base model's or an adapter's
    /// name): `[prompt][completion]`.
    pub async fn generate(
        &self,
        model: &str,
        prompts: &[Vec<u32>],
        n: usize,
        params: &SamplingParams,
        seed: u64,
    ) -> Result<Vec<Vec<Sampled>>> {
        let request = json!({
            "model": model,
            "prompt": prompts,
            "n": n,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "top_k": if params.top_k == 0 { -1 } else { params.top_k as i64 },
            "seed": seed,
            "logprobs": 0,
            "return_tokens_as_token_ids": true,
            "skip_special_tokens": false,
        });
        let reply: Value = self
            .client
            .post_json("/completions", &request)
            .await
            .with_context(|| format!("--generator {}: completions", self.url))?;
        read_choices(&reply, prompts.len(), n).with_context(|| {
            format!(
                "--generator {}: the completions reply has no token ids; the server must \
                 honour `return_tokens_as_token_ids` with `logprobs` (vLLM, `sqlrft model serve`)",
                self.url
            )
        })
    }

    async fn unload(&self, version: u64) {
        let name = adapter_name(version);
        // A server that kept an old version only costs it memory; the run goes on.
        if let Err(err) = self
            .client
            .post("/unload_lora_adapter", &json!({"lora_name": name}))
            .await
        {
            tracing::warn!(adapter = %name, error = %err, "could not unload a policy adapter");
        }
    }
}

/// The trainer's side of a generation server: publishes each policy version as an adapter and
/// samples with it.
pub struct RemoteGenerator {
    server: GeneratorClient,
    adapter_dir: PathBuf,
    lora: LoraConfig,
    layout: LoraLayout,
    /// The versions loaded on the server by this run, oldest first.
    loaded: VecDeque<u64>,
    /// How many versions stay loaded: rollout workers may still be sampling with older ones.
    retain: usize,
}

impl RemoteGenerator {
    /// Connects to `config.url`, finds the base model's name there and unloads the policy
    /// adapters an earlier run left (workers would otherwise sample with them). `lora` is the
    /// run's adapter configuration on a model of shape `model`; `output_dir` is the run's
    /// folder.
    pub async fn connect(
        config: &GeneratorConfig,
        lora: &LoraConfig,
        model: &ModelConfig,
        output_dir: &Path,
    ) -> Result<Self> {
        let server = GeneratorClient::connect(config).await?;
        let adapter_dir = match &config.adapter_dir {
            Some(dir) => dir.clone(),
            None => output_dir.join("policy-adapters"),
        };
        // The server opens adapter paths itself; a relative path would be read from its folder.
        std::fs::create_dir_all(&adapter_dir)
            .with_context(|| format!("could not create `{}`", adapter_dir.display()))?;
        let adapter_dir = adapter_dir
            .canonicalize()
            .with_context(|| format!("`{}`", adapter_dir.display()))?;
        for version in server.policies().await? {
            server.unload(version).await;
        }
        Ok(RemoteGenerator {
            server,
            adapter_dir,
            lora: lora.clone(),
            layout: LoraLayout::new(lora, model)?,
            loaded: VecDeque::new(),
            retain: 1,
        })
    }

    /// Keeps the newest `versions` policy versions loaded instead of only the newest (at least
    /// one).
    pub fn retain_versions(&mut self, versions: usize) {
        self.retain = versions.max(1);
    }

    /// Puts policy version `step` (the adapter weights `weights`, laid out as the run's LoRA
    /// layout) on the server unless it is there already, and drops versions beyond those
    /// retained.
    pub async fn sync_policy(&mut self, step: u64, weights: &[f32]) -> Result<()> {
        if self.loaded.back() == Some(&step) {
            return Ok(());
        }
        if weights.len() != self.layout.layout.len {
            bail!(
                "--generator needs a LoRA run: the trainable weights are not the adapter \
                 (set full_finetune = false)"
            );
        }
        let name = adapter_name(step);
        let dir = self.adapter_dir.join(&name);
        export_adapter_dir(
            &self.layout,
            weights,
            &self.lora,
            &self.server.base_model,
            &dir,
        )?;
        self.server
            .client
            .post(
                "/load_lora_adapter",
                &json!({"lora_name": name, "lora_path": dir.display().to_string()}),
            )
            .await
            .with_context(|| {
                format!(
                    "the generator at {} did not load the policy adapter `{}`; vLLM needs \
                     --enable-lora, --max-lora-rank {} or more and \
                     VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, and must read `{}` at that path",
                    self.server.url,
                    name,
                    self.lora.rank,
                    dir.display()
                )
            })?;
        self.loaded.push_back(step);
        while self.loaded.len() > self.retain {
            let old = self.loaded.pop_front().expect("more than one loaded");
            self.server.unload(old).await;
            let _ = std::fs::remove_dir_all(self.adapter_dir.join(adapter_name(old)));
        }
        Ok(())
    }

    /// Samples `n` completions of each prompt with the newest loaded policy (the base model
    /// before any): `[prompt][completion]`.
    pub async fn generate(
        &self,
        prompts: &[Vec<u32>],
        n: usize,
        params: &SamplingParams,
        seed: u64,
    ) -> Result<Vec<Vec<Sampled>>> {
        let model = match self.loaded.back() {
            Some(&step) => adapter_name(step),
            None => self.server.base_model.clone(),
        };
        self.server.generate(&model, prompts, n, params, seed).await
    }
}

/// The first model `/v1/models` lists that is not an adapter of another.
async fn base_model_of(client: &LlmClient, url: &str) -> Result<String> {
    let list: Value = client
        .get_json("/models")
        .await
        .with_context(|| format!("--generator {url}: could not list its models"))?;
    list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["parent"].is_null())
        .and_then(|m| m["id"].as_str())
        .map(str::to_string)
        .with_context(|| {
            format!(
                "--generator {url}: /models lists no base model; name it with --generator-model"
            )
        })
}

/// The completions of a reply, grouped by prompt.
fn read_choices(reply: &Value, prompts: usize, n: usize) -> Result<Vec<Vec<Sampled>>> {
    let choices = reply["choices"]
        .as_array()
        .context("the reply has no `choices`")?;
    if choices.len() != prompts * n {
        bail!(
            "{} choices for {prompts} prompts × {n} completions",
            choices.len()
        );
    }
    let mut ordered: Vec<&Value> = choices.iter().collect();
    ordered.sort_by_key(|c| c["index"].as_u64().unwrap_or(u64::MAX));
    let sampled = ordered
        .into_iter()
        .map(read_choice)
        .collect::<Result<Vec<_>>>()?;
    let mut sampled = sampled.into_iter();
    Ok((0..prompts)
        .map(|_| sampled.by_ref().take(n).collect())
        .collect())
}

fn read_choice(choice: &Value) -> Result<Sampled> {
    let logprobs = &choice["logprobs"];
    let tokens = logprobs["tokens"]
        .as_array()
        .context("a choice has no `logprobs.tokens`")?
        .iter()
        .map(|t| {
            t.as_str()
                .and_then(|t| t.strip_prefix("token_id:"))
                .and_then(|id| id.parse::<u32>().ok())
                .with_context(|| format!("token {t} is not spelled `token_id:N`"))
        })
        .collect::<Result<Vec<u32>>>()?;
    let token_logprobs = logprobs["token_logprobs"]
        .as_array()
        .context("a choice has no `logprobs.token_logprobs`")?
        .iter()
        .map(|l| l.as_f64().map(|l| l as f32).unwrap_or(f32::NAN))
        .collect::<Vec<f32>>();
    if token_logprobs.len() != tokens.len() {
        bail!(
            "{} log-probs for {} tokens",
            token_logprobs.len(),
            tokens.len()
        );
    }
    Ok(Sampled {
        tokens,
        logprobs: token_logprobs,
        truncated: choice["finish_reason"] == "length",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(index: usize, ids: &[u32], finish: &str) -> Value {
        json!({
            "index": index,
            "text": "",
            "finish_reason": finish,
            "logprobs": {
                "tokens": ids.iter().map(|i| format!("token_id:{i}")).collect::<Vec<_>>(),
                "token_logprobs": ids.iter().map(|i| -(*i as f64)).collect::<Vec<_>>(),
            },
        })
    }

    #[test]
    fn choices_are_grouped_by_prompt_in_index_order() {
        let reply = json!({"choices": [
            choice(3, &[7], "stop"),
            choice(0, &[1, 2], "length"),
            choice(2, &[5, 6], "stop"),
            choice(1, &[3], "stop"),
        ]});
        let groups = read_choices(&reply, 2, 2).unwrap();
        let tokens: Vec<Vec<Vec<u32>>> = groups
            .iter()
            .map(|g| g.iter().map(|s| s.tokens.clone()).collect())
            .collect();
        assert_eq!(
            tokens,
            vec![vec![vec![1, 2], vec![3]], vec![vec![5, 6], vec![7]]]
        );
        assert!(groups[0][0].truncated);
        assert!(!groups[0][1].truncated);
        assert_eq!(groups[1][0].logprobs, vec![-5.0, -6.0]);
    }

    #[test]
    fn replies_without_token_ids_or_with_missing_choices_are_errors() {
        let text_tokens = json!({"choices": [{"index": 0, "finish_reason": "stop",
            "logprobs": {"tokens": ["SELECT"], "token_logprobs": [-0.1]}}]});
        let err = read_choices(&text_tokens, 1, 1).unwrap_err();
        assert!(format!("{err:#}").contains("token_id:N"), "{err:#}");
        let short = json!({"choices": [choice(0, &[1], "stop")]});
        let err = read_choices(&short, 1, 2).unwrap_err();
        assert!(
            format!("{err:#}").contains("1 choices for 1 prompts × 2"),
            "{err:#}"
        );
    }
}

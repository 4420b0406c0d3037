//! Asking one model for answers: an OpenAI-compatible endpoint through `sqlrft-llm` (bounded
//! concurrency, retries with backoff honouring `Retry-After`, usage accounting), or a local
//! Hugging Face directory run greedily by the trainer's model code.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlrft_llm::{ChatRequest, LlmClient, LlmConfig, LlmError, Usage};
use sqlrft_model::backend::Backend;
use sqlrft_model::sampling::SamplingParams;
use sqlrft_trainer::device::{Device, DynBackend, open_backend};
use sqlrft_trainer::rollout::ChatMessage;
use sqlrft_trainer::tokenizer::ChatTokenizer;

use crate::dataset::EvalItem;
use crate::spec::{ModelSpec, Target};

/// How answers are sampled; the same for every model of a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// Answers per item (pass@k when above 1).
    pub samples: u32,
    /// Sampling temperature (0: greedy).
    pub temperature: f32,
    /// Longest answer, in tokens.
    pub max_tokens: u32,
    /// Sample `j` of an item asks with seed `seed + j`.
    pub seed: u64,
}

/// Connection settings shared by every endpoint model of a run.
#[derive(Debug, Clone, Copy)]
pub struct EndpointSettings {
    /// Requests in flight per model.
    pub concurrency: usize,
    /// Retries after a 429, a 5xx, a timeout or a dropped connection.
    pub retries: u32,
    /// Time limit of one request.
    pub timeout: Duration,
    /// First backoff delay; it doubles with every retry.
    pub backoff_base: Duration,
    /// The request field the length limit goes in (`None`: the provider's, e.g.
    /// `max_completion_tokens` for OpenAI).
    pub token_limit_field: Option<sqlrft_llm::TokenLimitField>,
}

/// The answers to one item.
#[derive(Debug, Clone)]
pub struct Answer {
    /// One text per sample.
    pub texts: Vec<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Seconds per request (per sample for endpoints; one generation for a local model).
    pub latencies: Vec<f64>,
}

/// Why a model gave no answer, in a form the report can group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AskFailure {
    /// The endpoint could not be reached at all (connection refused, DNS, TLS).
    pub unreachable: bool,
    /// What went wrong, for the report.
    pub message: String,
}

impl AskFailure {
    fn from_llm(err: &LlmError) -> Self {
        let last = match err {
            LlmError::Exhausted { last, .. } => last.as_ref(),
            other => other,
        };
        AskFailure {
            unreachable: matches!(last, LlmError::Connection { .. }),
            message: err.to_string(),
        }
    }
}

/// A model ready to answer.
pub enum Answerer {
    Endpoint(LlmClient),
    Local(Arc<LocalModel>),
}

impl Answerer {
    /// Builds the client or loads the model directory `spec` names.
    pub fn open(spec: &ModelSpec, settings: EndpointSettings) -> Result<Answerer> {
        match &spec.target {
            Target::Endpoint {
                provider,
                model,
                base_url,
                api_key_env,
            } => {
                let mut config = LlmConfig::new(*provider, model.clone());
                config.base_url = base_url.clone();
                config.api_key_env = api_key_env.clone();
                config.max_concurrency = spec.concurrency.unwrap_or(settings.concurrency);
                config.retries = settings.retries;
                config.timeout = settings.timeout;
                config.backoff_base = settings.backoff_base;
                if settings.token_limit_field.is_some() {
                    config.token_limit_field = settings.token_limit_field;
                }
                if let Some(p) = spec.pricing {
                    config.price_input_per_million = Some(p.input_per_million);
                    config.price_output_per_million = Some(p.output_per_million);
                }
                let client =
                    LlmClient::new(config).with_context(|| format!("model `{}`", spec.name))?;
                Ok(Answerer::Endpoint(client))
            }
            Target::Local { dir } => Ok(Answerer::Local(Arc::new(
                LocalModel::load(dir).with_context(|| format!("model `{}`", spec.name))?,
            ))),
        }
    }

    /// How many items this model works on at once.
    pub fn concurrency(&self) -> usize {
        match self {
            Answerer::Endpoint(client) => client.config().max_concurrency,
            // One forward pass at a time: the CPU backend uses every core already.
            Answerer::Local(_) => 1,
        }
    }

    /// Requests, retries and failures of this run (endpoints only).
    pub fn usage(&self) -> Option<Usage> {
        match self {
            Answerer::Endpoint(client) => Some(client.usage()),
            Answerer::Local(_) => None,
        }
    }

    /// Asks for `sampling.samples` answers to `item`'s prompt.
    pub async fn answer(&self, item: &EvalItem, sampling: &Sampling) -> Result<Answer, AskFailure> {
        match self {
            Answerer::Endpoint(client) => {
                let asks = (0..sampling.samples.max(1)).map(|j| {
                    let request = ChatRequest::new(item.messages.clone())
                        .with_temperature(sampling.temperature)
                        .with_max_tokens(sampling.max_tokens)
                        .with_seed(sampling.seed.wrapping_add(u64::from(j)));
                    async move {
                        let started = Instant::now();
                        let response = client.chat(request).await?;
                        Ok::<_, LlmError>((response, started.elapsed().as_secs_f64()))
                    }
                });
                let results = futures::future::join_all(asks).await;
                let mut answer = Answer {
                    texts: Vec::new(),
                    prompt_tokens: 0,
                    completion_tokens: 0,
                    latencies: Vec::new(),
                };
                for result in results {
                    let (response, latency) = result.map_err(|e| AskFailure::from_llm(&e))?;
                    let usage = response.usage.unwrap_or_default();
                    answer.prompt_tokens += usage.prompt_tokens;
                    answer.completion_tokens += usage.completion_tokens;
                    answer.latencies.push(latency);
                    // A choice without text is an answer with no SQL, scored as such.
                    answer
                        .texts
                        .push(response.texts().into_iter().next().unwrap_or_default());
                }
                Ok(answer)
            }
            Answerer::Local(model) => {
                let model = model.clone();
                let messages = item.messages.clone();
                let seed = item_seed(sampling.seed, &item.id);
                let sampling = *sampling;
                tokio::task::spawn_blocking(move || model.generate(&messages, &sampling, seed))
                    .await
                    .map_err(|e| AskFailure {
                        unreachable: false,
                        message: format!("the local generation task failed: {e}"),
                    })?
                    .map_err(|e| AskFailure {
                        unreachable: false,
                        message: format!("{e:#}"),
                    })
            }
        }
    }
}

/// A per-item seed, so a resumed run samples an item exactly as an uninterrupted one would.
fn item_seed(seed: u64, id: &str) -> u64 {
    let digest = Sha256::digest(id.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    seed ^ u64::from_le_bytes(bytes)
}

/// A Hugging Face model directory on the trainer's backends: the GPU when one is found
/// (`--device auto`), else the CPU reference.
pub struct LocalModel {
    backend: Mutex<DynBackend>,
    tokenizer: ChatTokenizer,
}

impl LocalModel {
    /// Loads `config.json`, the safetensors weights and the tokenizer of `dir` (what `sqlrft
    /// train export` writes, or a downloaded base model).
    pub fn load(dir: &Path) -> Result<LocalModel> {
        let (model, tokenizer) = sqlrft_trainer::train::load_model_dir(dir)?;
        Ok(LocalModel {
            backend: Mutex::new(open_backend(Device::Auto, model, None, false)?),
            tokenizer,
        })
    }

    fn generate(
        &self,
        messages: &[sqlrft_llm::Message],
        sampling: &Sampling,
        seed: u64,
    ) -> Result<Answer> {
        let started = Instant::now();
        let chat: Vec<ChatMessage> = messages
            .iter()
            .map(|m| ChatMessage {
                role: role_name(m.role).to_string(),
                content: m.content.clone(),
            })
            .collect();
        let prompt = self
            .tokenizer
            .encode(&self.tokenizer.render(&chat, true)?)?;
        if prompt.is_empty() {
            bail!("the prompt renders to no tokens");
        }
        let params = SamplingParams {
            temperature: sampling.temperature,
            top_p: 1.0,
            top_k: 0,
            max_new_tokens: sampling.max_tokens as usize,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let sampled = self
            .backend
            .lock()
            .map_err(|_| anyhow::anyhow!("the local model's lock is poisoned"))?
            .generate(
                &[&prompt],
                sampling.samples.max(1) as usize,
                &params,
                &self.tokenizer.eos_ids,
                &mut rng,
            )?
            .remove(0);
        let texts = sampled
            .iter()
            .map(|s| self.tokenizer.decode(&s.tokens))
            .collect::<Result<Vec<_>>>()?;
        Ok(Answer {
            texts,
            prompt_tokens: prompt.len() as u64,
            completion_tokens: sampled.iter().map(|s| s.tokens.len() as u64).sum(),
            latencies: vec![started.elapsed().as_secs_f64()],
        })
    }
}

fn role_name(role: sqlrft_llm::Role) -> &'static str {
    match role {
        sqlrft_llm::Role::System => "system",
        sqlrft_llm::Role::User => "user",
        sqlrft_llm::Role::Assistant => "assistant",
    }
}

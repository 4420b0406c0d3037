//! The model behind the API. One thread owns the backend and decodes every request waiting
//! when it becomes free as one batch, so concurrent requests share the matrix products (the CPU
//! backend decodes a batch's sequences together). Requests with the same adapter and sampling
//! settings share a batch; a request with its own seed decodes alone, so its answer does not
//! depend on what else was queued.

use std::collections::{BTreeSet, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlrft_model::backend::{Backend, CpuBackend};
use sqlrft_model::config::ModelConfig;
use sqlrft_model::cpu::model::CpuModel;
use sqlrft_model::lora::{LoraConfig, LoraLayout};
use sqlrft_model::params::read_tensors;
use sqlrft_model::sampling::{Sampled, SamplingParams};
use sqlrft_trainer::tokenizer::ChatTokenizer;
use tokio::sync::oneshot;

/// A LoRA adapter's layout and weights, ready to put on the model.
pub type Adapter = (LoraLayout, Vec<f32>);

/// One request's generation: `n` completions of each prompt.
#[derive(Clone, Debug)]
pub struct GenerationRequest {
    /// The adapter to apply, by the name it was loaded under; `None` is the base model.
    pub adapter: Option<String>,
    /// The prompts' token ids (several decode as one batch).
    pub prompts: Vec<Vec<u32>>,
    /// Completions wanted.
    pub n: usize,
    /// How to sample them.
    pub params: SamplingParams,
    /// A seed makes the answer repeatable.
    pub seed: Option<u64>,
}

/// Why a generation did not happen.
#[derive(Clone, Debug)]
pub enum EngineError {
    /// The queue is full; the client should retry later.
    Busy,
    /// The named adapter is not loaded.
    UnknownAdapter(String),
    /// The model failed on this request (its message says why).
    Failed(String),
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineError::Busy => write!(f, "the model's queue is full; retry shortly"),
            EngineError::UnknownAdapter(name) => write!(f, "no adapter `{name}` is loaded"),
            EngineError::Failed(message) => write!(f, "generation failed: {message}"),
        }
    }
}

/// Where a request's completions go: `[prompt][completion]`.
type Reply = oneshot::Sender<Result<Vec<Vec<Sampled>>, EngineError>>;

enum Job {
    Generate {
        request: GenerationRequest,
        reply: Reply,
    },
    Load {
        name: String,
        adapter: Box<Adapter>,
        reply: oneshot::Sender<()>,
    },
    Unload {
        name: String,
        reply: oneshot::Sender<bool>,
    },
}

impl Job {
    fn prompt_count(&self) -> usize {
        match self {
            Job::Generate { request, .. } => request.prompts.len(),
            Job::Load { .. } | Job::Unload { .. } => 0,
        }
    }
}

/// A handle on the model thread; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    jobs: SyncSender<Job>,
    tokenizer: Arc<ChatTokenizer>,
    config: Arc<ModelConfig>,
    adapters: Arc<Mutex<BTreeSet<String>>>,
}

impl Engine {
    /// Starts the model thread over `model` (no adapters on it), with room for `max_queue`
    /// waiting requests and batches of up to `max_batch_prompts` prompts.
    pub fn start(
        model: CpuModel,
        tokenizer: ChatTokenizer,
        max_batch_prompts: usize,
        max_queue: usize,
    ) -> Result<Engine> {
        let config = Arc::new(model.config.clone());
        let (jobs, queue) = std::sync::mpsc::sync_channel(max_queue);
        let worker = Worker {
            backend: CpuBackend::new(model, false),
            eos: tokenizer.eos_ids.clone(),
            parked: HashMap::new(),
            active: None,
            rng: ChaCha8Rng::seed_from_u64(rand::random()),
            max_batch_prompts,
        };
        std::thread::Builder::new()
            .name("sqlrft-model".into())
            .spawn(move || worker.run(queue))
            .context("could not start the model thread")?;
        Ok(Engine {
            jobs,
            tokenizer: Arc::new(tokenizer),
            config,
            adapters: Arc::default(),
        })
    }

    /// The model's tokenizer and chat template.
    pub fn tokenizer(&self) -> &ChatTokenizer {
        &self.tokenizer
    }

    /// Token ids the model knows: `0..vocab_size`.
    pub fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }

    /// The names of the adapters loaded now.
    pub fn adapter_names(&self) -> Vec<String> {
        self.lock_names().iter().cloned().collect()
    }

    /// Whether an adapter of this name is loaded.
    pub fn has_adapter(&self, name: &str) -> bool {
        self.lock_names().contains(name)
    }

    fn lock_names(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        // The set is only inserted into and removed from; a poisoned lock still holds a set.
        self.adapters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Samples `request.n` completions of each of its prompts: `[prompt][completion]`.
    pub async fn generate(
        &self,
        request: GenerationRequest,
    ) -> Result<Vec<Vec<Sampled>>, EngineError> {
        if let Some(name) = &request.adapter
            && !self.has_adapter(name)
        {
            return Err(EngineError::UnknownAdapter(name.clone()));
        }
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Generate { request, reply })?;
        answer
            .await
            .unwrap_or_else(|_| Err(EngineError::Failed("the model thread stopped".into())))
    }

    /// Reads a PEFT adapter directory and puts it under `name` (replacing one of that name).
    pub async fn load_adapter(&self, name: &str, dir: &Path) -> Result<()> {
        let config = self.config.clone();
        let dir = dir.to_path_buf();
        let adapter = tokio::task::spawn_blocking(move || read_adapter_dir(&dir, &config))
            .await
            .context("the adapter reader stopped")??;
        let (reply, done) = oneshot::channel();
        self.submit(Job::Load {
            name: name.to_string(),
            adapter: Box::new(adapter),
            reply,
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        done.await.context("the model thread stopped")?;
        self.lock_names().insert(name.to_string());
        Ok(())
    }

    /// Drops the adapter `name`; false when there was none.
    pub async fn unload_adapter(&self, name: &str) -> Result<bool> {
        let (reply, done) = oneshot::channel();
        self.submit(Job::Unload {
            name: name.to_string(),
            reply,
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let existed = done.await.context("the model thread stopped")?;
        self.lock_names().remove(name);
        Ok(existed)
    }

    fn submit(&self, job: Job) -> Result<(), EngineError> {
        self.jobs.try_send(job).map_err(|err| match err {
            TrySendError::Full(_) => EngineError::Busy,
            TrySendError::Disconnected(_) => EngineError::Failed("the model thread stopped".into()),
        })
    }
}

/// Reads a PEFT LoRA adapter (`adapter_config.json` + `adapter_model.safetensors`, as `sqlrft
/// train export --adapter` and PEFT's `save_pretrained` write them) for a model of `model`'s
/// shape.
pub fn read_adapter_dir(dir: &Path, model: &ModelConfig) -> Result<Adapter> {
    let config_path = dir.join("adapter_config.json");
    let text = std::fs::read_to_string(&config_path).with_context(|| {
        format!(
            "could not read `{}`; a LoRA adapter is a PEFT directory (adapter_config.json, \
             adapter_model.safetensors), e.g. from `sqlrft train export --adapter`",
            config_path.display()
        )
    })?;
    let peft: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("`{}` is not JSON", config_path.display()))?;
    let context = || format!("`{}`", config_path.display());
    if let Some(kind) = peft["peft_type"].as_str()
        && kind != "LORA"
    {
        bail!("{}: peft_type `{kind}` is not LORA", context());
    }
    for unsupported in ["use_dora", "use_rslora"] {
        if peft[unsupported].as_bool() == Some(true) {
            bail!("{}: `{unsupported}` adapters are not supported", context());
        }
    }
    let rank = peft["r"]
        .as_u64()
        .with_context(|| format!("{}: no integer `r`", context()))? as usize;
    let alpha = peft["lora_alpha"]
        .as_f64()
        .with_context(|| format!("{}: no number `lora_alpha`", context()))? as f32;
    let target_modules = match &peft["target_modules"] {
        serde_json::Value::Array(names) => names
            .iter()
            .map(|n| n.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .with_context(|| format!("{}: target_modules must be names", context()))?,
        other => bail!(
            "{}: target_modules must be a list of projection names, not {other}",
            context()
        ),
    };
    let layout = LoraLayout::new(
        &LoraConfig {
            rank,
            alpha,
            target_modules,
        },
        model,
    )
    .with_context(context)?;
    let weights_path = dir.join("adapter_model.safetensors");
    let mut tensors = read_tensors(&weights_path)?;
    let mut data = vec![0.0; layout.layout.len];
    for spec in &layout.layout.tensors {
        let (shape, values) = tensors.remove(&spec.name).with_context(|| {
            format!(
                "`{}` has no tensor `{}` that adapter_config.json's target_modules imply",
                weights_path.display(),
                spec.name
            )
        })?;
        if shape != spec.shape {
            bail!(
                "`{}`: tensor `{}` has shape {shape:?}, the model needs {:?}",
                weights_path.display(),
                spec.name,
                spec.shape
            );
        }
        data[spec.range()].copy_from_slice(&values);
    }
    if let Some(extra) = tensors.keys().next() {
        bail!(
            "`{}` has tensor `{extra}`, which adapter_config.json's target_modules do not name",
            weights_path.display()
        );
    }
    Ok((layout, data))
}

/// Requests that can decode together: same adapter and sampling settings.
struct Group {
    adapter: Option<String>,
    n: usize,
    params: SamplingParams,
    seed: Option<u64>,
    members: Vec<(Vec<Vec<u32>>, Reply)>,
}

impl Group {
    fn takes(&self, request: &GenerationRequest) -> bool {
        self.seed.is_none()
            && request.seed.is_none()
            && self.adapter == request.adapter
            && self.n == request.n
            && self.params == request.params
    }
}

struct Worker {
    backend: CpuBackend,
    eos: Vec<u32>,
    /// Adapters not on the model now.
    parked: HashMap<String, Adapter>,
    /// The adapter on the model now.
    active: Option<String>,
    rng: ChaCha8Rng,
    max_batch_prompts: usize,
}

impl Worker {
    fn run(mut self, queue: Receiver<Job>) {
        while let Ok(first) = queue.recv() {
            let mut prompts = first.prompt_count();
            let mut jobs = vec![first];
            while prompts < self.max_batch_prompts {
                match queue.try_recv() {
                    Ok(job) => {
                        prompts += job.prompt_count();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            self.run_jobs(jobs);
        }
    }

    /// Runs jobs in arrival order, except that generations between two adapter changes decode
    /// together: a request sent before a reload gets the weights it asked for.
    fn run_jobs(&mut self, jobs: Vec<Job>) {
        let mut groups: Vec<Group> = Vec::new();
        for job in jobs {
            match job {
                Job::Generate { request, reply } => {
                    match groups.iter_mut().find(|g| g.takes(&request)) {
                        Some(group) => group.members.push((request.prompts, reply)),
                        None => groups.push(Group {
                            adapter: request.adapter,
                            n: request.n,
                            params: request.params,
                            seed: request.seed,
                            members: vec![(request.prompts, reply)],
                        }),
                    }
                }
                Job::Load {
                    name,
                    adapter,
                    reply,
                } => {
                    self.decode_all(std::mem::take(&mut groups));
                    if self.active.as_deref() == Some(name.as_str()) {
                        self.backend.model.lora = Some(*adapter);
                    } else {
                        self.parked.insert(name, *adapter);
                    }
                    let _ = reply.send(());
                }
                Job::Unload { name, reply } => {
                    self.decode_all(std::mem::take(&mut groups));
                    let existed = if self.active.as_deref() == Some(name.as_str()) {
                        self.active = None;
                        self.backend.model.lora.take().is_some()
                    } else {
                        self.parked.remove(&name).is_some()
                    };
                    let _ = reply.send(existed);
                }
            }
        }
        self.decode_all(groups);
    }

    fn decode_all(&mut self, groups: Vec<Group>) {
        for group in groups {
            self.decode(group);
        }
    }

    fn decode(&mut self, group: Group) {
        let (requests, replies): (Vec<Vec<Vec<u32>>>, Vec<Reply>) =
            group.members.into_iter().unzip();
        let outcome = self.activate(group.adapter.as_deref()).and_then(|()| {
            let mut rng =
                ChaCha8Rng::seed_from_u64(group.seed.unwrap_or_else(|| self.rng.next_u64()));
            let views: Vec<&[u32]> = requests.iter().flatten().map(Vec::as_slice).collect();
            let (backend, eos) = (&mut self.backend, &self.eos);
            // A bug in the model code must fail this batch's requests, not the server.
            match catch_unwind(AssertUnwindSafe(|| {
                backend.generate(&views, group.n, &group.params, eos, &mut rng)
            })) {
                Ok(Ok(completions)) => Ok(completions),
                Ok(Err(err)) => Err(EngineError::Failed(format!("{err:#}"))),
                Err(_) => Err(EngineError::Failed("the model code panicked".into())),
            }
        });
        match outcome {
            Ok(completions) => {
                let mut completions = completions.into_iter();
                for (prompts, reply) in requests.iter().zip(replies) {
                    let _ = reply.send(Ok(completions.by_ref().take(prompts.len()).collect()));
                }
            }
            Err(err) => {
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }

    /// Puts the adapter `wanted` on the model (parking the one there).
    fn activate(&mut self, wanted: Option<&str>) -> Result<(), EngineError> {
        if self.active.as_deref() == wanted {
            return Ok(());
        }
        let incoming = match wanted {
            None => None,
            Some(name) => Some(
                self.parked
                    .remove(name)
                    .ok_or_else(|| EngineError::UnknownAdapter(name.to_string()))?,
            ),
        };
        let outgoing = std::mem::replace(&mut self.backend.model.lora, incoming);
        if let (Some(name), Some(adapter)) = (self.active.take(), outgoing) {
            self.parked.insert(name, adapter);
        }
        self.active = wanted.map(str::to_string);
        Ok(())
    }
}

//! Running an evaluation: every selected item through every model (side by side, each with its
//! own concurrency and rate), scored as it arrives, journaled as it finishes.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use sqlrft_llm::Usage;

use crate::answer::{Answerer, AskFailure, EndpointSettings, Sampling};
use crate::dataset::{self, EvalItem, Selection};
use crate::rate::RateLimiter;
use crate::scorer::{BusyClock, Scorer};
use crate::spec::ModelSpec;
use crate::verdict::{ItemRecord, SampleRecord};
use sqlrft_files::Journal;

/// After this many unreachable answers and no success, the endpoint is taken to be down and
/// the model's remaining items are not asked.
const DOWN_AFTER: usize = 5;

/// Where answers are scored.
#[derive(Debug, Clone)]
pub enum ScoreWith {
    /// The reward engine in process on this sandbox.
    Db(PathBuf),
    /// The reward service at this root URL, with an optional bearer token.
    Service {
        /// The service's root URL.
        url: String,
        /// Bearer token, when the service wants one.
        token: Option<String>,
    },
}

/// Everything one evaluation needs.
#[derive(Debug, Clone)]
pub struct EvalPlan {
    /// The test set JSONL.
    pub dataset: PathBuf,
    /// Where answers are scored.
    pub score_with: ScoreWith,
    /// The models, in report order.
    pub models: Vec<ModelSpec>,
    /// Report and journals directory.
    pub out: PathBuf,
    /// How answers are sampled.
    pub sampling: Sampling,
    /// Connection settings for endpoint models.
    pub endpoint: EndpointSettings,
    /// Requests per second per model (a spec's `rps=` wins).
    pub rps: Option<f64>,
    /// Which items to evaluate.
    pub selection: Selection,
    /// Forget earlier journals in `out` and ask everything again.
    pub fresh: bool,
    /// Draw progress bars (on a terminal).
    pub progress: bool,
}

/// One model's part of a finished run.
#[derive(Debug, Clone)]
pub struct ModelRun {
    /// The model.
    pub spec: ModelSpec,
    /// Answered items by id (this run's and earlier runs').
    pub records: BTreeMap<String, ItemRecord>,
    /// Items without an answer and why; a rerun asks them again.
    pub failures: Vec<(String, AskFailure)>,
    /// Items asked in this run (the rest came from the journal).
    pub asked: usize,
    /// Items answered from the journal of an earlier run.
    pub resumed: usize,
    /// Requests, retries and failures of this run (endpoints only).
    pub usage: Option<Usage>,
    /// Wall time of this model's part of the run.
    pub wall: Duration,
}

impl ModelRun {
    /// True when the endpoint never answered: the report says so instead of "0% accurate".
    pub fn unreachable(&self) -> bool {
        self.records.is_empty()
            && !self.failures.is_empty()
            && self.failures.iter().all(|(_, f)| f.unreachable)
    }
}

/// A finished run: the items and every model's answers.
#[derive(Debug, Clone)]
pub struct EvalRun {
    /// The test set JSONL.
    pub dataset: PathBuf,
    /// SHA-256 of the test set file.
    pub dataset_sha256: String,
    /// Items in the test set file (before `--limit`).
    pub dataset_items: usize,
    /// The evaluated items, in file order.
    pub items: Vec<EvalItem>,
    /// One entry per model, in `--model` order.
    pub models: Vec<ModelRun>,
    /// What scored the answers.
    pub scorer: String,
    /// How answers were sampled.
    pub sampling: Sampling,
    /// Wall time of the run.
    pub wall: Duration,
    /// Wall time during which scoring was in progress.
    pub scoring_busy: Duration,
}

/// `run.json` in the output directory: what the journals were made with.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Manifest {
    dataset_sha256: String,
    /// Per model name: the spec and sampling its journal was made with.
    models: BTreeMap<String, serde_json::Value>,
}

fn fingerprint(spec: &ModelSpec, sampling: &Sampling) -> serde_json::Value {
    serde_json::json!({"model": spec.describe(), "sampling": sampling})
}

/// Journal of model `name` in `out`.
pub fn journal_path(out: &Path, name: &str) -> PathBuf {
    out.join("journal").join(format!("{name}.jsonl"))
}

/// Runs `plan`: loads the test set, asks every model about every selected item (resuming from
/// the journals in `plan.out`) and scores the answers.
pub async fn run(plan: &EvalPlan) -> Result<EvalRun> {
    let started = Instant::now();
    if plan.models.is_empty() {
        bail!("no model to evaluate; pass --model NAME=SPEC at least once");
    }
    let mut names = std::collections::HashSet::new();
    for spec in &plan.models {
        if !names.insert(spec.name.as_str()) {
            bail!(
                "two models are named `{}`; give each --model a unique NAME",
                spec.name
            );
        }
    }
    if plan.sampling.samples > 1 && plan.sampling.temperature <= 0.0 {
        bail!(
            "--samples {} with temperature 0 asks for the same answer {0} times; \
             pass --temperature (e.g. 0.7) for pass@k",
            plan.sampling.samples
        );
    }
    let test_set = dataset::load(&plan.dataset)?;
    let items = dataset::select(&test_set.items, plan.selection);
    let scorer = Arc::new(match &plan.score_with {
        ScoreWith::Db(db) => Scorer::embedded(db)?,
        ScoreWith::Service { url, token } => {
            Scorer::service(url, token.clone(), plan.endpoint.timeout)?
        }
    });
    std::fs::create_dir_all(&plan.out).with_context(|| {
        format!(
            "could not create the output directory `{}`",
            plan.out.display()
        )
    })?;
    prepare_journals(plan, &test_set.sha256)?;

    let answerers = plan
        .models
        .iter()
        .map(|spec| Answerer::open(spec, plan.endpoint))
        .collect::<Result<Vec<_>>>()?;
    let bars = MultiProgress::new();
    if !plan.progress {
        bars.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let clock = Arc::new(BusyClock::default());
    let items = Arc::new(items);
    let runs =
        futures::future::join_all(plan.models.iter().zip(answerers).map(|(spec, answerer)| {
            let bar = bars.add(ProgressBar::new(items.len() as u64));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>14} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(spec.name.clone());
            run_model(ModelTask {
                spec: spec.clone(),
                answerer,
                items: items.clone(),
                scorer: scorer.clone(),
                clock: clock.clone(),
                journal: journal_path(&plan.out, &spec.name),
                sampling: plan.sampling,
                limiter: RateLimiter::new(spec.rps.or(plan.rps)),
                bar,
            })
        }))
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    Ok(EvalRun {
        dataset: plan.dataset.clone(),
        dataset_sha256: test_set.sha256,
        dataset_items: test_set.items.len(),
        items: Arc::unwrap_or_clone(items),
        models: runs,
        scorer: scorer.describe(),
        sampling: plan.sampling,
        wall: started.elapsed(),
        scoring_busy: clock.busy(),
    })
}

/// Checks that journals in `out` were made with these settings (or clears them with
/// `--fresh`), then records the settings.
fn prepare_journals(plan: &EvalPlan, dataset_sha256: &str) -> Result<()> {
    let path = plan.out.join("run.json");
    let mut manifest: Manifest = match std::fs::read_to_string(&path) {
        Ok(text) if !plan.fresh => serde_json::from_str(&text)
            .with_context(|| format!("`{}` is not an evaluation manifest", path.display()))?,
        _ => Manifest::default(),
    };
    if plan.fresh {
        let dir = plan.out.join("journal");
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("could not clear `{}`", dir.display()))?;
        }
    }
    if manifest.dataset_sha256 != dataset_sha256 {
        let stale: Vec<&str> = manifest
            .models
            .keys()
            .map(String::as_str)
            .filter(|name| journal_path(&plan.out, name).exists())
            .collect();
        if !stale.is_empty() {
            bail!(
                "`{}` holds answers ({}) to another version of the test set `{}`; \
                 pass --fresh to start over or --out to write elsewhere",
                plan.out.display(),
                stale.join(", "),
                plan.dataset.display()
            );
        }
        manifest = Manifest {
            dataset_sha256: dataset_sha256.to_string(),
            models: BTreeMap::new(),
        };
    }
    for spec in &plan.models {
        let wanted = fingerprint(spec, &plan.sampling);
        match manifest.models.get(&spec.name) {
            Some(had) if *had != wanted && journal_path(&plan.out, &spec.name).exists() => bail!(
                "`{}` holds answers of a model `{}` asked differently ({had}); pass --fresh to \
                 start over, --out to write elsewhere, or another NAME",
                plan.out.display(),
                spec.name
            ),
            _ => {
                manifest.models.insert(spec.name.clone(), wanted);
            }
        }
    }
    crate::report::write_atomic(&path, serde_json::to_string_pretty(&manifest)?.as_bytes())
}

struct ModelTask {
    spec: ModelSpec,
    answerer: Answerer,
    items: Arc<Vec<EvalItem>>,
    scorer: Arc<Scorer>,
    clock: Arc<BusyClock>,
    journal: PathBuf,
    sampling: Sampling,
    limiter: RateLimiter,
    bar: ProgressBar,
}

async fn run_model(task: ModelTask) -> Result<ModelRun> {
    let started = Instant::now();
    let (journal, earlier) = Journal::open::<ItemRecord>(&task.journal)?;
    // Answers finish on many tasks at once; each append is one line under the lock.
    let journal = std::sync::Mutex::new(journal);
    let mut records: HashMap<String, ItemRecord> = HashMap::new();
    for record in earlier {
        records.insert(record.item.clone(), record);
    }
    let wanted: HashMap<&str, &EvalItem> = task.items.iter().map(|i| (i.id.as_str(), i)).collect();
    records.retain(|id, _| wanted.contains_key(id.as_str()));
    let resumed = records.len();

    // Answers whose scoring failed last time are scored again, never asked again.
    for record in records.values_mut().filter(|r| !r.scored()) {
        let item = wanted[record.item.as_str()];
        let completions: Vec<String> = record
            .samples
            .iter()
            .map(|s| s.completion.clone())
            .collect();
        *record = score(&task, item, completions, record.clone()).await;
        append(&journal, &*record)?;
    }
    let correct = AtomicUsize::new(records.values().filter(|r| r.correct()).count());
    let done = AtomicUsize::new(records.len());
    task.bar.set_position(records.len() as u64);

    let pending: Vec<&EvalItem> = task
        .items
        .iter()
        .filter(|i| !records.contains_key(&i.id))
        .collect();
    let asked = pending.len();
    let down = AtomicBool::new(false);
    let unreachable = AtomicUsize::new(0);
    let answered = AtomicUsize::new(0);
    // Two stages: an answer frees its request slot as soon as it arrives, and is scored while
    // the next questions are out, so scoring never holds back the endpoint.
    let finished: Vec<Result<std::result::Result<ItemRecord, (String, AskFailure)>>> =
        futures::stream::iter(pending)
            .map(|item| {
                let (task, down, unreachable, answered) = (&task, &down, &unreachable, &answered);
                async move {
                    if down.load(Ordering::Relaxed) {
                        let failure = AskFailure {
                            unreachable: true,
                            message: "not asked: the endpoint was unreachable for every earlier item"
                                .into(),
                        };
                        return (item, Err(failure));
                    }
                    task.limiter.acquire(task.sampling.samples.max(1)).await;
                    let outcome = task.answerer.answer(item, &task.sampling).await;
                    match &outcome {
                        Ok(_) => {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(failure) => {
                            if failure.unreachable
                                && unreachable.fetch_add(1, Ordering::Relaxed) + 1 >= DOWN_AFTER
                                && answered.load(Ordering::Relaxed) == 0
                            {
                                down.store(true, Ordering::Relaxed);
                            }
                        }
                    }
                    (item, outcome)
                }
            })
            .buffer_unordered(task.answerer.concurrency())
            .map(|(item, outcome)| {
                let (task, journal, correct, done) = (&task, &journal, &correct, &done);
                async move {
                    let result = match outcome {
                        Ok(answer) => {
                            let record = ItemRecord {
                                item: item.id.clone(),
                                samples: Vec::new(),
                                prompt_tokens: answer.prompt_tokens,
                                completion_tokens: answer.completion_tokens,
                                latencies: answer.latencies,
                            };
                            let record = score(task, item, answer.texts, record).await;
                            append(journal, &record)?;
                            if record.correct() {
                                correct.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(record)
                        }
                        Err(failure) => {
                            tracing::warn!(model = %task.spec.name, item = %item.id, error = %failure.message, "no answer");
                            Err((item.id.clone(), failure))
                        }
                    };
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    task.bar.inc(1);
                    task.bar.set_message(format!(
                        "{:.1}% correct",
                        100.0 * correct.load(Ordering::Relaxed) as f64 / n as f64
                    ));
                    Ok::<_, anyhow::Error>(result)
                }
            })
            .buffer_unordered(task.answerer.concurrency())
            .collect()
            .await;
    task.bar.finish();
    let mut failures = Vec::new();
    for result in finished {
        match result? {
            Ok(record) => {
                records.insert(record.item.clone(), record);
            }
            Err(failure) => failures.push(failure),
        }
    }
    Ok(ModelRun {
        spec: task.spec,
        records: records.into_iter().collect(),
        failures,
        asked,
        resumed,
        usage: task.answerer.usage(),
        wall: started.elapsed(),
    })
}

async fn score(
    task: &ModelTask,
    item: &EvalItem,
    completions: Vec<String>,
    mut record: ItemRecord,
) -> ItemRecord {
    let evaluations = {
        let _busy = task.clock.enter();
        task.scorer.score(item, &completions).await
    };
    record.samples = completions
        .into_iter()
        .zip(&evaluations)
        .map(|(completion, evaluation)| SampleRecord::new(completion, evaluation))
        .collect();
    record
}

/// Appends one finished item to the model's journal (shared by the model's concurrent asks).
fn append(journal: &std::sync::Mutex<Journal>, record: &ItemRecord) -> Result<()> {
    journal
        .lock()
        .map_err(|_| anyhow::anyhow!("the journal lock is poisoned"))?
        .append(record)?;
    Ok(())
}

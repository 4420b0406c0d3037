//! `sqlrft eval`: flags, then the run, the report and the tutorial's three lines on stdout.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use sqlrft_core::config::Section;

use sqlrft_llm::{LlmArgs, LlmConfig};

use crate::answer::{EndpointSettings, Sampling};
use crate::dataset::Selection;
use crate::report::{self, ReportFiles, Status, Summary};
use crate::run::{EvalPlan, ScoreWith};
use crate::spec::ModelSpec;

/// `sqlrft eval` flags; each also reads `[eval]` of sqlrft.toml and `SQLRFT_EVAL_<FLAG>` when
/// it is not typed (the `sqlrft` binary parses them as a [`sqlrft_core::config::Layered`]).
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
#[command(after_help = "Examples:\n  \
sqlrft eval --dataset data/test.jsonl --db data/sandbox.duckdb \\\n    \
--model base=fireworks:accounts/fireworks/models/qwen2p5-7b-instruct \\\n    \
--model rft=fireworks:accounts/you/models/qwen-sql-rft --out eval/\n  \
sqlrft eval ... --model local=local:models/qwen-sql      (a Hugging Face directory, CPU)\n  \
sqlrft eval ... --samples 5 --temperature 0.7            (pass@5)\n  \
sqlrft eval ... --limit 200 --stratify --seed 1          (a stratified subset)\n\n\
A killed run continues where it stopped when started again with the same --out; answered items \
are never asked again.")]
pub struct EvalArgs {
    /// Test set JSONL: what `sqlrft build` writes (test.jsonl), or any file of
    /// `{messages, ground_truth}` records (the tutorial's row-object ground truth included).
    #[arg(long, short = 'd', value_name = "JSONL")]
    pub dataset: PathBuf,
    /// A model to evaluate, NAME=SPEC; repeat for each. SPEC is PROVIDER:MODEL[@BASE_URL] with
    /// optional ,key=ENV_VAR ,price=IN/OUT ($ per million tokens) ,rps=N ,concurrency=N
    /// (providers: openai, vllm, groq, huggingface, fireworks), or local:DIR for a Hugging Face
    /// model directory run greedily by sqlrft's own engine (CPU).
    #[arg(long = "model", short = 'm', value_name = "NAME=SPEC", required = true)]
    pub models: Vec<ModelSpec>,
    /// Sandbox DuckDB to score on, in process (what training's `--sandbox` uses).
    #[arg(long, value_name = "DUCKDB", required_unless_present = "reward_url")]
    pub db: Option<PathBuf>,
    /// Score through a running reward service instead (its root URL, e.g. http://127.0.0.1:8090).
    #[arg(long, value_name = "URL", conflicts_with = "db")]
    pub reward_url: Option<String>,
    /// Bearer token for the reward service.
    #[arg(long, env = "SQLRFT_REWARD_TOKEN", hide_env_values = true)]
    pub reward_token: Option<String>,
    /// Where the report and the resumable journals go.
    #[arg(long, short, default_value = "eval")]
    pub out: PathBuf,
    /// The model the others' lift is measured against (default: the first --model).
    #[arg(long, value_name = "NAME")]
    pub base: Option<String>,
    /// Answers per item; above 1 the accuracy is pass@N and needs a temperature above 0.
    #[arg(long, default_value_t = 1)]
    pub samples: u32,
    /// Sampling temperature, as --llm-temperature [default: 0, greedy, the tutorial's setting].
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Longest answer in tokens, as --llm-max-tokens [default: 1024].
    #[arg(long)]
    pub max_tokens: Option<u32>,
    /// Evaluate a seeded random subset of this many items.
    #[arg(long)]
    pub limit: Option<usize>,
    /// With --limit: keep each complexity class's share of the test set.
    #[arg(long, requires = "limit")]
    pub stratify: bool,
    /// Seed of the subset and of sampling (--llm-seed, when given, seeds sampling).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Earlier spelling of --llm-concurrency (requests in flight per endpoint model).
    #[arg(long, hide = true)]
    pub concurrency: Option<usize>,
    /// Requests per second per endpoint model (default: no limit).
    #[arg(long)]
    pub rps: Option<f64>,
    /// Earlier spelling of --llm-retries.
    #[arg(long, hide = true)]
    pub retries: Option<u32>,
    /// Earlier spelling of --llm-timeout (seconds).
    #[arg(long, hide = true)]
    pub timeout_secs: Option<f64>,
    /// The LLM client flags every LLM-using command shares (`[llm]`, `SQLRFT_LLM_*`), for every
    /// endpoint model; the provider, model and URL come from each --model.
    #[command(flatten)]
    #[serde(skip)]
    pub llm: LlmArgs,
    /// Ignore earlier answers in --out and ask everything again.
    #[arg(long)]
    pub fresh: bool,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// TOML config file whose [eval] table sets these flags' defaults [default: ./sqlrft.toml if
    /// present].
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
}

impl Section for EvalArgs {
    const SECTION: &'static str = "eval";

    fn keep_unlayered(&mut self, typed: &Self) {
        self.config.clone_from(&typed.config);
        // `[llm]` and `SQLRFT_LLM_*` are layered by `LlmArgs` itself, in `plan`.
        self.llm.clone_from(&typed.llm);
    }
}

impl EvalArgs {
    /// The plan these flags describe over `[llm]` of the config file (--config, else
    /// ./sqlrft.toml) and `SQLRFT_LLM_*`; bad values are errors naming the flag.
    pub fn plan(&self) -> Result<EvalPlan> {
        self.plan_with_llm(self.llm.resolve(self.config.as_deref())?)
    }

    /// [`plan`](Self::plan) with the `[llm]` settings already merged (for tests).
    pub fn plan_with_llm(&self, llm: LlmConfig) -> Result<EvalPlan> {
        for (given, flag) in [
            (self.llm.provider.is_some(), "--llm-provider"),
            (self.llm.model.is_some(), "--llm-model"),
            (self.llm.base_url.is_some(), "--llm-base-url"),
        ] {
            if given {
                bail!(
                    "{flag} does not apply to eval: name each model with \
                     --model NAME=PROVIDER:MODEL[@BASE_URL]"
                );
            }
        }
        if self.samples == 0 {
            bail!("--samples must be at least 1");
        }
        let concurrency = self.concurrency.unwrap_or(llm.max_concurrency);
        if concurrency == 0 {
            bail!("--llm-concurrency must be at least 1");
        }
        let timeout_secs = self.timeout_secs.unwrap_or(llm.timeout.as_secs_f64());
        if !(timeout_secs.is_finite() && timeout_secs > 0.0) {
            bail!("--llm-timeout must be a positive number of seconds");
        }
        if self.limit == Some(0) {
            bail!("--limit must be at least 1");
        }
        let score_with = match (&self.db, &self.reward_url) {
            (Some(db), None) => ScoreWith::Db(db.clone()),
            (None, Some(url)) => ScoreWith::Service {
                url: url.clone(),
                token: self.reward_token.clone(),
            },
            _ => bail!("pass either --db (the sandbox) or --reward-url (a reward service)"),
        };
        Ok(EvalPlan {
            dataset: self.dataset.clone(),
            score_with,
            models: self.models.clone(),
            out: self.out.clone(),
            sampling: Sampling {
                samples: self.samples,
                temperature: self.temperature.or(llm.temperature).unwrap_or(0.0),
                max_tokens: self.max_tokens.or(llm.max_tokens).unwrap_or(1024),
                seed: llm.seed.unwrap_or(self.seed),
            },
            endpoint: EndpointSettings {
                concurrency,
                retries: self.retries.unwrap_or(llm.retries),
                timeout: Duration::from_secs_f64(timeout_secs),
                backoff_base: Duration::from_millis(500),
                token_limit_field: llm.token_limit_field,
            },
            rps: self.rps,
            selection: Selection {
                limit: self.limit,
                stratify: self.stratify,
                seed: self.seed,
            },
            fresh: self.fresh,
            progress: !self.quiet,
        })
    }
}

/// What `sqlrft eval` produced.
#[derive(Debug, Clone)]
pub struct EvalOutcome {
    /// The numbers (also in `results.json`).
    pub summary: Summary,
    /// Where the report files are.
    pub files: ReportFiles,
}

/// Runs `sqlrft eval`: evaluates, writes the report and prints the tutorial's table.
pub async fn run_eval(args: &EvalArgs) -> Result<EvalOutcome> {
    let plan = args.plan()?;
    let run = crate::run::run(&plan).await?;
    let summary = report::summarize(&run, args.base.as_deref())?;
    let files = report::write(&plan.out, &summary)?;
    print!("{}", three_lines(&summary));
    eprintln!(
        "report: {} (also {}, {}, {})",
        files.html.display(),
        files.markdown.display(),
        files.json.display(),
        files.png.display()
    );
    if let Some(why) = nobody_answered(&summary) {
        bail!(
            "no model answered, so there is no accuracy to report: {why}. Check that each \
             --model endpoint is running and that its URL (after `@`) is right, then run again \
             (the report in {} records the same)",
            plan.out.display()
        );
    }
    Ok(EvalOutcome { summary, files })
}

/// Why every model went unanswered, when none answered at all; a run where some model
/// answered is a comparison worth its report, and exits 0.
fn nobody_answered(summary: &Summary) -> Option<String> {
    let all_down = !summary.models.is_empty()
        && summary
            .models
            .iter()
            .all(|m| m.status == Status::Unreachable);
    all_down.then(|| {
        summary
            .models
            .iter()
            .map(|m| {
                format!(
                    "`{}` ({})",
                    m.name,
                    m.error.as_deref().unwrap_or("no answers")
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// The tutorial's closing lines: correct/total, accuracy and lift over the base, per model.
pub fn three_lines(summary: &Summary) -> String {
    let width = summary
        .models
        .iter()
        .map(|m| m.name.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for m in &summary.models {
        let line = match m.accuracy {
            None => format!(
                "{:width$}  unreachable: {}",
                m.name,
                m.error.as_deref().unwrap_or("no answers")
            ),
            Some(a) => {
                let lift = match m.lift_pp {
                    Some(l) => format!("  {l:+.2} pp over {}", summary.base),
                    None => String::new(),
                };
                format!(
                    "{:width$}  {:>9}  {:>6.2}%{lift}",
                    m.name,
                    format!("{}/{}", a.correct, a.total),
                    100.0 * a.accuracy
                )
            }
        };
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use sqlrft_core::config::{Layered, env_from as vars};
    use sqlrft_llm::TokenLimitField;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        eval: Layered<EvalArgs>,
    }

    fn parse(extra: &[&str]) -> Layered<EvalArgs> {
        let line = [
            "x",
            "--dataset",
            "t.jsonl",
            "--db",
            "s.duckdb",
            "-m",
            "a=openai:m",
        ];
        Cli::try_parse_from(line.iter().chain(extra))
            .unwrap_or_else(|e| panic!("{extra:?}: {e}"))
            .eval
    }

    fn args(extra: &[&str]) -> EvalArgs {
        parse(extra).resolve_with_env(None, vars(&[])).unwrap()
    }

    const CONFIG: &str = r#"
[eval]
concurrency = 4
retries = 9
timeout_secs = 30
out = "from-file"
"#;

    #[test]
    fn settings_come_from_the_file_then_the_environment_then_the_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sqlrft.toml");
        std::fs::write(&file, CONFIG).unwrap();
        let defaults = parse(&[]).resolve_with_env(None, vars(&[])).unwrap();
        assert_eq!((defaults.concurrency, defaults.retries), (None, None));

        let from_file = parse(&[]).resolve_with_env(Some(&file), vars(&[])).unwrap();
        assert_eq!(
            (from_file.concurrency, from_file.retries),
            (Some(4), Some(9))
        );
        assert_eq!(from_file.out, PathBuf::from("from-file"));

        let env = vars(&[("SQLRFT_EVAL_RETRIES", "5"), ("SQLRFT_EVAL_QUIET", "true")]);
        let from_env = parse(&[])
            .resolve_with_env(Some(&file), env.clone())
            .unwrap();
        assert_eq!((from_env.concurrency, from_env.retries), (Some(4), Some(5)));
        assert!(from_env.quiet);

        let flags = parse(&["--retries", "3", "--timeout-secs", "7"])
            .resolve_with_env(Some(&file), env)
            .unwrap();
        assert_eq!((flags.concurrency, flags.retries), (Some(4), Some(3)));
        assert_eq!(flags.timeout_secs, Some(7.0));
        assert_eq!(flags.models.len(), 1, "what was typed comes through");
        let plan = flags.plan_with_llm(LlmConfig::default()).unwrap();
        assert_eq!(plan.endpoint.retries, 3);
    }

    #[test]
    fn a_bad_value_in_the_environment_names_the_table() {
        let err = parse(&[])
            .resolve_with_env(None, vars(&[("SQLRFT_EVAL_SAMPLES", "lots")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`eval`") && err.contains("SQLRFT_EVAL_"),
            "{err}"
        );
    }

    #[test]
    fn the_llm_flags_survive_the_eval_layering() {
        let a = args(&["--llm-retries", "2"]);
        assert_eq!(a.llm.retries, Some(2));
    }

    fn llm(args: &EvalArgs, file: Option<&str>) -> LlmConfig {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sqlrft.toml");
        std::fs::write(&path, file.unwrap_or("")).unwrap();
        args.llm
            .resolve_with_env(Some(&path), Vec::<(String, String)>::new())
            .unwrap()
    }

    #[test]
    fn eval_takes_the_shared_llm_flags() {
        let a = args(&[
            "--llm-concurrency",
            "3",
            "--llm-timeout",
            "7",
            "--llm-retries",
            "1",
            "--llm-max-tokens",
            "99",
            "--llm-token-limit-field",
            "max_tokens",
        ]);
        let plan = a.plan_with_llm(llm(&a, None)).unwrap();
        assert_eq!(plan.endpoint.concurrency, 3);
        assert_eq!(plan.endpoint.timeout, Duration::from_secs(7));
        assert_eq!(plan.endpoint.retries, 1);
        assert_eq!(plan.sampling.max_tokens, 99);
        assert_eq!(
            plan.endpoint.token_limit_field,
            Some(TokenLimitField::MaxTokens)
        );
    }

    #[test]
    fn eval_reads_the_llm_table_under_its_flags_and_the_one_default() {
        let a = args(&["--llm-retries", "2"]);
        let file = "[llm]\nmax_concurrency = 5\ntimeout = \"9s\"\nretries = 8\n";
        let plan = a.plan_with_llm(llm(&a, Some(file))).unwrap();
        assert_eq!(plan.endpoint.concurrency, 5);
        assert_eq!(plan.endpoint.timeout, Duration::from_secs(9));
        assert_eq!(plan.endpoint.retries, 2, "a flag wins over the file");
        // Nothing set: the LLM client's one default, as build --llm and distill have it.
        let bare = args(&[]);
        let plan = bare.plan_with_llm(llm(&bare, None)).unwrap();
        let default = LlmConfig::default();
        assert_eq!(plan.endpoint.concurrency, default.max_concurrency);
        assert_eq!(plan.endpoint.timeout, default.timeout);
        assert_eq!(plan.endpoint.token_limit_field, None);
    }

    #[test]
    fn earlier_spellings_still_work_and_per_model_flags_are_refused() {
        let a = args(&[
            "--concurrency",
            "4",
            "--timeout-secs",
            "2",
            "--temperature",
            "0.7",
        ]);
        let plan = a.plan_with_llm(llm(&a, None)).unwrap();
        assert_eq!(plan.endpoint.concurrency, 4);
        assert_eq!(plan.endpoint.timeout, Duration::from_secs(2));
        assert_eq!(plan.sampling.temperature, 0.7);
        let b = args(&["--llm-model", "gpt-4o"]);
        let err = b.plan_with_llm(llm(&b, None)).unwrap_err().to_string();
        assert!(err.contains("--model NAME=PROVIDER:MODEL"), "{err}");
    }
}

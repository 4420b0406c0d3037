//! `sqlrft eval`: flags, then the run, the report and the tutorial's three lines on stdout.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use sqlrft_core::config::Section;

use crate::answer::{EndpointSettings, Sampling};
use crate::dataset::Selection;
use crate::report::{self, ReportFiles, Summary};
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
    /// Answers per item; above 1 the accuracy is pass@N and needs --temperature.
    #[arg(long, default_value_t = 1)]
    pub samples: u32,
    /// Sampling temperature (0: greedy, the tutorial's setting).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Longest answer, in tokens.
    #[arg(long, default_value_t = 1024)]
    pub max_tokens: u32,
    /// Evaluate a seeded random subset of this many items.
    #[arg(long)]
    pub limit: Option<usize>,
    /// With --limit: keep each complexity class's share of the test set.
    #[arg(long, requires = "limit")]
    pub stratify: bool,
    /// Seed of the subset and of sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Requests in flight per endpoint model.
    #[arg(long, visible_alias = "llm-concurrency", default_value_t = 32)]
    pub concurrency: usize,
    /// Requests per second per endpoint model (default: no limit).
    #[arg(long)]
    pub rps: Option<f64>,
    /// Retries of a request after a 429, a 5xx, a timeout or a dropped connection.
    #[arg(long, visible_alias = "llm-retries", default_value_t = 3)]
    pub retries: u32,
    /// Seconds before one request times out (the LLM client's one default, as `--llm-timeout`).
    #[arg(
        long,
        visible_alias = "llm-timeout",
        default_value_t = sqlrft_llm::LlmConfig::default().timeout.as_secs_f64()
    )]
    pub timeout_secs: f64,
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
    }
}

impl EvalArgs {
    /// The plan these flags describe; bad values are errors naming the flag.
    pub fn plan(&self) -> Result<EvalPlan> {
        if self.samples == 0 {
            bail!("--samples must be at least 1");
        }
        if self.concurrency == 0 {
            bail!("--concurrency must be at least 1");
        }
        if !(self.timeout_secs.is_finite() && self.timeout_secs > 0.0) {
            bail!("--timeout-secs must be a positive number of seconds");
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
                temperature: self.temperature,
                max_tokens: self.max_tokens,
                seed: self.seed,
            },
            endpoint: EndpointSettings {
                concurrency: self.concurrency,
                retries: self.retries,
                timeout: Duration::from_secs_f64(self.timeout_secs),
                backoff_base: Duration::from_millis(500),
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
    Ok(EvalOutcome { summary, files })
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
        assert_eq!((defaults.concurrency, defaults.retries), (32, 3));
        assert_eq!(
            defaults.timeout_secs,
            sqlrft_llm::LlmConfig::default().timeout.as_secs_f64(),
            "one LLM timeout default for build, distill and eval"
        );

        let from_file = parse(&[]).resolve_with_env(Some(&file), vars(&[])).unwrap();
        assert_eq!((from_file.concurrency, from_file.retries), (4, 9));
        assert_eq!(from_file.out, PathBuf::from("from-file"));

        let env = vars(&[("SQLRFT_EVAL_RETRIES", "5"), ("SQLRFT_EVAL_QUIET", "true")]);
        let from_env = parse(&[])
            .resolve_with_env(Some(&file), env.clone())
            .unwrap();
        assert_eq!((from_env.concurrency, from_env.retries), (4, 5));
        assert!(from_env.quiet);

        let flags = parse(&["--retries", "3", "--timeout-secs", "7"])
            .resolve_with_env(Some(&file), env)
            .unwrap();
        assert_eq!((flags.concurrency, flags.retries), (4, 3));
        assert_eq!(flags.timeout_secs, 7.0);
        assert_eq!(flags.models.len(), 1, "what was typed comes through");
        assert_eq!(flags.plan().unwrap().endpoint.retries, 3);
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
}

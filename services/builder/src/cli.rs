//! The `sqlrft build …` and `sqlrft quickstart` entry points: clap argument structs and the
//! functions the `sqlrft` binary calls with them.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlrft_core::config::{Layered, Section};

use crate::catalog::SchemaSource;
use crate::pipeline::{
    self, CommonArgs, DatasetOpts, Layout, LlmArgs, QueryOpts, QuestionOpts, SandboxOpts,
    SchemaOpts, StageOutcome, TruthOpts,
};

/// `sqlrft build <stage>`.
// Parsed once per process: boxing `build all`'s flags would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Subcommand)]
pub enum BuildCommand {
    /// Read tables, columns, types and keys from a database or DDL file (never a data row).
    Schema(BuildSchemaArgs),
    /// Create sandbox.duckdb with synthetic rows (seeded generator, or --llm).
    Sandbox(BuildSandboxArgs),
    /// Generate a diverse query set with complexity quotas (grammar, or --llm).
    Queries(BuildQueriesArgs),
    /// Run every query twice on the sandbox; keep typed results, drop failures.
    Truth(BuildTruthArgs),
    /// Write one natural-language question per kept query (templates, or --llm).
    Questions(BuildQuestionsArgs),
    /// Split into train/test JSONL in the Fireworks RFT format.
    Dataset(BuildDatasetArgs),
    /// Run every stage; finished stages are skipped, interrupted ones resume.
    All(BuildAllArgs),
}

/// `sqlrft build schema` flags.
#[derive(Debug, Clone, Args)]
pub struct BuildSchemaArgs {
    /// Output directory, seed, `--force`, `--config`.
    #[command(flatten)]
    pub common: Layered<CommonArgs>,
    /// Where the schema comes from.
    #[command(flatten)]
    pub schema: Layered<SchemaOpts>,
}

/// `sqlrft build sandbox` flags.
#[derive(Debug, Clone, Args)]
pub struct BuildSandboxArgs {
    /// Output directory, seed, `--force`, `--config`.
    #[command(flatten)]
    pub common: Layered<CommonArgs>,
    /// How big the sandbox is.
    #[command(flatten)]
    pub sandbox: Layered<SandboxOpts>,
    /// Whether and how an LLM does the work.
    #[command(flatten)]
    pub llm: Layered<LlmArgs>,
}

/// `sqlrft build queries` flags.
#[derive(Debug, Clone, Args)]
pub struct BuildQueriesArgs {
    /// Output directory, seed, `--force`, `--config`.
    #[command(flatten)]
    pub common: Layered<CommonArgs>,
    /// How many queries, of which complexity.
    #[command(flatten)]
    pub queries: Layered<QueryOpts>,
    /// Whether and how an LLM does the work.
    #[command(flatten)]
    pub llm: Layered<LlmArgs>,
}

/// `sqlrft build truth` flags.
#[derive(Debug, Clone, Args)]
pub struct BuildTruthArgs {
    /// Output directory, seed, `--force`, `--config`.
    #[command(flatten)]
    pub common: Layered<CommonArgs>,
    /// How ground truth is computed.
    #[command(flatten)]
    pub truth: Layered<TruthOpts>,
}

/// `sqlrft build questions` flags.
#[derive(Debug, Clone, Args)]
pub struct BuildQuestionsArgs {
    /// Output directory, seed, `--force`, `--config`.
    #[command(flatten)]
    pub common: Layered<CommonArgs>,
    /// Question styles.
    #[command(flatten)]
    pub questions: Layered<QuestionOpts>,
    /// Whether and how an LLM does the work.
    #[command(flatten)]
    pub llm: Layered<LlmArgs>,
}

/// `sqlrft build dataset` flags.
#[derive(Debug, Clone, Args)]
pub struct BuildDatasetArgs {
    /// Output directory, seed, `--force`, `--config`.
    #[command(flatten)]
    pub common: Layered<CommonArgs>,
    /// How the dataset is written.
    #[command(flatten)]
    pub dataset: Layered<DatasetOpts>,
}

/// `sqlrft build all` flags: every stage's.
#[derive(Debug, Clone, Args)]
pub struct BuildAllArgs {
    /// Output directory, seed, `--force`, `--config`.
    #[command(flatten)]
    pub common: Layered<CommonArgs>,
    /// Where the schema comes from.
    #[command(flatten)]
    pub schema: Layered<SchemaOpts>,
    /// How big the sandbox is.
    #[command(flatten)]
    pub sandbox: Layered<SandboxOpts>,
    /// How many queries, of which complexity.
    #[command(flatten)]
    pub queries: Layered<QueryOpts>,
    /// How ground truth is computed.
    #[command(flatten)]
    pub truth: Layered<TruthOpts>,
    /// Question styles.
    #[command(flatten)]
    pub questions: Layered<QuestionOpts>,
    /// How the dataset is written.
    #[command(flatten)]
    pub dataset: Layered<DatasetOpts>,
    /// Whether and how an LLM does the work.
    #[command(flatten)]
    pub llm: Layered<LlmArgs>,
}

/// The flag groups of one `sqlrft build` command merged with `[build]` of the config file
/// `--config` names (or ./sqlrft.toml) and `SQLRFT_BUILD_*`.
struct Settings {
    common: CommonArgs,
}

impl Settings {
    fn new(common: &Layered<CommonArgs>) -> Result<Self> {
        let common = common.resolve(common.parsed().config.as_deref())?;
        Ok(Settings { common })
    }

    fn of<T: Section + Serialize + DeserializeOwned>(&self, group: &Layered<T>) -> Result<T> {
        Ok(group.resolve(self.common.config.as_deref())?)
    }

    /// The LLM flags, whose client reads `[llm]` of the same file.
    fn llm(&self, group: &Layered<LlmArgs>) -> Result<LlmArgs> {
        let mut llm = self.of(group)?;
        llm.config.clone_from(&self.common.config);
        Ok(llm)
    }
}

/// Runs one `sqlrft build` subcommand and prints what each stage did.
pub async fn run_build(command: BuildCommand) -> Result<Vec<StageOutcome>> {
    let outcomes = match command {
        BuildCommand::Schema(a) => {
            let s = Settings::new(&a.common)?;
            vec![pipeline::schema_stage(&s.common, &s.of(&a.schema)?)?]
        }
        BuildCommand::Sandbox(a) => {
            let s = Settings::new(&a.common)?;
            let (sandbox, llm) = (s.of(&a.sandbox)?, s.llm(&a.llm)?);
            vec![pipeline::sandbox_stage(&s.common, &sandbox, &llm).await?]
        }
        BuildCommand::Queries(a) => {
            let s = Settings::new(&a.common)?;
            let (queries, llm) = (s.of(&a.queries)?, s.llm(&a.llm)?);
            vec![pipeline::queries_stage(&s.common, &queries, &llm).await?]
        }
        BuildCommand::Truth(a) => {
            let s = Settings::new(&a.common)?;
            vec![pipeline::truth_stage(&s.common, &s.of(&a.truth)?).await?]
        }
        BuildCommand::Questions(a) => {
            let s = Settings::new(&a.common)?;
            let (questions, llm) = (s.of(&a.questions)?, s.llm(&a.llm)?);
            vec![pipeline::questions_stage(&s.common, &questions, &llm).await?]
        }
        BuildCommand::Dataset(a) => {
            let s = Settings::new(&a.common)?;
            vec![pipeline::dataset_stage(&s.common, &s.of(&a.dataset)?)?]
        }
        BuildCommand::All(a) => run_all(&a).await?,
    };
    for outcome in &outcomes {
        print_outcome(outcome);
    }
    Ok(outcomes)
}

/// Every stage in order (`sqlrft build all`).
pub async fn run_all(a: &BuildAllArgs) -> Result<Vec<StageOutcome>> {
    let s = Settings::new(&a.common)?;
    let llm = s.llm(&a.llm)?;
    let common = &s.common;
    let mut outcomes = vec![pipeline::schema_stage(common, &s.of(&a.schema)?)?];
    outcomes.push(pipeline::sandbox_stage(common, &s.of(&a.sandbox)?, &llm).await?);
    outcomes.push(pipeline::queries_stage(common, &s.of(&a.queries)?, &llm).await?);
    outcomes.push(pipeline::truth_stage(common, &s.of(&a.truth)?).await?);
    outcomes.push(pipeline::questions_stage(common, &s.of(&a.questions)?, &llm).await?);
    outcomes.push(pipeline::dataset_stage(common, &s.of(&a.dataset)?)?);
    Ok(outcomes)
}

fn print_outcome(outcome: &StageOutcome) {
    if outcome.skipped {
        eprintln!("{:>10}: already done (same inputs), skipped", outcome.stage);
    } else {
        eprintln!(
            "{:>10}: done in {:.1} s",
            outcome.stage,
            outcome.elapsed.as_secs_f64()
        );
    }
}

/// `sqlrft quickstart`: the offline pipeline on the built-in demo schema.
#[derive(Debug, Clone, Args)]
pub struct QuickstartArgs {
    /// Where the demo dataset goes.
    #[arg(long, short, default_value = "sqlrft-quickstart")]
    pub out: PathBuf,
    /// Queries to generate.
    #[arg(long, default_value_t = 300)]
    pub queries: usize,
    /// Seed for every random choice.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Where the quickstart put everything.
#[derive(Debug, Clone)]
pub struct QuickstartOutcome {
    /// The output directory.
    pub out: PathBuf,
    /// `schema.json`.
    pub schema: PathBuf,
    /// `sandbox.duckdb`, the database to serve.
    pub sandbox: PathBuf,
    /// `train.jsonl`.
    pub train: PathBuf,
    /// `test.jsonl`.
    pub test: PathBuf,
    /// `report.md`.
    pub report: PathBuf,
    /// Records in `train.jsonl`.
    pub train_records: usize,
    /// Records in `test.jsonl`.
    pub test_records: usize,
    /// Wall time of the whole build.
    pub seconds: f64,
}

/// The built-in demo schema: an airline network like OpenFlights, with declared keys.
pub const DEMO_SCHEMA_DDL: &str = include_str!("demo/airline.sql");

/// Builds the whole offline dataset for the demo schema and returns where it is. The caller
/// (the `sqlrft` binary) then serves `sandbox` over MCP.
pub async fn run_quickstart(args: &QuickstartArgs) -> Result<QuickstartOutcome> {
    let started = Instant::now();
    let common = CommonArgs {
        seed: args.seed,
        ..CommonArgs::new(&args.out)
    };
    let source = SchemaSource::DdlText {
        name: "airline".into(),
        text: DEMO_SCHEMA_DDL.into(),
    };
    pipeline::schema_stage_from(&common, &source, Some("airline"), true)?;
    let sandbox = SandboxOpts {
        rows: 300,
        table_rows: vec![
            ("countries".into(), 40),
            ("planes".into(), 20),
            ("airlines".into(), 150),
            ("airports".into(), 400),
            ("routes".into(), 4000),
        ],
        rows_per_call: 10,
    };
    let offline = LlmArgs::default();
    pipeline::sandbox_stage(&common, &sandbox, &offline).await?;
    pipeline::queries_stage(
        &common,
        &QueryOpts {
            count: args.queries,
            mix: Default::default(),
            queries_per_call: 30,
        },
        &offline,
    )
    .await?;
    pipeline::truth_stage(
        &common,
        &TruthOpts {
            query_timeout: 10.0,
            max_result_rows: 1000,
            query_concurrency: None,
        },
    )
    .await?;
    pipeline::questions_stage(
        &common,
        &QuestionOpts {
            styles: vec!["formal".into()],
        },
        &offline,
    )
    .await?;
    let dataset = pipeline::dataset_stage(
        &common,
        &DatasetOpts {
            test_fraction: 0.2,
            ground_truth_format: Default::default(),
            format: vec![
                crate::records::PromptFormat::Plain,
                crate::records::PromptFormat::Reasoning,
            ],
        },
    )?;
    let layout = Layout::new(&args.out);
    Ok(QuickstartOutcome {
        out: args.out.clone(),
        schema: layout.schema(),
        sandbox: layout.sandbox(),
        train: args.out.join("train.jsonl"),
        test: args.out.join("test.jsonl"),
        report: layout.report(),
        train_records: dataset.stats["train"].as_u64().unwrap_or(0) as usize,
        test_records: dataset.stats["test"].as_u64().unwrap_or(0) as usize,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::LlmStage;
    use clap::Parser;
    use sqlrft_core::config::env_from as env;
    use sqlrft_llm::Provider;
    use std::time::Duration;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        build: BuildCommand,
    }

    fn parse(line: &[&str]) -> BuildCommand {
        let line = ["sqlrft-build"].iter().chain(line);
        Cli::try_parse_from(line)
            .unwrap_or_else(|e| panic!("{e}"))
            .build
    }

    /// The LLM flags of `build queries --llm EXTRA`, merged as `run_build` merges them.
    fn queries_llm(extra: &[&str]) -> LlmArgs {
        let line: Vec<&str> = ["queries", "--llm"].iter().chain(extra).copied().collect();
        match parse(&line) {
            BuildCommand::Queries(args) => {
                let settings = Settings::new(&args.common).unwrap();
                settings.llm(&args.llm).unwrap()
            }
            _ => unreachable!("parsed `queries`"),
        }
    }

    const BUILD_CONFIG: &str = r#"
[build]
rows = 5
seed = 7
out = "from-file"
llm_stages = ["questions"]
"#;

    #[test]
    fn build_settings_come_from_the_file_then_the_environment_then_the_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sqlrft.toml");
        std::fs::write(&file, BUILD_CONFIG).unwrap();
        let BuildCommand::Sandbox(args) = parse(&["sandbox", "--rows-per-call", "3"]) else {
            unreachable!("parsed `sandbox`")
        };
        let layer = |vars: &[(&str, &str)]| {
            let common = args
                .common
                .resolve_with_env(Some(&file), env(vars))
                .unwrap();
            let sandbox = args
                .sandbox
                .resolve_with_env(Some(&file), env(vars))
                .unwrap();
            let llm = args.llm.resolve_with_env(Some(&file), env(vars)).unwrap();
            (common, sandbox, llm)
        };

        let (common, sandbox, llm) = layer(&[]);
        assert_eq!((common.seed, common.out.to_str()), (7, Some("from-file")));
        assert_eq!((sandbox.rows, sandbox.rows_per_call), (5, 3));
        assert_eq!(llm.llm_stages, [LlmStage::Questions]);

        let vars = [
            ("SQLRFT_BUILD_SEED", "8"),
            ("SQLRFT_BUILD_ROWS_PER_CALL", "4"),
        ];
        let (common, sandbox, _) = layer(&vars);
        assert_eq!(common.seed, 8);
        assert_eq!(
            sandbox.rows_per_call, 3,
            "the typed flag beats the environment"
        );
        assert_eq!(sandbox.rows, 5);

        let BuildCommand::Sandbox(typed) = parse(&["sandbox", "--seed", "42", "--rows", "9"])
        else {
            unreachable!("parsed `sandbox`")
        };
        let common = typed
            .common
            .resolve_with_env(Some(&file), env(&vars))
            .unwrap();
        let sandbox = typed
            .sandbox
            .resolve_with_env(Some(&file), env(&vars))
            .unwrap();
        assert_eq!((common.seed, sandbox.rows), (42, 9));
        assert_eq!(sandbox.rows_per_call, 4);
    }

    #[test]
    fn llm_settings_come_from_the_file_then_the_environment_then_the_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sqlrft.toml");
        std::fs::write(
            &file,
            "[llm]\nprovider = \"vllm\"\nmodel = \"file-model\"\nretries = 1\ntimeout = \"20s\"\n",
        )
        .unwrap();
        let config_flag = ["--config", file.to_str().unwrap()];
        let resolve = |args: &LlmArgs, vars: &[(&str, &str)]| {
            args.config_with_env(LlmStage::Queries, env(vars))
                .unwrap()
                .expect("the queries stage uses the LLM")
        };

        let file_only = resolve(&queries_llm(&config_flag), &[]);
        assert_eq!(file_only.provider, Provider::Vllm);
        assert_eq!(
            (file_only.model.as_str(), file_only.retries),
            ("file-model", 1)
        );

        let vars = [
            ("SQLRFT_LLM_MODEL", "env-model"),
            ("SQLRFT_LLM_RETRIES", "2"),
        ];
        let with_env = resolve(&queries_llm(&config_flag), &vars);
        assert_eq!(
            (with_env.model.as_str(), with_env.retries),
            ("env-model", 2)
        );
        assert_eq!(with_env.timeout, Duration::from_secs(20));

        let mut line = config_flag.to_vec();
        line.extend(["--llm-model", "flag-model", "--llm-retries", "4"]);
        let with_flags = resolve(&queries_llm(&line), &vars);
        assert_eq!(
            (with_flags.model.as_str(), with_flags.retries),
            ("flag-model", 4)
        );
        assert_eq!(with_flags.provider, Provider::Vllm);
        assert_eq!(with_flags.timeout, Duration::from_secs(20));
    }

    #[test]
    fn offline_stages_and_a_missing_model() {
        let offline = queries_llm(&["--llm-stages", "questions", "--llm-model", "m"]);
        assert!(
            offline
                .config_with_env(LlmStage::Queries, env(&[]))
                .unwrap()
                .is_none()
        );
        let err = queries_llm(&[])
            .config_with_env(LlmStage::Queries, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--llm-model"), "{err}");
    }
}

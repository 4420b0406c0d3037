//! The `sqlrft build …` and `sqlrft quickstart` entry points: clap argument structs and the
//! functions the `sqlrft` binary calls with them.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::catalog::SchemaSource;
use crate::pipeline::{
    self, CommonArgs, DatasetOpts, Layout, LlmArgs, QueryOpts, QuestionOpts, SandboxOpts,
    SchemaOpts, StageOutcome, TruthOpts,
};

/// `sqlrft build <stage>`.
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

#[derive(Debug, Clone, Args)]
pub struct BuildSchemaArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub schema: SchemaOpts,
}

#[derive(Debug, Clone, Args)]
pub struct BuildSandboxArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub sandbox: SandboxOpts,
    #[command(flatten)]
    pub llm: LlmArgs,
}

#[derive(Debug, Clone, Args)]
pub struct BuildQueriesArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub queries: QueryOpts,
    #[command(flatten)]
    pub llm: LlmArgs,
}

#[derive(Debug, Clone, Args)]
pub struct BuildTruthArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub truth: TruthOpts,
}

#[derive(Debug, Clone, Args)]
pub struct BuildQuestionsArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub questions: QuestionOpts,
    #[command(flatten)]
    pub llm: LlmArgs,
}

#[derive(Debug, Clone, Args)]
pub struct BuildDatasetArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub dataset: DatasetOpts,
}

#[derive(Debug, Clone, Args)]
pub struct BuildAllArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub schema: SchemaOpts,
    #[command(flatten)]
    pub sandbox: SandboxOpts,
    #[command(flatten)]
    pub queries: QueryOpts,
    #[command(flatten)]
    pub truth: TruthOpts,
    #[command(flatten)]
    pub questions: QuestionOpts,
    #[command(flatten)]
    pub dataset: DatasetOpts,
    #[command(flatten)]
    pub llm: LlmArgs,
}

/// Runs one `sqlrft build` subcommand and prints what each stage did.
pub async fn run_build(command: BuildCommand) -> Result<Vec<StageOutcome>> {
    let outcomes = match command {
        BuildCommand::Schema(a) => vec![pipeline::schema_stage(&a.common, &a.schema)?],
        BuildCommand::Sandbox(a) => {
            vec![pipeline::sandbox_stage(&a.common, &a.sandbox, &a.llm).await?]
        }
        BuildCommand::Queries(a) => {
            vec![pipeline::queries_stage(&a.common, &a.queries, &a.llm).await?]
        }
        BuildCommand::Truth(a) => vec![pipeline::truth_stage(&a.common, &a.truth).await?],
        BuildCommand::Questions(a) => {
            vec![pipeline::questions_stage(&a.common, &a.questions, &a.llm).await?]
        }
        BuildCommand::Dataset(a) => vec![pipeline::dataset_stage(&a.common, &a.dataset)?],
        BuildCommand::All(a) => run_all(&a).await?,
    };
    for outcome in &outcomes {
        print_outcome(outcome);
    }
    Ok(outcomes)
}

/// Every stage in order (`sqlrft build all`).
pub async fn run_all(a: &BuildAllArgs) -> Result<Vec<StageOutcome>> {
    let mut outcomes = vec![pipeline::schema_stage(&a.common, &a.schema)?];
    outcomes.push(pipeline::sandbox_stage(&a.common, &a.sandbox, &a.llm).await?);
    outcomes.push(pipeline::queries_stage(&a.common, &a.queries, &a.llm).await?);
    outcomes.push(pipeline::truth_stage(&a.common, &a.truth).await?);
    outcomes.push(pipeline::questions_stage(&a.common, &a.questions, &a.llm).await?);
    outcomes.push(pipeline::dataset_stage(&a.common, &a.dataset)?);
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
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Where the quickstart put everything.
#[derive(Debug, Clone)]
pub struct QuickstartOutcome {
    pub out: PathBuf,
    pub schema: PathBuf,
    pub sandbox: PathBuf,
    pub train: PathBuf,
    pub test: PathBuf,
    pub report: PathBuf,
    pub train_records: usize,
    pub test_records: usize,
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
    use sqlrft_llm::Provider;
    use std::time::Duration;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        build: BuildCommand,
    }

    fn queries_llm(extra: &[&str]) -> LlmArgs {
        let line = ["sqlrft-build", "queries", "--llm"].iter().chain(extra);
        match Cli::try_parse_from(line).unwrap().build {
            BuildCommand::Queries(args) => args.llm,
            _ => unreachable!("parsed `queries`"),
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
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

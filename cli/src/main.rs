//! `sqlrft`: the command-line entry point. Each subcommand parses its flags and calls into the
//! crate that owns the work; nothing else lives here.

mod healthcheck;
mod quickstart;
mod telemetry;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sqlrft",
    version,
    about = "Teach small language models to write correct SQL for one database."
)]
#[command(
    long_about = "Teach small language models to write correct SQL for one database, without exposing its data:\n\
build a synthetic DuckDB sandbox and an RFT dataset from a schema, serve the sandbox read-only over MCP,\n\
score SQL by execution, distil chain-of-thought from a teacher, and train with GRPO.\n\n\
Settings come from flags, then SQLRFT_* environment variables, then ./sqlrft.toml, then defaults."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: boxing the large argument structs would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Build a dataset from the built-in demo schema (offline) and serve its sandbox over MCP.
    Quickstart(quickstart::QuickstartCli),
    /// Schema in, synthetic sandbox and RFT dataset out (each stage resumable).
    #[command(subcommand)]
    Build(sqlrft_builder::BuildCommand),
    /// The read-only DuckDB MCP server.
    #[command(subcommand)]
    Mcp(McpCommand),
    /// The reward service: scores SQL completions by executing them.
    #[command(subcommand)]
    Reward(RewardCommand),
    /// Distil <think>/<sql> chain-of-thought from a teacher LLM (`distill merge` joins shards).
    Distill(DistillCli),
    /// Upload datasets or models to the Hugging Face Hub.
    #[command(subcommand)]
    Publish(PublishCommand),
    /// GRPO training (`train export` writes a merged Hugging Face model).
    Train(sqlrft_trainer::TrainCommand),
    /// GPU backend tools: probe, compile kernels, checks and benchmarks (needs a CUDA driver).
    Cuda(sqlrft_cuda::CudaArgs),
    /// Benchmarks that measure sqlrft against the tools it replaces, in the same run.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Exit 0 when a service's /healthz answers 200 (the containers' health check).
    Healthcheck(healthcheck::HealthcheckArgs),
}

#[derive(Subcommand)]
enum McpCommand {
    /// Serve a DuckDB file read-only over MCP (streamable HTTP) until Ctrl-C or SIGTERM.
    Serve(sqlrft_mcp::McpServeArgs),
}

#[derive(Subcommand)]
enum RewardCommand {
    /// Serve POST /v1/evaluate and /v1/evaluate/batch until Ctrl-C or SIGTERM.
    Serve(sqlrft_reward::RewardServeArgs),
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct DistillCli {
    #[command(subcommand)]
    merge: Option<DistillCommand>,
    #[command(flatten)]
    run: Option<sqlrft_distill::DistillArgs>,
}

#[derive(Subcommand)]
enum DistillCommand {
    /// Join the shard files of a sharded distillation into one JSONL.
    Merge(sqlrft_distill::MergeArgs),
}

#[derive(Subcommand)]
enum PublishCommand {
    /// Create (if needed) a dataset repo and upload files with a dataset card.
    Dataset(sqlrft_distill::PublishDatasetArgs),
    /// Upload a model directory (e.g. from `sqlrft train export`).
    Model(sqlrft_trainer::PublishModelArgs),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// MCP server throughput and latency through the tutorial's wire format (--peer to compare).
    Mcp(sqlrft_mcp::bench::McpBenchArgs),
    /// Reward evaluations per second (HTTP, embedded, via MCP, batches) vs the tutorial's evaluator.
    Reward(sqlrft_reward::BenchArgs),
    /// Ground truth for 1,000 queries and 1,000 LLM calls against a slow stub.
    Build(sqlrft_builder::BenchArgs),
}

/// DuckDB allocates heavily in every parse, bind and plan; with mimalloc in place of glibc malloc
/// (C++ included) `sqlrft bench mcp` measured ~10% more point queries/s and ~24% more analytical
/// queries/s on a 2-core VM.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Healthcheck(args) = cli.command {
        return healthcheck::run(args);
    }
    if let Command::Cuda(args) = cli.command {
        let _telemetry = telemetry::init();
        return sqlrft_cuda::run_cli(args);
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let _telemetry = telemetry::init();
        match cli.command {
            Command::Quickstart(args) => quickstart::run(args).await,
            Command::Build(command) => sqlrft_builder::run_build(command).await.map(drop),
            Command::Mcp(McpCommand::Serve(args)) => sqlrft_mcp::serve(args).await,
            Command::Reward(RewardCommand::Serve(args)) => sqlrft_reward::serve(args).await,
            Command::Distill(DistillCli {
                merge: Some(DistillCommand::Merge(args)),
                ..
            }) => {
                let summary = sqlrft_distill::run_merge(args).await?;
                eprintln!("{summary:?}");
                Ok(())
            }
            Command::Distill(DistillCli {
                run: Some(args), ..
            }) => {
                let summary = sqlrft_distill::run_distill(args).await?;
                eprintln!("{summary}");
                Ok(())
            }
            Command::Distill(_) => anyhow::bail!("nothing to do: see `sqlrft distill --help`"),
            Command::Publish(PublishCommand::Dataset(args)) => {
                sqlrft_distill::run_publish_dataset(args).await.map(drop)
            }
            Command::Publish(PublishCommand::Model(args)) => {
                sqlrft_trainer::run_publish_model(args).await
            }
            Command::Train(command) => sqlrft_trainer::run_train_command(command, Vec::new()).await,
            Command::Bench(BenchCommand::Mcp(args)) => {
                sqlrft_mcp::bench::run_bench(args).await.map(drop)
            }
            Command::Bench(BenchCommand::Reward(args)) => sqlrft_reward::run_bench(args).await,
            Command::Bench(BenchCommand::Build(args)) => {
                let report = sqlrft_builder::run_bench(&args).await?;
                println!("{report}");
                Ok(())
            }
            Command::Cuda(_) | Command::Healthcheck(_) => {
                unreachable!("handled before the runtime starts")
            }
        }
    })
}

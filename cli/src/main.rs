//! `sqlrft`: the command-line entry point. Each subcommand parses its flags and calls into the
//! crate that owns the work; nothing else lives here.

mod cuda;
mod healthcheck;
#[cfg(feature = "full")]
mod quickstart;
mod telemetry;

use clap::{Parser, Subcommand};
#[cfg(feature = "full")]
use sqlrft_core::config::Layered;

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
    #[cfg(feature = "full")]
    /// Build a dataset from the built-in demo schema (offline) and serve its sandbox over MCP.
    Quickstart(quickstart::QuickstartCli),
    #[cfg(feature = "full")]
    /// Schema in, synthetic sandbox and RFT dataset out (each stage resumable).
    #[command(subcommand)]
    Build(sqlrft_builder::BuildCommand),
    #[cfg(feature = "full")]
    /// The read-only DuckDB MCP server.
    #[command(subcommand)]
    Mcp(McpCommand),
    #[cfg(feature = "full")]
    /// The reward service: scores SQL completions by executing them.
    #[command(subcommand)]
    Reward(RewardCommand),
    #[cfg(feature = "full")]
    /// Distil <think>/<sql> chain-of-thought from a teacher LLM (`distill merge` joins shards).
    Distill(DistillCli),
    /// Upload datasets or models to the Hugging Face Hub.
    #[command(subcommand)]
    Publish(PublishCommand),
    /// GRPO training (`train export` writes a merged Hugging Face model).
    Train(sqlrft_trainer::TrainCommand),
    #[cfg(feature = "full")]
    /// A rollout worker: samples on a generation server, scores, and serves batches to
    /// `sqlrft train --rollouts`.
    Rollout(sqlrft_rollout::RolloutArgs),
    #[cfg(feature = "full")]
    /// Execution accuracy of models on a test set, with a significance report.
    Eval(Layered<sqlrft_eval::EvalArgs>),
    /// Models: `model import-gguf` turns a GGUF file into a Hugging Face model directory;
    /// `model serve` serves one through the OpenAI-compatible API.
    #[command(subcommand)]
    Model(ModelCommand),
    /// GPU backend tools: probe, compile kernels, checks and benchmarks (needs a CUDA driver).
    Cuda(cuda::CudaArgs),
    /// Benchmarks that measure sqlrft against the tools it replaces, in the same run.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Exit 0 when a service's /healthz answers 200 (the containers' health check).
    Healthcheck(healthcheck::HealthcheckArgs),
}

#[cfg(feature = "full")]
#[derive(Subcommand)]
enum McpCommand {
    /// Serve a DuckDB file read-only over MCP (streamable HTTP, or `--transport stdio` for hosts
    /// that start it) until Ctrl-C or SIGTERM (over stdio: or until the host closes stdin).
    Serve(sqlrft_mcp::McpServeArgs),
}

#[cfg(feature = "full")]
#[derive(Subcommand)]
enum RewardCommand {
    /// Serve POST /v1/evaluate and /v1/evaluate/batch until Ctrl-C or SIGTERM.
    Serve(sqlrft_reward_service::RewardServeArgs),
}

#[cfg(feature = "full")]
/// `sqlrft distill FLAGS` runs a distillation; `sqlrft distill merge` joins shard outputs.
///
/// Parsed by hand: clap's derive leaves the argument group of a struct that itself flattens
/// another (`DistillArgs` flattens the Hub flags) empty, so a flattened `Option<DistillArgs>`
/// beside the subcommand never became `Some` and `sqlrft distill --model …` did nothing.
enum DistillCli {
    Run(Box<Layered<sqlrft_distill::DistillArgs>>),
    Merge(sqlrft_distill::MergeArgs),
}

#[cfg(feature = "full")]
#[derive(Subcommand)]
enum DistillAction {
    /// Join the shard files of a sharded distillation into one JSONL.
    Merge(sqlrft_distill::MergeArgs),
}

#[cfg(feature = "full")]
impl clap::FromArgMatches for DistillCli {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Self::from_arg_matches_mut(&mut matches.clone())
    }

    fn from_arg_matches_mut(matches: &mut clap::ArgMatches) -> Result<Self, clap::Error> {
        if matches.subcommand_name().is_some() {
            let DistillAction::Merge(args) = DistillAction::from_arg_matches_mut(matches)?;
            Ok(DistillCli::Merge(args))
        } else {
            let args = Layered::<sqlrft_distill::DistillArgs>::from_arg_matches_mut(matches)?;
            Ok(DistillCli::Run(Box::new(args)))
        }
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

#[cfg(feature = "full")]
impl clap::Args for DistillCli {
    fn augment_args(command: clap::Command) -> clap::Command {
        DistillAction::augment_subcommands(Layered::<sqlrft_distill::DistillArgs>::augment_args(
            command,
        ))
        .args_conflicts_with_subcommands(true)
        .subcommand_negates_reqs(true)
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

#[derive(Subcommand)]
enum ModelCommand {
    // The help text is `ImportGgufArgs`'s own (a doc comment here would replace it).
    ImportGguf(sqlrft_gguf::ImportGgufArgs),
    /// Serve a model directory through the OpenAI-compatible API vLLM speaks (completions,
    /// chat, models, LoRA hot reload), batched across requests.
    Serve(sqlrft_model_server::ModelServeArgs),
}

#[derive(Subcommand)]
enum PublishCommand {
    #[cfg(feature = "full")]
    /// Create (if needed) a dataset repo and upload files with a dataset card.
    Dataset(sqlrft_distill::PublishDatasetArgs),
    /// Upload a model directory (e.g. from `sqlrft train export`).
    Model(sqlrft_trainer::PublishModelArgs),
}

#[derive(Subcommand)]
enum BenchCommand {
    #[cfg(feature = "full")]
    /// MCP server throughput and latency through the tutorial's wire format (--peer to compare).
    Mcp(sqlrft_mcp::bench::McpBenchArgs),
    #[cfg(feature = "full")]
    /// Reward evaluations per second (HTTP, embedded, via MCP, batches) vs the tutorial's evaluator.
    Reward(sqlrft_reward_service::BenchArgs),
    #[cfg(feature = "full")]
    /// Ground truth for 1,000 queries and 1,000 LLM calls against a slow stub.
    Build(sqlrft_builder::BenchArgs),
    #[cfg(feature = "full")]
    /// 1,000 items x 3 models against a stub with 200 ms latency, scored on a sandbox.
    Eval(sqlrft_eval::BenchArgs),
    /// GRPO steps of SmolLM2-135M on the CPU by phase, vs TRL's GRPOTrainer in the same run.
    Train(sqlrft_trainer::bench::TrainBenchArgs),
    #[cfg(feature = "full")]
    /// The RL loop as services (rollout workers, a stub generator at fixed latency, a trainer):
    /// trainer waiting time and the queue's share of a step.
    Rollout(sqlrft_rollout::bench::RolloutBenchArgs),
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
        let _telemetry = telemetry::init(telemetry::DEFAULT_LOGS);
        return cuda::run(args);
    }
    let default_logs = match cli.command {
        Command::Bench(_) => telemetry::QUIET_LOGS,
        _ => telemetry::DEFAULT_LOGS,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let _telemetry = telemetry::init(default_logs);
        match cli.command {
            #[cfg(feature = "full")]
            Command::Quickstart(args) => quickstart::run(args).await,
            #[cfg(feature = "full")]
            Command::Build(command) => sqlrft_builder::run_build(command).await.map(drop),
            #[cfg(feature = "full")]
            Command::Mcp(McpCommand::Serve(args)) => sqlrft_mcp::serve(args).await,
            #[cfg(feature = "full")]
            Command::Reward(RewardCommand::Serve(args)) => sqlrft_reward_service::serve(args).await,
            #[cfg(feature = "full")]
            Command::Distill(DistillCli::Merge(args)) => {
                let merged = sqlrft_distill::run_merge(args).await?;
                eprintln!(
                    "merged {} files: {} rows ({} duplicates skipped), {} dropped records",
                    merged.inputs.len(),
                    merged.rows,
                    merged.duplicates,
                    merged.dropped
                );
                Ok(())
            }
            #[cfg(feature = "full")]
            Command::Distill(DistillCli::Run(args)) => {
                let args = args.resolve(args.parsed().config.as_deref())?;
                let summary = sqlrft_distill::run_distill(args).await?;
                eprintln!("{summary}");
                Ok(())
            }
            #[cfg(feature = "full")]
            Command::Publish(PublishCommand::Dataset(args)) => {
                sqlrft_distill::run_publish_dataset(args).await.map(drop)
            }
            Command::Publish(PublishCommand::Model(args)) => {
                sqlrft_trainer::run_publish_model(args).await
            }
            Command::Train(command) => sqlrft_trainer::run_train_command(command, Vec::new()).await,
            #[cfg(feature = "full")]
            Command::Rollout(args) => sqlrft_rollout::serve(args).await,
            #[cfg(feature = "full")]
            Command::Eval(args) => {
                let args = args.resolve(args.parsed().config.as_deref())?;
                sqlrft_eval::run_eval(&args).await.map(drop)
            }
            Command::Model(ModelCommand::ImportGguf(args)) => {
                eprintln!("{}", sqlrft_gguf::run_import_gguf(&args)?);
                Ok(())
            }
            Command::Model(ModelCommand::Serve(args)) => sqlrft_model_server::serve(args).await,
            #[cfg(feature = "full")]
            Command::Bench(BenchCommand::Mcp(args)) => {
                sqlrft_mcp::bench::run_bench(args).await.map(drop)
            }
            #[cfg(feature = "full")]
            Command::Bench(BenchCommand::Reward(args)) => {
                sqlrft_reward_service::run_bench(args).await.map(drop)
            }
            #[cfg(feature = "full")]
            Command::Bench(BenchCommand::Build(args)) => {
                let report = sqlrft_builder::run_bench(&args).await?;
                println!("{report}");
                Ok(())
            }
            #[cfg(feature = "full")]
            Command::Bench(BenchCommand::Eval(args)) => {
                sqlrft_eval::run_bench(&args).await.map(drop)
            }
            Command::Bench(BenchCommand::Train(args)) => {
                sqlrft_trainer::bench::run_bench(&args).await.map(drop)
            }
            #[cfg(feature = "full")]
            Command::Bench(BenchCommand::Rollout(args)) => {
                sqlrft_rollout::bench::run_bench(&args).await.map(drop)
            }
            Command::Cuda(_) | Command::Healthcheck(_) => {
                unreachable!("handled before the runtime starts")
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks a command's definition only when that subcommand is parsed: a flag name two
    /// flattened structs share (`--seed` in `build all`) panics at the user's first run. This
    /// walks every subcommand once.
    #[test]
    fn every_subcommand_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}

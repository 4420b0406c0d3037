//! `sqlrft-distill`: the distill and publish commands as a standalone binary (the `sqlrft`
//! binary offers the same as `sqlrft distill …` and `sqlrft publish dataset …`).

use clap::{Parser, Subcommand};
use sqlrft_distill::{DistillArgs, MergeArgs, PublishDatasetArgs};

#[derive(Parser)]
#[command(
    version,
    about = "Distil chain-of-thought SQL from a teacher LLM and publish it"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Distil a dataset (see `sqlrft distill --help`).
    Run(Box<DistillArgs>),
    /// Merge shard outputs.
    Merge(MergeArgs),
    /// Publish JSONL files as a Hub dataset.
    Publish(PublishDatasetArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,sqlrft=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Run(args) => println!("{}", sqlrft_distill::run_distill(*args).await?),
        Command::Merge(args) => {
            let s = sqlrft_distill::run_merge(args).await?;
            println!(
                "merged {} files: {} rows ({} duplicates skipped), {} dropped records",
                s.inputs.len(),
                s.rows,
                s.duplicates,
                s.dropped
            );
        }
        Command::Publish(args) => {
            let info = sqlrft_distill::run_publish_dataset(args).await?;
            match info.commit_url {
                Some(url) => println!("published: {url}"),
                None => println!("already up to date"),
            }
        }
    }
    Ok(())
}

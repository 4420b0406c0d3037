//! `sqlrft rollout` settings. Where the worker listens and how big its buffer is come from
//! flags, `[rollout]` of sqlrft.toml, `SQLRFT_ROLLOUT_*` and `PORT`; how it samples and scores
//! are the trainer's own settings (`[train]`, `SQLRFT_TRAIN_*`, the same flags), so a worker and
//! its trainer read one file.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use sqlrft_serve::ServeArgs;
use sqlrft_trainer::RoundArgs;
use sqlrft_trainer::train::TrainConfig;

/// Where the worker listens, and its buffer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutServiceConfig {
    /// Interface to listen on.
    pub host: String,
    /// Port to listen on (0 picks a free one).
    pub port: u16,
    /// Bearer token required on the API (gRPC and JSON) when set.
    pub token: Option<String>,
    /// Bytes of a request body before the worker answers 413.
    pub max_body_bytes: usize,
    /// Scored batches kept ready for trainers; generation pauses while it is full.
    pub buffer: usize,
    /// `I/N`: this worker takes the dataset rows whose index is I modulo N.
    pub shard: String,
    /// The worker's name in batches, status and metrics (default: $HOSTNAME, else
    /// `rollout-<pid>`).
    pub name: Option<String>,
}

impl Default for RolloutServiceConfig {
    fn default() -> Self {
        RolloutServiceConfig {
            host: "127.0.0.1".into(),
            // gRPC's customary port.
            port: 50051,
            token: None,
            max_body_bytes: 64 * 1024,
            buffer: 2,
            shard: "0/1".into(),
            name: None,
        }
    }
}

impl RolloutServiceConfig {
    /// The shard as (index, count); the error names the flag and the form.
    pub fn shard(&self) -> Result<(usize, usize)> {
        let parsed = self.shard.split_once('/').and_then(|(i, n)| {
            Some((
                i.trim().parse::<usize>().ok()?,
                n.trim().parse::<usize>().ok()?,
            ))
        });
        match parsed {
            Some((i, n)) if n > 0 && i < n => Ok((i, n)),
            _ => bail!(
                "--shard `{}`: expected I/N with 0 ≤ I < N (e.g. 0/2 and 1/2 for two workers)",
                self.shard
            ),
        }
    }

    /// The name this worker goes by.
    pub fn worker_name(&self) -> String {
        self.name
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| format!("rollout-{}", std::process::id()))
    }

    /// Checks the settings hang together; the error names the flag to fix.
    pub fn validate(&self) -> Result<()> {
        if self.buffer == 0 {
            bail!("--buffer must be at least 1");
        }
        self.shard().map(drop)
    }
}

/// The flags of `[rollout]`: each serializes only when given, so it overrides the file and the
/// environment without resetting them.
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct RolloutServeFlags {
    /// Where to listen.
    #[command(flatten)]
    #[serde(flatten)]
    pub serve: ServeArgs,
    /// Scored batches kept ready for trainers; generation pauses while it is full [default: 2].
    #[arg(long, value_name = "BATCHES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffer: Option<usize>,
    /// Take the dataset rows whose index is I modulo N, so N workers share a dataset without
    /// overlap [default: 0/1].
    #[arg(long, value_name = "I/N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// The worker's name in batches and metrics [default: $HOSTNAME, else rollout-<pid>].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Run a rollout worker: sample G completions per prompt on an OpenAI-compatible server, score
/// each group, and keep the scored batches for trainers to pull (`sqlrft train --rollouts`).
#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:\n  \
sqlrft rollout --model models/smollm2 --dataset data/train.jsonl --generator http://127.0.0.1:8000/v1 --reward-url http://127.0.0.1:8090\n  \
sqlrft rollout ... --shard 1/2 --port 50052   (a second worker on the other half of the data)\n\n\
It samples with the newest `sqlrft-policy-step-N` adapter the generator lists (the trainer \
publishes them) and tags each batch with N. Endpoints: gRPC sqlrft.v1.Rollouts/Pull and /Status, \
the same as JSON at POST /v1/rollouts/pull and GET /v1/rollouts/status, and /healthz.")]
pub struct RolloutArgs {
    /// The policy's base model (its tokenizer and chat template are used here): a Hugging Face
    /// model directory or a Hub repo id.
    #[arg(long)]
    pub model: String,
    /// Prompts: a dataset JSONL, or a Hub dataset `owner/name[:file.jsonl]`.
    #[arg(long)]
    pub dataset: String,
    /// How rounds are sampled and scored (--generator is required: the worker samples there).
    #[command(flatten)]
    pub round: RoundArgs,
    /// Where the worker listens, and its buffer.
    #[command(flatten)]
    pub service: RolloutServeFlags,
    /// Where base models and Hub datasets are downloaded from.
    #[command(flatten)]
    pub hub: sqlrft_hub::HubArgs,
}

impl RolloutArgs {
    /// The worker's service settings and the round settings it shares with the trainer.
    pub fn resolve(&self) -> Result<(RolloutServiceConfig, TrainConfig)> {
        let file = self.service.serve.config.as_deref();
        let service: RolloutServiceConfig = sqlrft_core::config::load_service(
            "rollout",
            file,
            &self.service,
            |c: &RolloutServiceConfig| c.validate(),
        )?;
        let mut train = TrainConfig::load(file)?;
        self.round.apply(&mut train)?;
        train.validate()?;
        if train.generator.is_none() {
            bail!(
                "sqlrft rollout samples on a generation server: pass --generator URL (vLLM with \
                 --enable-lora, or `sqlrft model serve DIR --enable-lora`)"
            );
        }
        Ok((service, train))
    }
}

/// Where the worker writes its URL once it listens.
pub fn url_file(args: &RolloutArgs) -> Option<PathBuf> {
    args.service.serve.print_url_to.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: RolloutArgs,
    }

    fn resolve(extra: &[&str]) -> Result<(RolloutServiceConfig, TrainConfig)> {
        let line = ["x", "--model", "m", "--dataset", "d.jsonl"];
        Cli::try_parse_from(line.iter().chain(extra))
            .context("parse")?
            .args
            .resolve()
    }

    #[test]
    fn flags_set_the_worker_and_its_rounds() {
        let (service, train) = resolve(&[
            "--generator",
            "http://g:8000/v1",
            "--shard",
            "1/3",
            "--buffer",
            "5",
            "--num-generations",
            "4",
            "--port",
            "0",
        ])
        .unwrap();
        assert_eq!(service.shard().unwrap(), (1, 3));
        assert_eq!((service.buffer, service.port), (5, 0));
        assert_eq!(train.grpo.num_generations, 4);
        assert_eq!(train.generator.unwrap().url, "http://g:8000/v1");
    }

    #[test]
    fn bad_settings_name_the_flag() {
        for (extra, says) in [
            (vec![], "--generator URL"),
            (
                vec!["--generator", "http://g/v1", "--shard", "2/2"],
                "--shard `2/2`",
            ),
            (vec!["--generator", "http://g/v1", "--shard", "x"], "I/N"),
            (
                vec!["--generator", "http://g/v1", "--buffer", "0"],
                "--buffer",
            ),
        ] {
            let err = format!("{:#}", resolve(&extra).unwrap_err());
            assert!(err.contains(says), "{extra:?}: {err}");
        }
    }
}

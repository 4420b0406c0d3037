//! Resolves `--model` / `--dataset` arguments: a local path, or a Hugging Face Hub repo id
//! fetched through `sqlrft_hub` (with `HF_TOKEN`, from `HF_ENDPOINT` or huggingface.co) into
//! the cache it shares with Python's `huggingface_hub` (offline with `HF_HUB_OFFLINE=1`).

use anyhow::{Context, Result, bail};
use sqlrft_hub::{HubClient, HubError, RepoType};
use std::path::{Path, PathBuf};

/// Files of a model repo the trainer needs besides the weights, and whether each must exist.
const MODEL_FILES: &[(&str, bool)] = &[
    ("config.json", true),
    ("tokenizer.json", true),
    ("tokenizer_config.json", true),
    ("generation_config.json", false),
    ("special_tokens_map.json", false),
    ("chat_template.jinja", false),
];

const REVISION: &str = "main";

fn looks_like_repo_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    parts.len() == 2 && parts.iter().all(|p| !p.is_empty() && !p.starts_with('.'))
}

/// `Ok(None)` when the repo has no such file (offline: when the cache has no copy of a file
/// that is not `required`).
async fn fetch_file(
    hub: &HubClient,
    kind: RepoType,
    repo: &str,
    file: &str,
    required: bool,
) -> Result<Option<PathBuf>> {
    match hub.download(kind, repo, REVISION, file).await {
        Ok(p) => Ok(Some(p)),
        Err(e) if e.status() == Some(404) => Ok(None),
        Err(HubError::NotCached { .. }) if !required => Ok(None),
        Err(
            e @ HubError::Status {
                status: 401 | 403, ..
            },
        ) => Err(e).context(format!(
            "the Hub refused `{repo}`; set HF_TOKEN to a token that can read it"
        )),
        Err(e) => Err(e.into()),
    }
}

/// A model directory: `spec` itself when it exists, else the Hub repo `spec` downloaded.
pub async fn resolve_model(spec: &str, hub: &HubClient) -> Result<PathBuf> {
    let p = Path::new(spec);
    if p.is_dir() {
        return Ok(p.to_path_buf());
    }
    if !looks_like_repo_id(spec) {
        bail!("model `{spec}` is neither a directory nor a Hub repo id (owner/name)");
    }
    let mut dir = None;
    for (f, required) in MODEL_FILES {
        match fetch_file(hub, RepoType::Model, spec, f, *required).await? {
            Some(path) => dir = dir.or_else(|| path.parent().map(Path::to_path_buf)),
            None if *required => {
                bail!("Hub repo `{spec}` has no `{f}`; is it a Hugging Face transformers model?")
            }
            None => {}
        }
    }
    let index = "model.safetensors.index.json";
    if let Some(idx_path) = fetch_file(hub, RepoType::Model, spec, index, false).await? {
        let idx: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&idx_path)?)
            .with_context(|| format!("`{index}` of `{spec}` is not JSON"))?;
        let mut shards: Vec<String> = idx["weight_map"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        shards.sort();
        shards.dedup();
        for s in shards {
            if fetch_file(hub, RepoType::Model, spec, &s, true)
                .await?
                .is_none()
            {
                bail!("Hub repo `{spec}` lists shard `{s}` but does not serve it");
            }
        }
    } else if fetch_file(hub, RepoType::Model, spec, "model.safetensors", true)
        .await?
        .is_none()
    {
        bail!("Hub repo `{spec}` has no model.safetensors (nor a sharded index)");
    }
    dir.context("no model files were downloaded")
}

/// A dataset JSONL: `spec` itself when it is a file, else `owner/name[:file]` from the Hub's
/// dataset repos (default file `train.jsonl`).
pub async fn resolve_dataset(spec: &str, hub: &HubClient) -> Result<PathBuf> {
    let p = Path::new(spec);
    if p.is_file() {
        return Ok(p.to_path_buf());
    }
    let (repo, file) = spec.split_once(':').unwrap_or((spec, "train.jsonl"));
    if !looks_like_repo_id(repo) || (!spec.contains(':') && spec.ends_with(".jsonl")) {
        bail!(
            "dataset `{spec}` does not exist; run `sqlrft build` first, or name a Hub dataset as owner/name[:file.jsonl]"
        );
    }
    fetch_file(hub, RepoType::Dataset, repo, file, true)
        .await?
        .with_context(|| format!("Hub dataset `{repo}` has no `{file}`"))
}

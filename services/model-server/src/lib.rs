//! sqlrft-model-server: `sqlrft model serve DIR`, a Hugging Face model directory behind the
//! OpenAI-compatible API that vLLM, SGLang and TGI speak — completions (with token ids and
//! log-probs), chat completions, `/v1/models`, and vLLM's LoRA hot reload — on sqlrft's own
//! engine. Requests that arrive together decode as one batch. It lets the whole RL loop run
//! on a laptop or in CI, and any OpenAI client (and `sqlrft eval`) talk to an exported model.

#![warn(missing_docs)]

mod api;
mod config;
mod engine;

pub use api::router;
pub use config::{ModelServeArgs, ModelServerConfig};
pub use engine::{Adapter, Engine, EngineError, GenerationRequest, read_adapter_dir};

use anyhow::Context;

/// A model server running in this process; `state` is its engine.
pub type RunningServer = sqlrft_serve::Server<Engine>;

/// Loads the model and the startup adapters, binds the socket (port 0 picks a free one) and
/// serves in the background.
pub async fn start(config: ModelServerConfig) -> anyhow::Result<RunningServer> {
    config.validate()?;
    // A Hub repo id is downloaded (HF_TOKEN, HF_ENDPOINT and [hub] say from where).
    let hub = sqlrft_hub::HubArgs::default().client(None)?;
    let dir = sqlrft_trainer::hub::resolve_model(&config.dir.display().to_string(), &hub).await?;
    let (model, tokenizer) =
        tokio::task::spawn_blocking(move || sqlrft_trainer::train::load_model_dir(&dir))
            .await
            .context("the model loader stopped")??;
    let engine = Engine::start(model, tokenizer, config.max_batch_prompts, config.max_queue)?;
    for (name, dir) in config.startup_adapters()? {
        engine
            .load_adapter(&name, &dir)
            .await
            .with_context(|| format!("--lora {name}={}", dir.display()))?;
    }
    let app = router(engine.clone(), &config);
    sqlrft_serve::Server::start(&config.host, config.port, app, engine).await
}

/// `sqlrft model serve`: runs until Ctrl-C or SIGTERM, then drains and exits.
pub async fn serve(args: ModelServeArgs) -> anyhow::Result<()> {
    let config = args.resolve()?;
    let name = config.model_name();
    let server = start(config).await?;
    tracing::info!(url = %server.base_url(), model = %name, "serving the model");
    eprintln!(
        "sqlrft model server on {}/v1 (model `{name}`, CPU)",
        server.base_url()
    );
    server
        .run_until_signal(args.serve.print_url_to.as_deref())
        .await?;
    Ok(())
}

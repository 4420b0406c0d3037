//! Where the model runs: `sqlrft train --device cpu|cuda|auto` (`device` in `[train]`,
//! `SQLRFT_TRAIN_DEVICE`). Both backends implement the model contract's `Backend`, so the GRPO
//! loop, SFT, checkpoints and export are the same code on either.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sqlrft_cuda::{CudaBackend, CudaOptions, Gpu, ModelDims, default_cache_dir, probe};
use sqlrft_model::backend::{Backend, CpuBackend};
use sqlrft_model::cpu::model::CpuModel;
use sqlrft_model::lora::LoraConfig;

/// Which backend runs the model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// The GPU when a CUDA driver and device are found and the model is one the CUDA backend
    /// runs; otherwise the CPU (saying why in the log).
    #[default]
    Auto,
    /// The f32 CPU reference backend.
    Cpu,
    /// The CUDA backend on GPU 0 (bf16 weights and activations, fp32 master weights).
    Cuda,
}

/// A backend chosen at run time.
pub type DynBackend = Box<dyn Backend + Send>;

/// Puts `model` on `device`. Trains its adapters when it has them (`lora` is their config),
/// otherwise every weight; `keep_reference` keeps frozen base weights for the KL term.
pub fn open_backend(
    device: Device,
    model: CpuModel,
    lora: Option<&LoraConfig>,
    keep_reference: bool,
) -> Result<DynBackend> {
    let cuda = |gpu: Gpu, model: CpuModel| -> Result<DynBackend> {
        tracing::info!(gpu = %gpu.info.name, arch = %gpu.info.arch, "training on the CUDA backend");
        Ok(Box::new(CudaBackend::new(
            gpu,
            model,
            lora,
            keep_reference,
            CudaOptions::default(),
        )?))
    };
    let cpu = |model: CpuModel| -> Result<DynBackend> {
        Ok(Box::new(CpuBackend::new(model, keep_reference)))
    };
    match device {
        Device::Cpu => cpu(model),
        Device::Cuda => {
            probe(0).context(
                "--device cuda: no usable GPU here; use --device cpu, or --device auto to fall back",
            )?;
            let gpu = Gpu::new(0, &default_cache_dir())
                .context("--device cuda: the GPU could not be opened or its kernels compiled")?;
            cuda(gpu, model).context("--device cuda: the CUDA backend could not start")
        }
        // Falls back while nothing is on the GPU yet; a failure after that (e.g. out of
        // memory while uploading) is an error, not a silent switch.
        Device::Auto => {
            if let Err(why) = probe(0) {
                tracing::info!(%why, "no GPU: training on the CPU backend");
                return cpu(model);
            }
            if let Err(why) = ModelDims::from_config(model.config.clone()) {
                tracing::warn!(error = %format!("{why:#}"), "the CUDA backend cannot run this model: training on the CPU backend");
                return cpu(model);
            }
            match Gpu::new(0, &default_cache_dir()) {
                Ok(gpu) => cuda(gpu, model),
                Err(why) => {
                    tracing::warn!(error = %format!("{why:#}"), "the GPU could not be opened or its kernels compiled: training on the CPU backend");
                    cpu(model)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_read_as_written() {
        for (text, want) in [
            ("\"auto\"", Device::Auto),
            ("\"cpu\"", Device::Cpu),
            ("\"cuda\"", Device::Cuda),
        ] {
            assert_eq!(serde_json::from_str::<Device>(text).unwrap(), want);
        }
        assert!(serde_json::from_str::<Device>("\"gpu\"").is_err());
    }
}

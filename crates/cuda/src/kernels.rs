//! The CUDA C sources under `kernels/`, embedded in the binary and compiled at run time.
//!
//! Every source is compiled as `prelude.cuh` followed by the file, so kernels share the bf16
//! typedef and block reductions without NVRTC needing an include path for our own headers.

/// The text every kernel source is prefixed with.
pub const PRELUDE: &str = include_str!("../kernels/prelude.cuh");

/// One `.cu` file: a single concern (a layer's forward and backward, the optimizer, ...).
#[derive(Clone, Copy, Debug)]
pub struct KernelSource {
    /// Module name, the file's stem.
    pub name: &'static str,
    /// The file's text, without the prelude.
    pub code: &'static str,
    /// The `extern "C"` kernels it defines.
    pub entry_points: &'static [&'static str],
}

impl KernelSource {
    /// The text NVRTC compiles.
    pub fn full_source(&self) -> String {
        format!("{PRELUDE}\n#line 1 \"{}.cu\"\n{}", self.name, self.code)
    }
}

macro_rules! source {
    ($name:literal, [$($entry:literal),+ $(,)?]) => {
        KernelSource {
            name: $name,
            code: include_str!(concat!("../kernels/", $name, ".cu")),
            entry_points: &[$($entry),+],
        }
    };
}

/// Every kernel source, in the order a training step meets them.
pub const SOURCES: &[KernelSource] = &[
    source!("embedding", ["embedding_forward", "embedding_backward"]),
    source!("rmsnorm", ["rmsnorm_forward", "rmsnorm_backward"]),
    source!("rope", ["rope_forward", "rope_backward"]),
    source!("residual", ["residual_add", "bias_add", "bias_backward"]),
    source!(
        "attention",
        [
            "attention_softmax_forward",
            "attention_values_forward",
            "attention_softmax_backward",
            "attention_backward_dq",
            "attention_backward_dkv",
        ]
    ),
    source!(
        "flash_attention",
        [
            "flash_attention_forward",
            "flash_attention_backward_delta",
            "flash_attention_backward_dq",
            "flash_attention_backward_dkv",
        ]
    ),
    source!("swiglu", ["swiglu_forward", "swiglu_backward"]),
    source!("logprob", ["logprob_forward", "logprob_backward"]),
    source!("grad_norm", ["grad_norm_partial", "grad_norm_finish"]),
    source!("adamw", ["adamw_step"]),
    source!(
        "cast",
        [
            "cast_f32_to_bf16",
            "cast_bf16_to_f32",
            "accumulate_bf16_into_f32"
        ]
    ),
    source!("kv_cache", ["kv_cache_append"]),
    source!("sampling", ["sample_rows"]),
];

/// The source that defines `entry_point`.
pub fn source_of(entry_point: &str) -> Option<&'static KernelSource> {
    SOURCES
        .iter()
        .find(|s| s.entry_points.contains(&entry_point))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_point_is_defined_in_its_source() {
        for s in SOURCES {
            for e in s.entry_points {
                let decl = format!("__global__ void {e}(");
                assert!(
                    s.code.contains(&decl),
                    "{}.cu does not define `{e}`",
                    s.name
                );
            }
        }
    }

    #[test]
    fn every_kernel_in_a_source_is_listed() {
        for s in SOURCES {
            let defined = s.code.matches("__global__ void ").count();
            assert_eq!(
                defined,
                s.entry_points.len(),
                "{}.cu defines {defined} kernels, the list names {}",
                s.name,
                s.entry_points.len()
            );
        }
    }

    #[test]
    fn every_cu_file_in_the_kernels_directory_is_embedded() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/kernels");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "cu") {
                let stem = path.file_stem().unwrap().to_str().unwrap();
                assert!(
                    SOURCES.iter().any(|s| s.name == stem),
                    "kernels/{stem}.cu is not in SOURCES"
                );
            }
        }
    }
}

//! Is there a GPU to run on? Answered without panicking: cudarc panics on the first driver call
//! when `libcuda.so` is missing, so [`probe`] asks the loader first.

use cudarc::driver::CudaContext;
use serde::Serialize;

/// Why the CUDA backend cannot run here. The message says what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    /// `libcuda.so` cannot be loaded.
    #[error("no CUDA driver (libcuda.so) found: run on a GPU machine or use --device cpu")]
    NoDriver,
    /// The driver loaded, but GPU `ordinal` is absent or would not open (the driver's error).
    #[error("the CUDA driver is present but no usable GPU was found ({0}): use --device cpu")]
    NoDevice(String),
    /// NVRTC is missing or would not load; the message says how to install it.
    #[error("{0}")]
    NoNvrtc(String),
    /// CUDA's headers (`cuda_bf16.h`) were not found; the message says how to install them.
    #[error("{0}")]
    NoHeaders(String),
}

/// What the GPU is, as the kernel cache and the benchmarks need it.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceInfo {
    /// The GPU's index among those CUDA sees.
    pub ordinal: usize,
    /// The GPU's name (`NVIDIA H200`).
    pub name: String,
    /// Compute capability (major, minor): (9, 0) on H100 / H200.
    pub compute_capability: (i32, i32),
    /// The architecture NVRTC compiles for, `sm_XY`.
    pub arch: String,
    /// Device memory, in bytes.
    pub total_memory_bytes: usize,
    /// Streaming multiprocessors: sizes grids that should fill the GPU.
    pub multiprocessors: i32,
    /// GPUs visible to this process.
    pub device_count: i32,
}

/// Whether `libcuda.so` can be loaded at all (no driver call is made).
pub fn driver_present() -> bool {
    // SAFETY: only asks the loader whether the library opens.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Finds GPU `ordinal` and describes it; never panics when CUDA is absent.
pub fn probe(ordinal: usize) -> Result<DeviceInfo, Unavailable> {
    if !driver_present() {
        return Err(Unavailable::NoDriver);
    }
    let no_device = |e: cudarc::driver::DriverError| Unavailable::NoDevice(format!("{e:?}"));
    let device_count = CudaContext::device_count().map_err(no_device)?;
    if device_count <= ordinal as i32 {
        return Err(Unavailable::NoDevice(format!(
            "GPU {ordinal} asked for, {device_count} present"
        )));
    }
    let ctx = CudaContext::new(ordinal).map_err(no_device)?;
    let compute_capability = ctx.compute_capability().map_err(no_device)?;
    let multiprocessors = ctx
        .attribute(
            cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
        )
        .map_err(no_device)?;
    Ok(DeviceInfo {
        ordinal,
        name: ctx.name().map_err(no_device)?,
        arch: arch_of(compute_capability),
        compute_capability,
        total_memory_bytes: ctx.total_mem().map_err(no_device)?,
        multiprocessors,
        device_count,
    })
}

/// `sm_XY` for compute capability (X, Y).
pub fn arch_of((major, minor): (i32, i32)) -> String {
    format!("sm_{major}{minor}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hopper_compiles_for_sm_90() {
        assert_eq!(arch_of((9, 0)), "sm_90");
        assert_eq!(arch_of((8, 9)), "sm_89");
    }

    #[test]
    fn missing_driver_message_says_what_to_do() {
        let msg = Unavailable::NoDriver.to_string();
        assert!(
            msg.contains("libcuda.so") && msg.contains("--device cpu"),
            "{msg}"
        );
    }
}

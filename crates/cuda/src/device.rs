//! One GPU with every kernel loaded: context, stream, cuBLASLt handle and the kernel table.

use crate::cache::KernelCache;
use crate::kernels::SOURCES;
use crate::probe::{DeviceInfo, probe};
use anyhow::{Context, Result, anyhow};
use cudarc::cublaslt::CudaBlasLT;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DeviceRepr, LaunchConfig,
    PushKernelArg, ValidAsZeroBits,
};
use cudarc::nvrtc::Ptx;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// A GPU ready to run the trainer's kernels. All work goes to one stream, in order.
pub struct Gpu {
    /// What the GPU is: name, architecture, memory, multiprocessors.
    pub info: DeviceInfo,
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) blas: CudaBlasLT,
    functions: HashMap<&'static str, CudaFunction>,
}

/// One kernel argument, as the kernel's C signature declares it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Arg {
    /// A device pointer (or 0 for a null pointer).
    Ptr(u64),
    I32(i32),
    I64(i64),
    F32(f32),
}

impl Gpu {
    /// Opens GPU `ordinal`, compiling (or reading from `cache_dir`) every kernel for its
    /// architecture. Fails with [`crate::Unavailable`]'s message when there is no GPU.
    pub fn new(ordinal: usize, cache_dir: &Path) -> Result<Self> {
        let info = probe(ordinal)?;
        let ctx = CudaContext::new(ordinal)
            .map_err(|e| anyhow!("could not open GPU {ordinal}: {e:?}"))?;
        let stream = ctx.default_stream();
        let cache = KernelCache::new(cache_dir, info.arch.clone())?;
        let mut functions = HashMap::new();
        for source in SOURCES {
            let (cubin, _) = cache.cubin(source)?;
            let module = ctx
                .load_module(Ptx::from_binary(cubin))
                .map_err(|e| anyhow!("could not load kernels/{}.cu: {e:?}", source.name))?;
            for &entry in source.entry_points {
                let f = module
                    .load_function(entry)
                    .map_err(|e| anyhow!("kernels/{}.cu has no `{entry}`: {e:?}", source.name))?;
                functions.insert(entry, f);
            }
        }
        let blas = CudaBlasLT::new(stream.clone())
            .map_err(|e| anyhow!("could not start cuBLASLt (libcublasLt.so.13): {e:?}"))?;
        Ok(Self {
            info,
            ctx,
            stream,
            blas,
            functions,
        })
    }

    /// The stream every launch, copy and GEMM is queued on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The GPU's CUDA context (memory queries, say).
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// Copies `host` to a new device buffer.
    pub fn upload<T: DeviceRepr>(&self, host: &[T]) -> Result<CudaSlice<T>> {
        self.stream
            .clone_htod(host)
            .map_err(|e| anyhow!("copy to GPU failed: {e:?}"))
    }

    /// Copies a device buffer back (waits for the stream).
    pub fn download<T: DeviceRepr + Default + Clone>(
        &self,
        dev: &impl DevicePtr<T>,
    ) -> Result<Vec<T>> {
        self.stream
            .clone_dtoh(dev)
            .map_err(|e| anyhow!("copy from GPU failed: {e:?}"))
    }

    /// A new device buffer of `n` zeroed elements.
    pub fn zeros<T: DeviceRepr + ValidAsZeroBits>(&self, n: usize) -> Result<CudaSlice<T>> {
        self.stream
            .alloc_zeros(n)
            .map_err(|e| anyhow!("could not allocate {n} elements on the GPU: {e:?}"))
    }

    /// Waits for all queued work and reports any error it raised.
    pub fn synchronize(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(|e| anyhow!("GPU work failed: {e:?}"))
    }

    /// Launches kernel `name`. Callers check shapes first: the kernel trusts its arguments.
    pub(crate) fn launch(&self, name: &str, cfg: LaunchConfig, args: &[Arg]) -> Result<()> {
        let f = self
            .functions
            .get(name)
            .with_context(|| format!("kernel `{name}` is not loaded"))?;
        let mut b = self.stream.launch_builder(f);
        for a in args {
            match a {
                Arg::Ptr(p) => b.arg(p),
                Arg::I32(v) => b.arg(v),
                Arg::I64(v) => b.arg(v),
                Arg::F32(v) => b.arg(v),
            };
        }
        // SAFETY: every wrapper in `ops` checks buffer lengths against the kernel's layout
        // contract before calling here; pointers come from live buffers held by the caller.
        unsafe { b.launch(cfg) }.map_err(|e| anyhow!("launching `{name}` failed: {e:?}"))?;
        Ok(())
    }
}

//! Compiled kernels on disk, so a run compiles each source once per machine.
//!
//! A CUBIN is keyed by the SHA-256 of everything that changes its bytes: the full source text
//! (prelude included), the architecture, NVRTC's version and the compile options. Files are
//! written atomically (temporary file in the same folder, fsync, rename), so concurrent
//! processes (one per GPU) at worst compile the same kernel twice, never read half a file.

use crate::kernels::{KernelSource, SOURCES};
use crate::nvrtc::{Nvrtc, nvrtc};
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Compiles kernel sources through NVRTC and keeps the CUBINs in a folder.
#[derive(Clone, Debug)]
pub struct KernelCache {
    dir: PathBuf,
    nvrtc: &'static Nvrtc,
    arch: String,
}

/// Where kernels are cached unless told otherwise: `SQLRFT_KERNEL_CACHE`, else
/// `$XDG_CACHE_HOME/sqlrft/kernels`, else `~/.cache/sqlrft/kernels`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SQLRFT_KERNEL_CACHE").filter(|d| !d.is_empty()) {
        return d.into();
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("sqlrft").join("kernels")
}

/// Whether a kernel came from disk or was compiled now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Read from the cache folder.
    Cached,
    /// Compiled by NVRTC now, then written to the cache.
    Compiled,
}

impl KernelCache {
    /// A cache in `dir` (created when missing) for architecture `arch` (`sm_90`).
    pub fn new(dir: impl Into<PathBuf>, arch: impl Into<String>) -> Result<Self> {
        let nvrtc = nvrtc()?;
        let dir = dir.into();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("could not create the kernel cache `{}`", dir.display()))?;
        Ok(Self {
            dir,
            nvrtc,
            arch: arch.into(),
        })
    }

    /// The folder holding the CUBINs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The architecture kernels are compiled for (`sm_90`).
    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// The cache key of `source`: its file name stem plus a hash of all that shapes the CUBIN.
    pub fn key(&self, source: &KernelSource) -> String {
        let mut h = Sha256::new();
        h.update(source.full_source().as_bytes());
        h.update([0]);
        h.update(self.arch.as_bytes());
        h.update([0]);
        h.update(format!("{:?}", self.nvrtc.version).as_bytes());
        for o in self.nvrtc.options(&self.arch) {
            // The include folder's path is not part of the output; its headers' version is
            // NVRTC's, already hashed.
            if !o.starts_with("-I") {
                h.update([0]);
                h.update(o.as_bytes());
            }
        }
        let digest = hex::encode(h.finalize());
        format!("{}-{}-{}", source.name, self.arch, &digest[..16])
    }

    /// The CUBIN of `source`, from disk when cached, else compiled and stored.
    pub fn cubin(&self, source: &KernelSource) -> Result<(Vec<u8>, Origin)> {
        let path = self.dir.join(format!("{}.cubin", self.key(source)));
        if let Ok(bytes) = std::fs::read(&path)
            && !bytes.is_empty()
        {
            return Ok((bytes, Origin::Cached));
        }
        let cubin = self.nvrtc.compile(source, &self.arch)?;
        sqlrft_files::write(&path, &cubin).context("could not cache the compiled kernel")?;
        Ok((cubin, Origin::Compiled))
    }

    /// Compiles (or finds) every kernel source; returns how many were compiled now.
    pub fn warm(&self) -> Result<usize> {
        let mut compiled = 0;
        for s in SOURCES {
            if self.cubin(s)?.1 == Origin::Compiled {
                compiled += 1;
            }
        }
        Ok(compiled)
    }
}

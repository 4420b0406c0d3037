//! Finding NVRTC and CUDA's headers at run time, and compiling a kernel source to a CUBIN.
//!
//! The binary is built without CUDA, so NVRTC is a shared library found when first needed:
//! `SQLRFT_NVRTC_LIB` (the library or its folder), then `CUDA_HOME` / `CUDA_PATH`, then the
//! PyPI wheel `nvidia-cuda-nvrtc` in a Python environment (`VIRTUAL_ENV`, or a `.venv` in the
//! current folder or one above it), then `/usr/local/cuda`, then the loader's own search path.
//! The library found is loaded by path before cudarc asks the loader for `libnvrtc.so.13`, so
//! the loader hands cudarc the copy already in memory (it matches loaded libraries by soname).

use crate::kernels::KernelSource;
use crate::probe::Unavailable;
use cudarc::nvrtc::{result as nvrtc_result, sys as nvrtc_sys};
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The NVRTC major version our kernels and the GPU machines' driver (CUDA 13.0) agree on.
pub const NVRTC_MAJOR: u32 = 13;
const LIB_NAME: &str = "libnvrtc.so.13";

/// A usable NVRTC: the library is loaded and `cuda_bf16.h` was found.
#[derive(Clone, Debug)]
pub struct Nvrtc {
    /// Where the library was loaded from (`None`: found by the loader's search path).
    pub library: Option<PathBuf>,
    /// Folder holding `cuda_bf16.h`.
    pub include_dir: PathBuf,
    /// NVRTC's (major, minor) version.
    pub version: (i32, i32),
}

/// Loads NVRTC once per process; later calls return the same result.
pub fn nvrtc() -> Result<&'static Nvrtc, Unavailable> {
    static NVRTC: OnceLock<Result<Nvrtc, Unavailable>> = OnceLock::new();
    NVRTC.get_or_init(locate).as_ref().map_err(Clone::clone)
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `nvidia/cu13` folders of Python environments near the current folder.
fn wheel_roots() -> Vec<PathBuf> {
    let mut envs: Vec<PathBuf> = env_path("VIRTUAL_ENV").into_iter().collect();
    if let Ok(cwd) = std::env::current_dir() {
        envs.extend(cwd.ancestors().map(|d| d.join(".venv")));
    }
    let mut roots = vec![];
    for env in envs {
        let Ok(entries) = std::fs::read_dir(env.join("lib")) else {
            continue;
        };
        for e in entries.flatten() {
            let root = e
                .path()
                .join("site-packages/nvidia")
                .join(format!("cu{NVRTC_MAJOR}"));
            if root.is_dir() {
                roots.push(root);
            }
        }
    }
    roots
}

fn candidate_lib_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![];
    if let Some(p) = env_path("SQLRFT_NVRTC_LIB") {
        dirs.push(if p.is_dir() {
            p
        } else {
            p.parent().map(Path::to_path_buf).unwrap_or_default()
        });
    }
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(p) = env_path(var) {
            dirs.push(p.join("lib64"));
            dirs.push(p.join("lib"));
        }
    }
    dirs.extend(wheel_roots().into_iter().map(|r| r.join("lib")));
    dirs.push(PathBuf::from("/usr/local/cuda/lib64"));
    dirs
}

fn candidate_include_dirs(lib_dir: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = env_path("SQLRFT_CUDA_INCLUDE").into_iter().collect();
    if let Some(d) = lib_dir.and_then(Path::parent) {
        dirs.push(d.join("include"));
    }
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(p) = env_path(var) {
            dirs.push(p.join("include"));
        }
    }
    dirs.extend(wheel_roots().into_iter().map(|r| r.join("include")));
    dirs.push(PathBuf::from("/usr/local/cuda/include"));
    dirs
}

/// Loads a library by path for the rest of the process, visible to later loads by soname.
fn load_for_process(path: &Path) -> Result<(), String> {
    use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
    // SAFETY: NVRTC's initialisers have no preconditions; the handle is kept for the process's
    // life so symbols that cudarc resolves later stay valid.
    let lib = unsafe { Library::open(Some(path), RTLD_NOW | RTLD_GLOBAL) }
        .map_err(|e| format!("could not load `{}`: {e}", path.display()))?;
    std::mem::forget(lib);
    Ok(())
}

fn locate() -> Result<Nvrtc, Unavailable> {
    let lib_dir = candidate_lib_dirs()
        .into_iter()
        .find(|d| d.join(LIB_NAME).is_file());
    if let Some(dir) = &lib_dir {
        // NVRTC opens its builtins library by soname at compile time: load it first by path.
        let builtins = std::fs::read_dir(dir)
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.starts_with(&format!("libnvrtc-builtins.so.{NVRTC_MAJOR}"))
                        && !n.contains(".alt.")
                })
            });
        if let Some(b) = builtins {
            load_for_process(&b).map_err(Unavailable::NoNvrtc)?;
        }
        load_for_process(&dir.join(LIB_NAME)).map_err(Unavailable::NoNvrtc)?;
    }
    // SAFETY: only probes whether the loader can open the library.
    if !unsafe { nvrtc_sys::is_culib_present() } {
        return Err(Unavailable::NoNvrtc(format!(
            "NVRTC ({LIB_NAME}) not found: install it with `pip install nvidia-cuda-nvrtc==13.0.88` \
             (into VIRTUAL_ENV or ./.venv), or set SQLRFT_NVRTC_LIB to the library's path"
        )));
    }
    let include_dir = candidate_include_dirs(lib_dir.as_deref())
        .into_iter()
        .find(|d| d.join("cuda_bf16.h").is_file())
        .ok_or_else(|| {
            Unavailable::NoHeaders(
                "cuda_bf16.h not found: install CUDA's headers with `pip install \
                 nvidia-cuda-runtime==13.0.96`, or set SQLRFT_CUDA_INCLUDE to the folder holding it"
                    .into(),
            )
        })?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: two out-pointers to live integers.
    unsafe { nvrtc_sys::nvrtcVersion(&mut major, &mut minor) }
        .result()
        .map_err(|e| Unavailable::NoNvrtc(format!("nvrtcVersion failed: {e:?}")))?;
    Ok(Nvrtc {
        library: lib_dir.map(|d| d.join(LIB_NAME)),
        include_dir,
        version: (major, minor),
    })
}

/// A kernel source that NVRTC rejected, with its log.
#[derive(Debug, thiserror::Error)]
#[error("NVRTC could not compile kernels/{name}.cu for {arch}: {log}")]
pub struct CompileError {
    /// The source's file stem.
    pub name: String,
    /// The architecture it was compiled for (`sm_90`).
    pub arch: String,
    /// NVRTC's error, then its compile log.
    pub log: String,
}

impl Nvrtc {
    /// The options a source is compiled with for `arch` (e.g. `sm_90`); part of the cache key.
    pub fn options(&self, arch: &str) -> Vec<String> {
        vec![
            format!("--gpu-architecture={arch}"),
            "--std=c++17".into(),
            // Line tables let ncu and compute-sanitizer point at source lines; no effect on code.
            "--generate-line-info".into(),
            format!("-I{}", self.include_dir.display()),
        ]
    }

    /// Compiles `source` to a CUBIN for `arch` (`sm_XX`: real machine code, no driver JIT).
    pub fn compile(&self, source: &KernelSource, arch: &str) -> Result<Vec<u8>, CompileError> {
        let fail = |log: String| CompileError {
            name: source.name.into(),
            arch: arch.into(),
            log,
        };
        let text = CString::new(source.full_source()).map_err(|e| fail(e.to_string()))?;
        let name = CString::new(format!("{}.cu", source.name)).expect("no NUL in a file name");
        let prog = nvrtc_result::create_program(text.as_c_str(), Some(name.as_c_str()))
            .map_err(|e| fail(format!("{e:?}")))?;
        let program = Program(prog);
        let options = self.options(arch);
        // SAFETY: `prog` is a live program; options are plain strings.
        if let Err(e) = unsafe { nvrtc_result::compile_program(program.0, &options) } {
            // SAFETY: the program is live; the log is NUL-terminated.
            let log = unsafe { nvrtc_result::get_program_log(program.0) }
                .map(|raw| {
                    unsafe { CStr::from_ptr(raw.as_ptr()) }
                        .to_string_lossy()
                        .into_owned()
                })
                .unwrap_or_default();
            return Err(fail(format!("{e:?}\n{log}")));
        }
        let mut size = 0usize;
        // SAFETY: live program, out-pointer to a live usize.
        unsafe { nvrtc_sys::nvrtcGetCUBINSize(program.0, &mut size) }
            .result()
            .map_err(|e| fail(format!("nvrtcGetCUBINSize: {e:?}")))?;
        if size == 0 {
            return Err(fail(format!(
                "no CUBIN produced (is `{arch}` a real architecture like sm_90?)"
            )));
        }
        let mut cubin = vec![0u8; size];
        // SAFETY: the buffer holds `size` bytes as NVRTC asked.
        unsafe { nvrtc_sys::nvrtcGetCUBIN(program.0, cubin.as_mut_ptr().cast()) }
            .result()
            .map_err(|e| fail(format!("nvrtcGetCUBIN: {e:?}")))?;
        Ok(cubin)
    }
}

/// Destroys the NVRTC program when compilation is done, whatever happened.
struct Program(nvrtc_sys::nvrtcProgram);

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: the program was created by create_program and is destroyed once.
        let _ = unsafe { nvrtc_result::destroy_program(self.0) };
    }
}

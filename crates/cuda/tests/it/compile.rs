//! Every kernel source compiles with NVRTC for the GPU machines' architecture (H100 / H200).

use sqlrft_cuda::nvrtc::nvrtc;
use sqlrft_cuda::{KernelCache, SOURCES};

/// NVRTC, or `None` after printing why the test skips (a failure under CI).
fn nvrtc_or_skip(test: &str) -> Option<&'static sqlrft_cuda::nvrtc::Nvrtc> {
    match nvrtc() {
        Ok(n) => Some(n),
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("{test}: NVRTC is required in CI: {e}")
        }
        Err(e) => {
            eprintln!("skipped {test}: {e}");
            None
        }
    }
}

#[test]
fn every_kernel_source_compiles_for_sm_90() {
    let Some(nvrtc) = nvrtc_or_skip("every_kernel_source_compiles_for_sm_90") else {
        return;
    };
    assert_eq!(
        nvrtc.version.0, 13,
        "NVRTC {:?} is not CUDA 13",
        nvrtc.version
    );
    let mut failures = vec![];
    for s in SOURCES {
        match nvrtc.compile(s, "sm_90") {
            Ok(cubin) => assert!(
                cubin.starts_with(b"\x7fELF"),
                "{}: not an ELF CUBIN",
                s.name
            ),
            Err(e) => failures.push(e.to_string()),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_broken_source_reports_the_file_and_the_compiler_log() {
    let Some(nvrtc) = nvrtc_or_skip("a_broken_source_reports_the_file_and_the_compiler_log") else {
        return;
    };
    let broken = sqlrft_cuda::KernelSource {
        name: "broken",
        code: "extern \"C\" __global__ void k(float* x) { x[0] = undefined_name; }",
        entry_points: &["k"],
    };
    let err = nvrtc.compile(&broken, "sm_90").unwrap_err().to_string();
    assert!(err.contains("kernels/broken.cu"), "{err}");
    assert!(err.contains("undefined_name"), "{err}");
}

#[test]
fn kernel_cache_compiles_once_then_reads_from_disk() {
    if nvrtc_or_skip("kernel_cache_compiles_once_then_reads_from_disk").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = KernelCache::new(dir.path(), "sm_90").unwrap();
    let source = &SOURCES[0];
    let (first, origin) = cache.cubin(source).unwrap();
    assert_eq!(origin, sqlrft_cuda::cache::Origin::Compiled);
    let (second, origin) = cache.cubin(source).unwrap();
    assert_eq!(origin, sqlrft_cuda::cache::Origin::Cached);
    assert_eq!(first, second);
    // Another architecture is another key, so nothing stale is ever loaded on another GPU.
    let other = KernelCache::new(dir.path(), "sm_80").unwrap();
    assert_ne!(cache.key(source), other.key(source));
    assert_eq!(
        other.cubin(source).unwrap().1,
        sqlrft_cuda::cache::Origin::Compiled
    );
}

//! Kernels against their CPU references on a real GPU. Without one the test prints why it
//! skipped (CI has no GPU; `scripts/gpu-check.sh` runs these checks on a GPU machine).

use sqlrft_cuda::{Gpu, probe};

#[test]
fn every_kernel_matches_its_cpu_reference_on_the_gpu() {
    if let Err(why) = probe(0) {
        eprintln!("skipped every_kernel_matches_its_cpu_reference_on_the_gpu: {why}");
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let gpu = Gpu::new(0, cache.path()).unwrap();
    let checks = sqlrft_cuda::check::run_all(&gpu, 7).unwrap();
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| {
            format!(
                "{} [{}]: rel_err {:.3e} > {:.1e}",
                c.kernel, c.shape, c.rel_err, c.tolerance
            )
        })
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn probe_without_a_driver_explains_instead_of_panicking() {
    match probe(0) {
        Ok(info) => eprintln!("GPU present ({}): nothing to explain", info.name),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("--device cpu"), "{msg}");
        }
    }
}

#[test]
fn opening_a_gpu_that_is_not_there_fails_with_the_probe_message() {
    if probe(0).is_ok() {
        eprintln!(
            "skipped opening_a_gpu_that_is_not_there_fails_with_the_probe_message: a GPU is present"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let err = Gpu::new(0, dir.path())
        .err()
        .expect("no GPU, so no Gpu")
        .to_string();
    assert!(err.contains("--device cpu"), "{err}");
}

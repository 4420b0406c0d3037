//! Row-major bf16 GEMMs through cuBLASLt, fp32 accumulation.
//!
//! cuBLASLt is column-major; a row-major `C = op(A) · op(B)` is the column-major
//! `Cᵀ = op(B)ᵀ · op(A)ᵀ`, and a row-major buffer read column-major is already transposed, so
//! the call swaps A and B and keeps the transpose flags.

use crate::device::Gpu;
use anyhow::{Result, anyhow, ensure};
use cudarc::cublaslt::{Matmul, MatmulConfig};
use cudarc::driver::{DevicePtr, DevicePtrMut};
use half::bf16;

/// `C[m, n] = alpha · op(A) · op(B) + beta · C`, all row-major. `op(A)` is `[m, k]`: A is
/// stored `[m, k]`, or `[k, m]` when `trans_a`. `op(B)` is `[k, n]`: B is stored `[k, n]`, or
/// `[n, k]` when `trans_b` (a Hugging Face weight `[out, in]` used as `x · Wᵀ`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GemmShape {
    /// Rows of `op(A)` and of C.
    pub m: usize,
    /// Columns of `op(B)` and of C.
    pub n: usize,
    /// The summed dimension: columns of `op(A)`, rows of `op(B)`.
    pub k: usize,
    /// A is stored `[k, m]`.
    pub trans_a: bool,
    /// B is stored `[n, k]`.
    pub trans_b: bool,
    /// Scale of the product.
    pub alpha: f32,
    /// 0 overwrites C; 1 accumulates into it (LoRA's `y += s · (x Aᵀ) Bᵀ`).
    pub beta: f32,
}

impl GemmShape {
    /// `y[m, n] = x[m, k] · W[n, k]ᵀ`: a linear layer's forward.
    pub fn linear(m: usize, n: usize, k: usize) -> Self {
        Self {
            m,
            n,
            k,
            trans_a: false,
            trans_b: true,
            alpha: 1.0,
            beta: 0.0,
        }
    }

    /// `dx[m, k] = dy[m, n] · W[n, k]`: a linear layer's input gradient (as a GEMM of shape
    /// m × k × n).
    pub fn linear_dinput(m: usize, n: usize, k: usize) -> Self {
        Self {
            m,
            n: k,
            k: n,
            trans_a: false,
            trans_b: false,
            alpha: 1.0,
            beta: 0.0,
        }
    }

    /// `dW[n, k] = dy[m, n]ᵀ · x[m, k]`: a linear layer's weight gradient.
    pub fn linear_dweight(m: usize, n: usize, k: usize) -> Self {
        Self {
            m: n,
            n: k,
            k: m,
            trans_a: true,
            trans_b: false,
            alpha: 1.0,
            beta: 0.0,
        }
    }

    /// The same GEMM with `beta` (1 accumulates into C).
    pub fn with_beta(self, beta: f32) -> Self {
        Self { beta, ..self }
    }

    /// The same GEMM with its product scaled by `alpha`.
    pub fn with_alpha(self, alpha: f32) -> Self {
        Self { alpha, ..self }
    }
}

impl Gpu {
    /// Runs `c = alpha · op(a) · op(b) + beta · c` (see [`GemmShape`]).
    pub fn gemm<I: DevicePtr<bf16>, O: DevicePtrMut<bf16>>(
        &self,
        s: GemmShape,
        a: &I,
        b: &I,
        c: &mut O,
    ) -> Result<()> {
        ensure!(
            a.len() >= s.m * s.k,
            "GEMM: A has {} elements, needs {}",
            a.len(),
            s.m * s.k
        );
        ensure!(
            b.len() >= s.k * s.n,
            "GEMM: B has {} elements, needs {}",
            b.len(),
            s.k * s.n
        );
        ensure!(
            c.len() >= s.m * s.n,
            "GEMM: C has {} elements, needs {}",
            c.len(),
            s.m * s.n
        );
        let cfg = MatmulConfig {
            transa: s.trans_b,
            transb: s.trans_a,
            transc: false,
            m: s.n as u64,
            n: s.m as u64,
            k: s.k as u64,
            alpha: s.alpha,
            lda: (if s.trans_b { s.k } else { s.n }) as i64,
            ldb: (if s.trans_a { s.m } else { s.k }) as i64,
            beta: s.beta,
            ldc: s.n as i64,
            stride_a: None,
            stride_b: None,
            stride_c: None,
            stride_bias: None,
            batch_size: None,
        };
        // SAFETY: lengths checked above against the shape; cuBLASLt reads and writes within them.
        unsafe { self.blas.matmul(cfg, b, a, c, None, None) }
            .map_err(|e| anyhow!("cuBLASLt GEMM {s:?} failed: {e:?}"))
    }
}

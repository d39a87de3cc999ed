//! Safe row-major matrix multiplication on a container's GPU through cuBLAS, with the sizes
//! checked against the buffers before the call.
#![allow(unsafe_code)] // cuBLAS GEMM calls; each says why it is sound.

use cudarc::cublas::result::CublasError;
use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig};
use cudarc::driver::{CudaSlice, DeviceRepr, ValidAsZeroBits};

use super::{Gpu, GpuError};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
}

/// An element type cuBLAS multiplies: `f32`, `f64`, [`f16`](super::f16) and
/// [`bf16`](super::bf16) (the half types accumulate in `f32` on tensor cores).
pub trait GemmElement:
    DeviceRepr + ValidAsZeroBits + Copy + Send + Sync + 'static + sealed::Sealed
{
    /// The multiplicative identity.
    const ONE: Self;
    /// The additive identity.
    const ZERO: Self;

    /// cuBLAS's GEMM for this type.
    ///
    /// # Safety
    /// The buffers must hold the matrices `config` describes.
    #[doc(hidden)]
    unsafe fn gemm(
        blas: &CudaBlas,
        config: GemmConfig<Self>,
        a: &CudaSlice<Self>,
        b: &CudaSlice<Self>,
        c: &mut CudaSlice<Self>,
    ) -> Result<(), CublasError>;
}

macro_rules! gemm_element {
    ($t:ty, $one:expr, $zero:expr) => {
        impl GemmElement for $t {
            const ONE: Self = $one;
            const ZERO: Self = $zero;

            unsafe fn gemm(
                blas: &CudaBlas,
                config: GemmConfig<Self>,
                a: &CudaSlice<Self>,
                b: &CudaSlice<Self>,
                c: &mut CudaSlice<Self>,
            ) -> Result<(), CublasError> {
                // SAFETY: passed on to the caller.
                unsafe { <CudaBlas as Gemm<$t>>::gemm(blas, config, a, b, c) }
            }
        }
    };
}

gemm_element!(f32, 1.0, 0.0);
gemm_element!(f64, 1.0, 0.0);
gemm_element!(half::f16, half::f16::ONE, half::f16::ZERO);
gemm_element!(half::bf16, half::bf16::ONE, half::bf16::ZERO);

/// The cuBLAS (column-major) arguments for row-major `C[m×n] = A[m×k] · B[k×n]`: computing
/// `Cᵀ = Bᵀ · Aᵀ` in column-major order needs no transposition, only swapped operands.
fn column_major_config<T: GemmElement>(
    m: usize,
    n: usize,
    k: usize,
    lens: (usize, usize, usize),
) -> Result<GemmConfig<T>, GpuError> {
    if m == 0 || n == 0 || k == 0 {
        return Err(GpuError::Shape(format!(
            "matmul sizes must be positive, got m={m} n={n} k={k}"
        )));
    }
    let need = |what: &str, rows: usize, cols: usize, len: usize| {
        let want = rows.checked_mul(cols).ok_or_else(|| {
            GpuError::Shape(format!("matmul {what} of {rows}×{cols} is too large"))
        })?;
        if len < want {
            return Err(GpuError::Shape(format!(
                "matmul {what} must hold {rows}×{cols} = {want} elements, it holds {len}"
            )));
        }
        Ok(())
    };
    need("A", m, k, lens.0)?;
    need("B", k, n, lens.1)?;
    need("C", m, n, lens.2)?;
    let int = |v: usize| {
        i32::try_from(v)
            .map_err(|_| GpuError::Shape(format!("matmul size {v} does not fit cuBLAS's int")))
    };
    Ok(GemmConfig {
        transa: cublasOperation_t::CUBLAS_OP_N,
        transb: cublasOperation_t::CUBLAS_OP_N,
        m: int(n)?,
        n: int(m)?,
        k: int(k)?,
        alpha: T::ONE,
        lda: int(n)?,
        ldb: int(k)?,
        beta: T::ZERO,
        ldc: int(n)?,
    })
}

impl Gpu {
    /// `C = A · B` for row-major matrices `A` (m×k), `B` (k×n) and `C` (m×n) already on this
    /// device, on [`Gpu::stream`]. Returns once the work is queued; copying `C` back waits for it.
    ///
    /// # Errors
    /// [`GpuError::Shape`] when a buffer is smaller than its matrix, or [`GpuError::Blas`].
    pub fn matmul<T: GemmElement>(
        &self,
        (m, n, k): (usize, usize, usize),
        a: &CudaSlice<T>,
        b: &CudaSlice<T>,
        c: &mut CudaSlice<T>,
    ) -> Result<(), GpuError> {
        let config = column_major_config::<T>(m, n, k, (a.len(), b.len(), c.len()))?;
        let blas = self.blas()?;
        // cuBLAS works in the calling thread's current context; inputs run on many threads.
        self.context()
            .bind_to_thread()
            .map_err(GpuError::driver("making the context current"))?;
        // SAFETY: every buffer was checked above to hold its whole matrix, and the leading
        // dimensions equal the row lengths, so cuBLAS reads and writes only inside them.
        unsafe { T::gemm(&blas, config, b, a, c) }.map_err(|source| GpuError::Blas {
            action: "multiplying matrices",
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_major_maps_to_swapped_column_major() {
        let c = column_major_config::<f32>(2, 3, 4, (8, 12, 6)).unwrap();
        assert_eq!((c.m, c.n, c.k), (3, 2, 4));
        assert_eq!((c.lda, c.ldb, c.ldc), (3, 4, 3));
        assert_eq!((c.alpha, c.beta), (1.0, 0.0));
    }

    #[test]
    fn sizes_are_checked_against_buffers() {
        let e = column_major_config::<f32>(2, 3, 4, (7, 12, 6))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("matmul A must hold 2×4 = 8 elements, it holds 7"),
            "{e}"
        );
        let e = column_major_config::<f32>(2, 3, 4, (8, 12, 5))
            .unwrap_err()
            .to_string();
        assert!(e.contains("matmul C"), "{e}");
        assert!(column_major_config::<f32>(0, 3, 4, (8, 12, 6)).is_err());
        let huge = 1 << 31;
        let e = column_major_config::<f32>(1, huge, 1, (1, huge, huge))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not fit"), "{e}");
    }
}

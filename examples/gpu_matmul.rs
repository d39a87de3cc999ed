//! Matrix multiplication with cuBLAS on a GPU: SGEMM (f32) and HGEMM (f16, tensor cores) in a
//! GPU class whose context is opened once, in `enter`. Results are checked against the CPU on a
//! small size; then the achieved TFLOP/s at `--size` (default 4096). `--direct` also runs the same
//! calls in this process, for comparison.
//!
//! `cargo run --release --example gpu_matmul [-- --size 8192 --direct]`

use std::sync::Arc;
use std::time::Instant;

use modal::gpu::{GemmElement, Gpu, GpuError, f16};
use serde::{Deserialize, Serialize};

modal::app!(APP = App::new("gpu-matmul"));

/// What one multiplication measured.
#[derive(Debug, Serialize, Deserialize)]
struct Measured {
    /// Achieved throughput over the timed iterations.
    tflops: f64,
    /// Whether the result agreed with the CPU (checked only when asked).
    matches_cpu: Option<bool>,
}

/// An element type this example multiplies, with its conversions and its tolerance.
trait Element: GemmElement {
    fn from_f32(x: f32) -> Self;
    fn to_f32(self) -> f32;
    /// Largest error relative to `Σ|a·b|` that still counts as agreeing with the CPU.
    const TOLERANCE: f64;
}

impl Element for f32 {
    fn from_f32(x: f32) -> Self {
        x
    }
    fn to_f32(self) -> f32 {
        self
    }
    const TOLERANCE: f64 = 1e-4;
}

impl Element for f16 {
    fn from_f32(x: f32) -> Self {
        f16::from_f32(x)
    }
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    const TOLERANCE: f64 = 1e-2;
}

/// A deterministic matrix with entries in [-1, 1).
fn matrix(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005) | 1;
    (0..rows * cols)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// `C = A·B` for `n×n` matrices on `gpu`: timed after two warm-ups, and compared with the CPU
/// when `check` (keep `n` small then).
fn multiply<T: Element>(
    gpu: &Gpu,
    n: usize,
    iterations: u32,
    check: bool,
) -> modal::Result<Measured> {
    let host_a: Vec<T> = matrix(n, n, 1).into_iter().map(T::from_f32).collect();
    let host_b: Vec<T> = matrix(n, n, 2).into_iter().map(T::from_f32).collect();
    let stream = gpu.stream();
    let a = stream.clone_htod(&host_a).map_err(GpuError::from)?;
    let b = stream.clone_htod(&host_b).map_err(GpuError::from)?;
    let mut c = stream.alloc_zeros::<T>(n * n).map_err(GpuError::from)?;
    for _ in 0..2 {
        gpu.matmul((n, n, n), &a, &b, &mut c)?;
    }
    stream.synchronize().map_err(GpuError::from)?;
    // At least `iterations`, and doubled until the timed run lasts half a second, so that fast
    // (half-precision) products are not timed over a few milliseconds.
    let mut iterations = iterations.max(1);
    let tflops = loop {
        let started = Instant::now();
        for _ in 0..iterations {
            gpu.matmul((n, n, n), &a, &b, &mut c)?;
        }
        stream.synchronize().map_err(GpuError::from)?;
        let seconds = started.elapsed().as_secs_f64();
        if seconds >= 0.5 || iterations >= 1 << 16 {
            break 2.0 * (n as f64).powi(3) * f64::from(iterations) / seconds / 1e12;
        }
        iterations *= 2;
    };
    let matches_cpu = if check {
        let got = stream.clone_dtoh(&c).map_err(GpuError::from)?;
        Some(agrees_with_cpu(&host_a, &host_b, &got, n))
    } else {
        None
    };
    Ok(Measured {
        tflops,
        matches_cpu,
    })
}

fn agrees_with_cpu<T: Element>(a: &[T], b: &[T], got: &[T], n: usize) -> bool {
    let a: Vec<f64> = a.iter().map(|x| f64::from(x.to_f32())).collect();
    let b: Vec<f64> = b.iter().map(|x| f64::from(x.to_f32())).collect();
    (0..n).all(|i| {
        (0..n).all(|j| {
            let (mut want, mut scale) = (0.0f64, 0.0f64);
            for k in 0..n {
                want += a[i * n + k] * b[k * n + j];
                scale += (a[i * n + k] * b[k * n + j]).abs();
            }
            (f64::from(got[i * n + j].to_f32()) - want).abs() <= T::TOLERANCE * scale
        })
    })
}

#[modal::cls(app = APP, gpu = ["H100", "any"], timeout = 900)]
struct Matmul {
    gpu: Option<Arc<Gpu>>,
}

#[modal::methods]
impl Matmul {
    /// Opens the device once per container; every later call reuses the context.
    #[modal::enter]
    fn open(&mut self) -> modal::Result<()> {
        self.gpu = Some(modal::gpu::device()?);
        Ok(())
    }

    #[modal::method]
    fn device(&self) -> modal::Result<String> {
        Ok(self.gpu()?.name().to_owned())
    }

    #[modal::method]
    fn sgemm(&self, n: u64, iterations: u32, check: bool) -> modal::Result<Measured> {
        multiply::<f32>(self.gpu()?, n as usize, iterations, check)
    }

    #[modal::method]
    fn hgemm(&self, n: u64, iterations: u32, check: bool) -> modal::Result<Measured> {
        multiply::<f16>(self.gpu()?, n as usize, iterations, check)
    }
}

impl Matmul {
    fn gpu(&self) -> modal::Result<&Gpu> {
        self.gpu
            .as_deref()
            .ok_or_else(|| modal::Error::Invalid("the GPU was not opened".into()))
    }
}

#[modal::local_entrypoint(app = APP)]
async fn main(
    size: Option<u64>,
    iterations: Option<u32>,
    direct: Option<bool>,
) -> modal::Result<()> {
    let (size, iterations) = (size.unwrap_or(4096), iterations.unwrap_or(10));
    let m = Matmul::cls();
    let started = Instant::now();
    let device = m.device().remote().await?;
    let cold = started.elapsed();
    println!("device: {device}");
    println!("gpu cold start ms: {:.1}", cold.as_secs_f64() * 1e3);

    let check = 256;
    let s = m.sgemm().remote(check, 1, true).await?;
    let h = m.hgemm().remote(check, 1, true).await?;
    println!("sgemm matches the CPU: {}", s.matches_cpu == Some(true));
    println!("hgemm matches the CPU: {}", h.matches_cpu == Some(true));

    let s = m.sgemm().remote(size, iterations, false).await?;
    let h = m.hgemm().remote(size, iterations, false).await?;
    println!("size: {size}");
    println!("sgemm tflops in function: {:.1}", s.tflops);
    println!("hgemm tflops in function: {:.1}", h.tflops);

    if direct.unwrap_or(false) {
        // The same calls in this process: no container, no control plane in the way.
        let size = size as usize;
        let (s, h) = std::thread::spawn(move || -> modal::Result<(Measured, Measured)> {
            let gpu = modal::gpu::device()?;
            Ok((
                multiply::<f32>(&gpu, size, iterations, false)?,
                multiply::<f16>(&gpu, size, iterations, false)?,
            ))
        })
        .join()
        .map_err(|_| modal::Error::Other("the direct run panicked".into()))??;
        println!("sgemm tflops direct: {:.1}", s.tflops);
        println!("hgemm tflops direct: {:.1}", h.tflops);
    }
    Ok(())
}

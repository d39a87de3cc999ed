//! GPU work inside functions: the CUDA context for a container's devices (created once, reused
//! by every input), NVRTC kernels compiled once per container, and cuBLAS. The only code in the
//! runtime that touches `cudarc`, behind the `gpu` feature (on by default); without it only
//! [`GpuError`] remains, and a function that asks for a GPU is refused when its app starts.
//!
//! A function that asks for `gpu = "…"` runs in a container whose `CUDA_VISIBLE_DEVICES` holds
//! exactly the devices reserved for it; [`device`] opens the first of them.
//!
//! ```no_run
//! use modal::gpu::cudarc::driver::{LaunchConfig, PushKernelArg};
//!
//! const SAXPY: &str = r#"
//! extern "C" __global__ void saxpy(float a, const float *x, float *y, int n) {
//!     int i = blockIdx.x * blockDim.x + threadIdx.x;
//!     if (i < n) y[i] = a * x[i] + y[i];
//! }"#;
//!
//! fn saxpy(a: f32, x: Vec<f32>, mut y: Vec<f32>) -> modal::Result<Vec<f32>> {
//!     let gpu = modal::gpu::device()?;
//!     let kernel = gpu.kernel(SAXPY, "saxpy")?; // compiled on the first input only
//!     let stream = gpu.stream();
//!     let x_dev = stream.clone_htod(&x).map_err(modal::gpu::GpuError::from)?;
//!     let mut y_dev = stream.clone_htod(&y).map_err(modal::gpu::GpuError::from)?;
//!     let n = i32::try_from(x.len()).map_err(|e| modal::Error::Invalid(e.to_string()))?;
//!     let mut launch = stream.launch_builder(&kernel);
//!     launch.arg(&a).arg(&x_dev).arg(&mut y_dev).arg(&n);
//!     // SAFETY: the kernel's signature matches the arguments, and both buffers hold `n` floats.
//!     unsafe { launch.launch(LaunchConfig::for_num_elems(x.len() as u32)) }
//!         .map_err(modal::gpu::GpuError::from)?;
//!     stream.memcpy_dtoh(&y_dev, &mut y).map_err(modal::gpu::GpuError::from)?;
//!     Ok(y)
//! }
//! ```

#[cfg(feature = "gpu")]
mod device;
mod error;
#[cfg(feature = "gpu")]
mod matmul;

pub(crate) mod inventory;

#[cfg(feature = "gpu")]
pub use cudarc;
#[cfg(feature = "gpu")]
pub use device::{Gpu, device, devices, driver_present};
#[cfg(feature = "gpu")]
pub(crate) use device::{container_has_gpus, warm_up};
pub use error::GpuError;
#[cfg(feature = "gpu")]
pub(crate) use error::init_error;
#[cfg(feature = "gpu")]
pub use half::{self, bf16, f16};
#[cfg(feature = "gpu")]
pub use matmul::GemmElement;

/// Set by the worker in a container whose devices were declared, not discovered.
pub(crate) const DECLARED_ENV: &str = "MODAL_GPUS_DECLARED";
/// Set by the worker to the names of a container's devices, for error messages.
pub(crate) const NAMES_ENV: &str = "MODAL_GPU_NAMES";

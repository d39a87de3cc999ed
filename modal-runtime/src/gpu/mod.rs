//! GPU work inside functions: the CUDA context for a container's devices (created once, reused
//! by every input), NVRTC kernels compiled once per container, and cuBLAS. The only code in the
//! runtime that touches `cudarc`.
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
#![allow(unsafe_code)]

mod matmul;

pub(crate) mod inventory;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream, DriverError};
use cudarc::nvrtc::CompileOptions;

pub use cudarc;
pub use half::{self, bf16, f16};
pub use matmul::GemmElement;

/// Set by the worker in a container whose devices were declared, not discovered.
pub(crate) const DECLARED_ENV: &str = "MODAL_GPUS_DECLARED";
/// Set by the worker to the names of a container's devices, for error messages.
pub(crate) const NAMES_ENV: &str = "MODAL_GPU_NAMES";

/// Why GPU work could not be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GpuError {
    /// The CUDA driver library (`libcuda.so`) is not on this machine.
    #[error("no CUDA driver on this machine: libcuda.so could not be loaded{0}")]
    NoDriver(String),
    /// This container was given no GPU.
    #[error(
        "this container has no GPU: give the function `gpu = \"…\"` (e.g. `gpu = \"H100\"`) to have one reserved for it"
    )]
    NotAssigned,
    /// The driver loaded but shows no device.
    #[error("the CUDA driver shows no device{0}")]
    NoDevice(String),
    /// A CUDA library besides the driver could not be loaded.
    #[error(
        "the {0} library could not be loaded: install the CUDA toolkit's runtime libraries on the worker (and keep any `stubs/` folder off the library path)"
    )]
    MissingLibrary(&'static str),
    /// A driver call failed.
    #[error("CUDA driver call failed while {action}: {source}")]
    Driver {
        /// What was being done.
        action: &'static str,
        /// The driver's error.
        source: DriverError,
    },
    /// NVRTC rejected a kernel's source.
    #[error("NVRTC could not compile the kernel: {0}")]
    Compile(String),
    /// A cuBLAS call failed.
    #[error("cuBLAS call failed while {action}: {source}")]
    Blas {
        /// What was being done.
        action: &'static str,
        /// cuBLAS's error.
        source: cudarc::cublas::result::CublasError,
    },
    /// Matrix sizes and buffers do not agree.
    #[error("{0}")]
    Shape(String),
    /// `MODAL_WORKER_GPUS` is malformed.
    #[error("{0}")]
    Declaration(String),
}

impl GpuError {
    /// Turns a driver error into one that says what was being done.
    pub(crate) fn driver(action: &'static str) -> impl Fn(DriverError) -> GpuError {
        move |source| GpuError::Driver { action, source }
    }
}

impl From<DriverError> for GpuError {
    fn from(source: DriverError) -> Self {
        GpuError::Driver {
            action: "running GPU work",
            source,
        }
    }
}

/// The error for a failed `cuInit`, naming the usual cause when the driver is a stub.
pub(crate) fn init_error(source: DriverError) -> GpuError {
    let action = if source.0 == cudarc::driver::sys::CUresult::CUDA_ERROR_STUB_LIBRARY {
        "initialising the driver (the libcuda.so found is the CUDA toolkit's stub: keep its `stubs/` folder off LD_LIBRARY_PATH)"
    } else {
        "initialising the driver"
    };
    GpuError::Driver { action, source }
}

/// Whether the CUDA driver library can be loaded here. Checked before any driver call, because
/// cudarc panics when the library is missing.
pub fn driver_present() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: loading the driver library runs its initialisers, which is what every CUDA
    // program does; nothing else is touched.
    *PRESENT.get_or_init(|| unsafe { cudarc::driver::sys::is_culib_present() })
}

/// One device of this container, with its context, stream, kernel cache and cuBLAS handle.
pub struct Gpu {
    name: String,
    memory_mb: u64,
    context: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    arch: String,
    modules: Mutex<HashMap<blake3::Hash, Arc<CudaModule>>>,
    blas: Mutex<Option<Arc<CudaBlas>>>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("ordinal", &self.context.ordinal())
            .field("name", &self.name)
            .field("memory_mb", &self.memory_mb)
            .finish_non_exhaustive()
    }
}

/// The first of this container's GPUs. The context is created on the first call and reused by
/// every later input of the container.
///
/// # Errors
/// [`GpuError`] when there is no driver, no device, or the context cannot be created.
pub fn device() -> Result<Arc<Gpu>, GpuError> {
    open(Some(1))?
        .into_iter()
        .next()
        .ok_or_else(|| GpuError::NoDevice(assigned_hint()))
}

/// All of this container's GPUs (`gpu = "H100:4"` gives four), in `CUDA_VISIBLE_DEVICES` order.
///
/// # Errors
/// As [`device`].
pub fn devices() -> Result<Vec<Arc<Gpu>>, GpuError> {
    open(None)
}

/// Opens the first `wanted` visible devices (all when `None`), each once per process.
fn open(wanted: Option<usize>) -> Result<Vec<Arc<Gpu>>, GpuError> {
    static OPENED: Mutex<Vec<Arc<Gpu>>> = Mutex::new(Vec::new());
    let mut opened = OPENED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(n) = wanted.filter(|n| *n <= opened.len()) {
        return Ok(opened[..n].to_vec());
    }
    let count = visible_count()?;
    let wanted = wanted.map_or(count, |n| n.min(count));
    while opened.len() < wanted {
        let gpu = Gpu::open(opened.len())?;
        opened.push(Arc::new(gpu));
    }
    Ok(opened[..wanted].to_vec())
}

/// Starts creating this container's contexts in the background, so that the first input finds
/// them ready (or waits less). Errors surface on the first [`device`] call.
pub(crate) fn warm_up() {
    let spawned = std::thread::Builder::new()
        .name("modal-gpu-warm".into())
        .spawn(|| {
            if let Err(e) = devices() {
                tracing::debug!(error = %e, "GPU warm-up failed; the function will see the error");
            }
        });
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "cannot start the GPU warm-up thread");
    }
}

/// Whether the worker reserved GPUs for this container.
pub(crate) fn container_has_gpus() -> bool {
    crate::task_env::is_container()
        && std::env::var("CUDA_VISIBLE_DEVICES").is_ok_and(|v| !v.trim().is_empty())
}

fn assigned_hint() -> String {
    let names = std::env::var(NAMES_ENV).unwrap_or_default();
    let visible = std::env::var("CUDA_VISIBLE_DEVICES").unwrap_or_default();
    let mut hint = String::new();
    if !names.is_empty() {
        hint = format!(" (this container was given {names} as CUDA_VISIBLE_DEVICES={visible})");
    }
    if std::env::var_os(DECLARED_ENV).is_some() {
        hint.push_str(
            "; these devices were declared to the worker in MODAL_WORKER_GPUS, not discovered, so no real GPU is behind them",
        );
    }
    hint
}

/// How many devices this process may use, with the reason when none.
fn visible_count() -> Result<usize, GpuError> {
    if crate::task_env::is_container()
        && std::env::var("CUDA_VISIBLE_DEVICES").is_ok_and(|v| v.trim().is_empty())
    {
        return Err(GpuError::NotAssigned);
    }
    if !driver_present() {
        return Err(GpuError::NoDriver(assigned_hint()));
    }
    let count = match CudaContext::device_count() {
        Ok(n) => usize::try_from(n).unwrap_or(0),
        Err(e) if e.0 == cudarc::driver::sys::CUresult::CUDA_ERROR_NO_DEVICE => 0,
        Err(source) => return Err(init_error(source)),
    };
    if count == 0 {
        return Err(GpuError::NoDevice(assigned_hint()));
    }
    Ok(count)
}

impl Gpu {
    fn open(ordinal: usize) -> Result<Gpu, GpuError> {
        let started = std::time::Instant::now();
        let context =
            CudaContext::new(ordinal).map_err(GpuError::driver("creating the context"))?;
        let name = context
            .name()
            .map_err(GpuError::driver("reading the device name"))?;
        let memory_mb = context
            .total_mem()
            .map_err(GpuError::driver("reading device memory"))? as u64
            / (1024 * 1024);
        let (major, minor) = context
            .compute_capability()
            .map_err(GpuError::driver("reading the compute capability"))?;
        let stream = context.default_stream();
        tracing::info!(ordinal, %name, elapsed_ms = started.elapsed().as_millis() as u64, "GPU context created");
        Ok(Gpu {
            name,
            memory_mb,
            context,
            stream,
            arch: format!("--gpu-architecture=compute_{major}{minor}"),
            modules: Mutex::new(HashMap::new()),
            blas: Mutex::new(None),
        })
    }

    /// The driver's name for the device, e.g. `NVIDIA H100 80GB HBM3`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Total device memory in MiB.
    pub fn memory_mb(&self) -> u64 {
        self.memory_mb
    }

    /// The CUDA context (cudarc's), for anything this module does not wrap.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.context
    }

    /// The stream this module's calls run on; copies and launches on it are ordered.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Compiles CUDA C++ `source` with NVRTC for this device and loads it. The result is cached
    /// per container by source text, so only the first input pays for compilation.
    ///
    /// # Errors
    /// [`GpuError::Compile`] with NVRTC's log, or [`GpuError::MissingLibrary`].
    pub fn module(&self, source: &str) -> Result<Arc<CudaModule>, GpuError> {
        let key = blake3::hash(source.as_bytes());
        let mut modules = self.modules.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(m) = modules.get(&key) {
            return Ok(Arc::clone(m));
        }
        // SAFETY: as for the driver: loading the library is the only effect.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            return Err(GpuError::MissingLibrary("NVRTC (libnvrtc.so)"));
        }
        let started = std::time::Instant::now();
        let options = CompileOptions {
            options: vec![self.arch.clone()],
            ..CompileOptions::default()
        };
        let ptx = cudarc::nvrtc::compile_ptx_with_opts(source, options).map_err(compile_error)?;
        let module = self
            .context
            .load_module(ptx)
            .map_err(GpuError::driver("loading a compiled module"))?;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "kernel compiled"
        );
        modules.insert(key, Arc::clone(&module));
        Ok(module)
    }

    /// The kernel `name` (declared `extern "C"`) from `source`, compiled on first use.
    ///
    /// # Errors
    /// As [`Gpu::module`], or [`GpuError::Driver`] when `source` has no such kernel.
    pub fn kernel(&self, source: &str, name: &str) -> Result<CudaFunction, GpuError> {
        self.module(source)?
            .load_function(name)
            .map_err(|source| GpuError::Driver {
                action: "finding the kernel by name (is it declared `extern \"C\"`?)",
                source,
            })
    }

    /// This device's cuBLAS handle, created on first use and bound to [`Gpu::stream`].
    ///
    /// # Errors
    /// [`GpuError::MissingLibrary`] or [`GpuError::Blas`].
    pub fn blas(&self) -> Result<Arc<CudaBlas>, GpuError> {
        let mut blas = self.blas.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(b) = blas.as_ref() {
            return Ok(Arc::clone(b));
        }
        // SAFETY: as for the driver: loading the library is the only effect.
        if !unsafe { cudarc::cublas::sys::is_culib_present() } {
            return Err(GpuError::MissingLibrary("cuBLAS (libcublas.so)"));
        }
        let handle =
            Arc::new(
                CudaBlas::new(Arc::clone(&self.stream)).map_err(|source| GpuError::Blas {
                    action: "creating the handle",
                    source,
                })?,
            );
        *blas = Some(Arc::clone(&handle));
        Ok(handle)
    }
}

fn compile_error(e: cudarc::nvrtc::CompileError) -> GpuError {
    match e {
        cudarc::nvrtc::CompileError::CompileError { log, .. } => {
            GpuError::Compile(log.to_string_lossy().trim().to_owned())
        }
        other => GpuError::Compile(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_what_to_do() {
        assert!(GpuError::NotAssigned.to_string().contains("gpu = \""));
        assert!(
            GpuError::MissingLibrary("cuBLAS (libcublas.so)")
                .to_string()
                .contains("libcublas.so")
        );
    }
}

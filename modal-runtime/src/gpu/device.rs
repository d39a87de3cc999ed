//! A container's devices: contexts created once per process (warmed up while the container
//! connects), NVRTC kernels cached by source, and the cuBLAS handle.
#![allow(unsafe_code)] // cudarc's driver, NVRTC and cuBLAS calls; each says why it is sound.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream};
use cudarc::nvrtc::CompileOptions;

use super::{DECLARED_ENV, GpuError, NAMES_ENV, init_error};

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

/// Whether the worker reserved GPUs for this container.
pub(crate) fn container_has_gpus() -> bool {
    crate::task_env::is_container()
        && std::env::var("CUDA_VISIBLE_DEVICES").is_ok_and(|v| !v.trim().is_empty())
}

//! `GpuError`: why GPU work could not be done, each saying what to do.

#[cfg(feature = "gpu")]
use cudarc::driver::DriverError;

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
    #[cfg(feature = "gpu")]
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
    #[cfg(feature = "gpu")]
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

#[cfg(feature = "gpu")]
impl GpuError {
    /// Turns a driver error into one that says what was being done.
    pub(crate) fn driver(action: &'static str) -> impl Fn(DriverError) -> GpuError {
        move |source| GpuError::Driver { action, source }
    }
}

#[cfg(feature = "gpu")]
impl From<DriverError> for GpuError {
    fn from(source: DriverError) -> Self {
        GpuError::Driver {
            action: "running GPU work",
            source,
        }
    }
}

#[cfg(feature = "gpu")]
/// The error for a failed `cuInit`, naming the usual cause when the driver is a stub.
pub(crate) fn init_error(source: DriverError) -> GpuError {
    let action = if source.0 == cudarc::driver::sys::CUresult::CUDA_ERROR_STUB_LIBRARY {
        "initialising the driver (the libcuda.so found is the CUDA toolkit's stub: keep its `stubs/` folder off LD_LIBRARY_PATH)"
    } else {
        "initialising the driver"
    };
    GpuError::Driver { action, source }
}

#[cfg(test)]
mod tests {
    use super::GpuError;

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

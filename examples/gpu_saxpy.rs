//! SAXPY (`y = a·x + y`) on a GPU: a CUDA kernel compiled with NVRTC inside the container
//! (once per container, cached for later inputs), launched through cudarc, checked against the
//! CPU.
//!
//! `cargo run --example gpu_saxpy [-- --n 1048576]`. On a machine without an NVIDIA GPU it
//! stops at once with `no worker offers gpu "H100"; available: none`.

use modal::gpu::GpuError;
use modal::gpu::cudarc::driver::{LaunchConfig, PushKernelArg};

modal::app!(APP = App::new("gpu-saxpy"));

const SAXPY: &str = r#"
extern "C" __global__ void saxpy(float a, const float *x, float *y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        y[i] = a * x[i] + y[i];
    }
}
"#;

/// `a·x + y`, element by element, on this container's GPU.
#[modal::function(app = APP, gpu = "H100")]
fn saxpy(a: f32, x: Vec<f32>, mut y: Vec<f32>) -> modal::Result<Vec<f32>> {
    if x.len() != y.len() {
        return Err(modal::Error::Invalid(format!(
            "x has {} elements but y has {}",
            x.len(),
            y.len()
        )));
    }
    let n = u32::try_from(x.len())
        .map_err(|_| modal::Error::Invalid(format!("{} elements are too many", x.len())))?;
    let gpu = modal::gpu::device()?;
    let kernel = gpu.kernel(SAXPY, "saxpy")?;
    let stream = gpu.stream();
    let x_dev = stream.clone_htod(&x).map_err(GpuError::from)?;
    let mut y_dev = stream.clone_htod(&y).map_err(GpuError::from)?;
    let len = n as i32;
    let mut launch = stream.launch_builder(&kernel);
    launch.arg(&a).arg(&x_dev).arg(&mut y_dev).arg(&len);
    // SAFETY: the kernel takes (float, const float*, float*, int) and both buffers hold `n`
    // floats, which bounds every index the launch reaches.
    #[allow(unsafe_code)]
    unsafe { launch.launch(LaunchConfig::for_num_elems(n)) }.map_err(GpuError::from)?;
    stream.memcpy_dtoh(&y_dev, &mut y).map_err(GpuError::from)?;
    println!("saxpy of {n} elements on {}", gpu.name());
    Ok(y)
}

#[modal::local_entrypoint(app = APP)]
async fn main(n: Option<u64>) -> modal::Result<()> {
    let n = n.unwrap_or(1 << 20) as usize;
    let a = 2.5f32;
    let x: Vec<f32> = (0..n).map(|i| (i % 1000) as f32 * 0.001).collect();
    let y: Vec<f32> = (0..n).map(|i| 1.0 - (i % 777) as f32 * 0.002).collect();
    let got = saxpy.remote(a, x.clone(), y.clone()).await?;
    let max_error = x
        .iter()
        .zip(&y)
        .zip(&got)
        .map(|((x, y), g)| (a.mul_add(*x, *y) - g).abs())
        .fold(0.0f32, f32::max);
    println!("elements: {}", got.len());
    println!("max error: {max_error:e}");
    println!("matches the CPU: {}", got.len() == n && max_error <= 1e-5);
    Ok(())
}

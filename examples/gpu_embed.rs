//! A GPU class that loads its weights onto the device once, in `enter`: every call then only
//! copies its input over and multiplies on the device with cuBLAS.
//!
//! `cargo run --example gpu_embed`

use std::sync::Arc;

use modal::gpu::cudarc::driver::CudaSlice;
use modal::gpu::{Gpu, GpuError};

modal::app!(APP = App::new("gpu-embed"));

/// Input and output width of the projection.
const DIM: usize = 512;

/// The weights: a fixed `DIM×DIM` matrix, as a model's would be read from a file.
fn weights() -> Vec<f32> {
    (0..DIM * DIM)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 500.0)
        .collect()
}

#[modal::cls(app = APP, gpu = "any", scaledown_window = 60)]
struct Projector {
    gpu: Option<Arc<Gpu>>,
    weights: Option<CudaSlice<f32>>,
}

#[modal::methods]
impl Projector {
    #[modal::enter]
    fn load(&mut self) -> modal::Result<()> {
        let gpu = modal::gpu::device()?;
        self.weights = Some(
            gpu.stream()
                .clone_htod(&weights())
                .map_err(GpuError::from)?,
        );
        println!("weights loaded onto {}", gpu.name());
        self.gpu = Some(gpu);
        Ok(())
    }

    /// `W·x` for a `DIM`-long `x`.
    #[modal::method]
    fn project(&self, x: Vec<f32>) -> modal::Result<Vec<f32>> {
        let (Some(gpu), Some(w)) = (&self.gpu, &self.weights) else {
            return Err(modal::Error::Invalid("the weights were not loaded".into()));
        };
        if x.len() != DIM {
            return Err(modal::Error::Invalid(format!(
                "x must have {DIM} elements, it has {}",
                x.len()
            )));
        }
        let stream = gpu.stream();
        let x_dev = stream.clone_htod(&x).map_err(GpuError::from)?;
        let mut y_dev = stream.alloc_zeros::<f32>(DIM).map_err(GpuError::from)?;
        gpu.matmul((DIM, 1, DIM), w, &x_dev, &mut y_dev)?;
        Ok(stream.clone_dtoh(&y_dev).map_err(GpuError::from)?)
    }
}

#[modal::local_entrypoint(app = APP)]
async fn main() -> modal::Result<()> {
    let projector = Projector::cls();
    let w = weights();
    let mut worst = 0.0f32;
    for round in 0..4 {
        let x: Vec<f32> = (0..DIM).map(|i| ((i + round) % 7) as f32 - 3.0).collect();
        let got = projector.project().remote(x.clone()).await?;
        for (row, g) in got.iter().enumerate() {
            let want: f32 = (0..DIM).map(|k| w[row * DIM + k] * x[k]).sum();
            worst = worst.max((want - g).abs());
        }
    }
    println!("max error: {worst:e}");
    println!("matches the CPU: {}", worst <= 1e-3);
    Ok(())
}

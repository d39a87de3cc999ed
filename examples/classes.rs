//! A parameterised class: weights are loaded once per container in `enter`, many calls reuse
//! them, `exit` runs at scale-down. Each parameter set is its own pool of containers.
//!
//! `cargo run --example classes`

use modal::prelude::*;

modal::app!(APP = App::new("classes"));

#[modal::cls(app = APP, scaledown_window = 60)]
struct Model {
    /// Which weights to load.
    #[modal::parameter(default = "small")]
    size: String,
    /// Not a parameter: starts empty, filled in by `load`.
    weights: Vec<f32>,
    served: u64,
}

#[modal::methods]
impl Model {
    #[modal::enter]
    fn load(&mut self) {
        let n = if self.size == "large" { 8 } else { 2 };
        self.weights = (1..=n).map(|i| i as f32).collect();
        println!("loaded {} weights for {}", self.weights.len(), self.size);
    }

    #[modal::method]
    fn predict(&mut self, x: Vec<f32>) -> f32 {
        self.served += 1;
        x.iter()
            .zip(self.weights.iter().cycle())
            .map(|(a, w)| a * w)
            .sum()
    }

    #[modal::method]
    async fn served(&self) -> u64 {
        self.served
    }

    #[modal::exit]
    fn close(&mut self) {
        println!("{} container served {} calls", self.size, self.served);
    }
}

#[modal::local_entrypoint(app = APP)]
async fn main() -> modal::Result<()> {
    let small = Model::cls();
    let large = Model::cls().size("large");
    for i in 0..5 {
        let x = vec![1.0, i as f32];
        let (s, l) = (
            small.predict().remote(x.clone()).await?,
            large.predict().remote(x.clone()).await?,
        );
        println!("predict({x:?}): small {s}, large {l}");
    }
    println!("small served {} calls", small.served().remote().await?);
    let ys: Vec<f32> = large
        .predict()
        .map((0..4).map(|i| vec![i as f32; 4]))
        .try_collect()
        .await?;
    println!("large over a map: {ys:?}");
    Ok(())
}

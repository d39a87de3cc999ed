//! A class with a parameter, lifecycle hooks, sync and async methods, a generator method and a
//! concurrent class; a batched class; generators and batching on functions.

modal::app!(APP = App::new("ui-classes"));

#[modal::cls(app = APP, scaledown_window = 300, gpu = "any")]
#[modal::concurrent(max_inputs = 4, target_inputs = 2)]
struct Model {
    #[modal::parameter(default = "small")]
    size: String,
    #[modal::parameter]
    seed: u64,
    weights: Vec<f32>,
}

#[modal::methods]
impl Model {
    #[modal::enter]
    fn load(&mut self) {
        self.weights = vec![1.0; self.size.len() + self.seed as usize];
    }

    #[modal::method]
    fn predict(&self, x: Vec<f32>) -> Vec<f32> {
        x.iter().zip(&self.weights).map(|(a, b)| a * b).collect()
    }

    #[modal::method]
    async fn describe(&self) -> String {
        self.size.clone()
    }

    #[modal::method]
    fn tokens(&self, n: u32) -> impl Iterator<Item = u32> + '_ {
        (0..n).map(|i| i + self.seed as u32)
    }

    #[modal::exit]
    async fn close(&mut self) -> Result<(), String> {
        Ok(())
    }

    fn helper(&self) -> usize {
        self.weights.len()
    }
}

#[modal::cls(app = APP)]
struct Embedder {}

#[modal::methods]
impl Embedder {
    #[modal::batched(max_batch_size = 16, wait_ms = 50)]
    fn embed(&self, texts: Vec<String>) -> Vec<usize> {
        texts.iter().map(String::len).collect()
    }
}

#[modal::function(app = APP)]
#[modal::batched(max_batch_size = 4, wait_ms = 10)]
async fn double(xs: Vec<i64>) -> Result<Vec<i64>, String> {
    Ok(xs.into_iter().map(|x| 2 * x).collect())
}

#[modal::function(app = APP)]
fn ticks(n: u32) -> impl futures::Stream<Item = u32> {
    futures::stream::iter(0..n)
}

#[allow(dead_code)]
async fn calls() -> modal::Result<()> {
    use modal::prelude::*;
    let model = Model::cls().size("large").seed(7u64).with_concurrency(8, None);
    let y: Vec<f32> = model.predict().remote(vec![1.0, 2.0]).await?;
    let _: String = model.describe().remote().await?;
    let _tokens: Vec<u32> = model.tokens().remote_gen(3).try_collect().await?;
    let _: usize = Embedder::cls().embed().remote("hi".to_string()).await?;
    let _: i64 = double.remote(21).await?;
    let _ticks: Vec<u32> = ticks.remote_gen(2).try_collect().await?;
    let remote_model = modal::Cls::from_name("deployed", "Model");
    let _: Vec<f32> = remote_model.method::<(Vec<f32>,), Vec<f32>>("predict").remote(y).await?;
    Ok(())
}

fn main() {}

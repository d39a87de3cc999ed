//! Every kind of literal parameter `#[modal::function]` accepts.

modal::app!(APP = App::new("ui-pass").tags([("team", "ml"), ("env", "test-1.0")]));

#[modal::function(
    app = APP,
    gpu = ["H100", "A100-80GB:2", "l4"],
    cpu = (0.5, 2.0),
    memory = (256, 1024),
    retries(max_retries = 3, backoff_coefficient = 2.0, initial_delay = 0.5, max_delay = 30.0),
    timeout = 600,
    startup_timeout = 120,
    scaledown_window = 120,
    min_containers = 1,
    max_containers = 4,
    buffer_containers = 2,
    name = "everything",
    env = [("K", "V")],
    secrets = [modal::Secret::from_dict([("A", "b")])],
    single_use_containers = true,
    max_inputs = 1,
    include_source = true,
    cloud = "aws",
    ephemeral_disk = 10240,
)]
fn everything(x: i64, label: String) -> (i64, String) {
    (x, label)
}

#[modal::function(app = APP, gpu = "T4", cpu = 1.5, memory = 512, retries = 0, nonpreemptible)]
fn single_values(xs: Vec<u8>) -> usize {
    xs.len()
}

/// Arguments keep their `mut` bindings.
#[modal::function(app = APP, gpu = "any:2")]
fn sorted(mut xs: Vec<i64>) -> Vec<i64> {
    xs.sort_unstable();
    xs
}

// trybuild runs pass programs: this one only has to compile, so `main` starts no app.
#[allow(dead_code)]
async fn calls() -> modal::Result<()> {
    let (x, label) = everything.remote(1, "a".into()).await?;
    let n = single_values.remote(vec![1, 2, 3]).await?;
    let _ = sorted.remote(vec![3, 1, 2]).await?;
    println!("{x} {label} {n}");
    Ok(())
}

fn main() {}

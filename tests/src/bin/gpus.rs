//! The GPU app the end-to-end tests run against a declared (fake) or discovered inventory: one
//! entrypoint per scenario, each printing `key: value` lines that the tests check.

use modal_tests::GpuSlot as Slot;

modal::app!(APP = App::new("gpus"));

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

fn hold_for(ms: u64) -> Slot {
    let started_ms = chrono::Utc::now().timestamp_millis();
    std::thread::sleep(std::time::Duration::from_millis(ms));
    Slot {
        cuda_visible_devices: env("CUDA_VISIBLE_DEVICES"),
        nvidia_visible_devices: env("NVIDIA_VISIBLE_DEVICES"),
        declared: std::env::var_os("MODAL_GPUS_DECLARED").is_some(),
        task_id: env("MODAL_TASK_ID"),
        started_ms,
        ended_ms: chrono::Utc::now().timestamp_millis(),
    }
}

#[modal::function(app = APP, gpu = "H100")]
fn hold(ms: u64) -> Slot {
    hold_for(ms)
}

#[modal::function(app = APP, gpu = "any")]
fn hold_other(ms: u64) -> Slot {
    hold_for(ms)
}

#[modal::function(app = APP, gpu = "H100:4")]
fn four() -> u32 {
    4
}

/// Opens this container's GPU: its name on a real device, the error otherwise.
#[modal::function(app = APP, gpu = "any")]
fn open_device() -> modal::Result<String> {
    let gpu = modal::gpu::device()?;
    Ok(format!("{} ({} MiB)", gpu.name(), gpu.memory_mb()))
}

#[modal::function(app = APP)]
fn cpu_only() -> modal::Result<String> {
    let gpu = modal::gpu::device()?;
    Ok(gpu.name().to_owned())
}

/// Prints `key: ok VALUE` or `key: ERROR`.
fn outcome(key: &str, result: modal::Result<impl std::fmt::Display>) {
    match result {
        Ok(v) => println!("{key}: ok {v}"),
        Err(e) => println!("{key}: {e}"),
    }
}

fn show(slot: &Slot) {
    println!(
        "slot: {}",
        serde_json::to_string(slot).unwrap_or_else(|e| e.to_string())
    );
}

/// Three calls of a one-GPU function at once, against two devices.
#[modal::local_entrypoint(app = APP)]
async fn contend(ms: u64) -> modal::Result<()> {
    let calls = [
        hold.spawn(ms).await?,
        hold.spawn(ms).await?,
        hold.spawn(ms).await?,
    ];
    for call in calls {
        show(&call.get(None).await?);
    }
    Ok(())
}

/// One GPU function after another on a single device: the idle container of the first must give
/// its device up for the second well before its scale-down window ends.
#[modal::local_entrypoint(app = APP)]
async fn switch() -> modal::Result<()> {
    show(&hold.remote(100).await?);
    show(&hold_other.remote(100).await?);
    Ok(())
}

/// Requests that cannot be met, each printed with its error.
#[modal::local_entrypoint(app = APP)]
async fn impossible() -> modal::Result<()> {
    outcome("four", four.remote().await);
    outcome("hold", hold.remote(1).await.map(|s| s.cuda_visible_devices));
    Ok(())
}

/// Opens the device inside a GPU container and, from a container without a GPU, shows the error.
#[modal::local_entrypoint(app = APP)]
async fn device() -> modal::Result<()> {
    outcome("device", open_device.remote().await);
    outcome("cpu_only", cpu_only.remote().await);
    Ok(())
}

fn main() -> std::process::ExitCode {
    modal::main()
}

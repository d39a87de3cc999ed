//! The app of the volume tests (`tests/volumes.rs`): functions that write files under a volume
//! (committing or not) and read them back in containers of their own. Each entrypoint prints
//! `key: value` lines.

use std::sync::LazyLock;

modal::app!(APP = modal::App::new("volumes-test"));

static DATA: LazyLock<modal::Volume> =
    LazyLock::new(|| modal::Volume::from_name("data").create_if_missing(true));
static SCRATCH: LazyLock<modal::Volume> = LazyLock::new(|| modal::Volume::ephemeral("scratch"));

fn io(e: std::io::Error) -> modal::Error {
    modal::Error::Other(e.to_string())
}

/// Writes `text` to `/data/<name>` (in a directory `sub/` too), committing when asked.
#[modal::function(app = APP, volumes = [("/data", &DATA), ("/scratch", &SCRATCH)])]
fn put(name: String, text: String, commit: bool) -> modal::Result<String> {
    std::fs::create_dir_all("/data/sub").map_err(io)?;
    std::fs::write(format!("/data/{name}"), &text).map_err(io)?;
    std::fs::write(format!("/data/sub/{name}"), &text).map_err(io)?;
    std::fs::write("/scratch/note", &text).map_err(io)?;
    if commit {
        DATA.commit()?;
        SCRATCH.commit()?;
    }
    Ok("ok".into())
}

/// Reads `/data/<name>` (after a reload when asked): `None` when it is not there.
#[modal::function(app = APP, volumes = [("/data", &DATA)])]
fn get(name: String, reload: bool) -> modal::Result<Option<String>> {
    if reload {
        DATA.reload()?;
    }
    Ok(std::fs::read_to_string(format!("/data/{name}")).ok())
}

/// Removes `/data/<dir>` and commits (after bringing the mount up to date).
#[modal::function(app = APP, volumes = [("/data", &DATA)])]
fn drop_dir(dir: String) -> modal::Result<bool> {
    DATA.reload()?;
    std::fs::remove_dir_all(format!("/data/{dir}")).map_err(io)?;
    DATA.commit()?;
    Ok(true)
}

/// Whether `commit` outside a container says what to do.
fn outside() -> String {
    match DATA.commit() {
        Ok(()) => "committed?!".into(),
        Err(e) => e.to_string(),
    }
}

#[modal::local_entrypoint(app = APP)]
async fn main(tag: String) -> modal::Result<()> {
    println!("outside: {}", outside());
    let committed = format!("{tag}-committed.txt");
    let uncommitted = format!("{tag}-uncommitted.txt");
    let at_exit = format!("{tag}-at-exit.txt");
    put.remote(committed.clone(), "one".into(), true).await?;
    let read = get.remote(committed.clone(), true).await?;
    println!("reads committed: {}", read.unwrap_or_else(|| "none".into()));
    put.remote(uncommitted.clone(), "two".into(), false).await?;
    let read = get.remote(uncommitted.clone(), true).await?;
    println!(
        "reads uncommitted: {}",
        read.unwrap_or_else(|| "none".into())
    );
    // Written, not committed: the container's clean exit at the end of the run commits it.
    put.remote(at_exit, "three".into(), false).await?;
    // A directory another container removes is gone for the reader after a reload, and its
    // clean exit does not bring it back.
    drop_dir.remote("sub".into()).await?;
    let read = get.remote(format!("sub/{committed}"), true).await?;
    println!("reads removed: {}", read.unwrap_or_else(|| "none".into()));
    println!("done: true");
    Ok(())
}

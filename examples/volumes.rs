//! Volumes: one function writes a file and commits it; another, in a container of its own,
//! reloads the volume and reads the file back. `cargo run --example volumes -- --text hi`.
//!
//! Volumes need the `oci` container runtime (crun). On the embedded control plane a volume
//! lasts as long as the program; with a `modal server` (MODAL_SERVER_URL) it is kept in the
//! server's data directory, and `modal volume ls notes` shows its files.

use std::sync::LazyLock;

use modal::prelude::*;

modal::app!(APP = App::new("volumes-example"));

static NOTES: LazyLock<Volume> =
    LazyLock::new(|| Volume::from_name("notes").create_if_missing(true));

/// Writes `text` to `/notes/<name>` and commits it: other containers see it from now on.
#[modal::function(app = APP, volumes = [("/notes", &NOTES)])]
fn write_note(name: String, text: String) -> modal::Result<u64> {
    std::fs::write(format!("/notes/{name}"), &text)?;
    NOTES.commit()?;
    Ok(text.len() as u64)
}

/// Reads `/notes/<name>` after bringing the volume up to date.
#[modal::function(app = APP, volumes = [("/notes", &NOTES)])]
fn read_note(name: String) -> modal::Result<String> {
    NOTES.reload()?;
    Ok(std::fs::read_to_string(format!("/notes/{name}"))?)
}

#[modal::local_entrypoint(app = APP)]
async fn main(text: Option<String>) -> modal::Result<()> {
    let text = text.unwrap_or_else(|| "hello from a volume".into());
    let written = write_note.remote("greeting.txt".to_string(), text).await?;
    println!("wrote {written} bytes");
    println!(
        "read back: {}",
        read_note.remote("greeting.txt".to_string()).await?
    );
    Ok(())
}

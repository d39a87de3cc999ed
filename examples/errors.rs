//! Errors, panics and retries: what a caller sees when a remote function fails.
//!
//! `cargo run --example errors`

modal::app!(APP = App::new("errors"));

/// A typed error the caller can get back with `Error::user_error`.
#[derive(Debug, thiserror::Error, serde::Serialize, serde::Deserialize)]
enum LookupError {
    #[error("no user with id {0}")]
    NotFound(u32),
}

#[modal::function(app = APP)]
fn find_user(id: u32) -> Result<String, LookupError> {
    if id == 1 {
        Ok("ada".into())
    } else {
        Err(LookupError::NotFound(id))
    }
}

#[modal::function(app = APP)]
fn divide(a: i64, b: i64) -> i64 {
    a / b
}

/// Fails on its first two attempts in a container; the control plane retries it.
#[modal::function(app = APP, retries = 2)]
fn flaky(marker: String) -> anyhow::Result<String> {
    let path = std::env::temp_dir().join(format!("modal-flaky-{marker}"));
    let n: u32 = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
        + 1;
    std::fs::write(&path, n.to_string())?;
    if n < 3 {
        anyhow::bail!("attempt {n} failed");
    }
    Ok(format!("succeeded on attempt {n}"))
}

#[modal::local_entrypoint(app = APP)]
async fn main() -> modal::Result<()> {
    println!("find_user(1) = {}", find_user.remote(1).await?);

    let err = find_user.remote(7).await.unwrap_err();
    println!("find_user(7) failed: {err}");
    if let Some(LookupError::NotFound(id)) = err.user_error::<LookupError>() {
        println!("  typed error: NotFound({id})");
    }

    let err = divide.remote(1, 0).await.unwrap_err();
    let panic = err.remote().expect("a remote failure");
    println!("divide(1, 0) panicked: {}", panic.message);
    println!("  at {}", panic.location.as_deref().unwrap_or("?"));

    let marker = format!("{}", std::process::id());
    println!("flaky: {}", flaky.remote(marker.clone()).await?);
    let _ = std::fs::remove_file(std::env::temp_dir().join(format!("modal-flaky-{marker}")));
    Ok(())
}

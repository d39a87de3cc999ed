//! The app of the payload tests (`tests/payloads.rs`): arguments and results of sizes around
//! the inline limit (where payloads move to the payload store) through `remote`, `spawn`,
//! `map`, generators and class methods, compared byte for byte. Each entrypoint prints
//! `key: value` lines.

use std::path::PathBuf;
use std::time::Duration;

use modal::prelude::*;

modal::app!(APP = App::new("payloads-test"));

/// The inline limit the runtime uses (`MODAL_PAYLOAD_INLINE_MAX`, 1 MiB by default).
fn limit() -> usize {
    std::env::var("MODAL_PAYLOAD_INLINE_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 20)
}

/// Bytes that differ from position to position (a dropped or shifted byte shows).
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut bytes = vec![0u8; len];
    rng.fill(&mut bytes);
    bytes
}

#[modal::function(app = APP)]
fn echo(data: modal::ByteBuf) -> modal::ByteBuf {
    data
}

#[modal::function(app = APP)]
fn echo_vec(data: Vec<u8>) -> Vec<u8> {
    data
}

/// Read without a copy on both sides.
#[modal::function(app = APP)]
fn echo_bytes(data: modal::Bytes) -> modal::Bytes {
    data
}

/// Inputs a container kept past their calls, with their checksums then.
static KEPT: std::sync::Mutex<Vec<(modal::Bytes, u64)>> = std::sync::Mutex::new(Vec::new());

fn checksum(data: &[u8]) -> u64 {
    data.iter().enumerate().fold(0u64, |sum, (i, b)| {
        sum.wrapping_mul(31).wrapping_add(u64::from(*b) ^ i as u64)
    })
}

/// Keeps its input (mapped from its payload file) past the call; true while every input it
/// kept still has the bytes it came with (a payload file that a container may map is never
/// written over).
#[modal::function(app = APP, max_containers = 1)]
fn keep(data: modal::Bytes) -> bool {
    let mut kept = KEPT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let sum = checksum(&data);
    kept.push((data, sum));
    kept.iter().all(|(d, sum)| checksum(d) == *sum)
}

/// `echo` for a result larger than the default `/tmp` (1 GiB): on the oci runtime no file of a
/// container, its result's among them, may be larger than its `/tmp`.
#[modal::function(app = APP, ephemeral_disk = 3072)]
fn echo_huge(data: modal::ByteBuf) -> modal::ByteBuf {
    data
}

/// `n` items of `len` bytes each, item `i` made from seed `i`.
#[modal::function(app = APP)]
fn items(n: u64, len: usize) -> impl Iterator<Item = modal::ByteBuf> {
    (0..n).map(move |i| modal::ByteBuf::from(content(len, i)))
}

/// Writes junk into the container's payload outbox, then dies without a word.
#[modal::function(app = APP)]
fn crash_with_outbox_files(len: usize) -> u64 {
    if let Some(outbox) = std::env::var_os("MODAL_PAYLOAD_OUTBOX") {
        let dir = PathBuf::from(outbox);
        let _ = std::fs::write(dir.join("0123456789abcdef0123456789abcdef"), vec![1u8; len]);
    }
    std::process::abort()
}

#[modal::cls(app = APP)]
struct Mirror {
    #[modal::parameter(default = 0)]
    salt: u64,
}

#[modal::methods]
impl Mirror {
    /// The bytes back, each plus `salt`.
    #[modal::method]
    fn reflect(&self, data: modal::ByteBuf) -> modal::ByteBuf {
        let salt = self.salt as u8;
        modal::ByteBuf::from(
            data.iter()
                .map(|b| b.wrapping_add(salt))
                .collect::<Vec<u8>>(),
        )
    }
}

/// What a byte string of `len` bytes (64 KiB or more) encodes to, alone or as the one
/// argument: bincode's length prefix is 5 bytes.
fn encoded(len: usize) -> usize {
    len + 5
}

/// The sizes every path is tried with: around the limit (the encoded payload one byte under,
/// at and over it; the bytes themselves under, at and over it), and `extra`.
fn sizes(extra: &[usize]) -> Vec<usize> {
    let t = limit();
    let mut sizes = vec![0, 1, t - 6, t - 5, t - 4, t - 1, t, t + 1];
    sizes.extend_from_slice(extra);
    sizes
}

fn check(path: &str, len: usize, got: &[u8], want: &[u8]) -> modal::Result<()> {
    if got != want {
        return Err(modal::Error::Other(format!(
            "{path}: {len} bytes did not come back byte for byte (got {} bytes)",
            got.len()
        )));
    }
    println!("ok: {path} {len}");
    Ok(())
}

/// This program's payload store, if it has one.
fn store_dir() -> Option<PathBuf> {
    let me = format!("modal-payloads-{}-", std::process::id());
    std::fs::read_dir("/dev/shm")
        .ok()?
        .flatten()
        .find(|d| d.file_name().to_string_lossy().starts_with(&me))
        .map(|d| d.path())
}

/// The files in this program's payload store (`None`: it has none).
fn stored_files() -> Option<usize> {
    Some(
        std::fs::read_dir(store_dir()?.join("objects"))
            .ok()?
            .count(),
    )
}

/// Every path, every size; then what the payload store still holds.
#[modal::local_entrypoint(app = APP)]
async fn round_trips(huge: bool) -> modal::Result<()> {
    let mut extra = vec![64 << 20];
    if huge {
        extra.push(1 << 30);
    }
    let mut spawned_large = 0;
    for (seed, len) in sizes(&extra).into_iter().enumerate() {
        let want = content(len, seed as u64);
        if len > 64 << 20 {
            // The largest size checks `remote` alone (each path holds a few copies).
            let got = echo_huge.remote(modal::ByteBuf::from(want.clone())).await?;
            check("remote", len, &got, &want)?;
            continue;
        }
        let got = echo.remote(modal::ByteBuf::from(want.clone())).await?;
        check("remote", len, &got, &want)?;
        let got = echo_vec.remote(want.clone()).await?;
        check("remote vec", len, &got, &want)?;
        let got = echo_bytes.remote(modal::Bytes::from(want.clone())).await?;
        check("remote bytes", len, &got, &want)?;
        // A result read by every `get`, kept while the call's result is read again.
        let call = echo_bytes.spawn(modal::Bytes::from(want.clone())).await?;
        let first = call.get(None).await?;
        check("spawn get bytes", len, &call.get(None).await?, &want)?;
        check("spawn get bytes kept", len, &first, &want)?;
        if encoded(len) > limit() {
            spawned_large += 1;
        }
        let call = echo.spawn(modal::ByteBuf::from(want.clone())).await?;
        // A spawned call's result is read by every `get`.
        check("spawn get", len, &call.get(None).await?, &want)?;
        check("spawn get again", len, &call.get(None).await?, &want)?;
        if encoded(len) > limit() {
            spawned_large += 1;
        }
        let inputs: Vec<modal::ByteBuf> = (0..3)
            .map(|i| modal::ByteBuf::from(content(len, 1000 + i)))
            .collect();
        let outs: Vec<modal::ByteBuf> = echo.map(inputs.clone()).try_collect().await?;
        for (got, want) in outs.iter().zip(&inputs) {
            check("map", len, got, want)?;
        }
        let mut n = 0;
        let mut stream = items.remote_gen(3, len);
        while let Some(item) = stream.next().await {
            check("generator", len, &item?, &content(len, n))?;
            n += 1;
        }
        let got = Mirror::cls()
            .salt(1)
            .reflect()
            .remote(modal::ByteBuf::from(want.clone()))
            .await?;
        let shifted: Vec<u8> = want.iter().map(|b| b.wrapping_add(1)).collect();
        check("class method", len, &got, &shifted)?;
    }
    // Inputs a container keeps stay as they came while other payloads come and go.
    let mut intact = true;
    for seed in 0..6 {
        let data = content(16 << 20, 5000 + seed);
        intact &= keep.remote(modal::Bytes::from(data.clone())).await?;
        check(
            "after keep",
            16 << 20,
            &echo_bytes.remote(modal::Bytes::from(data.clone())).await?,
            &data,
        )?;
    }
    println!("kept inputs intact: {intact}");
    // Inputs are removed once done (just after their result): what is left are the results of
    // spawned calls, which are kept for every `get` until the program ends.
    let mut left = stored_files();
    for _ in 0..50 {
        if left.is_none_or(|n| n <= spawned_large) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = stored_files();
    }
    println!("spawned large results: {spawned_large}");
    println!("stored files left: {}", left.map_or(-1, |n| n as i64));
    Ok(())
}

/// A container that dies with files in its outbox: the call fails, and nothing of it stays.
#[modal::local_entrypoint(app = APP)]
async fn crash() -> modal::Result<()> {
    let err = crash_with_outbox_files.remote(4 << 20).await;
    println!("crash failed: {}", err.is_err());
    let outboxes = || -> Option<usize> {
        Some(
            std::fs::read_dir(store_dir()?.join("outbox"))
                .ok()?
                .flatten()
                .filter(|d| std::fs::read_dir(d.path()).is_ok_and(|mut e| e.next().is_some()))
                .count(),
        )
    };
    let mut left = outboxes();
    for _ in 0..50 {
        if left == Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = outboxes();
    }
    println!("outboxes with files: {}", left.map_or(-1, |n| n as i64));
    println!("stored files: {}", stored_files().map_or(-1, |n| n as i64));
    Ok(())
}

/// Spawns a large call, says where its store is, and waits to be killed.
#[modal::local_entrypoint(app = APP)]
async fn hold() -> modal::Result<()> {
    let call = echo
        .spawn(modal::ByteBuf::from(content(4 << 20, 7)))
        .await?;
    call.get(None).await?;
    println!("pid: {}", std::process::id());
    println!("stored files: {}", stored_files().map_or(-1, |n| n as i64));
    tokio::time::sleep(Duration::from_secs(600)).await;
    Ok(())
}

/// Spawns a call with a large argument and result, waits for it, and says its id.
#[modal::local_entrypoint(app = APP)]
async fn spawn_large() -> modal::Result<()> {
    let want = content(8 << 20, 11);
    let call = echo.spawn(modal::ByteBuf::from(want.clone())).await?;
    check("spawn get", want.len(), &call.get(None).await?, &want)?;
    println!("call id: {}", call.object_id());
    Ok(())
}

/// Reads the result of call `id` (made by `spawn_large`) again.
#[modal::local_entrypoint(app = APP)]
async fn get_large(id: String) -> modal::Result<()> {
    let call = modal::FunctionCall::<modal::ByteBuf>::from_id(&id).await?;
    let want = content(8 << 20, 11);
    check("get again", want.len(), &call.get(None).await?, &want)?;
    Ok(())
}

/// Does nothing but start: a new program removes the stores that dead ones left.
#[modal::local_entrypoint(app = APP)]
async fn start() -> modal::Result<()> {
    echo.remote(modal::ByteBuf::from(vec![1u8])).await?;
    println!("started: true");
    Ok(())
}

fn main() -> std::process::ExitCode {
    modal::main()
}

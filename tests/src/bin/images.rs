//! The app of the image tests (`tests/images.rs`): a function in an image with a Debian package,
//! environment, working directory and a local file (its path in `IMAGES_TEST_FILE`), and an app
//! whose image has a failing step. Each entrypoint prints `key: value` lines.

use std::sync::LazyLock;

use modal::Image;

modal::app!(APP = modal::App::new("images-test"));
modal::app!(BROKEN = modal::App::new("images-broken"));

static IMAGE: LazyLock<Image> = LazyLock::new(|| {
    let file = std::env::var("IMAGES_TEST_FILE").unwrap_or_else(|_| "/nonexistent".into());
    Image::debian_slim()
        .apt_install(["jq"])
        .env([("GREETING", "hello from the image")])
        .workdir("/work")
        .add_local_file(file, "/work/config.toml")
});

static FAILING: LazyLock<Image> = LazyLock::new(|| {
    Image::debian_slim().run_commands(["echo about to fail && echo on stderr >&2 && exit 3"])
});

/// The working directory.
fn cwd() -> String {
    std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default()
}

/// What the container sees of its image.
#[modal::function(app = APP, image = IMAGE.clone())]
fn look() -> Vec<(String, String)> {
    let jq = std::process::Command::new("jq")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|e| format!("no jq: {e}"));
    let os = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME=").map(str::to_owned))
        .unwrap_or_default();
    vec![
        ("jq".into(), jq),
        ("codename".into(), os),
        (
            "config".into(),
            std::fs::read_to_string("/work/config.toml").unwrap_or_else(|e| e.to_string()),
        ),
        (
            "greeting".into(),
            std::env::var("GREETING").unwrap_or_default(),
        ),
        ("cwd".into(), cwd()),
        (
            "writes cwd".into(),
            std::fs::write("out.txt", b"x").is_ok().to_string(),
        ),
        (
            "writes /etc".into(),
            std::fs::write("/etc/probe", b"x").is_ok().to_string(),
        ),
    ]
}

#[modal::function(app = BROKEN, image = FAILING.clone())]
fn never() -> u8 {
    0
}

#[modal::local_entrypoint(app = APP)]
async fn main() -> modal::Result<()> {
    for (k, v) in look.remote().await? {
        println!("{k}: {}", v.trim());
    }
    Ok(())
}

#[modal::local_entrypoint(app = BROKEN)]
async fn broken() -> modal::Result<()> {
    println!("ran: {}", never.remote().await?);
    Ok(())
}

modal::app!(ARCHIVED = modal::App::new("images-archived"));

static ARCHIVE: LazyLock<Image> = LazyLock::new(|| {
    Image::from_oci_archive(
        std::env::var("IMAGES_TEST_ARCHIVE").unwrap_or_else(|_| "/nonexistent".into()),
    )
});

/// What the container sees of an image made elsewhere (a `docker save` archive).
#[modal::function(app = ARCHIVED, image = ARCHIVE.clone())]
fn look_archived() -> Vec<(String, String)> {
    vec![
        (
            "marker".into(),
            std::fs::read_to_string("/etc/marker").unwrap_or_else(|e| e.to_string()),
        ),
        (
            "whited out".into(),
            (!std::path::Path::new("/etc/gone.txt").exists()).to_string(),
        ),
        (
            "greeting".into(),
            std::env::var("GREETING").unwrap_or_default(),
        ),
        ("cwd".into(), cwd()),
    ]
}

#[modal::local_entrypoint(app = ARCHIVED)]
async fn archived() -> modal::Result<()> {
    for (k, v) in look_archived.remote().await? {
        println!("{k}: {}", v.trim());
    }
    Ok(())
}

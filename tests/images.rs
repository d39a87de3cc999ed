//! End-to-end tests of images, against a real `modal server` whose built-in worker runs the oci
//! runtime: a Debian base built with mmdebstrap and a package installed with apt, reused by the
//! next run, a changed local file rebuilding its layer only, a failing step stopping the app
//! before anything starts, and `modal image list|rm`. One server (one base build) for all of
//! it. Where mmdebstrap or the oci runtime is missing, the test prints why and passes, except
//! under `CI=true`, where that fails the run.

mod support;

use std::process::Output;

use modal_tests::{assert_field, show};
use support::{MODAL, Server};

const IMAGES: &str = env!("CARGO_BIN_EXE_images");

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn can_build() -> bool {
    let mmdebstrap = std::path::Path::new("/usr/bin/mmdebstrap").exists();
    let root = nix::unistd::geteuid().is_root();
    if mmdebstrap && root && modal_tests::oci_usable() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI needs mmdebstrap, root and the oci runtime (.ci/run sets them up)"
    );
    eprintln!(
        "skipped: building images needs mmdebstrap ({mmdebstrap}), root ({root}) and crun here"
    );
    false
}

fn run(s: &Server, file: &std::path::Path, args: &[&str]) -> Output {
    s.command(IMAGES, args)
        .env("IMAGES_TEST_FILE", file)
        .output()
        .expect("runs")
}

#[test]
fn images_are_built_once_reused_rebuilt_from_the_changed_step_and_removed() {
    if !can_build() {
        return;
    }
    let s = Server::start(MODAL, "images", None, true);
    // Not `config.toml`: that is the client's own config file in the server's directory.
    let config = s.dir.join("app-settings.toml");
    std::fs::write(&config, "a = 1\n").expect("writes");

    // A cold build: the base, the package, the rest; the function runs in the image.
    let out = run(&s, &config, &[]);
    assert!(out.status.success(), "{}", show(&out));
    let text = stderr(&out);
    assert!(text.contains("Building image im-"), "{}", show(&out));
    assert!(
        text.contains("=> Step 1/5: FROM debian:bookworm-slim"),
        "{text}"
    );
    assert!(text.contains("✓ Created image im-"), "{text}");
    assert_field(&out, "jq", "jq-1.6");
    assert_field(&out, "codename", "bookworm");
    assert_field(&out, "config", "a = 1");
    assert_field(&out, "greeting", "hello from the image");
    assert_field(&out, "cwd", "/work");
    assert_field(&out, "writes cwd", "true");
    assert_field(&out, "writes /etc", "false");

    // The next run builds nothing.
    let out = run(&s, &config, &[]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(!stderr(&out).contains("Building image"), "{}", show(&out));
    assert_field(&out, "config", "a = 1");

    // A changed local file rebuilds its layer, and nothing below it.
    std::fs::write(&config, "a = 2\n").expect("writes");
    let out = run(&s, &config, &[]);
    assert!(out.status.success(), "{}", show(&out));
    let text = stderr(&out);
    let steps: Vec<&str> = text.lines().filter(|l| l.starts_with("=> Step")).collect();
    assert_eq!(
        steps,
        ["=> Step 5/5: COPY <file> /work/config.toml"],
        "{text}"
    );
    assert_field(&out, "config", "a = 2");

    // A failing step stops the app with the step's command and output; nothing starts.
    let out = run(&s, &config, &["run", "broken"]);
    assert!(!out.status.success(), "{}", show(&out));
    let text = stderr(&out);
    assert!(
        text.contains("image step `RUN echo about to fail && echo on stderr >&2 && exit 3` failed")
            && text.contains("about to fail")
            && text.contains("on stderr"),
        "{}",
        show(&out)
    );
    assert!(!text.contains("Initialized"), "{}", show(&out));
    let apps = s.modal(&["app", "list", "--json"]);
    assert!(
        !String::from_utf8_lossy(&apps.stdout).contains("images-broken"),
        "{}",
        show(&apps)
    );

    // Two images of the app were built; removing the first frees its own last layer only.
    let list = s.modal(&["image", "list", "--json"]);
    assert!(list.status.success(), "{}", show(&list));
    let rows: serde_json::Value = serde_json::from_slice(&list.stdout).expect("json");
    let ids: Vec<String> = rows
        .as_array()
        .map(|r| {
            r.iter()
                .filter(|i| i["last_step"] == "COPY <file> /work/config.toml")
                .filter_map(|i| i["image_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(ids.len(), 2, "{}", show(&list));
    let rm = s.modal(&["image", "rm", &ids[0]]);
    assert!(rm.status.success(), "{}", show(&rm));
    assert!(
        String::from_utf8_lossy(&rm.stdout).contains("Removed 1 image(s) and 1 unused layer(s)"),
        "{}",
        show(&rm)
    );
    let rm = s.modal(&["image", "rm", "im-nothing"]);
    assert!(!rm.status.success(), "{}", show(&rm));
    assert!(stderr(&rm).contains("no image im-nothing"), "{}", show(&rm));
}

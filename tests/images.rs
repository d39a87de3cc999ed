//! End-to-end tests of images, against a real `modal server` whose built-in worker runs the oci
//! runtime: a Debian base built with mmdebstrap and a package installed with apt, reused by the
//! next run, a changed local file rebuilding its layer only, a failing step stopping the app
//! before anything starts, and `modal image list|rm` (one server, one base build, for all of
//! it); and an image from a `docker save` archive. Where mmdebstrap or the oci runtime is missing, the test prints why and passes, except
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
    modal_tests::skip_without(&format!(
        "building images needs mmdebstrap ({mmdebstrap}), root ({root}) and crun here (.ci/crun.sh sets them up)"
    ));
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

/// A `docker save`-format archive of a two-layer image: the first has the shared libraries the
/// test program needs (as `ldd` lists them), `/etc/marker` and `/etc/gone.txt`; the second
/// removes `/etc/gone.txt` (a whiteout); its config sets `GREETING` and the working directory.
fn docker_archive(dir: &std::path::Path) -> std::path::PathBuf {
    let ldd = std::process::Command::new("ldd")
        .arg(IMAGES)
        .output()
        .expect("ldd runs");
    let libs: Vec<String> = String::from_utf8_lossy(&ldd.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.trim().split(' ').next()?,
                None => l.split(' ').next()?,
            };
            path.starts_with('/').then(|| path.to_owned())
        })
        .collect();
    assert!(!libs.is_empty(), "ldd listed nothing: {}", show(&ldd));
    let layer = |name: &str, fill: &dyn Fn(&mut tar::Builder<std::fs::File>)| {
        let path = dir.join(name);
        let mut b = tar::Builder::new(std::fs::File::create(&path).expect("creates"));
        b.follow_symlinks(true);
        fill(&mut b);
        b.finish().expect("writes the layer");
        path
    };
    let header = |kind: tar::EntryType, size: u64, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        h
    };
    let file = |b: &mut tar::Builder<std::fs::File>, at: &str, data: &[u8]| {
        let mut h = header(tar::EntryType::Regular, data.len() as u64, 0o644);
        b.append_data(&mut h, at, data).expect("appends");
    };
    layer("layer1.tar", &|b| {
        for lib in &libs {
            b.append_path_with_name(lib, lib.trim_start_matches('/'))
                .expect("appends a library");
        }
        file(b, "etc/marker", b"from the archive\n");
        file(b, "etc/gone.txt", b"soon gone\n");
    });
    layer("layer2.tar", &|b| {
        file(b, "etc/.wh.gone.txt", b"");
        let mut h = header(tar::EntryType::Directory, 0, 0o755);
        b.append_data(&mut h, "srv/", std::io::empty())
            .expect("appends");
    });
    std::fs::write(
        dir.join("config.json"),
        r#"{"config": {"Env": ["PATH=/usr/bin:/bin", "GREETING=from the archive's config"], "WorkingDir": "/srv"}}"#,
    )
    .expect("writes");
    std::fs::write(
        dir.join("manifest.json"),
        r#"[{"Config": "config.json", "RepoTags": ["test:1"], "Layers": ["layer1.tar", "layer2.tar"]}]"#,
    )
    .expect("writes");
    let archive = dir.join("image.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&archive).expect("creates"));
    for name in ["manifest.json", "config.json", "layer1.tar", "layer2.tar"] {
        b.append_path_with_name(dir.join(name), name)
            .expect("appends");
    }
    b.finish().expect("writes the archive");
    archive
}

#[test]
fn an_image_from_a_docker_save_archive_runs_a_function() {
    if !can_build() {
        return;
    }
    let s = Server::start(MODAL, "images-archive", None, true);
    let dir = s.dir.join("archive");
    std::fs::create_dir_all(&dir).expect("makes");
    let archive = docker_archive(&dir);
    let out = s
        .command(IMAGES, &["run", "archived"])
        .env("IMAGES_TEST_ARCHIVE", &archive)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", show(&out));
    assert_field(&out, "marker", "from the archive");
    assert_field(&out, "whited out", "true");
    assert_field(&out, "greeting", "from the archive's config");
    assert_field(&out, "cwd", "/srv");
    let text = stderr(&out);
    assert!(text.contains("=> Step 1/4: ADD <layer "), "{text}");
    // A missing archive stops the start, naming it.
    let out = s
        .command(IMAGES, &["run", "archived"])
        .env("IMAGES_TEST_ARCHIVE", dir.join("missing.tar"))
        .output()
        .expect("runs");
    assert!(!out.status.success(), "{}", show(&out));
    assert!(stderr(&out).contains("missing.tar"), "{}", show(&out));
}

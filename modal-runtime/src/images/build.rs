//! Building an image: each layer that the store lacks is made, bottom up. The Debian base comes
//! from Debian's packages with `mmdebstrap` (variant minbase, using the host's apt sources);
//! `apt_install` and `run_commands` run as root in the image being built, in mount, PID, IPC
//! and UTS namespaces of their own (`unshare` and `chroot`, like `docker build`) over the layers
//! below, and what they change is the new layer (overlayfs' upper directory); files come from
//! the control plane's file store. Everything the steps print goes to `out`, line by line.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::layers::{Planned, image_id, plan};
use super::overlay::Overlay;
use super::store::{LayerMeta, Store};
use crate::model::image::{ImageRef, ImageSpec, Step};

/// Why a build stopped: the step and what it printed last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuildFailure {
    /// The step, as a user reads it (`RUN make`).
    pub(crate) step: String,
    pub(crate) message: String,
    /// The step's last lines of output.
    pub(crate) output: Vec<String>,
}

impl std::fmt::Display for BuildFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "image step `{}` failed: {}", self.step, self.message)?;
        if !self.output.is_empty() {
            write!(
                f,
                "\n  its last output:\n    {}",
                self.output.join("\n    ")
            )?;
        }
        Ok(())
    }
}

/// How many of a failed step's last lines its failure keeps.
const TAIL: usize = 20;

/// The step as a user reads it (Dockerfile-like).
pub(crate) fn describe(step: &Step) -> String {
    match step {
        Step::DebianSlim { suite } => format!("FROM debian:{suite}-slim"),
        Step::FromRegistry(r) => format!("FROM {r}"),
        Step::AptInstall(p) => format!("RUN apt-get install -y {}", p.join(" ")),
        Step::Run(c) => format!("RUN {c}"),
        Step::Env(vars) => {
            let kv: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("ENV {}", kv.join(" "))
        }
        Step::Workdir(d) => format!("WORKDIR {d}"),
        Step::OciLayer { hash } => format!("ADD <layer {}>", &hash[..hash.len().min(12)]),
        Step::AddFile { remote, .. } => format!("COPY <file> {remote}"),
        Step::AddDir { remote, files } => format!("COPY <{} files> {remote}", files.len()),
    }
}

/// Where the files that `AddFile` and `AddDir` name are, by digest.
pub(crate) trait Files {
    fn path(&self, hash: &str) -> Option<PathBuf>;
}

fn fail(step: &Step, message: impl Into<String>, output: Vec<String>) -> BuildFailure {
    BuildFailure {
        step: describe(step),
        message: message.into(),
        output,
    }
}

/// Builds what the store lacks of `spec` and returns the image. `out` gets every line the
/// steps print (and one line per step); blocking: run it off the async threads.
pub(crate) fn build(
    store: &Store,
    spec: &ImageSpec,
    files: &dyn Files,
    force: bool,
    out: &mut dyn FnMut(String),
) -> Result<ImageRef, BuildFailure> {
    let planned = plan(spec);
    let Some(first) = planned.first() else {
        return Err(BuildFailure {
            step: String::new(),
            message: "an image needs a base (`Image::debian_slim()`)".into(),
            output: Vec::new(),
        });
    };
    if !matches!(
        first.step,
        Step::DebianSlim { .. } | Step::FromRegistry(_) | Step::OciLayer { .. }
    ) {
        return Err(fail(
            &first.step,
            "an image starts with its base (`Image::debian_slim()` or `Image::from_oci_archive`)",
            Vec::new(),
        ));
    }
    let id = image_id(&planned);
    let mut env: Vec<(String, String)> = Vec::new();
    let mut workdir = String::new();
    let mut below: Vec<String> = Vec::new();
    let mut built_any = false;
    for (i, layer) in planned.iter().enumerate() {
        match &layer.step {
            Step::Env(vars) => {
                for (k, v) in vars {
                    env.retain(|(old, _)| old != k);
                    env.push((k.clone(), v.clone()));
                }
            }
            Step::Workdir(d) => workdir.clone_from(d),
            _ => {}
        }
        let _guard = store
            .lock(&layer.digest)
            .map_err(|e| fail(&layer.step, e, Vec::new()))?;
        if store.has(&layer.digest) && !force {
            below.push(layer.digest.clone());
            continue;
        }
        if !built_any {
            out(format!("Building image {id}"));
            built_any = true;
        }
        out(format!(
            "=> Step {}/{}: {}",
            i + 1,
            planned.len(),
            describe(&layer.step)
        ));
        let started = std::time::Instant::now();
        make_layer(store, layer, &below, &env, &workdir, files, out)?;
        out(format!(
            "   done in {:.1}s",
            started.elapsed().as_secs_f64()
        ));
        below.push(layer.digest.clone());
    }
    if let Some(needed) = Some(spec.glibc_needed.as_str()).filter(|g| !g.is_empty()) {
        let have = super::glibc::image_version(store, &below).map_err(|e| BuildFailure {
            step: "glibc check".into(),
            message: e,
            output: Vec::new(),
        })?;
        if !super::glibc::satisfies(&have, needed) {
            return Err(BuildFailure {
                step: "glibc check".into(),
                message: format!(
                    "this program needs glibc {needed} or newer, and image {id} has glibc {have}: build the program on a system with glibc {have} or older, or use an image with a newer base"
                ),
                output: Vec::new(),
            });
        }
    }
    Ok(ImageRef {
        image_id: id,
        layers: below,
        env,
        workdir,
        store: store.root().to_string_lossy().into_owned(),
    })
}

/// Makes one layer in a scratch directory and moves it into the store once whole.
fn make_layer(
    store: &Store,
    layer: &Planned,
    below: &[String],
    env: &[(String, String)],
    workdir: &str,
    files: &dyn Files,
    out: &mut dyn FnMut(String),
) -> Result<(), BuildFailure> {
    let step = &layer.step;
    let scratch = store
        .scratch(&layer.digest)
        .map_err(|e| fail(step, e, Vec::new()))?;
    let dir = scratch.join("layer");
    let made = match step {
        Step::DebianSlim { suite } => {
            debian_base(suite, &dir, out).map_err(|(m, o)| fail(step, m, o))
        }
        Step::FromRegistry(r) => Err(fail(
            step,
            format!(
                "images from a registry (`{r}`) cannot be pulled: this system reaches no registry; build from `Image::debian_slim()`, or save the image elsewhere (`docker save`, or an OCI layout) and use `Image::from_oci_archive(path)`"
            ),
            Vec::new(),
        )),
        Step::AptInstall(packages) => {
            let cmd = format!(
                "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends {} && rm -rf /var/lib/apt/lists/*",
                packages.join(" ")
            );
            run_in_image(store, below, &scratch, &dir, env, workdir, &cmd, out)
                .map_err(|(m, o)| fail(step, m, o))
        }
        Step::Run(cmd) => run_in_image(store, below, &scratch, &dir, env, workdir, cmd, out)
            .map_err(|(m, o)| fail(step, m, o)),
        Step::OciLayer { hash } => files
            .path(hash)
            .ok_or_else(|| format!("the layer with digest {hash} was not uploaded"))
            .and_then(|layer| super::oci_archive::unpack_layer(&layer, &dir))
            .map_err(|e| fail(step, e, Vec::new())),
        Step::Env(_) => make_dir(&dir).map_err(|e| fail(step, e, Vec::new())),
        Step::Workdir(d) => crate::paths::make_dir_inside(&dir, d)
            .map(|_| ())
            .map_err(|e| fail(step, e, Vec::new())),
        Step::AddFile { remote, hash, mode } => crate::paths::inside(&dir, remote)
            .and_then(|to| put_file(files, hash, *mode, &to))
            .map_err(|e| fail(step, e, Vec::new())),
        Step::AddDir {
            remote,
            files: list,
        } => list.iter().try_for_each(|(rel, hash, mode)| {
            crate::paths::inside(&dir, &format!("{remote}/{rel}"))
                .and_then(|to| put_file(files, hash, *mode, &to))
                .map_err(|e| fail(step, e, Vec::new()))
        }),
    };
    let result = made.and_then(|()| {
        let meta = LayerMeta {
            step: describe(step),
            created_ms: chrono::Utc::now().timestamp_millis(),
            bytes: super::store::size_of(&dir),
        };
        store
            .commit(&layer.digest, &dir, &meta)
            .map_err(|e| fail(step, e, Vec::new()))
    });
    store.discard(&scratch);
    result
}

fn make_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))
}

fn put_file(files: &dyn Files, hash: &str, mode: u32, to: &Path) -> Result<(), String> {
    let from = files
        .path(hash)
        .ok_or_else(|| format!("the file with digest {hash} was not uploaded"))?;
    if let Some(parent) = to.parent() {
        make_dir(parent)?;
    }
    std::fs::copy(&from, to)
        .and_then(|_| std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode & 0o7777)))
        .map(|_| ())
        .map_err(|e| format!("cannot put {}: {e}", to.display()))
}

/// The host's apt sources (deb822 or one-line), for mmdebstrap: the Debian mirror this machine
/// uses, never a name written here.
fn apt_sources() -> Result<PathBuf, String> {
    let dir = Path::new("/etc/apt/sources.list.d");
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "sources"))
                .filter(|p| {
                    std::fs::read_to_string(p).is_ok_and(|t| t.contains("debian-archive-keyring"))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    if let Some(p) = found.into_iter().next() {
        return Ok(p);
    }
    let list = Path::new("/etc/apt/sources.list");
    if std::fs::read_to_string(list).is_ok_and(|t| t.lines().any(|l| l.starts_with("deb "))) {
        return Ok(list.to_path_buf());
    }
    Err("no Debian apt source on this machine (/etc/apt/sources.list.d/*.sources or /etc/apt/sources.list) to build the base from".into())
}

/// The Debian base, made with mmdebstrap.
fn debian_base(
    suite: &str,
    dir: &Path,
    out: &mut dyn FnMut(String),
) -> Result<(), (String, Vec<String>)> {
    let sources = apt_sources().map_err(|e| (e, Vec::new()))?;
    let mut cmd = Command::new("mmdebstrap");
    cmd.args([
        "--variant=minbase",
        "--mode=root",
        "--format=directory",
        "-q",
    ])
    .arg(suite)
    .arg(dir)
    .arg(&sources);
    run_streaming(cmd, out).map_err(|(m, o)| {
        if m.contains("No such file") {
            (
                "building `debian_slim` needs mmdebstrap (`apt-get install mmdebstrap`)".into(),
                o,
            )
        } else {
            (m, o)
        }
    })
}

/// Runs `cmd` as root in the image: the layers below under `upper` (the new layer), in new
/// mount, PID, IPC and UTS namespaces, with the host's DNS settings.
#[allow(clippy::too_many_arguments)]
fn run_in_image(
    store: &Store,
    below: &[String],
    scratch: &Path,
    upper: &Path,
    env: &[(String, String)],
    workdir: &str,
    cmd: &str,
    out: &mut dyn FnMut(String),
) -> Result<(), (String, Vec<String>)> {
    let lowers: Vec<PathBuf> = below.iter().rev().map(|d| store.layer(d)).collect();
    let overlay = Overlay::mount(&lowers, upper, scratch).map_err(|e| (e, Vec::new()))?;
    let root = overlay.merged().to_path_buf();
    // The host's resolver for apt, put back as it was afterwards (a file of the build, not of
    // the layer); never through a link the image has there (it could lead onto the host).
    let resolv = root.join("etc/resolv.conf");
    let plain = |p: &Path| std::fs::symlink_metadata(p).map(|m| m.file_type());
    let usable = plain(&root.join("etc")).is_ok_and(|t| t.is_dir())
        && !plain(&resolv).is_ok_and(|t| t.is_symlink() || t.is_dir());
    let kept = if usable {
        let kept = std::fs::read(&resolv).ok();
        let _ = std::fs::remove_file(&resolv);
        if let Ok(host) = std::fs::read("/etc/resolv.conf") {
            let _ = write_new(&resolv, &host);
        }
        kept
    } else {
        None
    };
    let mut command = Command::new("unshare");
    command
        .args(["--mount", "--pid", "--ipc", "--uts", "--fork"])
        .arg(format!("--mount-proc={}", root.join("proc").display()))
        .arg("chroot")
        .arg(&root)
        .args(["/bin/sh", "-c"])
        .arg(format!(
            "cd {} && {cmd}",
            if workdir.is_empty() { "/" } else { workdir }
        ))
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("HOME", "/root")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let ran = run_streaming(command, out);
    if usable && !plain(&resolv).is_ok_and(|t| t.is_symlink() || t.is_dir()) {
        let _ = std::fs::remove_file(&resolv);
        if let Some(bytes) = kept {
            let _ = write_new(&resolv, &bytes);
        }
    }
    drop(overlay);
    ran
}

/// Writes a new file (never through a link at its path).
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?
        .write_all(bytes)
}

/// Runs a command, sending each line it prints (stdout and stderr) to `out`; the error keeps
/// the last lines.
fn run_streaming(
    mut cmd: Command,
    out: &mut dyn FnMut(String),
) -> Result<(), (String, Vec<String>)> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| (format!("cannot run {program}: {e}"), Vec::new()))?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let mut readers = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        }));
    }
    if let Some(stderr) = child.stderr.take() {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        }));
    }
    drop(tx);
    let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    for line in rx {
        if tail.len() == TAIL {
            tail.pop_front();
        }
        tail.push_back(line.clone());
        out(line);
    }
    for r in readers {
        let _ = r.join();
    }
    let status = child
        .wait()
        .map_err(|e| (format!("{program}: {e}"), Vec::new()))?;
    if status.success() {
        Ok(())
    } else {
        Err((format!("it exited with {status}"), tail.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoFiles;

    impl Files for NoFiles {
        fn path(&self, _hash: &str) -> Option<PathBuf> {
            None
        }
    }

    fn build_of(steps: Vec<Step>) -> Result<ImageRef, BuildFailure> {
        let dir = std::env::temp_dir().join(format!("modal-build-test-{}", crate::ids::new_id("")));
        let store = Store::open(&dir).unwrap();
        let spec = ImageSpec {
            steps,
            glibc_needed: String::new(),
        };
        let built = build(&store, &spec, &NoFiles, false, &mut |_| {});
        std::fs::remove_dir_all(&dir).unwrap();
        built
    }

    #[test]
    fn a_registry_image_is_refused_saying_why_and_what_to_do() {
        let err = build_of(vec![Step::FromRegistry("python:3.12".into())]).unwrap_err();
        assert_eq!(err.step, "FROM python:3.12");
        assert!(err.message.contains("cannot be pulled"), "{err}");
        assert!(err.message.contains("Image::from_oci_archive"), "{err}");
    }

    #[test]
    fn an_image_needs_a_base_and_its_files() {
        let err = build_of(vec![Step::Run("true".into())]).unwrap_err();
        assert!(err.message.contains("starts with its base"), "{err}");
        let err = build_of(vec![Step::OciLayer { hash: "00".into() }]).unwrap_err();
        assert!(err.message.contains("was not uploaded"), "{err}");
    }

    #[test]
    fn metadata_steps_make_empty_layers_and_set_the_image() {
        let dir = std::env::temp_dir().join(format!("modal-build-test-{}", crate::ids::new_id("")));
        let store = Store::open(&dir).unwrap();
        // A base made by hand stands in for mmdebstrap's.
        let base = ImageSpec {
            steps: vec![Step::DebianSlim {
                suite: "bookworm".into(),
            }],
            glibc_needed: String::new(),
        };
        let digest = plan(&base)[0].digest.clone();
        let scratch = store.scratch(&digest).unwrap();
        std::fs::create_dir_all(scratch.join("layer/etc")).unwrap();
        let meta = LayerMeta {
            step: "base".into(),
            created_ms: 0,
            bytes: 0,
        };
        store
            .commit(&digest, &scratch.join("layer"), &meta)
            .unwrap();
        let mut spec = base.clone();
        spec.steps.push(Step::Env(vec![("A".into(), "1".into())]));
        spec.steps.push(Step::Workdir("/work".into()));
        let mut lines = Vec::new();
        let image = build(&store, &spec, &NoFiles, false, &mut |l| lines.push(l)).unwrap();
        assert_eq!(image.layers.len(), 3);
        assert_eq!(image.env, [("A".to_string(), "1".to_string())]);
        assert_eq!(image.workdir, "/work");
        assert!(store.layer(&image.layers[2]).join("work").is_dir());
        assert!(
            lines.iter().any(|l| l.starts_with("=> Step 2/3: ENV A=1")),
            "{lines:?}"
        );
        // Built once: nothing to say the second time.
        let mut again = Vec::new();
        assert_eq!(
            build(&store, &spec, &NoFiles, false, &mut |l| again.push(l)).unwrap(),
            image
        );
        assert!(again.is_empty(), "{again:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

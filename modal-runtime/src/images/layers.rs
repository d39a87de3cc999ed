//! An image as a stack of layers, each named by a digest of (its parent's digest, its step, the
//! content of the step's inputs): the same definition gives the same digests on every machine,
//! and changing one step changes its digest and every digest above it, so only those rebuild.

use crate::model::image::{ImageSpec, Step};

/// One layer to build: its digest and the step that makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Planned {
    pub(crate) digest: String,
    pub(crate) step: Step,
}

/// What a layer's digest covers of a step: the step itself, with a file's content by its
/// digest (never its local path, which differs between machines).
fn identity(step: &Step) -> String {
    serde_json::to_string(step).unwrap_or_default()
}

/// The layers of `spec`, bottom first, each with its digest. Steps that only set metadata
/// (`env`, `workdir`) make layers too (empty ones), so that the image's digest covers them.
pub(crate) fn plan(spec: &ImageSpec) -> Vec<Planned> {
    let mut parent = String::from("modal-rs image v1");
    spec.steps
        .iter()
        .map(|step| {
            let mut h = blake3::Hasher::new();
            h.update(parent.as_bytes());
            h.update(b"\0");
            h.update(identity(step).as_bytes());
            let digest = h.finalize().to_hex().to_string();
            parent.clone_from(&digest);
            Planned {
                digest,
                step: step.clone(),
            }
        })
        .collect()
}

/// The image id of a plan: `im-` and the top layer's digest, shortened.
pub(crate) fn image_id(plan: &[Planned]) -> String {
    let top = plan.last().map_or("", |p| p.digest.as_str());
    format!("im-{}", &top[..top.len().min(24)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(steps: Vec<Step>) -> ImageSpec {
        ImageSpec {
            steps,
            glibc_needed: String::new(),
        }
    }

    #[test]
    fn changing_a_step_changes_it_and_what_is_above_only() {
        let base = Step::DebianSlim {
            suite: "bookworm".into(),
        };
        let a = plan(&spec(vec![
            base.clone(),
            Step::Run("echo one".into()),
            Step::Run("echo two".into()),
        ]));
        let b = plan(&spec(vec![
            base.clone(),
            Step::Run("echo one".into()),
            Step::Run("echo three".into()),
        ]));
        assert_eq!(a[0].digest, b[0].digest);
        assert_eq!(a[1].digest, b[1].digest);
        assert_ne!(a[2].digest, b[2].digest);
        let c = plan(&spec(vec![
            base,
            Step::Run("echo zero".into()),
            Step::Run("echo two".into()),
        ]));
        assert_ne!(
            a[2].digest, c[2].digest,
            "a layer's digest covers its parent"
        );
        assert!(image_id(&a).starts_with("im-"));
        assert_ne!(image_id(&a), image_id(&b));
    }

    #[test]
    fn a_files_content_names_its_layer_not_its_path() {
        let file = |hash: &str| Step::AddFile {
            remote: "/app/config.toml".into(),
            hash: hash.into(),
            mode: 0o644,
        };
        let a = plan(&spec(vec![file("aaa")]));
        let b = plan(&spec(vec![file("aaa")]));
        let c = plan(&spec(vec![file("bbb")]));
        assert_eq!(a, b);
        assert_ne!(a[0].digest, c[0].digest);
    }
}

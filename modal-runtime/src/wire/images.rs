//! Conversions of image definitions (steps) and built images.

use super::pb;
use crate::model::image::{ImageRef, ImageSpec, Step};

fn vars_to_pb(vars: &[(String, String)]) -> Vec<pb::ImageEnvVar> {
    vars.iter()
        .map(|(key, value)| pb::ImageEnvVar {
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}

fn vars_of(vars: Vec<pb::ImageEnvVar>) -> Vec<(String, String)> {
    vars.into_iter().map(|v| (v.key, v.value)).collect()
}

impl From<&Step> for pb::ImageStep {
    fn from(s: &Step) -> Self {
        use pb::image_step::Step as P;
        let step = match s {
            Step::DebianSlim { suite } => P::DebianSlim(suite.clone()),
            Step::FromRegistry(r) => P::FromRegistry(r.clone()),
            Step::AptInstall(p) => P::AptInstall(pb::image_step::AptInstall {
                packages: p.clone(),
            }),
            Step::Run(c) => P::Run(c.clone()),
            Step::Env(vars) => P::Env(pb::image_step::Env {
                vars: vars_to_pb(vars),
            }),
            Step::Workdir(d) => P::Workdir(d.clone()),
            Step::OciLayer { hash } => P::OciLayer(hash.clone()),
            Step::AddFile { remote, hash, mode } => P::AddFile(pb::ImageFile {
                remote: remote.clone(),
                hash: hash.clone(),
                mode: *mode,
            }),
            Step::AddDir { remote, files } => P::AddDir(pb::image_step::AddDir {
                remote: remote.clone(),
                files: files
                    .iter()
                    .map(|(path, hash, mode)| pb::ImageDirFile {
                        path: path.clone(),
                        hash: hash.clone(),
                        mode: *mode,
                    })
                    .collect(),
            }),
        };
        pb::ImageStep { step: Some(step) }
    }
}

impl TryFrom<pb::ImageStep> for Step {
    type Error = String;

    fn try_from(s: pb::ImageStep) -> Result<Self, String> {
        use pb::image_step::Step as P;
        Ok(match s.step.ok_or("an empty image step")? {
            P::DebianSlim(suite) => Step::DebianSlim { suite },
            P::FromRegistry(r) => Step::FromRegistry(r),
            P::AptInstall(a) => Step::AptInstall(a.packages),
            P::Run(c) => Step::Run(c),
            P::Env(e) => Step::Env(vars_of(e.vars)),
            P::Workdir(d) => Step::Workdir(d),
            P::OciLayer(hash) => Step::OciLayer { hash },
            P::AddFile(f) => Step::AddFile {
                remote: f.remote,
                hash: f.hash,
                mode: f.mode,
            },
            P::AddDir(d) => Step::AddDir {
                remote: d.remote,
                files: d
                    .files
                    .into_iter()
                    .map(|f| (f.path, f.hash, f.mode))
                    .collect(),
            },
        })
    }
}

impl From<&ImageSpec> for pb::ImageSpec {
    fn from(s: &ImageSpec) -> Self {
        pb::ImageSpec {
            steps: s.steps.iter().map(Into::into).collect(),
            glibc_needed: s.glibc_needed.clone(),
        }
    }
}

impl TryFrom<pb::ImageSpec> for ImageSpec {
    type Error = String;

    fn try_from(s: pb::ImageSpec) -> Result<Self, String> {
        Ok(ImageSpec {
            steps: s
                .steps
                .into_iter()
                .map(Step::try_from)
                .collect::<Result<_, _>>()?,
            glibc_needed: s.glibc_needed,
        })
    }
}

impl From<&ImageRef> for pb::ImageRef {
    fn from(r: &ImageRef) -> Self {
        pb::ImageRef {
            image_id: r.image_id.clone(),
            layers: r.layers.clone(),
            env: vars_to_pb(&r.env),
            workdir: r.workdir.clone(),
            store: r.store.clone(),
        }
    }
}

impl From<pb::ImageRef> for ImageRef {
    fn from(r: pb::ImageRef) -> Self {
        ImageRef {
            image_id: r.image_id,
            layers: r.layers,
            env: vars_of(r.env),
            workdir: r.workdir,
            store: r.store,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_round_trip() {
        let spec = ImageSpec {
            steps: vec![
                Step::DebianSlim {
                    suite: "bookworm".into(),
                },
                Step::AptInstall(vec!["jq".into()]),
                Step::Run("echo hi".into()),
                Step::Env(vec![("A".into(), "1".into()), ("B".into(), "2".into())]),
                Step::Workdir("/work".into()),
                Step::OciLayer { hash: "h0".into() },
                Step::AddFile {
                    remote: "/a".into(),
                    hash: "h".into(),
                    mode: 0o644,
                },
                Step::AddDir {
                    remote: "/d".into(),
                    files: vec![("x/y".into(), "h2".into(), 0o755)],
                },
            ],
            glibc_needed: "2.34".into(),
        };
        assert_eq!(
            ImageSpec::try_from(pb::ImageSpec::from(&spec)).unwrap(),
            spec
        );
    }
}

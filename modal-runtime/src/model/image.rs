//! Images as the roles exchange them: a definition's steps (what the client asks for), and a
//! built image (its layers, environment and working directory, where its layers are kept).

use serde::{Deserialize, Serialize};

/// One step of an image definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Step {
    /// A minimal Debian of `suite`, made from Debian's packages.
    DebianSlim { suite: String },
    /// An image from a registry, by reference (refused: no registry is reachable).
    FromRegistry(String),
    /// Debian packages installed with apt.
    AptInstall(Vec<String>),
    /// A shell command run in the image being built.
    Run(String),
    /// Environment variables of the image.
    Env(Vec<(String, String)>),
    /// The working directory of the image's processes (made if missing).
    Workdir(String),
    /// A file put at `remote`, named by the blake3 digest of its content.
    AddFile {
        remote: String,
        hash: String,
        mode: u32,
    },
    /// A layer of an image made elsewhere (a tar, maybe gzip-compressed), by the blake3 digest
    /// of the file.
    OciLayer { hash: String },
    /// A directory put at `remote`: its files, by path below it.
    AddDir {
        remote: String,
        files: Vec<(String, String, u32)>,
    },
}

/// An image definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageSpec {
    pub(crate) steps: Vec<Step>,
    /// The newest glibc symbol version the program needs (`2.34`), checked against the image;
    /// empty: not checked.
    pub(crate) glibc_needed: String,
}

/// A built image, as a function's containers use it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(crate) struct ImageRef {
    pub(crate) image_id: String,
    /// Layer digests, bottom first.
    pub(crate) layers: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    /// The working directory ("" for `/`).
    pub(crate) workdir: String,
    /// Where the layers are, on the machine that built them (`<store>/<digest>`).
    pub(crate) store: String,
}

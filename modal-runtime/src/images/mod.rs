//! Container images: definitions planned as layers content-addressed by (parent, step, inputs)
//! (`layers.rs`), the layers built on a machine (`store.rs`), the builder (`build.rs`: the Debian
//! base with mmdebstrap, steps run in the image being built), overlays over layers
//! (`overlay.rs`), whether a program's glibc needs fit an image (`glibc.rs`), and images made
//! elsewhere (`oci_archive.rs`: `docker save` tarballs and OCI layouts, their layers unpacked
//! with whiteouts as overlayfs wants them).

pub(crate) mod build;
pub(crate) mod glibc;
pub(crate) mod layers;
pub(crate) mod oci_archive;
pub(crate) mod overlay;
pub(crate) mod store;

/// Where the embedded control plane keeps image layers: `MODAL_IMAGE_DIR`, else a system
/// directory for root, the user's cache otherwise (kept across runs: a second run reuses the
/// layers).
pub(crate) fn default_store_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("MODAL_IMAGE_DIR").filter(|d| !d.is_empty()) {
        return std::path::PathBuf::from(dir);
    }
    if nix::unistd::geteuid().is_root() {
        return std::path::PathBuf::from("/var/cache/modal-rs/images");
    }
    let cache = crate::binhash::cache_home().unwrap_or_else(std::env::temp_dir);
    cache.join("modal-rs").join("images")
}

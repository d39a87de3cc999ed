//! The values `#[modal::function]` parameters accept when written as expressions rather than
//! literals (`gpu = GPU`, `cpu = (0.5, 2.0)`, `region = REGIONS`, `env = …`, `volumes = …`),
//! converted into the spec's types.

use super::{GpuConfig, Volume};

/// `gpu = expr`: a string or a list of strings.
pub fn gpu_list<G: IntoGpuList>(g: G) -> Vec<GpuConfig> {
    g.into_gpu_list()
}

/// Values accepted by `gpu = …`.
pub trait IntoGpuList {
    /// The ranked list.
    fn into_gpu_list(self) -> Vec<GpuConfig>;
}
impl IntoGpuList for &str {
    fn into_gpu_list(self) -> Vec<GpuConfig> {
        vec![self.into()]
    }
}
impl IntoGpuList for String {
    fn into_gpu_list(self) -> Vec<GpuConfig> {
        vec![self.into()]
    }
}
impl<S: Into<GpuConfig>> IntoGpuList for Vec<S> {
    fn into_gpu_list(self) -> Vec<GpuConfig> {
        self.into_iter().map(Into::into).collect()
    }
}
impl<S: Into<GpuConfig>, const N: usize> IntoGpuList for [S; N] {
    fn into_gpu_list(self) -> Vec<GpuConfig> {
        self.into_iter().map(Into::into).collect()
    }
}

/// `cpu = expr`: cores, or `(request, limit)`.
pub fn cpu<C: IntoCpu>(c: C) -> (f64, Option<f64>) {
    c.into_cpu()
}
/// Values accepted by `cpu = …`.
pub trait IntoCpu {
    /// `(request, limit)`.
    fn into_cpu(self) -> (f64, Option<f64>);
}
impl IntoCpu for f64 {
    fn into_cpu(self) -> (f64, Option<f64>) {
        (self, None)
    }
}
impl IntoCpu for (f64, f64) {
    fn into_cpu(self) -> (f64, Option<f64>) {
        (self.0, Some(self.1))
    }
}

/// `memory = expr`: MiB, or `(request, limit)`.
pub fn memory<M: IntoMemory>(m: M) -> (u64, Option<u64>) {
    m.into_memory()
}
/// Values accepted by `memory = …`.
pub trait IntoMemory {
    /// `(request, limit)`.
    fn into_memory(self) -> (u64, Option<u64>);
}
impl IntoMemory for u64 {
    fn into_memory(self) -> (u64, Option<u64>) {
        (self, None)
    }
}
impl IntoMemory for (u64, u64) {
    fn into_memory(self) -> (u64, Option<u64>) {
        (self.0, Some(self.1))
    }
}

/// `region = …`: a string or strings.
pub fn strings<S: IntoStrings>(s: S) -> Vec<String> {
    s.into_strings()
}
/// Values accepted where one or several strings are.
pub trait IntoStrings {
    /// The strings.
    fn into_strings(self) -> Vec<String>;
}
impl IntoStrings for &str {
    fn into_strings(self) -> Vec<String> {
        vec![self.to_owned()]
    }
}
impl IntoStrings for String {
    fn into_strings(self) -> Vec<String> {
        vec![self]
    }
}
impl<S: Into<String>> IntoStrings for Vec<S> {
    fn into_strings(self) -> Vec<String> {
        self.into_iter().map(Into::into).collect()
    }
}
impl<S: Into<String>, const N: usize> IntoStrings for [S; N] {
    fn into_strings(self) -> Vec<String> {
        self.into_iter().map(Into::into).collect()
    }
}

/// `env = [("K", "V")]` and `experimental_options = …`.
pub fn string_pairs<K: Into<String>, V: Into<String>>(
    pairs: impl IntoIterator<Item = (K, V)>,
) -> Vec<(String, String)> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
}

/// `volumes = [("/mnt/data", &DATA)]`: each path with a `Volume`, a reference to one, or a
/// reference to a `static` `LazyLock<Volume>`.
pub fn volumes<P: Into<String>, V: IntoVolume>(
    v: impl IntoIterator<Item = (P, V)>,
) -> Vec<(String, Volume)> {
    v.into_iter()
        .map(|(p, v)| (p.into(), v.into_volume()))
        .collect()
}

/// What `volumes = […]` (and [`App::volumes`](crate::App::volumes)) take as a volume: a
/// [`Volume`], a reference to one, or a reference to a `static` `LazyLock<Volume>`.
pub trait IntoVolume {
    /// The volume.
    fn into_volume(self) -> Volume;
}

impl IntoVolume for Volume {
    fn into_volume(self) -> Volume {
        self
    }
}

impl IntoVolume for &Volume {
    fn into_volume(self) -> Volume {
        self.clone()
    }
}

impl<F: FnOnce() -> Volume> IntoVolume for &std::sync::LazyLock<Volume, F> {
    fn into_volume(self) -> Volume {
        (**self).clone()
    }
}

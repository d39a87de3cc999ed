//! The app model: apps, function specs and their parameters as plain data (no IO, no proto).

pub(crate) mod attr_values;
pub(crate) mod function;
pub(crate) mod objects;
pub(crate) mod param_table;
pub(crate) mod retries;
pub(crate) mod rules;
pub(crate) mod schedule;
pub(crate) mod support;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

pub use attr_values::IntoVolume;
pub use function::{FunctionSpec, GpuConfig};
pub use objects::{Image, Secret, Volume};
pub use retries::Retries;
pub use schedule::{Cron, Period, Schedule};

/// A group of functions that run, deploy and scale together.
///
/// Declare one per program with [`app!`](crate::app) and attach functions to it with
/// `#[modal::function(app = APP)]`:
///
/// ```no_run
/// use modal::prelude::*;
///
/// modal::app!(APP = App::new("hello").tags([("team", "ml")]));
///
/// #[modal::function(app = APP)]
/// fn square(x: i64) -> i64 {
///     x * x
/// }
/// # fn main() {}
/// ```
pub struct App {
    name: String,
    tags: BTreeMap<String, String>,
    pub(crate) image: Option<Image>,
    pub(crate) secrets: Vec<Secret>,
    pub(crate) volumes: Vec<(String, Volume)>,
    pub(crate) include_source: bool,
    includes: Vec<&'static App>,
    /// Problems found while building the app; reported when it starts.
    config_errors: Vec<String>,
    app_id: Mutex<Option<String>>,
    dashboard_url: Mutex<Option<String>>,
    active: AtomicBool,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("name", &self.name)
            .field("tags", &self.tags)
            .field("app_id", &self.app_id())
            .finish_non_exhaustive()
    }
}

impl App {
    /// A new app named `name` (used to register, look up and describe it).
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        let mut config_errors = Vec::new();
        if let Err(e) = rules::check_app_name(&name) {
            config_errors.push(e);
        }
        App {
            name,
            tags: BTreeMap::new(),
            image: None,
            secrets: Vec::new(),
            volumes: Vec::new(),
            include_source: true,
            includes: Vec::new(),
            config_errors,
            app_id: Mutex::new(None),
            dashboard_url: Mutex::new(None),
            active: AtomicBool::new(false),
        }
    }

    /// Additional metadata on the app (keys and values `[A-Za-z0-9._-]`, at most 63 characters).
    pub fn tags<K: Into<String>, V: Into<String>>(
        mut self,
        tags: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        for (k, v) in tags {
            let (k, v) = (k.into(), v.into());
            for (what, s) in [("key", &k), ("value", &v)] {
                if let Err(e) = rules::check_tag(what, s) {
                    self.config_errors.push(e);
                }
            }
            self.tags.insert(k, v);
        }
        self
    }

    /// The default image for the app's functions.
    pub fn image(mut self, image: Image) -> Self {
        self.image = Some(image);
        self
    }

    /// Secrets added to every function of the app (before the function's own).
    pub fn secrets(mut self, secrets: impl IntoIterator<Item = Secret>) -> Self {
        self.secrets.extend(secrets);
        self
    }

    /// Volumes mounted into every function of the app, by mount path.
    pub fn volumes<P: Into<String>, V: attr_values::IntoVolume>(
        mut self,
        volumes: impl IntoIterator<Item = (P, V)>,
    ) -> Self {
        self.volumes.extend(attr_values::volumes(volumes));
        self
    }

    /// Whether function source is included in containers by default (default `true`).
    pub fn include_source(mut self, include: bool) -> Self {
        self.include_source = include;
        self
    }

    /// Includes another app's functions in this one; with `inherit_tags` its tags are merged,
    /// this app's tags winning on a collision.
    pub fn include(mut self, other: &'static App, inherit_tags: bool) -> Self {
        if inherit_tags {
            for (k, v) in &other.tags {
                self.tags.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        self.includes.push(other);
        self
    }

    /// The app's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The app id (`ap-…`) while the app is running or after it ran; `None` before.
    pub fn app_id(&self) -> Option<String> {
        self.app_id.lock().ok().and_then(|g| g.clone())
    }

    /// The URL of the app's page on its control plane's dashboard, while it runs or once it
    /// was deployed (`None` before, or when the control plane serves no dashboard). The embedded
    /// control plane's dashboard listens on loopback for as long as the program runs, and the
    /// URL carries the run's key; `modal server`'s asks for a login with a token.
    ///
    /// ```no_run
    /// modal::app!(APP = modal::App::new("example"));
    ///
    /// # async fn demo() -> modal::Result<()> {
    /// let run = APP.run().await?;
    /// if let Some(url) = APP.get_dashboard_url() {
    ///     println!("functions, containers and logs at {url}");
    /// }
    /// run.stop().await?;
    /// # Ok(())
    /// # }
    /// # fn main() {}
    /// ```
    pub fn get_dashboard_url(&self) -> Option<String> {
        self.dashboard_url.lock().ok().and_then(|g| g.clone())
    }

    /// Records the dashboard URL the control plane gave for the app (empty: none).
    pub(crate) fn remember_dashboard_url(&self, url: String) {
        if let Ok(mut g) = self.dashboard_url.lock() {
            *g = Some(url).filter(|u| !u.is_empty());
        }
    }

    /// A human-readable description: the app's name.
    pub fn description(&self) -> String {
        self.name.clone()
    }

    /// The app's tags.
    pub fn tag_map(&self) -> &BTreeMap<String, String> {
        &self.tags
    }

    pub(crate) fn config_errors(&self) -> &[String] {
        &self.config_errors
    }

    /// Marks the app running with `id`, or (with `None`) no longer running; the id stays readable.
    pub(crate) fn set_active(&self, id: Option<String>) {
        self.active.store(id.is_some(), Ordering::SeqCst);
        if let Some(id) = id
            && let Ok(mut g) = self.app_id.lock()
        {
            *g = Some(id);
        }
    }

    /// Records the app's id (after a deploy) without marking it running.
    pub(crate) fn remember_id(&self, id: String) {
        if let Ok(mut g) = self.app_id.lock() {
            *g = Some(id);
        }
    }

    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Ordering::SeqCst)
    }

    /// True when `other` is this app or one it includes (directly or transitively).
    pub(crate) fn contains(&self, other: &App) -> bool {
        std::ptr::eq(self, other) || self.includes.iter().any(|inc| inc.contains(other))
    }
}

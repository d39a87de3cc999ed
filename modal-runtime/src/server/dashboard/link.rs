//! Where a control plane's dashboard is: the URLs of its pages that clients are given.

/// Where a control plane's dashboard is, for the URLs it hands out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Link {
    /// `http://host:port`.
    pub(crate) base: String,
    /// The embedded dashboard's key, which its URLs carry.
    pub(crate) key: Option<String>,
}

impl Link {
    /// The page of app `app_id`.
    pub(crate) fn app(&self, app_id: &str) -> String {
        match &self.key {
            Some(key) => format!("{}/apps/{app_id}?key={key}", self.base),
            None => format!("{}/apps/{app_id}", self.base),
        }
    }
}

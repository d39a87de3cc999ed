//! The contract between a worker and the containers it starts: the environment variables it
//! sets, and whether this process is a container.

pub(crate) const TASK_ID: &str = "MODAL_TASK_ID";
pub(crate) const SERVER_URL: &str = "MODAL_SERVER_URL";
pub(crate) const APP_ID: &str = "MODAL_APP_ID";
pub(crate) const APP_NAME: &str = "MODAL_APP_NAME";
pub(crate) const FUNCTION_ID: &str = "MODAL_FUNCTION_ID";
pub(crate) const FUNCTION_TAG: &str = "MODAL_FUNCTION_TAG";
pub(crate) const BINARY_HASH: &str = "MODAL_BINARY_HASH";
pub(crate) const MAX_INPUTS: &str = "MODAL_MAX_INPUTS";
pub(crate) const SINGLE_USE: &str = "MODAL_SINGLE_USE";
pub(crate) const IS_REMOTE: &str = "MODAL_IS_REMOTE";
/// A class's encoded parameters, in hex.
pub(crate) const CLASS_PARAMS: &str = "MODAL_CLASS_PARAMS";

/// Whether this process is a container.
pub(crate) fn is_container() -> bool {
    std::env::var_os(TASK_ID).is_some()
}

//! Runnable programs live next to this crate root, one `[[example]]` each.

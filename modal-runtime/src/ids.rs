//! Object ids with Modal's typed prefixes (`ap-`, `fu-`, `fc-`, `in-`, `ta-`, `wk-`).

/// A fresh id: `prefix` followed by 22 random alphanumeric characters.
pub(crate) fn new_id(prefix: &str) -> String {
    let mut id = String::with_capacity(prefix.len() + 22);
    id.push_str(prefix);
    for _ in 0..22 {
        id.push(fastrand::alphanumeric());
    }
    id
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_have_prefix_and_length() {
        let id = super::new_id("ap-");
        assert!(id.starts_with("ap-"));
        assert_eq!(id.len(), 25);
        assert_ne!(id, super::new_id("ap-"));
    }
}

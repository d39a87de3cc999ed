//! `cargo xtask`: the project's automation (ci, bench, tidy).

fn main() {}

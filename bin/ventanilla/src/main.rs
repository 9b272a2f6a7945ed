//! The ventanilla binary (being wired up).
fn main() {}

//! Placeholder replaced by the test-double work in issue 5.
fn main() {}

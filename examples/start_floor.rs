//! The smallest Rust program there is, built with our release profile, for
//! `scripts/bench` (issue 17): the time to start it and have it exit is the
//! floor under any Rust apccontrol, which must start too before it can run
//! a hook. The bench adds it to the hook's and wall's own fork+exec and
//! compares the sum with the stock script.

// Linked as apccontrol is: the library brings build.rs's link options.
extern crate apccontrol as _;

fn main() {}

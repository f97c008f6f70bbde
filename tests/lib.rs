#![allow(clippy::unwrap_used)]
mod nis;

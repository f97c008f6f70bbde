#![allow(clippy::unwrap_used)]
mod notify;

#![allow(clippy::unwrap_used)]
mod power;

//! Configuration files the crate reads. Each parser works on a `&str` and a
//! thin loader adds the path to its errors; nothing here acts on the values.

pub mod apcupsd_conf;

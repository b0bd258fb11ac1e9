//! The end-to-end benchmark of `mastodon-sidecar`: a load generator (closed loop at fixed
//! concurrency, open loop at a fixed rate), the processes it drives (the Mastodon stand-in, nginx,
//! the sidecar) and the table it prints. The binary is `mastodon-sidecar-bench` (see `main.rs` and
//! the README's "Benchmark" section).

pub mod client;
pub mod load;
pub mod procs;
pub mod report;
pub mod setup;
pub mod stats;

//! A bounded load run: many posts in every format, concurrently; no errors, and memory that levels
//! off. The figures are printed (`cargo test --test api load -- --nocapture`); the only assertions are
//! zero errors and a generous ceiling on growth that a leak would break, never a timing.
//!
//! The run happens in a process of its own (this test binary, started again for this one test):
//! the other tests of the binary run at the same time and allocate (a thousand 1 MiB bodies, media
//! files), and their memory would be counted as this run's growth.

use std::time::Instant;

use futures_util::stream::{self, StreamExt};
use mastodon_standin::Options;
use serde_json::json;

use crate::helpers::{spawn_app_with, Format, FORMATS};

const ROUNDS: usize = 3;
const PER_ROUND: usize = 400;
const CONCURRENCY: usize = 16;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Set in the process the test starts for itself.
const ALONE: &str = "MASTODON_SIDECAR_TEST_LOAD_ALONE";

#[test]
fn a_bounded_load_run_has_no_errors_and_no_memory_growth() {
    if std::env::var_os(ALONE).is_some() {
        return tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(load_run());
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "load::a_bounded_load_run_has_no_errors_and_no_memory_growth",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ALONE, "1")
        .output()
        .expect("the test binary starts again");
    let out = String::from_utf8_lossy(&output.stdout);
    let err = String::from_utf8_lossy(&output.stderr);
    // The figures, as the run alone printed them.
    for line in out.lines().filter(|l| l.starts_with("load:")) {
        println!("{line}");
    }
    assert!(
        output.status.success(),
        "the load run failed on its own:\n{out}\n{err}"
    );
    assert!(out.contains("load:"), "the run printed its figures:\n{out}");
}

async fn load_run() {
    let token = "load-token-8c1e";
    let app = spawn_app_with(
        Options {
            rate_limit: 1_000_000,
            ..Options::default()
        },
        |s| {
            s.connections.get_mut("main").unwrap().access_token = Some(token.to_owned().into());
        },
    )
    .await;
    app.standin.seed_user_token(token, "read write");
    let mut rss = Vec::new();
    let mut errors = 0usize;
    let started = Instant::now();
    for round in 0..ROUNDS {
        let outcomes: Vec<u16> = stream::iter(0..PER_ROUND)
            .map(|i| {
                let app = &app;
                async move {
                    let format: Format = FORMATS[i % FORMATS.len()];
                    let status = format!("load round {round} message {i}");
                    app.call(format, "postStatus", json!({"status": status}))
                        .await
                        .status
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        errors += outcomes.iter().filter(|s| **s != 200).count();
        rss.push(rss_kib());
    }
    let elapsed = started.elapsed();
    let total = ROUNDS * PER_ROUND;
    println!(
        "load: {total} posts in {:.2} s ({:.0}/s, debug build, stand-in and sidecar in one process), errors {errors}, RSS after each round (KiB): {rss:?}",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(errors, 0);
    assert_eq!(
        app.standin.statuses().len(),
        total,
        "every message posted once"
    );
    // The stand-in keeps every status it was sent (a few KiB each), so some growth is expected from
    // it; the sidecar's own share must not grow with the number of requests.
    let growth = rss[ROUNDS - 1].saturating_sub(rss[0]);
    assert!(
        growth < 32 * 1024,
        "RSS grew {growth} KiB between the first and the last round"
    );
}

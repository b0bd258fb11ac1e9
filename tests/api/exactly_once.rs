//! The exactly-once fault matrix: every fault that can lose a post's answer, against every server
//! profile, in every format; each ends with exactly one status at the server.
//!
//! Faults: the answer lost after the server created the status; a 5xx after creating; a stall past
//! `timeout_ms` after which the server creates it anyway; the ESB resending the same message (same
//! `activityid`); a resend while the first is still slow. (A kill -9 of the sidecar mid-post is in
//! `cli.rs`, which drives the real binary.) Two different messages with the same text post twice.

use std::time::Duration;

use mastodon_standin::{Options, Profile};
use secrecy::SecretString;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::helpers::{spawn_app_with, Answer, Format, TestApp, FORMATS};

const ROUTE: &str = "POST /api/v1/statuses";
const TIMEOUT_MS: u64 = 1_000;
const SETTLE_MS: u64 = 1_500;

pub const PROFILES: [Profile; 6] = [
    Profile::Mastodon,
    Profile::GoToSocial,
    Profile::Takahe,
    Profile::Hollo,
    Profile::Snac,
    Profile::Mitra,
];

/// A sidecar whose `main` connection holds a pinned token for `profile`'s stand-in.
pub async fn app_for(profile: Profile) -> TestApp {
    let app = spawn_app_with(Options::for_profile(profile), |s| {
        let main = s.connections.get_mut("main").unwrap();
        main.access_token = Some(SecretString::from("tok"));
        main.timeout_ms = TIMEOUT_MS;
        main.connect_timeout_ms = Some(TIMEOUT_MS);
        main.doubt_settle_ms = Some(SETTLE_MS);
    })
    .await;
    app.standin.seed_user_token("tok", "read write");
    app
}

async fn post(app: &TestApp, format: Format, text: &str, activity: &str) -> Answer {
    app.call_with(
        format,
        "postStatus",
        json!({"status": text}),
        &[("activityid", activity)],
    )
    .await
}

/// Posts until the answer is final: `outcome_unknown` and `in_progress` are retried after their
/// Retry-After, as an ESB would. Bounded.
async fn post_until_final(app: &TestApp, format: Format, text: &str, activity: &str) -> Answer {
    for _ in 0..20 {
        let answer = post(app, format, text, activity).await;
        let code = if answer.status == 200 {
            String::new()
        } else {
            answer.code()
        };
        if code != "outcome_unknown" && code != "in_progress" {
            return answer;
        }
        let wait: u64 = answer
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("a Retry-After with outcome_unknown and in_progress");
        tokio::time::sleep(Duration::from_millis(wait.min(5) * 1000)).await;
    }
    panic!("no final answer after 20 tries");
}

fn id_of(answer: &Answer) -> String {
    let v: Value = answer.value();
    v["id"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| v["id"].to_string())
}

/// Runs `scenario` for every profile and format at once, each with its own stand-in and sidecar.
async fn every_profile_and_format<F, Fut>(scenario: F)
where
    F: Fn(Profile, Format) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut set = JoinSet::new();
    for profile in PROFILES {
        for format in FORMATS {
            set.spawn(scenario(profile, format));
        }
    }
    while let Some(done) = set.join_next().await {
        if let Err(e) = done {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

#[tokio::test]
async fn an_answer_lost_after_the_server_created_the_status_posts_once() {
    every_profile_and_format(|profile, format| async move {
        let app = app_for(profile).await;
        app.standin.create_then_drop(ROUTE, 1);
        let first = post_until_final(&app, format, "lost answer", "esb-lost-1").await;
        assert_eq!(first.status, 200, "{profile:?} {format:?}: {}", first.body);
        assert_eq!(app.standin.statuses().len(), 1, "{profile:?} {format:?}");
        assert_eq!(app.standin.hits(ROUTE), 1, "{profile:?} {format:?}: resent");
        // The ESB resends the same message: answered from the ledger, nothing sent.
        let again = post(&app, format, "lost answer", "esb-lost-1").await;
        assert_eq!(again.status, 200, "{profile:?} {format:?}: {}", again.body);
        assert_eq!(id_of(&again), id_of(&first));
        assert_eq!(app.standin.hits(ROUTE), 1, "{profile:?} {format:?}");
        assert_eq!(app.standin.statuses().len(), 1, "{profile:?} {format:?}");
    })
    .await;
}

#[tokio::test]
async fn a_5xx_after_creating_posts_once() {
    every_profile_and_format(|profile, format| async move {
        for (n, status) in [500u16, 502, 503].into_iter().enumerate() {
            let app = app_for(profile).await;
            app.standin.create_then_fail(ROUTE, status, 1);
            let activity = format!("esb-5xx-{n}");
            let answer = post_until_final(&app, format, "created then failed", &activity).await;
            assert_eq!(
                answer.status, 200,
                "{profile:?} {format:?} {status}: {}",
                answer.body
            );
            assert_eq!(
                app.standin.statuses().len(),
                1,
                "{profile:?} {format:?} {status}"
            );
            assert_eq!(
                app.standin.hits(ROUTE),
                1,
                "{profile:?} {format:?} {status}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_500_before_creating_is_sent_once_more_and_posts_once() {
    every_profile_and_format(|profile, format| async move {
        let app = app_for(profile).await;
        app.standin.fail_next(ROUTE, 500, 1);
        let answer = post(&app, format, "second time lucky", "esb-500").await;
        assert_eq!(
            answer.status, 200,
            "{profile:?} {format:?}: {}",
            answer.body
        );
        assert_eq!(app.standin.hits(ROUTE), 2, "{profile:?} {format:?}");
        assert_eq!(app.standin.statuses().len(), 1, "{profile:?} {format:?}");
    })
    .await;
}

#[tokio::test]
async fn a_stall_past_the_timeout_then_a_creation_posts_once() {
    every_profile_and_format(|profile, format| async move {
        let app = app_for(profile).await;
        app.standin
            .stall_then_create(ROUTE, Duration::from_millis(TIMEOUT_MS + 400), 1);
        let first = post(&app, format, "slow server", "esb-stall").await;
        assert_eq!(
            first.code(),
            "outcome_unknown",
            "{profile:?} {format:?}: {}",
            first.body
        );
        assert!(first.header("retry-after").is_some());
        let last = post_until_final(&app, format, "slow server", "esb-stall").await;
        assert_eq!(last.status, 200, "{profile:?} {format:?}: {}", last.body);
        assert_eq!(app.standin.statuses().len(), 1, "{profile:?} {format:?}");
        assert_eq!(app.standin.hits(ROUTE), 1, "{profile:?} {format:?}: resent");
    })
    .await;
}

#[tokio::test]
async fn a_resend_while_the_first_is_still_slow_waits_for_it_and_posts_once() {
    every_profile_and_format(|profile, format| async move {
        let app = std::sync::Arc::new(app_for(profile).await);
        app.standin
            .stall_then_create(ROUTE, Duration::from_millis(TIMEOUT_MS / 2), 1);
        let first = {
            let app = std::sync::Arc::clone(&app);
            tokio::spawn(async move { post(&app, format, "slow first", "esb-slow").await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let second = post_until_final(&app, format, "slow first", "esb-slow").await;
        let first = first.await.unwrap();
        assert_eq!(first.status, 200, "{profile:?} {format:?}: {}", first.body);
        assert_eq!(
            second.status, 200,
            "{profile:?} {format:?}: {}",
            second.body
        );
        assert_eq!(id_of(&first), id_of(&second));
        assert_eq!(app.standin.hits(ROUTE), 1, "{profile:?} {format:?}");
        assert_eq!(app.standin.statuses().len(), 1, "{profile:?} {format:?}");
    })
    .await;
}

#[tokio::test]
async fn the_same_text_in_two_messages_posts_twice_even_after_a_lost_answer() {
    every_profile_and_format(|profile, format| async move {
        let app = app_for(profile).await;
        let one = post(&app, format, "daily report", "esb-day-1").await;
        assert_eq!(one.status, 200, "{profile:?} {format:?}: {}", one.body);
        // The second message's answer is lost: the first message's status (same text, just
        // posted) must not be taken for it.
        app.standin.create_then_drop(ROUTE, 1);
        let two = post_until_final(&app, format, "daily report", "esb-day-2").await;
        assert_eq!(two.status, 200, "{profile:?} {format:?}: {}", two.body);
        assert_ne!(id_of(&one), id_of(&two), "{profile:?} {format:?}");
        assert_eq!(app.standin.statuses().len(), 2, "{profile:?} {format:?}");
    })
    .await;
}

#[tokio::test]
async fn the_caller_idempotency_key_is_honoured_on_every_server() {
    every_profile_and_format(|profile, format| async move {
        let app = app_for(profile).await;
        let params = json!({"status": "keyed", "idempotency_key": "order-1042"});
        let a = app
            .call_with(format, "postStatus", params.clone(), &[("activityid", "a")])
            .await;
        let b = app
            .call_with(format, "postStatus", params, &[("activityid", "b")])
            .await;
        assert_eq!(a.status, 200, "{profile:?} {format:?}: {}", a.body);
        assert_eq!(b.status, 200, "{profile:?} {format:?}: {}", b.body);
        assert_eq!(id_of(&a), id_of(&b));
        assert_eq!(app.standin.hits(ROUTE), 1, "{profile:?} {format:?}");
        // The same key for other parameters is refused, not guessed at.
        let other = app
            .call(
                format,
                "postStatus",
                json!({"status": "something else", "idempotency_key": "order-1042"}),
            )
            .await;
        assert_eq!(
            other.code(),
            "invalid_request",
            "{profile:?} {format:?}: {}",
            other.body
        );
    })
    .await;
}

#[tokio::test]
async fn a_correlation_id_of_any_shape_keeps_its_identity() {
    let app = app_for(Profile::GoToSocial).await;
    // (Non-ASCII bytes are in telemetry's unit test: this client sends visible ASCII only.)
    for (n, activity) in [
        "order 1042 #retry",
        "{urn:x}",
        "with space",
        &"z".repeat(300),
    ]
    .into_iter()
    .enumerate()
    {
        let text = format!("message {n}");
        let a = post(&app, Format::Json, &text, activity).await;
        let b = post(&app, Format::Json, &text, activity).await;
        assert_eq!(a.status, 200, "{activity}: {}", a.body);
        assert_eq!(id_of(&a), id_of(&b), "{activity}: posted twice");
        assert_eq!(a.header("x-correlation-id"), b.header("x-correlation-id"));
    }
    assert_eq!(app.standin.statuses().len(), 4);
}

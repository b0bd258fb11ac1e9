//! Each server family as `shared/reference/servers.md` describes it (the stand-in's profiles): the
//! whole flow works with the shipped defaults, and every divergence ends in the right outcome or a
//! classified error that says what to do.

use mastodon_standin::{Options, Profile};
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::exactly_once::{app_for, PROFILES};
use crate::helpers::{spawn_app_with, Format, TestApp, FORMATS};

const ROUTE: &str = "POST /api/v1/statuses";

fn software(profile: Profile) -> &'static str {
    match profile {
        Profile::Mastodon => "mastodon",
        Profile::GoToSocial => "gotosocial",
        Profile::Takahe => "takahe",
        Profile::Hollo => "hollo",
        Profile::Snac => "snac",
        Profile::Mitra => "mitra",
    }
}

/// A sidecar on `profile` with a pinned token, and its capabilities overridden by `tweak`.
async fn app_with_caps(
    profile: Profile,
    tweak: impl FnOnce(&mut mastodon_sidecar::mastodon::CapabilityOverrides),
) -> TestApp {
    let app = spawn_app_with(Options::for_profile(profile), |s| {
        let main = s.connections.get_mut("main").unwrap();
        main.access_token = Some(SecretString::from("tok"));
        tweak(&mut main.capabilities);
    })
    .await;
    app.standin.seed_user_token("tok", "read write");
    app
}

#[tokio::test]
async fn init_names_each_servers_software_read_from_nodeinfo_on_the_configured_instance() {
    for profile in PROFILES {
        let app = app_for(profile).await;
        let init = app.call(Format::Json, "init", json!({})).await;
        assert_eq!(init.status, 200, "{profile:?}: {}", init.body);
        let v = init.value();
        assert_eq!(
            v["instance"]["software"]["name"],
            software(profile),
            "{profile:?}: {v}"
        );
        // v2 fails on Takahē (500 HTML), Hollo (404 text) and snac (absent): v1 answered.
        assert!(
            v["instance"]["max_characters"].is_u64(),
            "{profile:?}: no limit read: {v}"
        );
        assert!(
            v["instance"]["capabilities"]["honours_idempotency_key"].is_boolean(),
            "{profile:?}: {v}"
        );
    }
}

#[tokio::test]
async fn the_whole_flow_works_on_every_server_with_the_shipped_defaults() {
    for profile in PROFILES {
        let app = spawn_app_with(Options::for_profile(profile), |s| {
            let main = s.connections.get_mut("main").unwrap();
            // The shipped defaults, not the test harness's.
            main.scopes =
                mastodon_sidecar::config::ConnectionSettings::for_instance(main.instance.clone())
                    .scopes;
        })
        .await;
        app.connect_account(Format::Json).await;
        for format in FORMATS {
            let me = app.call(format, "verifyCredentials", json!({})).await;
            assert_eq!(me.status, 200, "{profile:?} {format:?}: {}", me.body);
            let posted = app
                .call(
                    format,
                    "postStatus",
                    json!({"status": format!("hello from {format:?}")}),
                )
                .await;
            assert_eq!(
                posted.status, 200,
                "{profile:?} {format:?}: {}",
                posted.body
            );
        }
        let init = app.call(Format::Json, "init", json!({})).await;
        assert_eq!(
            init.value()["user_token"],
            true,
            "{profile:?}: {}",
            init.body
        );
        let revoked = app.call(Format::Json, "revokeToken", json!({})).await;
        assert_eq!(revoked.status, 200, "{profile:?}: {}", revoked.body);
        let after = app.call(Format::Json, "verifyCredentials", json!({})).await;
        assert_eq!(
            after.code(),
            "credentials_missing",
            "{profile:?}: {}",
            after.body
        );
        assert_eq!(app.standin.statuses().len(), 4, "{profile:?}");
    }
}

#[tokio::test]
async fn what_a_server_would_drop_is_refused_before_anything_is_sent() {
    let cases: [(Profile, Value, &str); 6] = [
        (
            Profile::Mitra,
            json!({"status": "a", "visibility": "unlisted"}),
            "unlisted",
        ),
        (
            Profile::Mitra,
            json!({"status": "a", "spoiler_text": "cw"}),
            "spoiler_text",
        ),
        (
            Profile::Takahe,
            json!({"status": "a", "scheduled_at": "2030-01-01T00:00:00Z"}),
            "scheduled_at",
        ),
        (
            Profile::Hollo,
            json!({"status": "a", "scheduled_at": "2030-01-01T00:00:00Z"}),
            "scheduled_at",
        ),
        (
            Profile::Mitra,
            json!({"status": "a", "scheduled_at": "2030-01-01T00:00:00Z"}),
            "scheduled_at",
        ),
        (
            Profile::Takahe,
            json!({"status": "a", "language": "de"}),
            "language",
        ),
    ];
    for (profile, params, named) in cases {
        let app = app_for(profile).await;
        for format in FORMATS {
            let refused = app.call(format, "postStatus", params.clone()).await;
            assert_eq!(
                refused.code(),
                "validation_failed",
                "{profile:?} {format:?}: {}",
                refused.body
            );
            assert!(
                refused.body.contains(named),
                "{profile:?}: {}",
                refused.body
            );
        }
        assert_eq!(app.standin.hits(ROUTE), 0, "{profile:?}: sent anyway");
    }
}

#[tokio::test]
async fn mastodon_schedules_and_gotosocials_own_visibility_passes() {
    let app = app_for(Profile::Mastodon).await;
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(2);
    let at = later
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let scheduled = app
        .call(
            Format::Json,
            "postStatus",
            json!({"status": "later", "scheduled_at": at}),
        )
        .await;
    assert_eq!(scheduled.status, 200, "{}", scheduled.body);
    assert!(
        scheduled.value()["params"].is_object(),
        "a ScheduledStatus: {}",
        scheduled.body
    );

    let gts = app_for(Profile::GoToSocial).await;
    let mutuals = gts
        .call(
            Format::Json,
            "postStatus",
            json!({"status": "friends", "visibility": "mutuals_only"}),
        )
        .await;
    assert_eq!(mutuals.status, 200, "{}", mutuals.body);
    assert_eq!(mutuals.value()["visibility"], "mutuals_only");
}

#[tokio::test]
async fn a_parameter_the_server_changed_is_reported_and_never_posted_twice() {
    // A Mitra the sidecar wrongly believes keeps `unlisted`: the answer shows public.
    let app = app_with_caps(Profile::Mitra, |c| c.unlisted = Some(true)).await;
    for attempt in 0..2 {
        let answer = app
            .call_with(
                Format::Soap11,
                "postStatus",
                json!({"status": "quiet", "visibility": "unlisted"}),
                &[("activityid", "esb-unlisted")],
            )
            .await;
        assert_eq!(
            answer.code(),
            "upstream_ignored",
            "attempt {attempt}: {}",
            answer.body
        );
        assert!(answer.body.contains("stored as"), "{}", answer.body);
    }
    assert_eq!(app.standin.statuses().len(), 1);
    assert_eq!(
        app.standin.hits(ROUTE),
        1,
        "the repeat was answered from the ledger"
    );

    // Takahē turns a reply to an unknown status into a non-reply.
    let takahe = app_for(Profile::Takahe).await;
    let reply = takahe
        .call(
            Format::Json,
            "postStatus",
            json!({"status": "re", "in_reply_to_id": "999"}),
        )
        .await;
    assert_eq!(reply.code(), "upstream_ignored", "{}", reply.body);
    assert!(reply.body.contains("in_reply_to_id"), "{}", reply.body);
}

#[tokio::test]
async fn a_poll_reaches_a_form_only_server() {
    let app = app_for(Profile::Snac).await;
    let poll = app
        .call(
            Format::Soap12,
            "postStatus",
            json!({"status": "which?", "poll": {"options": ["a", "b"], "expires_in": 3600}}),
        )
        .await;
    assert_eq!(poll.status, 200, "{}", poll.body);
    let created = &app.standin.statuses()[0];
    assert_eq!(
        created["poll"]["options"].as_array().map(Vec::len),
        Some(2),
        "{created}"
    );
}

#[tokio::test]
async fn a_content_refusal_with_400_is_validation_failed_with_the_servers_words() {
    // Takahē refuses an over-long status with 400; the sidecar, told not to check, lets it decide.
    let app = app_with_caps(Profile::Takahe, |c| {
        c.length_rule = Some(mastodon_sidecar::mastodon::LengthRule::NotEnforced)
    })
    .await;
    let long = app
        .call(
            Format::Json,
            "postStatus",
            json!({"status": "x".repeat(600)}),
        )
        .await;
    assert_eq!(long.code(), "validation_failed", "{}", long.body);
    assert!(long.body.contains("Status is too long"), "{}", long.body);
    // Mitra refuses a content type it does not render.
    let mitra = app_for(Profile::Mitra).await;
    let plain = mitra
        .call(
            Format::Xml,
            "postStatus",
            json!({"status": "x", "content_type": "text/plain"}),
        )
        .await;
    assert_eq!(plain.code(), "validation_failed", "{}", plain.body);
    assert!(
        plain.body.contains("unsupported content type"),
        "{}",
        plain.body
    );
}

#[tokio::test]
async fn each_server_is_held_to_its_own_length_rule() {
    let url = format!("https://example.org/{}", "a".repeat(480));
    // GoToSocial counts the URL whole: refused before sending.
    let gts = app_for(Profile::GoToSocial).await;
    let init = gts.call(Format::Json, "init", json!({})).await;
    let max = init.value()["instance"]["max_characters"].as_u64().unwrap();
    let text = format!("{} {url}", "x".repeat(max as usize - 400));
    let refused = gts
        .call(Format::Json, "postStatus", json!({"status": text}))
        .await;
    assert_eq!(refused.code(), "validation_failed", "{}", refused.body);
    assert_eq!(gts.standin.hits(ROUTE), 0);
    // Mastodon counts it as 23: posted.
    let mastodon = app_for(Profile::Mastodon).await;
    let text = format!("{} {url}", "x".repeat(400));
    let posted = mastodon
        .call(Format::Json, "postStatus", json!({"status": text}))
        .await;
    assert_eq!(posted.status, 200, "{}", posted.body);
    // Hollo advertises a limit it does not enforce: the sidecar does not refuse beyond it.
    let hollo = app_for(Profile::Hollo).await;
    let long = hollo
        .call(
            Format::Json,
            "postStatus",
            json!({"status": "y".repeat(12_000)}),
        )
        .await;
    assert_eq!(long.status, 200, "{}", long.body);
}

#[tokio::test]
async fn replies_to_a_missing_status_do_not_open_the_breaker_for_everyone() {
    // Hollo answers a reply to a missing status with a 500 and an empty body.
    let app = app_for(Profile::Hollo).await;
    for n in 0..4 {
        let bad = app
            .call(
                Format::Json,
                "postStatus",
                json!({"status": format!("re {n}"), "in_reply_to_id": "does-not-exist"}),
            )
            .await;
        assert_eq!(bad.code(), "upstream_unavailable", "{}", bad.body);
    }
    let fine = app
        .call(Format::Json, "postStatus", json!({"status": "still here"}))
        .await;
    assert_eq!(fine.status, 200, "the breaker opened: {}", fine.body);
}

#[tokio::test]
async fn a_cached_limit_that_would_refuse_a_post_is_read_again_first() {
    let app = app_for(Profile::Mastodon).await;
    let init = app.call(Format::Json, "init", json!({})).await;
    assert_eq!(
        init.value()["instance"]["max_characters"],
        500,
        "{}",
        init.body
    );
    let crate::helpers::TestApp {
        standin,
        store_dir,
        settings,
        shutdown,
        ..
    } = app;
    shutdown.stop().await;
    // The stored probe says 10 characters, as if the administrator had raised the limit since.
    {
        let (store, _) = mastodon_sidecar::store::open(&settings.store)
            .await
            .unwrap();
        let mut info = store
            .instance("main")
            .await
            .unwrap()
            .expect("a stored probe");
        info.max_characters = Some(10);
        info.probed_at -= 60;
        store.put_instance("main", &info).await.unwrap();
        store.close().await.unwrap();
    }
    let app = crate::helpers::start(standin, store_dir, settings).await;
    let probes = app.standin.hits("GET /api/v2/instance");
    let posted = app
        .call(
            Format::Json,
            "postStatus",
            json!({"status": "x".repeat(100)}),
        )
        .await;
    assert_eq!(
        posted.status, 200,
        "refused on a stale limit: {}",
        posted.body
    );
    assert_eq!(
        app.standin.hits("GET /api/v2/instance"),
        probes + 1,
        "read again once"
    );
    // A post the fresh limit refuses is refused, without another look (it was just read).
    let long = app
        .call(
            Format::Json,
            "postStatus",
            json!({"status": "x".repeat(600)}),
        )
        .await;
    assert_eq!(long.code(), "validation_failed", "{}", long.body);
    assert!(long.body.contains("500"), "{}", long.body);
    assert_eq!(app.standin.hits("GET /api/v2/instance"), probes + 1);
}

//! The declared operations (`operations!` in src/operations/mod.rs) that are one call to the server:
//! routed from their declaration, their parameters checked from their struct, in every format.

use mastodon_standin::Options;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, Format, TestApp, FORMATS};

async fn app() -> TestApp {
    let app = spawn_app_with(Options::default(), |s| {
        let main = s.connections.get_mut("main").unwrap();
        main.access_token = Some(SecretString::from("tok"));
    })
    .await;
    app.standin.seed_user_token("tok", "read write");
    app
}

/// A list as the formats give it back: XML gives one item as an object, none as nothing.
fn items(page: &Value) -> Vec<Value> {
    match &page["items"] {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        one => vec![one.clone()],
    }
}

#[tokio::test]
async fn get_instance_answers_the_servers_instance_in_every_format() {
    let app = app().await;
    for format in FORMATS {
        let answer = app.call(format, "getInstance", json!({})).await;
        assert_eq!(answer.status, 200, "{format:?}: {}", answer.body);
        let instance = answer.value();
        assert!(
            instance["domain"].is_string() || instance["uri"].is_string(),
            "{format:?}: {instance}"
        );
    }
    assert!(app.standin.hits("GET /api/v2/instance") >= 4);
}

#[tokio::test]
async fn an_accounts_statuses_come_back_as_a_page_of_items_in_every_format() {
    let app = app().await;
    let posted = app
        .call(Format::Json, "postStatus", json!({"status": "page me"}))
        .await;
    assert_eq!(posted.status, 200, "{}", posted.body);
    let account = app
        .call(Format::Json, "verifyCredentials", json!({}))
        .await
        .value();
    let id = account["id"].as_str().expect("an account id").to_owned();
    for format in FORMATS {
        let answer = app
            .call(
                format,
                "getAccountStatuses",
                json!({"id": id, "limit": 5, "exclude_replies": true}),
            )
            .await;
        assert_eq!(answer.status, 200, "{format:?}: {}", answer.body);
        let page = answer.value();
        let found = items(&page);
        assert_eq!(found.len(), 1, "{format:?}: {page}");
        assert_eq!(
            found[0]["content"].as_str().map(|c| c.contains("page me")),
            Some(true),
            "{format:?}: {page}"
        );
    }
    let sent = app
        .standin
        .last_body("GET /api/v1/accounts/:id/statuses")
        .expect("the route was called");
    let limit = &sent["limit"];
    assert!(limit == "5" || limit == 5, "{sent}");
    let exclude = &sent["exclude_replies"];
    assert!(exclude == "true" || exclude == true, "{sent}");
}

#[tokio::test]
async fn a_missing_required_parameter_is_refused_before_anything_is_sent() {
    let app = app().await;
    for format in FORMATS {
        // SOAP 1.1 answers every fault with 500, as its specification says.
        let refused = if matches!(format, Format::Soap11) {
            500
        } else {
            400
        };
        let answer = app
            .call(format, "getAccountStatuses", json!({"limit": 2}))
            .await;
        assert_eq!(answer.status, refused, "{format:?}: {}", answer.body);
        let e = answer.value();
        assert_eq!(e["code"], "invalid_request", "{format:?}");
        assert!(
            e["detail"].as_str().unwrap().contains("`id`"),
            "{format:?}: {e}"
        );
        let answer = app
            .call(format, "getAccountStatuses", json!({"id": ""}))
            .await;
        assert_eq!(
            answer.status, refused,
            "{format:?}: empty is missing: {}",
            answer.body
        );
        assert_eq!(answer.code(), "invalid_request", "{format:?}");
    }
    assert_eq!(app.standin.hits("GET /api/v1/accounts/:id/statuses"), 0);
}

#[tokio::test]
async fn an_id_cannot_name_another_route() {
    let app = app().await;
    let before = app.standin.hits("GET /api/v1/accounts/verify_credentials");
    let answer = app
        .call(
            Format::Json,
            "getAccountStatuses",
            json!({"id": "../verify_credentials?x=#"}),
        )
        .await;
    // Whatever the server makes of the encoded id, it is one segment of this route.
    assert_ne!(answer.status, 500, "{}", answer.body);
    assert_eq!(
        app.standin.hits("GET /api/v1/accounts/verify_credentials"),
        before
    );
    let answer = app
        .call(Format::Json, "getAccountStatuses", json!({"id": ".."}))
        .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.code(), "invalid_request");
}

#[tokio::test]
async fn followers_are_paged_by_the_servers_cursors_in_every_format() {
    let app = app().await;
    let me = mastodon_standin::ACCOUNT_ID;
    for name in ["ann", "ben", "cat"] {
        let id = app.standin.seed_account(name);
        app.standin.seed_follow(&id, me);
    }
    for format in FORMATS {
        let first = app
            .call(format, "getFollowers", json!({"id": me, "limit": 2}))
            .await;
        assert_eq!(first.status, 200, "{format:?}: {}", first.body);
        let first = first.value();
        let mut seen: Vec<String> = items(&first)
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(seen.len(), 2, "{format:?}: {first}");
        // The cursor is the follow's id, which only the Link header gives.
        let cursor = first["next"]["max_id"]
            .as_str()
            .unwrap_or_else(|| panic!("{format:?}: a next cursor in {first}"))
            .to_owned();
        assert!(!seen.contains(&cursor), "{format:?}: not an account id");
        let second = app
            .call(
                format,
                "getFollowers",
                json!({"id": me, "limit": 2, "max_id": cursor}),
            )
            .await
            .value();
        seen.extend(
            items(&second)
                .iter()
                .map(|a| a["id"].as_str().unwrap().to_owned()),
        );
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 3, "{format:?}: every follower once: {second}");
    }
}

#[tokio::test]
async fn a_repeated_write_message_gets_its_first_result_without_a_second_call() {
    let app = app().await;
    let alice = app.standin.seed_account("alice");
    let status = app.standin.seed_status(&alice, "like me");
    for (n, format) in FORMATS.into_iter().enumerate() {
        let activity = format!("esb-fav-{n}");
        for _ in 0..2 {
            let answer = app
                .call_with(
                    format,
                    "favouriteStatus",
                    json!({"id": status}),
                    &[("activityid", &activity)],
                )
                .await;
            assert_eq!(answer.status, 200, "{format:?}: {}", answer.body);
            let v = answer.value();
            assert!(
                v["favourited"] == true || v["favourited"] == "true",
                "{format:?}: {v}"
            );
        }
        assert_eq!(
            app.standin.hits("POST /api/v1/statuses/:id/favourite"),
            n + 1,
            "{format:?}: one call per message"
        );
    }
}

#[tokio::test]
async fn notifications_are_filtered_by_type_in_every_format() {
    let app = app().await;
    let bob = app.standin.seed_account("bob");
    let status = app.standin.seed_status(&bob, "hello @sidecar");
    app.standin.seed_follow(&bob, mastodon_standin::ACCOUNT_ID);
    for format in FORMATS {
        let answer = app
            .call(format, "listNotifications", json!({"types": ["mention"]}))
            .await;
        assert_eq!(answer.status, 200, "{format:?}: {}", answer.body);
        let page = answer.value();
        let found = items(&page);
        assert!(!found.is_empty(), "{format:?}: {page}");
        for n in &found {
            assert_eq!(n["type"], "mention", "{format:?}: {n}");
            assert_eq!(n["status"]["id"], status.as_str(), "{format:?}: {n}");
        }
    }
}

/// `getBookmarks` and `getFavourites`: newest mark first, paged by the mark's own id (Mastodon pages
/// `/api/v1/bookmarks` by `Bookmark#id`, not by the status's), so the order differs from the statuses'
/// and the cursor is no status id; each status once across the pages, in every format.
#[tokio::test]
async fn bookmarks_and_favourites_come_newest_mark_first_paged_by_the_marks_id_in_every_format() {
    let app = app().await;
    let alice = app.standin.seed_account("alice");
    let statuses: Vec<String> = (0..3)
        .map(|n| app.standin.seed_status(&alice, &format!("mark me {n}")))
        .collect();
    // Marked in the order 2, 0, 1: the newest mark is on status 1.
    let order = [&statuses[2], &statuses[0], &statuses[1]];
    for (mark, op) in [
        ("bookmarkStatus", "getBookmarks"),
        ("favouriteStatus", "getFavourites"),
    ] {
        for id in order {
            let marked = app.call(Format::Json, mark, json!({"id": id})).await;
            assert_eq!(marked.status, 200, "{mark}: {}", marked.body);
        }
        for format in FORMATS {
            let first = app.call(format, op, json!({"limit": 2})).await;
            assert_eq!(first.status, 200, "{op} {format:?}: {}", first.body);
            let first = first.value();
            let ids = |page: &Value| -> Vec<String> {
                items(page)
                    .iter()
                    .map(|s| s["id"].as_str().unwrap().to_owned())
                    .collect()
            };
            assert_eq!(
                ids(&first),
                vec![statuses[1].clone(), statuses[0].clone()],
                "{op} {format:?}: newest mark first: {first}"
            );
            let cursor = first["next"]["max_id"]
                .as_str()
                .unwrap_or_else(|| panic!("{op} {format:?}: a next cursor in {first}"))
                .to_owned();
            assert!(
                !statuses.contains(&cursor),
                "{op} {format:?}: the cursor is the mark's id, not a status id"
            );
            let second = app
                .call(format, op, json!({"limit": 2, "max_id": cursor}))
                .await;
            assert_eq!(second.status, 200, "{op} {format:?}: {}", second.body);
            let second = second.value();
            assert_eq!(
                ids(&second),
                vec![statuses[2].clone()],
                "{op} {format:?}: the oldest mark on the second page: {second}"
            );
        }
    }
    // One request per page: two pages in four formats.
    assert_eq!(app.standin.hits("GET /api/v1/bookmarks"), 8);
    assert_eq!(app.standin.hits("GET /api/v1/favourites"), 8);
}

/// A flag as the formats give it back: JSON a boolean, XML and SOAP its text.
fn flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

/// The undo operations, rescheduling, voting, list membership and deletions, in every format: each
/// answers what the server answered, and the server's state shows it was done (read back in JSON).
#[tokio::test]
async fn undo_reschedule_vote_and_list_operations_change_the_servers_state_in_every_format() {
    let app = app().await;
    let alice = app.standin.seed_account("alice");
    for format in FORMATS {
        let at = |what: &str| format!("{format:?}: {what}");
        let call = |op: &'static str, params: Value| {
            let app = &app;
            async move {
                let answer = app.call(format, op, params).await;
                assert_eq!(answer.status, 200, "{op} {format:?}: {}", answer.body);
                answer.value()
            }
        };
        // Favourite, boost, bookmark and their undo, on someone else's status.
        let theirs = app.standin.seed_status(&alice, "something to like");
        for (done, undone, field) in [
            ("favouriteStatus", "unfavouriteStatus", "favourited"),
            ("reblogStatus", "unreblogStatus", "reblogged"),
            ("bookmarkStatus", "unbookmarkStatus", "bookmarked"),
        ] {
            call(done, json!({"id": theirs})).await;
            let back = app
                .call(Format::Json, "getStatus", json!({"id": theirs}))
                .await
                .value();
            assert_eq!(back[field], true, "{}", at(done));
            let answer = call(undone, json!({"id": theirs})).await;
            assert_eq!(answer["id"], theirs.as_str(), "{}", at(undone));
            let back = app
                .call(Format::Json, "getStatus", json!({"id": theirs}))
                .await
                .value();
            assert_eq!(back[field], false, "{}", at(undone));
        }
        // Pin and unpin one of the account's own; then delete it.
        let mine = app
            .call(
                Format::Json,
                "postStatus",
                json!({"status": format!("pin me {format:?}")}),
            )
            .await
            .value()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            flag(&call("pinStatus", json!({"id": mine})).await["pinned"]),
            Some(true),
            "{}",
            at("pinStatus")
        );
        assert_eq!(
            flag(&call("unpinStatus", json!({"id": mine})).await["pinned"]),
            Some(false),
            "{}",
            at("unpinStatus")
        );
        let deleted = call("deleteStatus", json!({"id": mine})).await;
        assert_eq!(deleted["id"], mine.as_str(), "{}", at("deleteStatus"));
        let gone = app
            .call(Format::Json, "getStatus", json!({"id": mine}))
            .await;
        assert_eq!(gone.status, 404, "{}", at("deleted"));

        // Reschedule a scheduled status.
        let scheduled = app
            .call(
                Format::Json,
                "postStatus",
                json!({"status": "later", "scheduled_at": "2099-01-01T00:00:00.000Z"}),
            )
            .await
            .value()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let moved = call(
            "rescheduleStatus",
            json!({"id": scheduled, "scheduled_at": "2099-06-01T12:00:00.000Z"}),
        )
        .await;
        assert!(
            moved["scheduled_at"]
                .as_str()
                .is_some_and(|t| t.starts_with("2099-06-01T12:00:00")),
            "{}: {moved}",
            at("rescheduleStatus")
        );

        // Vote in someone else's poll.
        let with_poll = app.standin.seed_status_with(
            &alice,
            mastodon_standin::SeedStatus {
                text: "pick one".into(),
                poll: Some((vec!["tea".into(), "coffee".into()], 3600, false)),
                ..Default::default()
            },
        );
        let poll = app
            .call(Format::Json, "getStatus", json!({"id": with_poll}))
            .await
            .value()["poll"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let voted = call("votePoll", json!({"id": poll, "choices": ["1"]})).await;
        assert_eq!(
            flag(&voted["voted"]),
            Some(true),
            "{}: {voted}",
            at("votePoll")
        );

        // Follow, put in a list, take out, unfollow, delete the list.
        call("followAccount", json!({"id": alice})).await;
        let list = call("createList", json!({"title": format!("list {format:?}")})).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        call(
            "addListAccounts",
            json!({"id": list, "account_ids": [alice]}),
        )
        .await;
        let members = app
            .call(Format::Json, "getListAccounts", json!({"id": list}))
            .await
            .value();
        assert_eq!(
            items(&members).len(),
            1,
            "{}: {members}",
            at("addListAccounts")
        );
        call(
            "removeListAccounts",
            json!({"id": list, "account_ids": [alice]}),
        )
        .await;
        let members = app
            .call(Format::Json, "getListAccounts", json!({"id": list}))
            .await
            .value();
        assert!(
            items(&members).is_empty(),
            "{}: {members}",
            at("removeListAccounts")
        );
        let unfollowed = call("unfollowAccount", json!({"id": alice})).await;
        assert_eq!(
            flag(&unfollowed["following"]),
            Some(false),
            "{}: {unfollowed}",
            at("unfollowAccount")
        );
        call("deleteList", json!({"id": list})).await;
        let gone = app.call(Format::Json, "getList", json!({"id": list})).await;
        assert_eq!(gone.status, 404, "{}", at("deleteList"));
    }
    // Each was one call to the server per format.
    for route in [
        "POST /api/v1/statuses/:id/unfavourite",
        "POST /api/v1/statuses/:id/unreblog",
        "POST /api/v1/statuses/:id/unbookmark",
        "POST /api/v1/statuses/:id/unpin",
        "DELETE /api/v1/statuses/:id",
        "PUT /api/v1/scheduled_statuses/:id",
        "POST /api/v1/polls/:id/votes",
        "POST /api/v1/lists/:id/accounts",
        "DELETE /api/v1/lists/:id/accounts",
        "POST /api/v1/accounts/:id/unfollow",
        "DELETE /api/v1/lists/:id",
    ] {
        assert_eq!(app.standin.hits(route), FORMATS.len(), "{route}");
    }
}

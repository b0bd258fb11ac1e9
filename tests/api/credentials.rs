//! Credentials with the embedded store: sealed at rest, the redirect flow's callback, the terminal
//! flow, revocation and the background check.

use std::time::Duration;

use mastodon_sidecar::store::seal::Sealer;
use mastodon_sidecar::store::{PendingAuthorization, SqliteStore, Store};
use mastodon_standin::Options;
use secrecy::ExposeSecret;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with, start, Format, TestApp};

const CALLBACK: &str = "https://sidecar.example/oauth/callback";

/// A sidecar whose connection registers the sidecar's own callback as its redirect URI.
async fn app_with_callback() -> TestApp {
    spawn_app_with(Options::default(), |s| {
        s.connections.get_mut("main").unwrap().redirect_uri = CALLBACK.into();
    })
    .await
}

/// Approves at the stand-in and returns the query Mastodon sends to the callback.
async fn approve_for_callback(app: &TestApp) -> (String, String) {
    let auth = app
        .call(Format::Json, "authorizeUrl", json!({}))
        .await
        .value();
    let response = app
        .client
        .get(auth["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(CALLBACK));
    (
        location.query().unwrap().to_owned(),
        auth["state"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn the_callback_connects_the_account_once_and_names_it_without_the_token() {
    let app = app_with_callback().await;
    app.call(Format::Json, "createApp", json!({})).await;
    let (query, _) = approve_for_callback(&app).await;
    let page = app.get(&format!("/oauth/callback?{query}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.content_type.starts_with("text/html"));
    assert!(page.body.contains("@sidecar"), "{}", page.body);
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    let token = app
        .standin
        .last_header("GET /api/v1/accounts/verify_credentials", "authorization")
        .unwrap();
    assert!(!page.body.contains(token.trim_start_matches("Bearer ")));
    assert_eq!(
        app.call(Format::Json, "verifyCredentials", json!({}))
            .await
            .status,
        200
    );

    let replay = app.get(&format!("/oauth/callback?{query}")).await;
    assert_eq!(replay.status, 400);
    assert!(replay.body.contains("Already used"), "{}", replay.body);
}

#[tokio::test]
async fn an_unknown_or_denied_callback_stores_nothing_and_says_which() {
    let app = app_with_callback().await;
    app.call(Format::Json, "createApp", json!({})).await;
    let unknown = app.get("/oauth/callback?code=abc&state=forged").await;
    assert_eq!(unknown.status, 400);
    assert!(
        unknown.body.contains("Unknown authorization"),
        "{}",
        unknown.body
    );

    let auth = app
        .call(Format::Json, "authorizeUrl", json!({}))
        .await
        .value();
    let state = auth["state"].as_str().unwrap();
    let denied = app
        .get(&format!(
            "/oauth/callback?error=access_denied&error_description=no&state={state}"
        ))
        .await;
    assert_eq!(denied.status, 400);
    assert!(denied.body.contains("denied"), "{}", denied.body);
    assert_eq!(app.standin.hits("POST /oauth/token"), 0);
    assert_eq!(
        app.call(Format::Json, "verifyCredentials", json!({}))
            .await
            .code(),
        "credentials_missing"
    );
}

#[tokio::test]
async fn an_expired_callback_is_refused_as_expired() {
    let app = app_with_callback().await;
    app.call(Format::Json, "createApp", json!({})).await;
    // Another handle on the same file, with the key the sidecar made beside it.
    let db = app.store_dir.path().join("sidecar.db");
    let key = mastodon_sidecar::store::seal::read_key_file(&db.with_extension("key")).unwrap();
    let store = SqliteStore::open(&db, key).unwrap();
    store
        .put_pending(&PendingAuthorization {
            state: "old-state".into(),
            connection: "main".into(),
            instance: app.settings.connections["main"].instance.to_string(),
            code_verifier: None,
            redirect_uri: CALLBACK.into(),
            scope: "read write".into(),
            expires_at: mastodon_sidecar::clock::unix_now() - 1,
        })
        .await
        .unwrap();
    let expired = app.get("/oauth/callback?code=abc&state=old-state").await;
    assert_eq!(expired.status, 400);
    assert!(expired.body.contains("expired"), "{}", expired.body);
    assert_eq!(app.standin.hits("POST /oauth/token"), 0);
}

#[tokio::test]
async fn the_database_file_holds_no_secret_and_its_key_file_is_private() {
    let app = spawn_app().await;
    app.connect_account(Format::Json).await;
    app.call(Format::Json, "authorizeUrl", json!({})).await; // leaves a verifier pending
    let client_secret = app.standin.apps()[0]["client_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = app
        .standin
        .last_header("GET /api/v1/accounts/verify_credentials", "authorization")
        .map(|h| h.trim_start_matches("Bearer ").to_owned());
    let _ = app.call(Format::Json, "verifyCredentials", json!({})).await;
    let token = token.or_else(|| {
        app.standin
            .last_header("GET /api/v1/accounts/verify_credentials", "authorization")
            .map(|h| h.trim_start_matches("Bearer ").to_owned())
    });
    let token = token.unwrap();
    let dir = app.store_dir.clone();
    app.shutdown.stop().await;
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "key") {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    assert!(bytes.len() > 4096, "the database was read");
    for secret in [&client_secret, &token] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a secret is in the database in plain text"
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = dir.path().join("sidecar.key");
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}

#[tokio::test]
async fn a_store_sealed_with_another_key_is_refused_and_left_untouched() {
    let app = spawn_app().await;
    app.connect_account(Format::Json).await;
    let TestApp {
        standin,
        store_dir,
        mut settings,
        shutdown,
        ..
    } = app;
    shutdown.stop().await;
    let db = store_dir.path().join("sidecar.db");
    let before = rows(&db);
    assert!(
        before.iter().any(|r| r.starts_with("tokens|")),
        "{before:?}"
    );
    settings.store.key = Some(Sealer::generate_key());
    let refused = mastodon_sidecar::Application::build(settings.clone())
        .await
        .err()
        .expect("refused");
    assert!(
        refused.to_string().contains("sealed with another key"),
        "{refused}"
    );
    // Compared row by row: opening the file may fold SQLite's WAL into it, which changes its bytes
    // but not its content.
    assert_eq!(rows(&db), before);
    // With the right key it works again.
    settings.store.key = None;
    let app = start(standin, store_dir, settings).await;
    assert_eq!(
        app.call(Format::Json, "verifyCredentials", json!({}))
            .await
            .status,
        200
    );
}

/// Every row of every table, as text (sealed values included, as stored).
fn rows(db: &std::path::Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut out = Vec::new();
    for table in ["meta", "apps", "tokens", "pending_authorizations"] {
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
        let columns = stmt.column_count();
        let mut query = stmt.query([]).unwrap();
        while let Some(row) = query.next().unwrap() {
            let values: Vec<String> = (0..columns)
                .map(|i| format!("{:?}", row.get_ref(i).unwrap()))
                .collect();
            out.push(format!("{table}|{}", values.join("|")));
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn rotate_key_reseals_everything_and_the_old_key_stops_working() {
    let app = spawn_app().await;
    app.connect_account(Format::Json).await;
    let TestApp {
        standin,
        store_dir,
        settings,
        shutdown,
        ..
    } = app;
    shutdown.stop().await;
    let key_file = store_dir.path().join("sidecar.key");
    let old_key = std::fs::read_to_string(&key_file).unwrap();
    let mut out = Vec::new();
    mastodon_sidecar::commands::rotate_key(settings.clone(), None, &mut out)
        .await
        .unwrap();
    let out = String::from_utf8(out).unwrap();
    // The client secret, the user token, and the spent PKCE verifier kept to recognise replays.
    assert!(out.contains("Re-sealed 3 secrets"), "{out}");
    assert_ne!(std::fs::read_to_string(&key_file).unwrap(), old_key);
    let old = Sealer::from_base64(&old_key).unwrap();
    assert!(SqliteStore::open(&store_dir.path().join("sidecar.db"), old).is_err());
    let app = start(standin, store_dir, settings).await;
    assert_eq!(
        app.call(Format::Json, "verifyCredentials", json!({}))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn the_authorize_command_connects_an_account_from_a_terminal() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let app = spawn_app().await;
    // Other authorizations are pending (a flow's, another terminal's): the command finishes its own.
    app.call(Format::Json, "createApp", json!({})).await;
    app.call(Format::Json, "authorizeUrl", json!({})).await;
    app.call(Format::Json, "authorizeUrl", json!({})).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sidecar.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = {:?}\n[connections.main]\ninstance = {:?}\nscopes = \"read write\"\n",
            app.settings.store.path.display().to_string(),
            app.standin.url
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mastodon-sidecar"))
        .args(["authorize", "--config"])
        .arg(&config)
        .env_remove("MASTODON_SIDECAR__SERVER__LISTEN")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut transcript = String::new();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let mut line = String::new();
            if stdout.read_line(&mut line).await.unwrap() == 0 {
                panic!("the command ended early: {transcript}");
            }
            transcript.push_str(&line);
            if let Some(url) = line.trim().strip_prefix("http") {
                return format!("http{url}");
            }
        }
    })
    .await
    .expect("the URL is printed");
    let code = app.approve(&url).await;
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{code}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    let mut rest = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut rest)
        .await
        .unwrap();
    assert!(status.success(), "{transcript}{rest}");
    assert!(rest.contains("posts as @sidecar"), "{transcript}{rest}");
    // The server, on the same store, now posts with that token.
    let posted = app
        .call(
            Format::Json,
            "postStatus",
            json!({"status": "from the terminal"}),
        )
        .await;
    assert_eq!(posted.status, 200, "{}", posted.body);
}

#[tokio::test]
async fn revoke_token_revokes_at_mastodon_and_forgets_the_token() {
    for format in [Format::Json, Format::Soap12] {
        let app = spawn_app().await;
        app.connect_account(Format::Json).await;
        let revoked = app.call(format, "revokeToken", json!({})).await;
        assert_eq!(revoked.status, 200, "{}", revoked.body);
        assert_eq!(
            revoked.value()["revoked"].to_string().trim_matches('"'),
            "true"
        );
        assert_eq!(app.standin.hits("POST /oauth/revoke"), 1);
        assert_eq!(
            app.call(format, "verifyCredentials", json!({}))
                .await
                .code(),
            "credentials_missing"
        );
    }
}

#[tokio::test]
async fn a_revoked_token_flips_the_gauge_and_later_calls_fail_fast() {
    let app = spawn_app().await;
    app.connect_account(Format::Json).await;
    assert_eq!(
        app.call(Format::Json, "verifyCredentials", json!({}))
            .await
            .status,
        200
    );
    assert!(app
        .metrics()
        .await
        .contains("mastodon_sidecar_token_valid{connection=\"main\"} 1"));
    app.standin.revoke_all_tokens();
    let refused = app
        .call(Format::Json, "postStatus", json!({"status": "x"}))
        .await;
    assert_eq!(refused.code(), "upstream_rejected");
    assert_eq!(refused.status, 401);
    let hits = app.standin.hits("POST /api/v1/statuses");
    let fast = app
        .call(Format::Xml, "postStatus", json!({"status": "y"}))
        .await;
    assert_eq!(fast.code(), "credentials_missing");
    assert!(
        fast.value()["detail"].as_str().unwrap().contains("revoked"),
        "{}",
        fast.body
    );
    assert_eq!(
        app.standin.hits("POST /api/v1/statuses"),
        hits,
        "failed fast, without calling out"
    );
    assert!(app
        .metrics()
        .await
        .contains("mastodon_sidecar_token_valid{connection=\"main\"} 0"));
    let init = app.call(Format::Json, "init", json!({})).await.value();
    assert_eq!(init["user_token"], false);
    // Authorizing again clears it.
    app.connect_account(Format::Json).await;
    assert_eq!(
        app.call(Format::Json, "verifyCredentials", json!({}))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn the_background_check_notices_a_revocation_without_any_call() {
    let app = spawn_app_with(Options::default(), |s| s.store.health_interval_s = 1).await;
    app.connect_account(Format::Json).await;
    let gauge = |v: u8| format!("mastodon_sidecar_token_valid{{connection=\"main\"}} {v}");
    let wait_for = |text: String| {
        let app = &app;
        async move {
            for _ in 0..100 {
                if app.metrics().await.contains(&text) {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        }
    };
    assert!(wait_for(gauge(1)).await);
    let before = app.standin.hits("GET /api/v1/accounts/verify_credentials");
    app.standin.revoke_all_tokens();
    assert!(wait_for(gauge(0)).await, "the gauge turned 0");
    assert!(app.standin.hits("GET /api/v1/accounts/verify_credentials") > before);
    assert_eq!(
        app.call(Format::Json, "verifyCredentials", json!({}))
            .await
            .code(),
        "credentials_missing"
    );
}

#[tokio::test]
async fn a_shared_store_without_a_key_is_refused_at_start() {
    let mut settings = mastodon_sidecar::config::Settings::default();
    settings.store.url = Some("postgres://sidecar@127.0.0.1:1/none".to_owned().into());
    let e = mastodon_sidecar::store::open(&settings.store)
        .await
        .err()
        .expect("refused");
    assert!(e.to_string().contains("store.key"), "{e}");
    assert!(!e.to_string().contains("postgres://"));
    let _ = Sealer::generate_key().expose_secret().len();
}

#[test]
fn a_configuration_with_a_shared_store_and_its_key_validates() {
    let text = "[store]\nurl = \"postgres://sidecar:pw@127.0.0.1/sidecar\"\nkey_file = \"k\"\n[server]\ncallback_path = \"x\"\n";
    let e = mastodon_sidecar::config::Settings::from_toml_str(
        "t",
        text,
        &std::collections::HashMap::new(),
    )
    .unwrap_err()
    .to_string();
    // Only the callback path is wrong: the shared store with a key file is accepted, and the
    // password is never shown.
    assert_eq!(
        e,
        "t: server.callback_path: must be a path such as /oauth/callback"
    );
}

//! Caller authentication and TLS (contract, sections 2 and 3): API keys in every format, their
//! rights, the paths that need no key, the validation of `[[security.api_keys]]`, HTTPS with a
//! configured certificate, and `mastodon-sidecar hash-key`.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

use mastodon_sidecar::config::Settings;
use mastodon_sidecar::security::ApiKeySettings;
use mastodon_sidecar::Application;
use mastodon_standin::Options;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::helpers::{
    captured_logs, spawn_app_with, test_settings, Answer, Format, TestApp, FORMATS,
};

/// The key of the restricted caller in these tests (`main`, postStatus and verifyCredentials).
const KEY: &str = "mi-key-3f9a1c0b7d2e4f6a8b1c";
const TOKEN: &str = "security-user-token-0c1d";

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn api_key(name: &str, key: &str, connections: &[&str], operations: &[&str]) -> ApiKeySettings {
    ApiKeySettings {
        name: name.into(),
        sha256: sha256_hex(key),
        connections: connections.iter().map(|s| s.to_string()).collect(),
        operations: operations.iter().map(|s| s.to_string()).collect(),
        call_api: Vec::new(),
    }
}

/// A sidecar whose `main` connection holds a user token, with the restricted key configured.
async fn keyed_app(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let app = spawn_app_with(Options::default(), |s| {
        s.connections.get_mut("main").unwrap().access_token = Some(TOKEN.to_owned().into());
        s.security.api_keys = vec![api_key(
            "mi-production",
            KEY,
            &["main"],
            &["postStatus", "verifyCredentials"],
        )];
        tweak(s);
    })
    .await;
    app.standin.seed_user_token(TOKEN, "read write");
    app
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// The status a refusal of `code`'s kind has in `format`, and that SOAP blames the sender.
fn assert_refused(answer: &Answer, format: Format, code: &str, http: u16) {
    assert_eq!(answer.code(), code, "{format:?}: {}", answer.body);
    match format {
        Format::Json | Format::Xml => assert_eq!(answer.status, http, "{format:?}"),
        Format::Soap11 => {
            assert_eq!(answer.status, 500, "{format:?}");
            assert!(answer.body.contains("Client"), "{}", answer.body);
        }
        Format::Soap12 => {
            assert_eq!(answer.status, 400, "{format:?}");
            assert!(answer.body.contains("Sender"), "{}", answer.body);
        }
    }
    match format {
        Format::Json => assert!(answer.content_type.starts_with("application/problem+json")),
        Format::Xml => assert!(answer.content_type.starts_with("application/xml")),
        Format::Soap11 => assert!(answer.content_type.starts_with("text/xml")),
        Format::Soap12 => assert!(answer.content_type.starts_with("application/soap+xml")),
    }
}

#[tokio::test]
async fn a_call_without_a_key_is_unauthenticated_in_every_format() {
    let app = keyed_app(|_| {}).await;
    for format in FORMATS {
        let answer = app.call(format, "verifyCredentials", json!({})).await;
        assert_refused(&answer, format, "unauthenticated", 401);
        assert_eq!(
            answer.header("www-authenticate"),
            Some("Bearer realm=\"mastodon-sidecar\""),
            "{format:?}"
        );
    }
    // A body that does not even decode is still refused for the missing key first.
    let answer = app
        .post_raw(
            "/v1/operations/postStatus",
            &[("content-type", "application/json")],
            "{not json",
        )
        .await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert_eq!(answer.code(), "unauthenticated");
    assert_eq!(
        app.standin.hits("GET /api/v1/accounts/verify_credentials"),
        0
    );
}

#[tokio::test]
async fn a_wrong_key_is_unauthenticated() {
    let app = keyed_app(|_| {}).await;
    let digest = sha256_hex(KEY);
    let wrong_bearer = bearer("not-the-key-at-all-000");
    let digest_bearer = bearer(&digest);
    let attempts: [&[(&str, &str)]; 5] = [
        &[("authorization", &wrong_bearer)],
        &[("x-api-key", "not-the-key-at-all-000")],
        // The digest from the configuration is not the key.
        &[("authorization", &digest_bearer)],
        // Another scheme carries no key.
        &[("authorization", "Basic bWk6a2V5")],
        &[("authorization", "Bearer ")],
    ];
    for headers in attempts {
        for format in FORMATS {
            let answer = app
                .call_with(format, "verifyCredentials", json!({}), headers)
                .await;
            assert_refused(&answer, format, "unauthenticated", 401);
            assert!(answer.header("www-authenticate").is_some());
            assert!(!answer.body.contains(&digest));
        }
    }
}

#[tokio::test]
async fn the_right_key_passes_as_bearer_and_as_x_api_key() {
    let app = keyed_app(|_| {}).await;
    let auth = bearer(KEY);
    let by_bearer: &[(&str, &str)] = &[("authorization", &auth)];
    let by_header: &[(&str, &str)] = &[("x-api-key", KEY)];
    for headers in [by_bearer, by_header] {
        for format in FORMATS {
            let answer = app
                .call_with(format, "verifyCredentials", json!({}), headers)
                .await;
            assert_eq!(answer.status, 200, "{format:?}: {}", answer.body);
            assert!(answer.header("www-authenticate").is_none());
        }
    }
    // Naming the connection it may use is the same.
    let answer = app
        .call_with(
            Format::Json,
            "verifyCredentials",
            json!({"connection": "main"}),
            by_header,
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[tokio::test]
async fn an_operation_outside_the_keys_rights_is_forbidden() {
    let app = keyed_app(|_| {}).await;
    for format in FORMATS {
        let answer = app
            .call_with(format, "createApp", json!({}), &[("x-api-key", KEY)])
            .await;
        assert_refused(&answer, format, "forbidden", 403);
        assert!(answer.header("www-authenticate").is_none());
        assert!(answer.body.contains("mi-production"), "{}", answer.body);
        assert!(!answer.body.contains(KEY));
    }
    assert!(app.standin.apps().is_empty(), "nothing reached Mastodon");
}

#[tokio::test]
async fn a_connection_outside_the_keys_rights_is_forbidden() {
    let app = keyed_app(|s| {
        let other = s.connections["main"].clone();
        s.connections.insert("other".into(), other);
    })
    .await;
    let auth = bearer(KEY);
    let headers: &[(&str, &str)] = &[("authorization", &auth)];
    for format in FORMATS {
        let answer = app
            .call_with(
                format,
                "verifyCredentials",
                json!({"connection": "other"}),
                headers,
            )
            .await;
        assert_refused(&answer, format, "forbidden", 403);
        // A connection that is not even configured is not this key's either.
        let answer = app
            .call_with(
                format,
                "verifyCredentials",
                json!({"connection": "elsewhere"}),
                headers,
            )
            .await;
        assert_refused(&answer, format, "forbidden", 403);
        // With two connections and none named `default`, a call naming none cannot be told to be
        // on `main`: the key must name it.
        let answer = app
            .call_with(format, "verifyCredentials", json!({}), headers)
            .await;
        assert_refused(&answer, format, "forbidden", 403);
        let answer = app
            .call_with(
                format,
                "verifyCredentials",
                json!({"connection": "main"}),
                headers,
            )
            .await;
        assert_eq!(answer.status, 200, "{format:?}: {}", answer.body);
    }
}

#[tokio::test]
async fn the_default_connection_counts_when_the_call_names_none() {
    // `default` is the default connection here, and the key may use only `main`.
    let app = keyed_app(|s| {
        let other = s.connections["main"].clone();
        s.connections.insert("default".into(), other);
    })
    .await;
    let answer = app
        .call_with(
            Format::Json,
            "verifyCredentials",
            json!({}),
            &[("x-api-key", KEY)],
        )
        .await;
    assert_refused(&answer, Format::Json, "forbidden", 403);
    assert!(answer.body.contains("default"), "{}", answer.body);
}

#[tokio::test]
async fn health_readiness_and_metrics_need_no_key() {
    let app = keyed_app(|_| {}).await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let answer = app.get(path).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
    }
    // The OAuth callback is reached by a browser, which has no key: it answers its own page.
    let answer = app.get("/oauth/callback?code=x&state=unknown").await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(
        answer.content_type.starts_with("text/html"),
        "{}",
        answer.content_type
    );
}

#[tokio::test]
async fn refusals_are_counted_and_logged_with_the_key_name_never_the_key() {
    let key = "log-check-key-7e31c9a0d4b5";
    let app = spawn_app_with(Options::default(), |s| {
        s.security.api_keys = vec![api_key("log-check-caller", key, &["main"], &["init"])];
    })
    .await;
    let answer = app
        .call_with(Format::Json, "verifyCredentials", json!({}), &[])
        .await;
    assert_eq!(answer.status, 401);
    let answer = app
        .call_with(
            Format::Xml,
            "createApp",
            json!({}),
            &[("authorization", &bearer(key))],
        )
        .await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    let metrics = app.metrics().await;
    let counted = |operation: &str, transport: &str, outcome: &str| {
        metrics.lines().any(|l| {
            l.starts_with("mastodon_sidecar_operations_total{")
                && l.contains(&format!("operation=\"{operation}\""))
                && l.contains(&format!("transport=\"{transport}\""))
                && l.contains(&format!("outcome=\"{outcome}\""))
        })
    };
    assert!(
        counted("verifyCredentials", "json", "unauthenticated"),
        "{metrics}"
    );
    assert!(counted("createApp", "xml", "forbidden"), "{metrics}");
    let logs = captured_logs();
    assert!(!logs.contains(key), "the key is in the log");
    assert!(!logs.contains(&sha256_hex(key)), "the digest is in the log");
    let refusal = logs
        .lines()
        .find(|l| l.contains("\"forbidden\"") && l.contains("log-check-caller"))
        .unwrap_or_else(|| panic!("no refusal naming the key in the log"));
    assert!(refusal.contains("createApp"), "{refusal}");
}

#[tokio::test]
async fn a_wildcard_key_may_call_anything() {
    let all = "wildcard-key-5d0e8b2a7c19";
    let app = keyed_app(|s| {
        let other = s.connections["main"].clone();
        s.connections.insert("other".into(), other);
        s.security
            .api_keys
            .push(api_key("ops", all, &["*"], &["*"]));
    })
    .await;
    let headers: &[(&str, &str)] = &[("x-api-key", all)];
    for format in FORMATS {
        for connection in ["main", "other"] {
            let answer = app
                .call_with(
                    format,
                    "verifyCredentials",
                    json!({"connection": connection}),
                    headers,
                )
                .await;
            assert_eq!(
                answer.status, 200,
                "{format:?} {connection}: {}",
                answer.body
            );
        }
    }
    let answer = app
        .call_with(
            Format::Json,
            "createApp",
            json!({"connection": "other"}),
            headers,
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    // Without a connection and no default, the call itself is refused as before, not the key.
    let answer = app
        .call_with(Format::Json, "verifyCredentials", json!({}), headers)
        .await;
    assert_eq!(answer.code(), "invalid_request", "{}", answer.body);
    // The restricted key still may not.
    let answer = app
        .call_with(
            Format::Json,
            "createApp",
            json!({"connection": "main"}),
            &[("x-api-key", KEY)],
        )
        .await;
    assert_eq!(answer.code(), "forbidden", "{}", answer.body);
}

#[tokio::test]
async fn without_keys_nothing_changes() {
    let app = spawn_app_with(Options::default(), |s| {
        s.connections.get_mut("main").unwrap().access_token = Some(TOKEN.to_owned().into());
    })
    .await;
    app.standin.seed_user_token(TOKEN, "read write");
    for format in FORMATS {
        let answer = app.call(format, "verifyCredentials", json!({})).await;
        assert_eq!(answer.status, 200, "{format:?}: {}", answer.body);
        // A key sent anyway is ignored.
        let answer = app
            .call_with(
                format,
                "verifyCredentials",
                json!({}),
                &[("x-api-key", "whatever")],
            )
            .await;
        assert_eq!(answer.status, 200, "{format:?}: {}", answer.body);
    }
}

// --- configuration ---

fn load(text: &str) -> Result<Settings, String> {
    Settings::from_toml_str("t", text, &HashMap::new()).map_err(|e| e.to_string())
}

const CONNECTION: &str = "[connections.main]\ninstance = \"https://m.example\"\n";

fn key_table(name: &str, sha256: &str, connections: &str, operations: &str) -> String {
    format!(
        "[[security.api_keys]]\nname = \"{name}\"\nsha256 = \"{sha256}\"\nconnections = {connections}\noperations = {operations}\n"
    )
}

#[test]
fn api_keys_load_from_the_configuration() {
    let digest = sha256_hex(KEY);
    let text = format!(
        "{CONNECTION}{}{}",
        key_table(
            "mi",
            &digest,
            "[\"main\"]",
            "[\"postStatus\", \"verifyCredentials\"]"
        ),
        key_table(
            "ops",
            &sha256_hex("another-key-000000"),
            "[\"*\"]",
            "[\"*\"]"
        ),
    );
    let s = load(&text).expect("loads");
    assert_eq!(s.security.api_keys.len(), 2);
    assert_eq!(s.security.api_keys[0].name, "mi");
    assert_eq!(
        s.security.api_keys[0].operations,
        ["postStatus", "verifyCredentials"]
    );
    // An upper-case digest is the same digest.
    let upper = format!(
        "{CONNECTION}{}",
        key_table("mi", &digest.to_uppercase(), "[\"*\"]", "[\"*\"]")
    );
    load(&upper).expect("upper-case hex loads");
    // The digest stays out of Debug.
    assert!(!format!("{s:?}").contains(&digest));
}

#[test]
fn api_keys_are_validated_naming_the_key_path() {
    let good = sha256_hex(KEY);
    let cases = [
        (
            key_table("mi", "not-a-digest", "[\"main\"]", "[\"postStatus\"]"),
            "security.api_keys[0].sha256",
            "64 hex",
        ),
        (
            key_table("mi", &good[..63], "[\"main\"]", "[\"postStatus\"]"),
            "security.api_keys[0].sha256",
            "64 hex",
        ),
        (
            key_table("mi", &good, "[\"main\"]", "[\"deleteEverything\"]"),
            "security.api_keys[0].operations",
            "\"deleteEverything\" is not an operation",
        ),
        (
            key_table("mi", &good, "[\"elsewhere\"]", "[\"postStatus\"]"),
            "security.api_keys[0].connections",
            "\"elsewhere\" is not a configured connection",
        ),
        (
            key_table("mi", &good, "[]", "[\"postStatus\"]"),
            "security.api_keys[0].connections",
            "at least one",
        ),
        (
            format!(
                "{}{}",
                key_table("mi", &good, "[\"main\"]", "[\"postStatus\"]"),
                key_table(
                    "mi",
                    &sha256_hex("another-key-000000"),
                    "[\"main\"]",
                    "[\"*\"]"
                )
            ),
            "security.api_keys[1].name",
            "unique",
        ),
        (
            format!(
                "{}{}",
                key_table("a", &good, "[\"main\"]", "[\"postStatus\"]"),
                key_table("b", &good, "[\"main\"]", "[\"*\"]")
            ),
            "security.api_keys[1].sha256",
            "same key",
        ),
        (
            "[[security.api_keys]]\nname = \"mi\"\nconnections = [\"*\"]\noperations = [\"*\"]\n"
                .to_owned(),
            "security.api_keys[0].sha256",
            "is required",
        ),
        (
            format!("[[security.api_keys]]\nsha256 = \"{good}\"\nconnections = [\"*\"]\noperations = [\"*\"]\n"),
            "security.api_keys[0].name",
            "is required",
        ),
        (
            format!("[[security.api_keys]]\nname = \"mi\"\nsha256 = \"{good}\"\nconnections = [\"*\"]\n"),
            "security.api_keys[0].operations",
            "at least one",
        ),
        (
            format!(
                "{}key = \"{KEY}\"\n",
                key_table("mi", &good, "[\"main\"]", "[\"postStatus\"]")
            ),
            "security.api_keys",
            "unknown key",
        ),
    ];
    for (table, key, message) in cases {
        let e = load(&format!("{CONNECTION}{table}")).expect_err(&table);
        let line = e
            .lines()
            .find(|l| l.contains(key))
            .unwrap_or_else(|| panic!("no line names {key}: {e}"));
        assert!(line.starts_with("t: "), "{line}");
        assert!(line.contains(message), "{line}");
        assert!(!e.contains(KEY), "the key is in the message: {e}");
    }
}

#[test]
fn a_non_loopback_listener_needs_keys_or_an_explicit_opt_out() {
    let listen = "[server]\nlisten = \"0.0.0.0:8080\"\n";
    let e = load(&format!("{listen}{CONNECTION}")).unwrap_err();
    assert!(e.contains("server.listen"), "{e}");
    load(&format!(
        "{listen}[security]\nallow_unauthenticated = true\n{CONNECTION}"
    ))
    .expect("opted out");
    let keys = key_table("mi", &sha256_hex(KEY), "[\"main\"]", "[\"*\"]");
    load(&format!("{listen}{CONNECTION}{keys}")).expect("with keys it starts");
}

#[test]
fn tls_files_go_together() {
    let e = load("[server]\ntls_cert = \"cert.pem\"\n").unwrap_err();
    assert!(e.starts_with("t: server.tls_key: "), "{e}");
    let e = load("[server]\ntls_key = \"key.pem\"\n").unwrap_err();
    assert!(e.starts_with("t: server.tls_cert: "), "{e}");
    let s = load("[server]\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n").expect("both");
    assert_eq!(s.server.tls_cert.unwrap().to_str(), Some("cert.pem"));
}

// --- TLS ---

#[tokio::test]
async fn https_with_the_configured_certificate() {
    crate::helpers::logs();
    let standin = mastodon_standin::StandIn::start(Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert_pem = certified.cert.pem();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, &cert_pem).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();
    let mut settings = test_settings(&standin, &dir);
    settings.server.tls_cert = Some(cert_path);
    settings.server.tls_key = Some(key_path);
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => panic!("the sidecar builds with TLS: {e}"),
    };
    let addr = app.local_addr();
    let shutdown = app.shutdown();
    tokio::spawn(app.run_until_stopped());

    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let answer = client
        .get(format!("https://{addr}/healthz"))
        .send()
        .await
        .expect("https answers");
    assert_eq!(answer.status(), 200);
    let answer = client
        .get(format!("https://localhost:{}/readyz", addr.port()))
        .send()
        .await
        .expect("https answers by name");
    assert_eq!(answer.status(), 200);
    // A client that does not trust the certificate is refused during the handshake.
    let stranger = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    assert!(stranger
        .get(format!("https://{addr}/healthz"))
        .send()
        .await
        .is_err());
    // Plain HTTP is not served on the TLS port.
    let plain = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await;
    assert!(plain.map(|r| r.status() != 200).unwrap_or(true));
    shutdown.stop().await;
}

#[tokio::test]
async fn unreadable_or_invalid_tls_files_stop_the_start_naming_the_file() {
    crate::helpers::logs();
    let standin = mastodon_standin::StandIn::start(Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let garbage = dir.path().join("garbage.pem");
    let missing = dir.path().join("missing.pem");
    let other_key = dir.path().join("other-key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    std::fs::write(&garbage, "this is no PEM\n").unwrap();
    std::fs::write(
        &other_key,
        rcgen::KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    let cases = [
        (missing.clone(), key.clone(), missing.clone()),
        (cert.clone(), missing.clone(), missing.clone()),
        (garbage.clone(), key.clone(), garbage.clone()),
        (cert.clone(), garbage.clone(), garbage.clone()),
        (cert.clone(), other_key.clone(), other_key.clone()),
    ];
    for (cert_file, key_file, named) in cases {
        let mut settings = test_settings(&standin, &dir);
        settings.server.tls_cert = Some(cert_file);
        settings.server.tls_key = Some(key_file);
        let message = match Application::build(settings).await {
            Ok(_) => panic!("started with a bad TLS file {}", named.display()),
            Err(e) => e.to_string(),
        };
        assert!(
            message.contains(&named.display().to_string()),
            "{named:?}: {message}"
        );
        assert_eq!(message.lines().count(), 1, "{message}");
    }
}

// --- hash-key ---

fn hash_key(input: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mastodon-sidecar"))
        .arg("hash-key")
        .env_remove("MASTODON_SIDECAR__SERVER__LISTEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn hash_key_prints_the_sha256_of_the_key_on_standard_input() {
    let key = "bXkgc2VjcmV0IGtleSBmb3IgdGhlIHNpZGVjYXI=";
    let out = hash_key(&format!("{key}\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(printed.trim(), sha256_hex(key));
    assert_eq!(printed.trim().len(), 64);
    // What it prints is what the configuration takes, and the key then authenticates.
    let text = format!(
        "{CONNECTION}{}",
        key_table("mi", printed.trim(), "[\"*\"]", "[\"*\"]")
    );
    load(&text).expect("the printed digest loads");
}

#[test]
fn hash_key_refuses_a_short_key() {
    let out = hash_key("too-short\n");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("16"), "{stderr}");
    assert!(out.stdout.is_empty());
    let out = hash_key("");
    assert_eq!(out.status.code(), Some(2));
}

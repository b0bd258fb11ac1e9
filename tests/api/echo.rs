//! A server that repeats its whole request back (method, path, query, headers, body), in an error's
//! JSON, as plain text, as an HTML page or inside a 2xx answer, reaches no caller and no log with a
//! secret: for every operation, every secret kind, every wire format (issue 9, item 2).

use std::collections::BTreeSet;

use mastodon_standin::{Echo, Options};
use serde_json::{json, Value};

use crate::helpers::{captured_logs, spawn_app_with, Answer, Format, TestApp, FORMATS};

/// The error shapes, all a 404: a refusal that no retry, token judgement or ledger lookup hides.
const ERRORS: [Echo; 3] = [Echo::Json(404), Echo::Text(404), Echo::Html(404)];

/// A pinned client secret and token with every character an encoding changes.
const PINNED_ID: &str = "pinned-client-id";
const PINNED_SECRET: &str = "pinned/secret+with spaces&\"quotes\"<x>=9d3e";
const PINNED_TOKEN: &str = "pinned-tok/en+a=b.c~5a7f31";

/// The forms in which a secret could show in an answer or a log line.
fn encodings(secret: &str) -> Vec<String> {
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let json = serde_json::to_string(secret).unwrap();
    let xml = secret
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    let mut all = vec![
        secret.to_owned(),
        form.clone(),
        form.replace('+', "%20"),
        json[1..json.len() - 1].to_owned(),
        xml,
    ];
    all.sort();
    all.dedup();
    all
}

struct Run {
    app: TestApp,
    answers: Vec<(String, Answer)>,
    secrets: BTreeSet<String>,
}

impl Run {
    /// Calls `op` in `format` with the next request to `route` echoed as `echo`.
    async fn echoed(&mut self, op: &str, params: Value, route: &str, echo: Echo, format: Format) {
        self.app.standin.echo_next(route, echo, 1);
        let answer = self.app.call(format, op, params).await;
        self.note_request(route);
        let what = format!("{op} {echo:?} {format:?}");
        if echo == Echo::InAnswer {
            assert!(answer.status < 500, "{what}: {}", answer.body);
        } else {
            // The echo reached the answer, and what it held of secrets was replaced.
            assert!(
                answer.body.contains("ECHO "),
                "{what}: the echo is shown: {}",
                answer.body
            );
        }
        self.answers.push((what, answer));
    }

    /// Every secret the last request to `route` carried, as the stand-in received it.
    fn note_request(&mut self, route: &str) {
        if let Some(body) = self.app.standin.last_body(route) {
            for field in ["client_secret", "code", "code_verifier", "token"] {
                if let Some(v) = body[field].as_str() {
                    self.secrets.insert(v.to_owned());
                }
            }
        }
        if let Some(auth) = self.app.standin.last_header(route, "authorization") {
            self.secrets
                .insert(auth.trim_start_matches("Bearer ").to_owned());
        }
    }

    fn note_server_state(&mut self) {
        self.secrets.extend(self.app.standin.tokens());
        for app in self.app.standin.apps() {
            self.secrets
                .insert(app["client_secret"].as_str().unwrap().to_owned());
        }
    }

    /// authorizeUrl, the browser's approval, and the code.
    async fn authorize(&mut self, connection: &str, approve: bool) -> (String, Value) {
        let auth = self
            .app
            .call(
                Format::Json,
                "authorizeUrl",
                json!({"connection": connection}),
            )
            .await;
        assert_eq!(auth.status, 200, "{}", auth.body);
        let auth = auth.value();
        let code = if approve {
            self.app.approve(auth["url"].as_str().unwrap()).await
        } else {
            "made-up-code-never-issued-0c41".to_owned()
        };
        self.secrets.insert(code.clone());
        (code, auth["state"].clone())
    }
}

#[tokio::test]
async fn an_echoing_server_leaks_no_secret_into_answers_or_logs() {
    let app = spawn_app_with(Options::default(), |s| {
        let mut pinned_app = s.connections["main"].clone();
        pinned_app.client_id = Some(PINNED_ID.into());
        pinned_app.client_secret = Some(PINNED_SECRET.to_owned().into());
        s.connections.insert("pinnedapp".into(), pinned_app);
        let mut pinned = s.connections["main"].clone();
        pinned.access_token = Some(PINNED_TOKEN.to_owned().into());
        s.connections.insert("pinned".into(), pinned);
    })
    .await;
    app.standin.seed_user_token(PINNED_TOKEN, "read write");
    let mut run = Run {
        app,
        answers: Vec::new(),
        secrets: [PINNED_SECRET, PINNED_TOKEN].map(str::to_owned).into(),
    };
    let main = json!({"connection": "main"});
    let pinned = json!({"connection": "pinned"});

    // createApp: refused with the echo, then registered with the echo in the Application.
    for (echo, format) in ERRORS.into_iter().zip(FORMATS) {
        run.echoed("createApp", main.clone(), "POST /api/v1/apps", echo, format)
            .await;
    }
    run.echoed(
        "createApp",
        main.clone(),
        "POST /api/v1/apps",
        Echo::InAnswer,
        Format::Json,
    )
    .await;
    run.note_server_state();

    // getToken with a code: the form carries client_secret, code and code_verifier.
    for echo in ERRORS {
        for format in FORMATS {
            let (code, state) = run.authorize("main", true).await;
            let params = json!({"connection": "main", "code": code, "state": state});
            run.echoed("getToken", params, "POST /oauth/token", echo, format)
                .await;
        }
    }
    let (code, state) = run.authorize("main", true).await;
    let params = json!({"connection": "main", "code": code, "state": state});
    run.echoed(
        "getToken",
        params,
        "POST /oauth/token",
        Echo::InAnswer,
        Format::Soap12,
    )
    .await;
    run.note_server_state();
    // The pinned app's secret, with every character an encoding changes.
    for (echo, format) in ERRORS.into_iter().zip(FORMATS) {
        let (code, state) = run.authorize("pinnedapp", false).await;
        let params = json!({"connection": "pinnedapp", "code": code, "state": state});
        run.echoed("getToken", params, "POST /oauth/token", echo, format)
            .await;
    }
    // The app token's exchange.
    let app_grant = json!({"connection": "main", "grant_type": "client_credentials"});
    for (echo, format) in ERRORS.into_iter().zip(FORMATS) {
        run.echoed(
            "getToken",
            app_grant.clone(),
            "POST /oauth/token",
            echo,
            format,
        )
        .await;
        let pinned_grant = json!({"connection": "pinnedapp", "grant_type": "client_credentials"});
        run.echoed("getToken", pinned_grant, "POST /oauth/token", echo, format)
            .await;
    }
    run.echoed(
        "getToken",
        app_grant.clone(),
        "POST /oauth/token",
        Echo::InAnswer,
        Format::Xml,
    )
    .await;
    run.note_server_state();

    // The bearer token: init, verifyCredentials and postStatus, stored and pinned. A hostile server
    // also repeats what other requests and connections sent it: each connection's call carries
    // the other's token, and the app secrets, which this request did not carry.
    run.note_server_state();
    let mut heard: Vec<String> = run.secrets.iter().cloned().collect();
    heard.push(url::form_urlencoded::byte_serialize(PINNED_SECRET.as_bytes()).collect());
    run.app.standin.echo_also(&heard.join(" "));
    let verify = "GET /api/v1/accounts/verify_credentials";
    for params in [&main, &pinned] {
        for echo in ERRORS.into_iter().chain([Echo::InAnswer]) {
            for format in FORMATS {
                run.echoed("init", params.clone(), verify, echo, format)
                    .await;
                run.echoed("verifyCredentials", params.clone(), verify, echo, format)
                    .await;
                let mut post = params.clone();
                post["status"] = json!(format!("echo {echo:?} {format:?}"));
                run.echoed("postStatus", post, "POST /api/v1/statuses", echo, format)
                    .await;
            }
        }
    }
    for (what, answer) in &run.answers {
        if what.starts_with("verifyCredentials InAnswer") || what.starts_with("postStatus InAnswer")
        {
            // Entities pass through: the echo field is there, scrubbed.
            assert!(answer.body.contains("ECHO "), "{what}: {}", answer.body);
            assert!(
                answer.body.contains("[redacted]"),
                "{what}: {}",
                answer.body
            );
        }
    }

    run.app.standin.echo_also("");

    // revokeToken last: the form carries client_secret and the token; a 403 is taken as "the
    // server does not know the token", and its text lands in a successful answer's note.
    for (echo, format) in ERRORS.into_iter().zip(FORMATS) {
        let params = json!({"connection": "main", "token_kind": "user"});
        run.echoed("revokeToken", params, "POST /oauth/revoke", echo, format)
            .await;
    }
    run.note_server_state();
    let params = json!({"connection": "main", "token_kind": "app"});
    run.echoed(
        "revokeToken",
        params,
        "POST /oauth/revoke",
        Echo::Json(403),
        Format::Soap11,
    )
    .await;
    let forgotten = &run.answers.last().unwrap().1;
    assert_eq!(forgotten.status, 200, "{}", forgotten.body);

    // Nothing of any secret, in any encoding, in any answer or in the logs; the echo itself is
    // there (the test can fail), and so is the non-secret it carried.
    let logs = captured_logs();
    assert!(
        logs.contains("ECHO POST /oauth/token"),
        "the echoes were logged"
    );
    assert!(
        logs.contains(&format!("client_id={PINNED_ID}")),
        "a non-secret survives"
    );
    assert!(run.secrets.len() >= 20, "{} secrets", run.secrets.len());
    for secret in &run.secrets {
        assert!(secret.len() >= 16, "{secret:?} is a real secret");
        for form in encodings(secret) {
            assert!(!logs.contains(&form), "a secret ({form}) is in the logs");
            for (what, answer) in &run.answers {
                assert!(
                    !answer.body.contains(&form),
                    "{what}: a secret ({form}) in {}",
                    answer.body
                );
            }
        }
    }
    println!(
        "echo: {} answers checked against {} secrets",
        run.answers.len(),
        run.secrets.len()
    );
}

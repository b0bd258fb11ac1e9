//! The process (contract, section 1): the real binary, its exit codes, its one-line errors, the
//! environment overrides, graceful shutdown on SIGTERM and a store that survives a kill -9.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use mastodon_standin::{Options, Profile, StandIn, USERNAME};

use crate::helpers::{xml_params, Format, FORMATS, SYNAPSE_NS};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_mastodon-sidecar");

/// The binary, with none of the caller's `MASTODON_SIDECAR__*` variables leaking in.
fn sidecar_command() -> Command {
    let mut command = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key
            .to_string_lossy()
            .to_ascii_uppercase()
            .starts_with("MASTODON_SIDECAR")
        {
            command.env_remove(key);
        }
    }
    // A panic would print a backtrace: make sure it would show if one happened.
    command.env("RUST_BACKTRACE", "1");
    command
}

fn run(args: &[&str]) -> Output {
    sidecar_command()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn assert_no_panic(what: &str, texts: &[&str]) {
    for text in texts {
        assert!(!text.contains("panicked"), "{what}: a panic: {text}");
        assert!(
            !text.contains("stack backtrace") && !text.contains("RUST_BACKTRACE"),
            "{what}: a backtrace: {text}"
        );
    }
}

/// A running `serve`; killed (SIGKILL, by its own id) when dropped, whatever happened in the test.
struct Sidecar {
    child: Child,
    port: u16,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Sidecar {
    /// Starts `serve --config <config>` in `dir`, its output going to files in `dir`.
    fn start(dir: &Path, config: &Path, port: u16, env: &[(&str, String)]) -> Sidecar {
        let n = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        let stdout = dir.join(format!("stdout-{n}.log"));
        let stderr = dir.join(format!("stderr-{n}.log"));
        let mut command = sidecar_command();
        command
            .arg("--config")
            .arg(config)
            .arg("serve")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).unwrap())
            .stderr(File::create(&stderr).unwrap());
        for (k, v) in env {
            command.env(k, v);
        }
        Sidecar {
            child: command.spawn().expect("serve starts"),
            port,
            stdout,
            stderr,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Polls `/healthz` until it answers 200 (100 × 50 ms at most).
    async fn wait_healthy(&mut self) {
        let client = client();
        for _ in 0..100 {
            if let Ok(r) = client.get(self.url("/healthz")).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "serve exited ({status}) before it was healthy; stderr: {}; stdout: {}",
                    self.stderr(),
                    self.stdout()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "serve did not become healthy on port {}; stderr: {}; stdout: {}",
            self.port,
            self.stderr(),
            self.stdout()
        );
    }

    /// Waits for the process to exit, at most `limit`.
    async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let rounds = limit.as_millis() / 50 + 1;
        for _ in 0..rounds {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {}", self.pid());
    }

    async fn call(&self, operation: &str, params: Value) -> (u16, Value) {
        call(
            &client(),
            &self.url(&format!("/v1/operations/{operation}")),
            params,
        )
        .await
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A client that keeps no idle connections (they would hold a graceful shutdown open) and
/// follows no redirects.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn call(client: &reqwest::Client, url: &str, params: Value) -> (u16, Value) {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(params.to_string())
        .send()
        .await
        .expect("the sidecar answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// A configuration for `serve` on `port` with its store in `dir`, and an optional connection.
fn write_config(dir: &Path, listen: &str, connection: Option<(&str, Option<&str>)>) -> PathBuf {
    let mut text = format!(
        "[server]\nlisten = \"{listen}\"\nshutdown_grace_s = 5\n\n[store]\npath = {:?}\n\n[log]\nformat = \"json\"\nlevel = \"info\"\n",
        dir.join("store").join("sidecar.db").display().to_string()
    );
    if let Some((instance, token)) = connection {
        text.push_str(&format!(
            "\n[connections.main]\ninstance = \"{instance}\"\nscopes = \"read write\"\ntimeout_ms = 5000\nconnect_timeout_ms = 1000\n"
        ));
        if let Some(token) = token {
            text.push_str(&format!("access_token = \"{token}\"\n"));
        }
    }
    let path = dir.join("sidecar.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The JSON log records of a run.
fn records(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

// ---------------------------------------------------------------------------------------------

#[test]
fn the_version_flag_prints_the_version() {
    let out = run(&["--version"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("0.1.0"), "{stdout}");
    assert!(stdout.contains("mastodon-sidecar"), "{stdout}");
}

#[test]
fn check_config_accepts_the_shipped_file_and_names_the_listen_address() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sidecar.toml");
    let out = run(&["check-config", "--config", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}; stderr: {stderr}"
    );
    assert!(stdout.contains("127.0.0.1:8080"), "{stdout}");
    assert!(stderr.trim().is_empty(), "{stderr}");
}

#[test]
fn check_config_names_the_file_the_key_and_the_problem_in_one_line_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    // (case, file contents or None for a missing file, what the line must contain)
    let cases: [(&str, Option<&str>, &[&str]); 6] = [
        ("a missing file", None, &["cannot read"]),
        (
            "invalid TOML",
            Some("[server]\nlisten = \n"),
            &["line 2", "column"],
        ),
        (
            "an unknown key",
            Some("[server]\nlsiten = 1\n"),
            &["server.lsiten", "unknown"],
        ),
        (
            "a bad URL",
            Some("[connections.main]\ninstance = \"not a url\"\n"),
            &["connections.main.instance"],
        ),
        (
            "a bad listen address",
            Some("[server]\nlisten = \"not-an-address\"\n"),
            &["server.listen"],
        ),
        (
            "a listen address with a port out of range",
            Some("[server]\nlisten = \"127.0.0.1:99999\"\n"),
            &["server.listen"],
        ),
    ];
    let mut problems = Vec::new();
    for (i, (case, contents, needles)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("case-{i}.toml"));
        if let Some(contents) = contents {
            std::fs::write(&path, contents).unwrap();
        }
        let path_text = path.display().to_string();
        let out = run(&["check-config", "--config", &path_text]);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_no_panic(case, &[&stdout, &stderr]);
        if out.status.code() != Some(2) {
            problems.push(format!(
                "{case}: exit {:?} instead of 2 (stderr {stderr:?})",
                out.status.code()
            ));
        }
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        if lines.len() != 1 {
            problems.push(format!(
                "{case}: {} lines on stderr: {stderr:?}",
                lines.len()
            ));
            continue;
        }
        let line = lines[0];
        if !line.contains(&path_text) {
            problems.push(format!("{case}: the line does not name the file: {line:?}"));
        }
        for needle in needles.iter() {
            if !line.contains(needle) {
                problems.push(format!("{case}: the line lacks {needle:?}: {line:?}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `check-config` and `serve` on one configuration (and environment): their exit codes and
/// stderr. `serve` is given ten seconds to exit, then killed (by its id), answering `None`.
async fn check_and_serve(
    dir: &Path,
    config: &Path,
    port: u16,
    env: &[(&str, String)],
) -> ((Option<i32>, String), (Option<i32>, String)) {
    let mut check = sidecar_command();
    check
        .arg("--config")
        .arg(config)
        .arg("check-config")
        .current_dir(dir)
        .stdin(Stdio::null());
    for (k, v) in env {
        check.env(k, v);
    }
    let out = check.output().expect("check-config runs");
    let checked = (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    let mut sidecar = Sidecar::start(dir, config, port, env);
    let served = match sidecar.wait_exit(Duration::from_secs(10)).await {
        Some(status) => (status.code(), sidecar.stderr()),
        None => (None, sidecar.stderr()),
    };
    assert_no_panic("check-config", &[&checked.1]);
    assert_no_panic("serve", &[&served.1, &sidecar.stdout()]);
    (checked, served)
}

#[tokio::test]
async fn check_config_and_serve_refuse_the_same_out_of_range_numbers_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base =
        std::fs::read_to_string(write_config(dir.path(), &format!("127.0.0.1:{port}"), None))
            .unwrap();
    let connection = "\n[connections.main]\ninstance = \"https://m.example\"\n";
    // (case, what the file adds, environment, the key and the value the line names)
    let huge = i64::MAX.to_string();
    type Env = Vec<(&'static str, String)>;
    let cases: Vec<(&str, String, Env, &str, String)> = vec![
        (
            "server.max_in_flight = i64::MAX",
            base.replace("[server]\n", &format!("[server]\nmax_in_flight = {huge}\n")),
            vec![],
            "server.max_in_flight",
            huge.clone(),
        ),
        (
            "a connection's max_in_flight = i64::MAX",
            format!("{base}{connection}max_in_flight = {huge}\n"),
            vec![],
            "connections.main.max_in_flight",
            huge.clone(),
        ),
        (
            "max_in_flight from the environment",
            base.clone(),
            vec![("MASTODON_SIDECAR__SERVER__MAX_IN_FLIGHT", "0".to_owned())],
            "server.max_in_flight",
            "0".to_owned(),
        ),
        (
            "drain_delay_ms of a year",
            base.replace("[server]\n", "[server]\ndrain_delay_ms = 31536000000\n"),
            vec![],
            "server.drain_delay_ms",
            "31536000000".to_owned(),
        ),
        (
            "max_body_bytes of 8 EiB",
            base.replace(
                "[server]\n",
                &format!("[server]\nmax_body_bytes = {huge}\n"),
            ),
            vec![],
            "server.max_body_bytes",
            huge.clone(),
        ),
        (
            "timeout_ms past ten minutes",
            format!("{base}{connection}timeout_ms = 600001\n"),
            vec![],
            "connections.main.timeout_ms",
            "600001".to_owned(),
        ),
        (
            "an explicit connect timeout past timeout_ms",
            format!("{base}{connection}timeout_ms = 800\nconnect_timeout_ms = 900\n"),
            vec![],
            "connections.main.connect_timeout_ms",
            "900".to_owned(),
        ),
    ];
    let config = dir.path().join("ranges.toml");
    let mut problems = Vec::new();
    for (case, text, env, key, value) in cases {
        std::fs::write(&config, &text).unwrap();
        let ((check_code, check_err), (serve_code, serve_err)) =
            check_and_serve(dir.path(), &config, port, &env).await;
        println!(
            "{case}: check-config {check_code:?} {check_err:?}; serve {serve_code:?} {serve_err:?}"
        );
        if check_code != Some(2) || serve_code != Some(2) {
            problems.push(format!(
                "{case}: check-config exits {check_code:?}, serve {serve_code:?} (both must be 2)"
            ));
        }
        if check_err.trim() != serve_err.trim() {
            problems.push(format!(
                "{case}: check-config says {check_err:?}, serve {serve_err:?}"
            ));
        }
        let line = check_err.trim();
        if line.lines().count() != 1
            || !line.contains(key)
            || !(line.contains("must be from") || line.contains("must not exceed"))
            || !line.contains(&value)
        {
            problems.push(format!(
                "{case}: the line must name {key}, the range and {value}: {line:?}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn a_short_timeout_alone_passes_check_config_and_serve_starts() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), &format!("127.0.0.1:{port}"), None);
    let text = std::fs::read_to_string(&config).unwrap()
        + "\n[connections.main]\ninstance = \"https://m.example\"\ntimeout_ms = 800\n";
    std::fs::write(&config, text).unwrap();
    let out = sidecar_command()
        .arg("--config")
        .arg(&config)
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut sidecar = Sidecar::start(dir.path(), &config, port, &[]);
    sidecar.wait_healthy().await;
    sidecar.signal("-TERM");
    let status = sidecar
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("exits");
    assert_eq!(status.code(), Some(0), "{}", sidecar.stderr());
}

#[tokio::test]
async fn the_listen_address_can_be_set_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    // The file names another free port: only the environment leads to the right one.
    let file_port = free_port();
    let port = free_port();
    let config = write_config(dir.path(), &format!("127.0.0.1:{file_port}"), None);
    let mut sidecar = Sidecar::start(
        dir.path(),
        &config,
        port,
        &[(
            "MASTODON_SIDECAR__SERVER__LISTEN",
            format!("127.0.0.1:{port}"),
        )],
    );
    sidecar.wait_healthy().await;
    let log = sidecar.stdout();
    assert!(
        log.contains(&format!("listen=127.0.0.1:{port}")),
        "the ready line does not name the address: {log}"
    );
}

#[tokio::test]
async fn a_port_in_use_is_named_and_the_process_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let config = write_config(dir.path(), &format!("127.0.0.1:{port}"), None);
    let mut sidecar = Sidecar::start(dir.path(), &config, port, &[]);
    let status = sidecar
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("serve exits when its port is taken");
    assert!(!status.success(), "exit status {status}");
    let stderr = sidecar.stderr();
    let stdout = sidecar.stdout();
    assert_no_panic("port in use", &[&stderr, &stdout]);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {stderr:?}");
    assert!(
        lines[0].contains(&format!("127.0.0.1:{port}")),
        "the line names the address: {stderr:?}"
    );
    assert!(
        lines[0].to_ascii_lowercase().contains("in use"),
        "the line names the cause: {stderr:?}"
    );
    drop(taken);
}

#[tokio::test]
async fn sigterm_stops_the_process_with_exit_code_0_and_a_stopped_record() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), &format!("127.0.0.1:{port}"), None);
    let mut sidecar = Sidecar::start(dir.path(), &config, port, &[]);
    sidecar.wait_healthy().await;
    sidecar.signal("-TERM");
    let status = sidecar
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("serve exits within the grace period after SIGTERM");
    let log = sidecar.stdout();
    assert_eq!(status.code(), Some(0), "exit status; log: {log}");
    assert!(
        records(&log).iter().any(|r| r["message"] == "stopped"),
        "no `stopped` record in the log: {log}"
    );
    assert_no_panic("SIGTERM", &[&log, &sidecar.stderr()]);
}

#[tokio::test]
async fn a_request_in_flight_at_sigterm_is_finished_before_the_process_exits() {
    let standin = StandIn::start(Options::default()).await;
    standin.seed_user_token("tok-cli", "read write");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(
        dir.path(),
        &format!("127.0.0.1:{port}"),
        Some((&standin.url, Some("tok-cli"))),
    );
    let mut sidecar = Sidecar::start(dir.path(), &config, port, &[]);
    sidecar.wait_healthy().await;

    standin.delay_next(
        "GET /api/v1/accounts/verify_credentials",
        Duration::from_millis(800),
        1,
    );
    let url = sidecar.url("/v1/operations/verifyCredentials");
    let in_flight = tokio::spawn(async move { call(&client(), &url, json!({})).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    sidecar.signal("-TERM");

    let (status, account) = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("the request in flight is answered")
        .expect("the request task completes");
    assert_eq!(status, 200, "{account}");
    assert_eq!(account["username"], USERNAME, "{account}");
    let exit = sidecar
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("serve exits after finishing the request");
    assert_eq!(exit.code(), Some(0), "log: {}", sidecar.stdout());
    assert_eq!(standin.hits("GET /api/v1/accounts/verify_credentials"), 1);
}

#[tokio::test]
async fn the_apps_and_tokens_obtained_survive_a_kill_9() {
    let standin = StandIn::start(Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(
        dir.path(),
        &format!("127.0.0.1:{port}"),
        Some((&standin.url, None)),
    );
    let mut first = Sidecar::start(dir.path(), &config, port, &[]);
    first.wait_healthy().await;

    let (status, app) = first.call("createApp", json!({})).await;
    assert_eq!(status, 200, "createApp: {app}");
    let client_id = app["client_id"].as_str().expect("a client_id").to_owned();
    let (status, auth) = first.call("authorizeUrl", json!({})).await;
    assert_eq!(status, 200, "authorizeUrl: {auth}");
    let code = approve(auth["url"].as_str().expect("a URL")).await;
    let (status, token) = first
        .call("getToken", json!({"code": code, "state": auth["state"]}))
        .await;
    assert_eq!(status, 200, "getToken: {token}");

    first.signal("-KILL");
    first
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("kill -9 ends the process");
    drop(first);

    let mut second = Sidecar::start(dir.path(), &config, port, &[]);
    second.wait_healthy().await;
    let (status, account) = second.call("verifyCredentials", json!({})).await;
    assert_eq!(
        status, 200,
        "verifyCredentials after the restart: {account}"
    );
    assert_eq!(account["username"], USERNAME, "{account}");
    let (status, again) = second.call("createApp", json!({})).await;
    assert_eq!(status, 200, "createApp after the restart: {again}");
    assert_eq!(again["client_id"], client_id.as_str(), "{again}");
    assert_eq!(standin.apps().len(), 1, "the app was registered again");
}

#[tokio::test]
async fn a_damaged_store_is_refused_at_start_in_one_line_and_never_written() {
    let standin = StandIn::start(Options::default()).await;
    standin.seed_user_token("tok-cli", "read write");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(
        dir.path(),
        &format!("127.0.0.1:{port}"),
        Some((&standin.url, Some("tok-cli"))),
    );
    // A real store: made by serve, holding a real post.
    let mut first = Sidecar::start(dir.path(), &config, port, &[]);
    first.wait_healthy().await;
    let (status, posted) = first
        .call("postStatus", json!({"status": "kept in the ledger"}))
        .await;
    assert_eq!(status, 200, "{posted}");
    first.signal("-TERM");
    let exit = first
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("exits");
    assert_eq!(exit.code(), Some(0), "{}", first.stderr());
    drop(first);

    // 10,000 more ledger rows like it, all folded into the file itself.
    let path = dir.path().join("store").join("sidecar.db");
    let page_size: u64 = {
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
             INSERT INTO post_ledger (connection, key, fingerprint, state, owner, started_at,
                 lease_until, doubt_since, status_id, answer, error, retain_until)
             SELECT connection, key || '-' || i, fingerprint, state, owner, started_at,
                 lease_until, doubt_since, status_id || '-' || i, answer, error, retain_until
             FROM post_ledger, n;
             PRAGMA wal_checkpoint(TRUNCATE);",
        )
        .unwrap();
        let rows: i64 = db
            .query_row("SELECT count(*) FROM post_ledger", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 10_001);
        db.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap()
    };
    let size = std::fs::metadata(&path).unwrap().len();
    let started = std::time::Instant::now();
    mastodon_sidecar::store::check_integrity(&path).expect("the sound store passes");
    println!(
        "quick_check of a store with 10,001 ledger rows ({} KiB, {} pages): {:?}",
        size / 1024,
        size / page_size,
        started.elapsed()
    );

    // Random bytes over the last page.
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut noise = vec![0u8; page_size as usize];
        rand::fill(&mut noise[..]);
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.seek(SeekFrom::Start(size - page_size)).unwrap();
        file.write_all(&noise).unwrap();
    }
    let before = std::fs::read(&path).unwrap();

    let mut second = Sidecar::start(dir.path(), &config, port, &[]);
    let exit = second
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("serve refuses a damaged store and exits");
    let (stderr, stdout) = (second.stderr(), second.stdout());
    assert_no_panic("damaged store", &[&stderr, &stdout]);
    // As every other failure to start (a port in use, a wrong key): 1.
    assert_eq!(exit.code(), Some(1), "stderr {stderr}; stdout {stdout}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr:?}");
    let line = lines[0];
    println!("the refusal: {line}");
    for needle in [
        path.display().to_string().as_str(),
        "damaged",
        "quick_check",
        "restore it from a backup",
        "move it aside",
    ] {
        assert!(line.contains(needle), "the line lacks {needle:?}: {line}");
    }
    assert!(
        !records(&stdout).iter().any(|r| r["level"] == "ERROR"),
        "no other error: {stdout}"
    );
    assert!(
        std::fs::read(&path).unwrap() == before,
        "the damaged file was written to"
    );
    assert!(
        !std::fs::metadata(path.with_extension("db-wal")).is_ok_and(|m| m.len() > 0),
        "nothing was written into the WAL either"
    );
}

/// The user's browser: opens the authorization URL; Mastodon approves and shows the code (OOB) or
/// redirects with it.
async fn approve(authorize_url: &str) -> String {
    let response = client()
        .get(authorize_url)
        .send()
        .await
        .expect("authorize answers");
    if response.status().is_redirection() {
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        return url::Url::parse(&location)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .expect("a code in the redirect");
    }
    assert_eq!(response.status(), 200, "the authorization page");
    let page = response.text().await.unwrap();
    let start = page.find("value=\"").expect("a code on the page") + 7;
    page[start..].split('"').next().unwrap().to_owned()
}

/// A post in `format` to a sidecar on `port`: the HTTP status, the error code (empty on success)
/// and the Retry-After, if any.
async fn post_in(format: Format, port: u16, text: &str, activity: &str) -> (u16, String, u64) {
    let base = format!("http://127.0.0.1:{port}");
    let params = json!({"status": text});
    let (url, content_type, body) = match format {
        Format::Json => (
            format!("{base}/v1/operations/postStatus"),
            "application/json".to_owned(),
            params.to_string(),
        ),
        Format::Xml => (
            format!("{base}/v1/operations/postStatus"),
            "application/xml".to_owned(),
            format!("<postStatus xmlns=\"{SYNAPSE_NS}\">{}</postStatus>", xml_params(&params)),
        ),
        Format::Soap11 => (
            format!("{base}/soap"),
            "text/xml; charset=UTF-8".to_owned(),
            format!("<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"><soapenv:Body><postStatus>{}</postStatus></soapenv:Body></soapenv:Envelope>", xml_params(&params)),
        ),
        Format::Soap12 => (
            format!("{base}/soap"),
            "application/soap+xml; charset=UTF-8; action=\"urn:postStatus\"".to_owned(),
            format!("<env:Envelope xmlns:env=\"http://www.w3.org/2003/05/soap-envelope\"><env:Body><postStatus>{}</postStatus></env:Body></env:Envelope>", xml_params(&params)),
        ),
    };
    let mut request = client()
        .post(url)
        .header("content-type", content_type)
        .header("activityid", activity)
        .body(body);
    if format == Format::Soap11 {
        request = request.header("SOAPAction", "\"urn:postStatus\"");
    }
    let Ok(response) = request.send().await else {
        return (0, "no answer".to_owned(), 1);
    };
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let text = response.text().await.unwrap_or_default();
    let code = if text.trim_start().starts_with('{') {
        serde_json::from_str::<Value>(&text).unwrap_or(Value::Null)["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    } else {
        text.split("<code>")
            .nth(1)
            .and_then(|rest| rest.split("</code>").next())
            .unwrap_or_default()
            .to_owned()
    };
    (status, code, retry)
}

/// kill -9 of the sidecar while the server holds the post (and then creates it), a restart, and
/// the ESB resending the same message until it has a final answer: one status.
async fn kill_9_mid_post(profile: Profile, format: Format) {
    let standin = StandIn::start(Options::for_profile(profile)).await;
    standin.seed_user_token("tok", "read write");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("sidecar.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[store]\npath = {:?}\n\n[connections.main]\ninstance = \"{}\"\naccess_token = \"tok\"\ntimeout_ms = 4000\nconnect_timeout_ms = 2000\ndoubt_settle_ms = 1500\n",
            dir.path().join("store").join("sidecar.db").display().to_string(),
            standin.url
        ),
    )
    .unwrap();
    let what = format!("{profile:?} {format:?}");
    let mut first = Sidecar::start(dir.path(), &config, port, &[]);
    first.wait_healthy().await;
    // Probe the server first, so the post itself is what is under way when the process dies.
    let (status, init) = first.call("init", json!({})).await;
    assert_eq!(status, 200, "{what}: init {init}");
    standin.stall_then_create("POST /api/v1/statuses", Duration::from_millis(1_500), 1);
    let pending = tokio::spawn(async move {
        post_in(format, port, "posted while the sidecar died", "esb-kill-9").await
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    first.signal("-KILL");
    first
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("kill -9 ends the process");
    assert_eq!(
        pending.await.unwrap().0,
        0,
        "{what}: the caller saw no answer"
    );
    drop(first);

    let mut second = Sidecar::start(dir.path(), &config, port, &[]);
    second.wait_healthy().await;
    let mut last = (0, String::new(), 0);
    for _ in 0..30 {
        last = post_in(format, port, "posted while the sidecar died", "esb-kill-9").await;
        if last.0 == 200 {
            break;
        }
        assert!(
            last.1 == "in_progress" || last.1 == "outcome_unknown",
            "{what}: a resend after the restart: {last:?}"
        );
        tokio::time::sleep(Duration::from_secs(last.2.min(3))).await;
    }
    assert_eq!(last.0, 200, "{what}: the resend's final answer: {last:?}");
    assert_eq!(standin.statuses().len(), 1, "{what}: posted once");
    assert_eq!(
        standin.hits("POST /api/v1/statuses"),
        1,
        "{what}: sent once"
    );
}

#[tokio::test]
async fn a_kill_9_mid_post_then_a_resend_posts_once_on_every_server_in_every_format() {
    // Six at a time: each run is a real process and a stand-in, and 24 at once on a two-core machine
    // make the probe itself time out.
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(6));
    let mut set = tokio::task::JoinSet::new();
    for profile in Profile::ALL {
        for format in FORMATS {
            let slots = slots.clone();
            set.spawn(async move {
                let _slot = slots
                    .acquire_owned()
                    .await
                    .expect("the semaphore stays open");
                kill_9_mid_post(profile, format).await
            });
        }
    }
    while let Some(done) = set.join_next().await {
        if let Err(e) = done {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

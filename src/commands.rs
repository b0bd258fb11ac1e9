//! Commands that act on the store without serving: `authorize` (the out-of-band OAuth flow from a
//! terminal) and `rotate-key` (re-sealing every secret under a new key).
//!
//! Both open the same store the server uses, running or not: SQLite serialises the writers, and
//! PostgreSQL is shared anyway. They run the same operations the HTTP API runs, so a token obtained
//! here is indistinguishable from one obtained through `getToken`.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;

use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::config::Settings;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::operations::{self, CallContext, Core, Operation};
use crate::store::seal::{self, KeySource, Sealer};

/// A command's failure: one line for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CommandError(pub String);

impl From<Error> for CommandError {
    fn from(e: Error) -> Self {
        CommandError(format!("{} ({})", e.detail, e.kind.code()))
    }
}

impl From<crate::StartError> for CommandError {
    fn from(e: crate::StartError) -> Self {
        CommandError(e.to_string())
    }
}

impl From<std::io::Error> for CommandError {
    fn from(e: std::io::Error) -> Self {
        CommandError(e.to_string())
    }
}

async fn core(settings: Settings) -> Result<Core, CommandError> {
    let settings = Arc::new(settings);
    let store = crate::open_store(&settings).await?;
    let metrics = Metrics::new().map_err(|e| CommandError(e.to_string()))?;
    Ok(Core::new(settings, store, metrics)?)
}

async fn run(core: &Core, operation: Operation, params: Value) -> Result<Value, CommandError> {
    let cx = CallContext::new(
        format!("cli-{}", uuid::Uuid::new_v4()),
        operation,
        // The CLI is its own caller without a key: `security.call_api_routes` decides.
        std::sync::Arc::new(
            crate::security::Routes::parse(&core.settings.security.call_api_routes)
                .unwrap_or_default(),
        ),
    );
    Ok(operations::execute(core, operation, params, &cx).await?)
}

/// Registers the app when needed, prints the authorization URL, reads the code (from `code`, else
/// from `input`), stores the token and says which account posts will use.
///
/// The authorization begun here is finished with its own state, so other authorizations pending
/// for the connection (a flow's, another terminal's) neither block nor get finished by mistake.
/// A code obtained from an earlier run comes with that run's `state`.
pub async fn authorize(
    settings: Settings,
    connection: Option<String>,
    code: Option<String>,
    state: Option<String>,
    input: &mut dyn BufRead,
    output: &mut dyn Write,
) -> Result<(), CommandError> {
    if state.is_some() && code.is_none() {
        return Err(CommandError(
            "--state goes with --code (the code of an earlier run and that run's state); without --code, a new authorization is begun and its own state used".into(),
        ));
    }
    let core = core(settings).await?;
    let conn = core.connection(connection.as_deref())?;
    let name = json!(conn.name);
    if core.app_credentials(&conn).await?.is_none() {
        let app = run(&core, Operation::CreateApp, json!({"connection": name})).await?;
        writeln!(
            output,
            "Registered the app {:?} on {}.",
            app["name"].as_str().unwrap_or("mastodon-sidecar"),
            conn.instance_url()
        )?;
    }
    let (code, state) = match code {
        Some(code) => (code, state),
        None => {
            let auth = run(&core, Operation::AuthorizeUrl, json!({"connection": name})).await?;
            let state = auth["state"].as_str().unwrap_or_default().to_owned();
            writeln!(
                output,
                "Open this URL in a browser, sign in as the account to post as, and approve:\n\n  {}\n\n(If you stop here, finish later with --code CODE --state {state})\n",
                auth["url"].as_str().unwrap_or_default()
            )?;
            write!(output, "Then paste the code the server shows here: ")?;
            output.flush()?;
            let mut line = String::new();
            input.read_line(&mut line)?;
            let code = line.trim().to_owned();
            if code.is_empty() {
                return Err(CommandError("no code was given; nothing was stored".into()));
            }
            (code, Some(state))
        }
    };
    // snac's out-of-band page shows `CODE&state=STATE`: a pasted whole line still works.
    let code = code
        .split("&state=")
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let mut params = json!({"connection": name, "code": code});
    if let Some(state) = state {
        params["state"] = json!(state);
    }
    run(&core, Operation::GetToken, params).await?;
    let account = run(
        &core,
        Operation::VerifyCredentials,
        json!({"connection": name}),
    )
    .await?;
    writeln!(
        output,
        "Connected. Connection {:?} now posts as @{} ({}).",
        conn.name,
        account["acct"].as_str().unwrap_or("?"),
        account["url"].as_str().unwrap_or("")
    )?;
    core.store.close().await.map_err(Error::from)?;
    Ok(())
}

/// Re-seals every secret under a new key. With a key file (given or made beside the database), the
/// new key replaces it; with a key from the environment, `new_key_file` receives the new key.
pub async fn rotate_key(
    settings: Settings,
    new_key_file: Option<PathBuf>,
    output: &mut dyn Write,
) -> Result<(), CommandError> {
    let (store, source) = crate::store::open(&settings.store)
        .await
        .map_err(|e| CommandError(format!("cannot open the store: {e}")))?;
    let new_key = Sealer::generate_key();
    let new_sealer = Sealer::from_base64(new_key.expose_secret()).map_err(CommandError)?;
    let key_file = match (&source, new_key_file) {
        (_, Some(path)) => Target::Given(path),
        (KeySource::File(path) | KeySource::Created(path), None) => Target::Replace(path.clone()),
        (KeySource::Environment, None) => {
            return Err(CommandError(
                "the key comes from MASTODON_SIDECAR__STORE__KEY: give --new-key-file PATH to receive the new key".into(),
            ))
        }
    };
    // The new key is on disk before any secret is sealed with it, so a crash between the two steps
    // never leaves secrets sealed under a key that exists nowhere.
    let written = match &key_file {
        Target::Given(path) => path.clone(),
        Target::Replace(path) => pending_key_file(path),
    };
    seal::write_key_file(&written, &new_key).map_err(|e| CommandError(e.to_string()))?;
    let count = store
        .reseal(new_sealer)
        .await
        .map_err(|e| CommandError(format!("re-sealing failed, nothing changed: {e}")))?;
    store
        .close()
        .await
        .map_err(|e| CommandError(e.to_string()))?;
    match key_file {
        Target::Replace(path) => {
            std::fs::rename(&written, &path)?;
            writeln!(
                output,
                "Re-sealed {count} secrets under a new key, now in {}. The old key no longer opens the store; restart running sidecars.",
                path.display()
            )?;
        }
        Target::Given(path) => writeln!(
            output,
            "Re-sealed {count} secrets under a new key, written to {}. Give it to every sidecar (MASTODON_SIDECAR__STORE__KEY or store.key_file) and restart them: the old key no longer opens the store.",
            path.display()
        )?,
    }
    Ok(())
}

enum Target {
    Given(PathBuf),
    Replace(PathBuf),
}

/// Where `rotate-key` puts a new key before it replaces `key_file`.
pub fn pending_key_file(key_file: &std::path::Path) -> PathBuf {
    let mut name = key_file.as_os_str().to_owned();
    name.push(".new");
    PathBuf::from(name)
}

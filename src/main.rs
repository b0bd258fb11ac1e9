//! The command line: parse arguments, load settings, set up logging, build the application, run it.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use mastodon_sidecar::config::{process_environment, Settings};
use mastodon_sidecar::{telemetry, Application};

#[derive(Parser)]
#[command(
    name = "mastodon-sidecar",
    version,
    about = "Mastodon connector operations over JSON, plain XML and SOAP"
)]
struct Cli {
    /// The configuration file.
    #[arg(long, global = true, default_value = "config/sidecar.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Validate the configuration, print a summary and exit.
    CheckConfig,
    /// Connect an account from a terminal: register the app when needed, print the authorization
    /// URL, read the code, store the token, print the account posts will use.
    Authorize {
        /// The connection to authorize (default: the only one, or the one named `default`).
        #[arg(long)]
        connection: Option<String>,
        /// The code Mastodon showed, when you already have it (else it is read from standard input).
        #[arg(long)]
        code: Option<String>,
        /// With --code: the state of the authorization the code belongs to (printed by the run
        /// that showed the URL), so the right one is finished when several are pending.
        #[arg(long)]
        state: Option<String>,
    },
    /// Re-seal every stored secret under a new key.
    RotateKey {
        /// Where to write the new key (required when the key comes from MASTODON_SIDECAR__STORE__KEY;
        /// otherwise the key file is replaced).
        #[arg(long)]
        new_key_file: Option<PathBuf>,
    },
    /// Read an API key from standard input and print its SHA-256, the value of
    /// `security.api_keys[].sha256` (the key itself never goes into the configuration).
    HashKey,
    /// GET a URL and exit 0 when it answers 200: an exec probe for images without a shell.
    /// Write the files generated from the operation declarations: `mi-connector` (the WSO2 MI
    /// connector folder, `mediation/mastodon-connector`) or `power-automate` (the Power Automate /
    /// Logic Apps custom connector, `deploy/power-automate`). Needs no configuration.
    Generate {
        /// What to generate: mi-connector or power-automate.
        what: String,
        /// The folder to write into (created when missing; generated files are overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    Probe {
        /// e.g. http://127.0.0.1:8080/readyz
        url: String,
        /// Accept any certificate (a loopback probe of a TLS listener whose certificate names
        /// another host or comes from a private CA). Only loopback URLs are accepted with it.
        #[arg(long)]
        insecure: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(&cli.config),
        Command::CheckConfig => check_config(&cli.config),
        Command::Authorize {
            connection,
            code,
            state,
        } => command(&cli.config, |settings| async move {
            let stdin = std::io::stdin();
            mastodon_sidecar::commands::authorize(
                settings,
                connection,
                code,
                state,
                &mut stdin.lock(),
                &mut std::io::stdout(),
            )
            .await
        }),
        Command::RotateKey { new_key_file } => command(&cli.config, |settings| async move {
            mastodon_sidecar::commands::rotate_key(settings, new_key_file, &mut std::io::stdout())
                .await
        }),
        Command::Probe { url, insecure } => probe(&url, insecure),
        Command::HashKey => hash_key(),
        Command::Generate { what, out } => generate(&what, &out),
    }
}

/// `generate`: the files made from the operation declarations, written under `out`.
fn generate(what: &str, out: &std::path::Path) -> ExitCode {
    let files = match what {
        "mi-connector" => mastodon_sidecar::generate::mi::files(),
        "power-automate" => mastodon_sidecar::generate::power_automate::files(),
        other => {
            eprintln!(
                "mastodon-sidecar: cannot generate {other:?}; what can be generated: mi-connector, power-automate"
            );
            return ExitCode::from(2);
        }
    };
    match mastodon_sidecar::generate::write(out, &files) {
        Ok(()) => {
            println!("wrote {} files under {}", files.len(), out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "mastodon-sidecar: cannot write under {}: {e}",
                out.display()
            );
            ExitCode::from(1)
        }
    }
}

/// `hash-key`: one key from standard input (trimmed) → its lowercase hex SHA-256 on standard output.
fn hash_key() -> ExitCode {
    use std::io::BufRead;
    let mut line = String::new();
    if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
        eprintln!("mastodon-sidecar: cannot read the key from standard input: {e}");
        return ExitCode::from(2);
    }
    let key = line.trim();
    let min = mastodon_sidecar::security::MIN_KEY_CHARS;
    if key.chars().count() < min {
        eprintln!(
            "mastodon-sidecar: the key on standard input is shorter than {min} characters; make one with `openssl rand -base64 32`"
        );
        return ExitCode::from(2);
    }
    println!("{}", mastodon_sidecar::security::digest_hex(key));
    ExitCode::SUCCESS
}

fn load(path: &std::path::Path) -> Result<Settings, ExitCode> {
    Settings::load(path, &process_environment()).map_err(|e| {
        for problem in &e.0 {
            eprintln!("mastodon-sidecar: {problem}");
        }
        ExitCode::from(2)
    })
}

fn check_config(path: &std::path::Path) -> ExitCode {
    let settings = match load(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let connections: Vec<String> = settings
        .connections
        .iter()
        .map(|(name, c)| format!("{name} ({})", c.instance))
        .collect();
    let store = if settings.store.url.is_some() {
        "PostgreSQL (store.url)".to_owned()
    } else {
        settings.store.path.display().to_string()
    };
    println!(
        "{}: ok; listen={}{} store={} api_keys={} connections: {}",
        path.display(),
        settings.server.listen,
        if settings.server.tls_cert.is_some() {
            " (TLS)"
        } else {
            ""
        },
        store,
        settings.security.api_keys.len(),
        if connections.is_empty() {
            "none".to_owned()
        } else {
            connections.join(", ")
        }
    );
    ExitCode::SUCCESS
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("mastodon-sidecar: cannot start the runtime: {e}");
            ExitCode::FAILURE
        })
}

fn serve(path: &std::path::Path) -> ExitCode {
    let settings = match load(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    telemetry::init(&settings.log, std::io::stdout);
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let app = match Application::build(settings).await {
            Ok(app) => app,
            Err(e) => {
                eprintln!("mastodon-sidecar: {e}");
                return ExitCode::FAILURE;
            }
        };
        match app.run_until_stopped().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mastodon-sidecar: the server failed: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Runs a store command with warnings on stderr, so its own output stays readable.
fn command<F, Fut>(path: &std::path::Path, run: F) -> ExitCode
where
    F: FnOnce(Settings) -> Fut,
    Fut: std::future::Future<Output = Result<(), mastodon_sidecar::commands::CommandError>>,
{
    let settings = match load(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut log = settings.log.clone();
    log.format = mastodon_sidecar::config::LogFormat::Pretty;
    log.level = "warn".into();
    telemetry::init(&log, std::io::stderr);
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mastodon-sidecar: {e}");
            ExitCode::FAILURE
        }
    }
}

fn probe(url: &str, insecure: bool) -> ExitCode {
    let loopback = url::Url::parse(url).ok().is_some_and(|u| match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    });
    if insecure && !loopback {
        eprintln!("mastodon-sidecar: --insecure is only for loopback URLs");
        return ExitCode::from(2);
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let client = match reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .danger_accept_invalid_certs(insecure)
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("mastodon-sidecar: {e}");
                return ExitCode::FAILURE;
            }
        };
        match client.get(url).send().await {
            Ok(r) if r.status().is_success() => ExitCode::SUCCESS,
            Ok(r) => {
                eprintln!("mastodon-sidecar: {url} answered {}", r.status());
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("mastodon-sidecar: {url}: {}", e.without_url());
                ExitCode::FAILURE
            }
        }
    })
}

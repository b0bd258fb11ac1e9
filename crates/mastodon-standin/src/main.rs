//! `mastodon-standin`: the stand-in as a standalone server, for benchmarks.
//!
//! ```text
//! mastodon-standin --listen 127.0.0.1:9000 [--profile mastodon|gotosocial|takahe|hollo|snac|mitra]
//!                  [--token TOKEN] [--max-characters N]
//!                  [--rate-limit N] [--workers N] [--mastodon-version V] [--no-pkce] [--no-v2-instance]
//! ```
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use mastodon_standin::{Options, Profile, StandIn};

const USAGE: &str = "usage: mastodon-standin --listen ADDR \
[--profile mastodon|gotosocial|takahe|hollo|snac|mitra] [--token TOKEN] [--max-characters N] \
[--rate-limit N] [--workers N] [--mastodon-version V] [--no-pkce] [--no-v2-instance]";

struct Args {
    listen: SocketAddr,
    token: Option<String>,
    workers: usize,
    options: Options,
}

fn parse_args() -> Result<Args, String> {
    let mut listen: Option<SocketAddr> = None;
    let mut token = None;
    let mut workers = 1;
    // The profile sets the defaults that the other flags then change, wherever it is given.
    let all: Vec<String> = std::env::args().skip(1).collect();
    let profile = all
        .iter()
        .enumerate()
        .find_map(|(i, a)| match a.split_once('=') {
            Some(("--profile", v)) => Some(v.to_owned()),
            _ if a == "--profile" => all.get(i + 1).cloned(),
            _ => None,
        });
    let mut options = match profile {
        Some(name) => Options::for_profile(
            Profile::parse(&name).ok_or_else(|| format!("--profile: unknown profile: {name}"))?,
        ),
        None => Options::default(),
    };
    let mut args = all.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{name}: not a number: {v}"))
        };
        match name.as_str() {
            "--listen" => {
                let v = value()?;
                listen = Some(
                    v.parse()
                        .map_err(|_| format!("--listen: bad address: {v}"))?,
                );
            }
            "--token" => token = Some(value()?),
            "--profile" => {
                value()?;
            }
            "--max-characters" => options.max_characters = number(value()?)?,
            "--rate-limit" => options.rate_limit = number(value()?)?,
            "--workers" => workers = number(value()?)?.max(1) as usize,
            "--mastodon-version" => options.version = value()?,
            "--no-pkce" => options.pkce = false,
            "--no-v2-instance" => options.v2_instance = false,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    Ok(Args {
        listen: listen.ok_or("--listen is required")?,
        token,
        workers,
        options,
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("mastodon-standin: {e}");
            }
            eprintln!("{USAGE}");
            return if e.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    let standin = match StandIn::start_with_workers(args.listen, args.options, args.workers).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mastodon-standin: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    if let Some(token) = &args.token {
        standin.seed_user_token(token, "read write");
    }
    println!("listening on http://{}", standin.addr);
    let _ = std::io::stdout().flush();
    shutdown_signal().await;
    standin.stop().await;
    ExitCode::SUCCESS
}

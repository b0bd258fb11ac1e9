//! `mastodon-sidecar-bench`: the whole end-to-end benchmark on one machine.
//!
//! ```text
//! cargo build --release --workspace && target/release/mastodon-sidecar-bench [--duration 10] [--quick]
//! ```
//!
//! It builds nothing: it runs `mastodon-standin` and `mastodon-sidecar` from the directory it was
//! built into (`target/release`), plus nginx (installed with apt-get when missing), all on loopback
//! ports, drives the sidecar's OAuth flow, loads each row at fixed concurrency and at a fixed rate,
//! stops everything and prints Markdown tables on standard output (progress goes to standard error).

use std::fs::{File, OpenOptions};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use bench::client::{self, Payload, Target};
use bench::load::{self, Mode};
use bench::procs::{self, Proc, TempDir};
use bench::report::{self, Measured, Row};
use bench::{setup, stats};
use hyper::Method;

const USAGE: &str = "usage: mastodon-sidecar-bench [--duration SECS] [--warmup SECS] [--quick] \
[--connections N] [--rate N] [--rounds N] [--ready-samples N] [--no-nginx] [--rows LIST] [--keep-temp] [--set KEY=VALUE]...

Runs the end-to-end benchmark: the Mastodon stand-in, nginx in front of it, and the sidecar's
postStatus in JSON, plain XML and SOAP 1.1, each at fixed concurrency (closed loop) and at a fixed
rate (open loop). Build first: cargo build --release --workspace

  --duration SECS      each row's measured time in each mode (default 10; --quick: 2)
  --warmup SECS        closed-loop warm-up before each row (default 2; --quick: 0.5)
  --connections N      connections in both modes (default 64)
  --rate N             the open loop's requests per second (default 1000)
  --rounds N           each mode's duration is cut into N slices per row, the rows taking turns
                       (default 5; --quick: 2)
  --ready-samples N    sidecar restarts timed from spawn to ready (default 5; --quick: 3)
  --no-nginx           skip the nginx row
  --rows LIST          only these rows, of direct,nginx,json,xml,soap11 (direct, the baseline, always runs)
  --keep-temp          keep the temporary directory (configurations, logs, store)
  --set KEY=VALUE      change the sidecar's configuration, e.g. connections.main.max_in_flight=64
                       (an experiment: the report then says the sidecar did not run as shipped)";

/// Above this much CPU used by anything else during a run (% of one CPU), the figures are noisy.
const NOISE_CPU_PCT: f64 = 25.0;

/// The stand-in's seeded token, for the direct and nginx rows.
const DIRECT_TOKEN: &str = "bench-direct-token";

#[derive(Clone, Debug)]
struct Options {
    duration: Duration,
    warmup: Duration,
    connections: usize,
    rate: u64,
    ready_samples: usize,
    rounds: usize,
    nginx: bool,
    keep: bool,
    overrides: Vec<(String, String)>,
    rows: Option<Vec<String>>,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(2),
        connections: 64,
        rate: 1000,
        ready_samples: 5,
        rounds: 5,
        nginx: true,
        keep: false,
        overrides: Vec::new(),
        rows: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    // --quick first, so that explicit values win whatever the order.
    if args.iter().any(|a| a == "--quick") {
        o.duration = Duration::from_secs(2);
        o.warmup = Duration::from_millis(500);
        o.ready_samples = 3;
        o.rounds = 2;
    }
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let seconds = |v: String| -> Result<Duration, String> {
            v.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0 && *s < 3600.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| format!("{name}: not a number of seconds: {v}"))
        };
        let number = |v: String| -> Result<u64, String> {
            v.parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{name}: not a positive number: {v}"))
        };
        match name.as_str() {
            "--quick" => {}
            "--duration" => o.duration = seconds(value()?)?,
            "--warmup" => o.warmup = seconds(value()?)?,
            "--connections" => o.connections = number(value()?)? as usize,
            "--rate" => o.rate = number(value()?)?,
            "--ready-samples" => o.ready_samples = number(value()?)? as usize,
            "--rounds" => o.rounds = number(value()?)? as usize,
            "--no-nginx" => o.nginx = false,
            "--rows" => {
                let list: Vec<String> = value()?.split(',').map(|r| r.trim().to_owned()).collect();
                let known = ["direct", "nginx", "json", "xml", "soap11"];
                if let Some(bad) = list.iter().find(|r| !known.contains(&r.as_str())) {
                    return Err(format!(
                        "--rows: unknown row {bad}; rows are {}",
                        known.join(",")
                    ));
                }
                if !list.iter().any(|r| r == "nginx") {
                    o.nginx = false;
                }
                o.rows = Some(list);
            }
            "--keep-temp" => o.keep = true,
            "--set" => {
                let v = value()?;
                let (key, val) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--set {v}: expected KEY=VALUE"))?;
                o.overrides
                    .push((key.trim().to_owned(), val.trim().to_owned()));
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("mastodon-sidecar-bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // One thread: the generator must leave the cores to what it measures.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mastodon-sidecar-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = rt.block_on(async {
        tokio::select! {
            result = run(&options) => result,
            signal = interrupted() => Err(format!("interrupted by {signal}; everything started was stopped")),
        }
    });
    match outcome {
        Ok(markdown) => {
            print!("{markdown}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mastodon-sidecar-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// SIGINT, SIGTERM or SIGHUP: the run future is dropped, and with it every child process.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
        _ = hup.recv() => "SIGHUP",
    }
}

macro_rules! progress {
    ($($arg:tt)*) => { eprintln!("bench: {}", format!($($arg)*)) };
}

struct Binaries {
    sidecar: PathBuf,
    standin: PathBuf,
    root: PathBuf,
}

fn locate() -> Result<Binaries, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
    let dir = exe.parent().ok_or("the executable has no directory")?;
    let sidecar = dir.join("mastodon-sidecar");
    let standin = dir.join("mastodon-standin");
    for bin in [&sidecar, &standin] {
        if !bin.is_file() {
            return Err(format!(
                "{} is missing: run `cargo build --release --workspace` first",
                bin.display()
            ));
        }
    }
    // target/release -> the workspace; else where this crate was compiled from.
    let root = dir
        .ancestors()
        .nth(2)
        .filter(|r| r.join("config/sidecar.toml").is_file())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    warn_if_stale(&sidecar, &root);
    Ok(Binaries {
        sidecar,
        standin,
        root,
    })
}

/// A sidecar binary older than its sources measures old code: say so.
fn warn_if_stale(bin: &Path, root: &Path) {
    fn newest(dir: &Path) -> Option<std::time::SystemTime> {
        let mut best = None;
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            let path = entry.path();
            let t = if path.is_dir() {
                newest(&path)
            } else {
                entry.metadata().ok()?.modified().ok()
            };
            best = best.max(t);
        }
        best
    }
    let built = std::fs::metadata(bin).and_then(|m| m.modified()).ok();
    let sources = newest(&root.join("src"));
    if let (Some(built), Some(sources)) = (built, sources) {
        if sources > built {
            progress!(
                "warning: {} is older than src/: run `cargo build --release --workspace` to measure the current code",
                bin.display()
            );
        }
    }
}

fn log_file(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Starts the sidecar and waits for `/readyz`: the process and its start-to-ready time.
fn start_sidecar(
    bins: &Binaries,
    dir: &Path,
    config: &Path,
    addr: SocketAddr,
) -> Result<(Proc, Duration), String> {
    let log = dir.join("sidecar.log");
    let mut cmd = Command::new(&bins.sidecar);
    cmd.arg("--config")
        .arg(config)
        .arg("serve")
        .current_dir(dir)
        .stdin(Stdio::null())
        // JSON logs at info (as shipped) to a file, as a service manager would keep them.
        .stdout(log_file(&log)?)
        .stderr(log_file(&dir.join("sidecar.stderr"))?);
    for (key, _) in std::env::vars() {
        if key.to_ascii_uppercase().starts_with("MASTODON_SIDECAR__") {
            cmd.env_remove(key);
        }
    }
    let spawned = Instant::now();
    let mut proc = Proc::spawn("the sidecar", cmd, false).map_err(|e| e.to_string())?;
    let ready =
        procs::wait_ready(addr, &mut proc, spawned, Duration::from_secs(15)).map_err(|e| {
            format!(
                "{e}\n{}\n{}",
                procs::tail(&log, 5),
                procs::tail(&dir.join("sidecar.stderr"), 5)
            )
        })?;
    Ok((proc, ready))
}

fn json(answer: &client::Answer, what: &str) -> Result<serde_json::Value, String> {
    if answer.status != 200 {
        return Err(format!("{what}: HTTP {}: {}", answer.status, answer.text()));
    }
    serde_json::from_slice(&answer.body).map_err(|e| format!("{what}: not JSON: {e}"))
}

/// createApp → authorizeUrl → approve at the stand-in (its out-of-band page shows the code) →
/// getToken, all through the sidecar's own API, as a user does it once.
async fn connect_account(sidecar: SocketAddr, standin: SocketAddr) -> Result<(), String> {
    let e = |e: std::io::Error| e.to_string();
    let ops = "/v1/operations";
    json(
        &client::post_json(sidecar, &format!("{ops}/createApp"), "{}")
            .await
            .map_err(e)?,
        "createApp",
    )?;
    let auth = json(
        &client::post_json(sidecar, &format!("{ops}/authorizeUrl"), "{}")
            .await
            .map_err(e)?,
        "authorizeUrl",
    )?;
    let url = auth["url"].as_str().ok_or("authorizeUrl: no url")?;
    let state = auth["state"].as_str().ok_or("authorizeUrl: no state")?;
    let prefix = format!("http://{standin}");
    let path = url
        .strip_prefix(&prefix)
        .ok_or_else(|| format!("authorizeUrl: {url} is not at the stand-in {prefix}"))?;
    let page = client::once(standin, Method::GET, path, &[], "")
        .await
        .map_err(e)?;
    if page.status != 200 {
        return Err(format!("the authorization page: HTTP {}", page.status));
    }
    let text = page.text();
    let code = text
        .split_once("value=\"")
        .and_then(|(_, rest)| rest.split('"').next())
        .ok_or("no code on the authorization page")?;
    let body = serde_json::json!({"code": code, "state": state}).to_string();
    json(
        &client::post_json(sidecar, &format!("{ops}/getToken"), &body)
            .await
            .map_err(e)?,
        "getToken",
    )?;
    json(
        &client::post_json(sidecar, &format!("{ops}/verifyCredentials"), "{}")
            .await
            .map_err(e)?,
        "verifyCredentials",
    )?;
    Ok(())
}

/// Posts one status straight to the stand-in and answers its account's `statuses_count`: the
/// number of statuses really created so far (idempotent replays do not count).
async fn statuses_created(standin: SocketAddr, probe: u64) -> Result<u64, String> {
    let target = Target::new(standin, Payload::Mastodon, Some(DIRECT_TOKEN.into()));
    let mut conn = client::connect(standin).await.map_err(|e| e.to_string())?;
    let answer = client::exchange(&mut conn, target.request("probe", probe))
        .await
        .map_err(|e| e.to_string())?;
    let v = json(&answer, "the stand-in's statuses_count probe")?;
    v["account"]["statuses_count"]
        .as_u64()
        .ok_or_else(|| "the stand-in's Status has no account.statuses_count".into())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Under {
    Nothing,
    Nginx,
    Sidecar,
}

struct RowPlan {
    name: &'static str,
    slug: &'static str,
    under: Under,
    target: Result<Target, String>,
}

struct RowResult {
    closed: Row,
    open: Row,
    lag_p99: Option<u64>,
}

/// What the slices of one row in one mode add up to.
#[derive(Default)]
struct Acc {
    stats: Option<stats::RunStats>,
    /// CPU seconds of the processes under test (None: unreadable).
    under_cpu: Option<f64>,
    standin_cpu: f64,
    generator_cpu: f64,
    other_cpu: f64,
    irq: f64,
    steal: f64,
    wall: f64,
    peak_rss_kib: Option<u64>,
    failed: Option<String>,
}

impl Acc {
    fn measured(&self, under: Under) -> Result<Measured, String> {
        let Some(s) = &self.stats else {
            return Err(self.failed.clone().unwrap_or_else(|| "not run".into()));
        };
        let mut m = Measured::from_stats(s);
        let requests = s.ok + s.errors;
        if under != Under::Nothing {
            m.cpu_per_1k = self
                .under_cpu
                .filter(|_| requests > 0)
                .map(|c| c / requests as f64 * 1000.0);
            m.peak_rss_kib = self.peak_rss_kib;
        }
        if self.wall > 0.0 {
            let pct = |x: f64| x / self.wall * 100.0;
            m.cpu_pct = Some([
                pct(self.under_cpu.unwrap_or(0.0)),
                pct(self.standin_cpu),
                pct(self.generator_cpu),
                pct(self.other_cpu),
                pct(self.irq),
                pct(self.steal),
            ]);
        }
        Ok(m)
    }
}

/// The processes whose CPU and memory a row measures.
fn pids_under(under: Under, sidecar: u32, nginx: Option<u32>) -> Vec<u32> {
    match under {
        Under::Nothing => Vec::new(),
        Under::Sidecar => vec![sidecar],
        Under::Nginx => nginx
            .map(|master| {
                let mut all = vec![master];
                all.extend(procs::children(master));
                all
            })
            .unwrap_or_default(),
    }
}

struct Ctx {
    standin_pid: u32,
    sidecar_pid: u32,
    nginx_pid: Option<u32>,
    run_id: String,
    compilers_seen: usize,
    /// The most CPU other processes used during a slice, % of one CPU.
    other_cpu_max: f64,
    /// The most the hypervisor stole during a run, % of one CPU.
    steal_max: f64,
    /// Successful requests over all runs, warm-ups included.
    ok_total: u64,
    /// Requests to the sidecar over all runs, warm-ups included.
    sidecar_requests: u64,
}

/// One slice of a row in one mode, added to `acc`.
async fn slice(
    ctx: &mut Ctx,
    plan: &RowPlan,
    target: &Target,
    mode: Mode,
    duration: Duration,
    tag: &str,
    acc: &mut Acc,
) {
    ctx.compilers_seen = ctx.compilers_seen.max(procs::busy_compilers());
    let pids = pids_under(plan.under, ctx.sidecar_pid, ctx.nginx_pid);
    if !pids.iter().all(|&p| procs::reset_peak_rss(p)) {
        progress!("note: VmHWM could not be reset; peak RSS is since the process started");
    }
    let me = std::process::id();
    let machine_before = procs::machine_seconds();
    let before = (
        procs::cpu_seconds_all(&pids),
        procs::cpu_seconds(ctx.standin_pid),
        procs::cpu_seconds(me),
    );
    let started = Instant::now();
    let stats = match load::run(target, mode, duration, tag).await {
        Ok(s) => s,
        Err(e) => {
            progress!("{}: {e}", plan.name);
            acc.failed.get_or_insert_with(|| e.to_string());
            return;
        }
    };
    let wall = started.elapsed().as_secs_f64();
    let after = (
        procs::cpu_seconds_all(&pids),
        procs::cpu_seconds(ctx.standin_pid),
        procs::cpu_seconds(me),
    );
    let machine_after = procs::machine_seconds();
    ctx.compilers_seen = ctx.compilers_seen.max(procs::busy_compilers());
    if let Some(e) = &stats.first_error {
        progress!("{}: {} errors; the first: {e}", plan.name, stats.errors);
    }
    ctx.ok_total += stats.ok;
    if plan.under == Under::Sidecar {
        ctx.sidecar_requests += stats.ok + stats.errors;
    }
    match &mut acc.stats {
        Some(total) => total.merge(&stats),
        None => acc.stats = Some(stats),
    }
    if plan.under != Under::Nothing {
        acc.under_cpu = match (before.0, after.0) {
            (Some(a), Some(b)) => Some(acc.under_cpu.unwrap_or(0.0) + (b - a)),
            _ => None,
        };
        let peak: Option<u64> = pids.iter().map(|&p| procs::peak_rss_kib(p)).sum();
        acc.peak_rss_kib = acc.peak_rss_kib.max(peak);
    }
    if let ((Some(u0), Some(s0), Some(g0)), (Some(u1), Some(s1), Some(g1))) = (before, after) {
        let ours = (u1 - u0) + (s1 - s0) + (g1 - g0);
        let (other, irq, steal) = match (machine_before, machine_after) {
            (Some(a), Some(b)) => (
                (b.0 - a.0 - ours).max(0.0),
                (b.1 - a.1).max(0.0),
                (b.2 - a.2).max(0.0),
            ),
            _ => (0.0, 0.0, 0.0),
        };
        acc.standin_cpu += s1 - s0;
        acc.generator_cpu += g1 - g0;
        acc.other_cpu += other;
        acc.irq += irq;
        acc.steal += steal;
        acc.wall += wall;
        ctx.steal_max = ctx.steal_max.max(steal / wall * 100.0);
        ctx.other_cpu_max = ctx.other_cpu_max.max(other / wall * 100.0);
    }
}

/// Warms every row up, then runs each mode as `rounds` slices per row, the rows taking turns
/// (round robin): a disturbance of the machine (another process, the hypervisor) then falls on
/// every row alike instead of on whichever row was running.
async fn run_rows(ctx: &mut Ctx, plans: &[RowPlan], o: &Options) -> Vec<RowResult> {
    let mut available: Vec<Result<&Target, String>> = Vec::new();
    for plan in plans {
        let target = match &plan.target {
            Ok(t) => t,
            Err(why) => {
                available.push(Err(why.clone()));
                continue;
            }
        };
        progress!("{}: warm-up {:?}", plan.name, o.warmup);
        let mode = Mode::Closed {
            connections: o.connections,
        };
        let tag = format!("{}-warm-{}", plan.slug, ctx.run_id);
        match load::run(target, mode, o.warmup, &tag).await {
            Ok(s) => {
                ctx.ok_total += s.ok;
                if plan.under == Under::Sidecar {
                    ctx.sidecar_requests += s.ok + s.errors;
                }
                if let Some(e) = s.first_error {
                    progress!("{} warm-up: {} errors; the first: {e}", plan.name, s.errors);
                }
                available.push(Ok(target));
            }
            Err(e) => available.push(Err(format!("warm-up failed: {e}"))),
        }
    }
    let modes = [
        (
            "closed",
            Mode::Closed {
                connections: o.connections,
            },
        ),
        (
            "open",
            Mode::Open {
                connections: o.connections,
                rate: o.rate,
            },
        ),
    ];
    let slice_len = o.duration / o.rounds as u32;
    let mut accs: Vec<[Acc; 2]> = plans.iter().map(|_| Default::default()).collect();
    for (mi, (mode_name, mode)) in modes.iter().enumerate() {
        progress!(
            "{mode_name} loop: {} rounds of {slice_len:?} per row, rows taking turns",
            o.rounds
        );
        for round in 0..o.rounds {
            for (pi, plan) in plans.iter().enumerate() {
                let Ok(target) = available[pi] else { continue };
                let tag = format!("{}-{mode_name}-{}-r{round}", plan.slug, ctx.run_id);
                slice(ctx, plan, target, *mode, slice_len, &tag, &mut accs[pi][mi]).await;
            }
        }
        for (pi, plan) in plans.iter().enumerate() {
            if let Ok(m) = accs[pi][mi].measured(plan.under) {
                progress!(
                    "{} ({mode_name}): {} req/s, p50 {}, p99 {}, {} errors",
                    plan.name,
                    report::thousands(m.rps),
                    report::ms(m.p50),
                    report::ms(m.p99),
                    m.errors
                );
            }
        }
    }
    plans
        .iter()
        .zip(accs)
        .zip(available)
        .map(|((plan, [closed, open]), available)| {
            let outcome = |acc: &Acc| match &available {
                Err(why) => Err(why.clone()),
                Ok(_) => acc.measured(plan.under),
            };
            let open_m = outcome(&open);
            RowResult {
                closed: Row {
                    name: plan.name.into(),
                    outcome: outcome(&closed),
                },
                lag_p99: open_m.as_ref().ok().and_then(|m| m.send_lag_p99),
                open: Row {
                    name: plan.name.into(),
                    outcome: open_m,
                },
            }
        })
        .collect()
}

struct Machine {
    nproc: usize,
    cpu: String,
    mem_gib: f64,
    kernel: String,
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib = procs::parse_status_kib(&meminfo, "MemTotal").unwrap_or(0);
    Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu,
        mem_gib: mem_kib as f64 / 1024.0 / 1024.0,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default(),
    }
}

/// Today's date (UTC), from the system clock.
fn today() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn git_commit(root: &Path) -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

async fn run(o: &Options) -> Result<String, String> {
    let started = Instant::now();
    let bins = locate()?;
    // Dropped last: after every process below has stopped.
    let tmp =
        TempDir::new(o.keep).map_err(|e| format!("cannot make a temporary directory: {e}"))?;
    let dir = tmp.path.clone();
    progress!("working in {}", dir.display());
    let machine = machine();

    // The stand-in: one worker, a rate limit that never interferes, a token for the direct rows.
    let standin_addr = loopback(procs::free_port().map_err(|e| e.to_string())?);
    let mut cmd = Command::new(&bins.standin);
    cmd.args([
        "--listen",
        &standin_addr.to_string(),
        "--token",
        DIRECT_TOKEN,
        "--workers",
        "1",
        "--rate-limit",
        "100000000",
    ])
    .stdin(Stdio::null())
    .stdout(log_file(&dir.join("standin.log"))?)
    .stderr(log_file(&dir.join("standin.log"))?);
    let mut standin = Proc::spawn("the stand-in", cmd, false).map_err(|e| e.to_string())?;
    procs::wait_listening(standin_addr, &mut standin, Duration::from_secs(10))?;
    progress!("stand-in pid {} on {standin_addr}", standin.pid());

    // The sidecar, as shipped: the release binary and config/sidecar.toml but for three keys.
    let sidecar_addr = loopback(procs::free_port().map_err(|e| e.to_string())?);
    let shipped = std::fs::read_to_string(bins.root.join("config/sidecar.toml"))
        .map_err(|e| format!("config/sidecar.toml: {e}"))?;
    let config = dir.join("sidecar.toml");
    std::fs::write(
        &config,
        setup::sidecar_config(
            &shipped,
            sidecar_addr,
            &dir,
            &format!("http://{standin_addr}"),
            &o.overrides,
        )?,
    )
    .map_err(|e| e.to_string())?;
    let (mut sidecar, first_ready) = start_sidecar(&bins, &dir, &config, sidecar_addr)?;
    progress!(
        "sidecar ready in {:.1} ms (first start, empty store)",
        first_ready.as_secs_f64() * 1000.0
    );
    connect_account(sidecar_addr, standin_addr).await?;
    progress!("account connected through createApp, authorizeUrl, approval, getToken");

    // Start to ready, on the store that now holds the app and the token (a restart).
    let mut ready_samples = Vec::new();
    let mut stop_times = Vec::new();
    for _ in 0..o.ready_samples {
        stop_times.push(sidecar.stop(Duration::from_secs(15)));
        let (next, ready) = start_sidecar(&bins, &dir, &config, sidecar_addr)?;
        sidecar = next;
        ready_samples.push(ready);
    }
    let ready_median = stats::median(&ready_samples);
    progress!(
        "sidecar start to ready: {:?} (median {:?}); pid {}",
        ready_samples,
        ready_median,
        sidecar.pid()
    );
    // The token survived the restarts.
    let check = client::post_json(
        sidecar_addr,
        "/v1/operations/postStatus",
        r#"{"status":"Benchmark: the token is in the store"}"#,
    )
    .await
    .map_err(|e| e.to_string())?;
    let status_bytes = json(&check, "postStatus after the restarts")?
        .to_string()
        .len();

    // nginx in front of the stand-in.
    let nginx_dir = dir.join("nginx");
    let _ = std::fs::create_dir_all(&nginx_dir);
    let mut nginx_version = None;
    let (nginx, nginx_target) = if !o.nginx {
        (None, Err("skipped (--no-nginx)".to_owned()))
    } else {
        match start_nginx(&nginx_dir, standin_addr).await {
            Ok((proc, addr, version)) => {
                nginx_version = version;
                (
                    Some(proc),
                    Ok(Target::new(
                        addr,
                        Payload::Mastodon,
                        Some(DIRECT_TOKEN.into()),
                    )),
                )
            }
            Err(why) => {
                progress!("nginx row: {why}");
                (None, Err(format!("nginx not available: {why}")))
            }
        }
    };

    let plans = vec![
        RowPlan {
            name: "direct to the stand-in",
            slug: "direct",
            under: Under::Nothing,
            target: Ok(Target::new(
                standin_addr,
                Payload::Mastodon,
                Some(DIRECT_TOKEN.into()),
            )),
        },
        RowPlan {
            name: "nginx → stand-in",
            slug: "nginx",
            under: Under::Nginx,
            target: nginx_target,
        },
        RowPlan {
            name: "sidecar JSON",
            slug: "json",
            under: Under::Sidecar,
            target: Ok(Target::new(sidecar_addr, Payload::Json, None)),
        },
        RowPlan {
            name: "sidecar plain XML",
            slug: "xml",
            under: Under::Sidecar,
            target: Ok(Target::new(sidecar_addr, Payload::Xml, None)),
        },
        RowPlan {
            name: "sidecar SOAP 1.1",
            slug: "soap11",
            under: Under::Sidecar,
            target: Ok(Target::new(sidecar_addr, Payload::Soap11, None)),
        },
    ];
    let plans: Vec<RowPlan> = plans
        .into_iter()
        .filter(|p| {
            p.slug == "direct"
                || o.rows
                    .as_ref()
                    .is_none_or(|rows| rows.iter().any(|r| r == p.slug))
        })
        .collect();
    let mut ctx = Ctx {
        standin_pid: standin.pid(),
        sidecar_pid: sidecar.pid(),
        nginx_pid: nginx.as_ref().map(Proc::pid),
        run_id: format!("{}", std::process::id()),
        compilers_seen: 0,
        other_cpu_max: 0.0,
        steal_max: 0.0,
        ok_total: 0,
        sidecar_requests: 0,
    };
    progress!("timer wake-up lateness of this machine: 2 s of 1 ms sleeps");
    let lateness = load::timer_wakeup_lateness(Duration::from_secs(2));
    let log_before = std::fs::metadata(dir.join("sidecar.log")).map_or(0, |m| m.len());
    let created_before = statuses_created(standin_addr, 1).await;
    let results = run_rows(&mut ctx, &plans, o).await;
    let created_after = statuses_created(standin_addr, 2).await;
    let log_after = std::fs::metadata(dir.join("sidecar.log")).map_or(0, |m| m.len());

    // Everything stops here (and on every other way out of this function, by Drop).
    let sidecar_stop = sidecar.stop(Duration::from_secs(15));
    drop(nginx);
    drop(standin);

    let binary_size = std::fs::metadata(&bins.sidecar).map_or(0, |m| m.len());
    let sidecar_requests = ctx.sidecar_requests;

    let mut md = String::new();
    let commit = git_commit(&bins.root).unwrap_or_else(|| "unknown".into());
    let nginx_v = nginx_version.clone().unwrap_or_else(|| "no nginx".into());
    md.push_str(&format!(
        "Machine: {} CPUs ({}), {:.1} GiB memory, Linux {}; {}; commit {commit}; {nginx_v}. \
         The load generator (1 thread), the stand-in (1 worker), nginx (1 worker) and the sidecar \
         (2 workers) share these CPUs. After a {} s warm-up per row, each row is measured for {} s \
         in each mode, as {} slices of {} s, the rows taking turns so that a disturbance of the \
         machine falls on all of them alike.\n\n",
        machine.nproc,
        machine.cpu,
        machine.mem_gib,
        machine.kernel,
        today(),
        o.warmup.as_secs_f64(),
        o.duration.as_secs_f64(),
        o.rounds,
        (o.duration / o.rounds as u32).as_secs_f64(),
    ));
    if o.overrides.is_empty() {
        md.push_str(
            "The sidecar ran as shipped: the release binary, config/sidecar.toml with only the \
             listener, the store and the instance changed.\n\n",
        );
    } else {
        let changed: Vec<String> = o
            .overrides
            .iter()
            .map(|(k, v)| format!("`{k} = {v}`"))
            .collect();
        md.push_str(&format!(
            "**Not as shipped**: the sidecar's configuration was changed with {}.\n\n",
            changed.join(", ")
        ));
    }
    md.push_str(&format!(
        "**Fixed concurrency**: {} connections, closed loop.\n\n",
        o.connections
    ));
    let closed: Vec<Row> = results.iter().map(|r| r.closed.clone()).collect();
    md.push_str(&report::table(&closed));
    md.push_str(&format!(
        "\n**Fixed rate**: {} requests/s over {} connections, open loop; latency from each request's \
         scheduled send time.\n\n",
        report::thousands(o.rate as f64),
        o.connections
    ));
    let open: Vec<Row> = results.iter().map(|r| r.open.clone()).collect();
    md.push_str(&report::table(&open));
    md.push_str(
        "\nAdded latency is over the direct row of the same table. CPU s / 1k req (user + system, \
         from /proc/PID/stat) and peak RSS (VmHWM, reset before each run) are the sidecar's; on the \
         nginx row, nginx's (master and worker).\n\n",
    );
    md.push_str(
        "CPU used during the runs, % of one CPU (the machine has 200 %), fixed concurrency:\n\n",
    );
    md.push_str(&report::cpu_table(&closed));
    md.push_str("\nand at the fixed rate:\n\n");
    md.push_str(&report::cpu_table(&open));
    md.push('\n');
    let samples: Vec<String> = ready_samples
        .iter()
        .map(|d| format!("{:.1}", d.as_secs_f64() * 1000.0))
        .collect();
    md.push_str(&format!(
        "- Start to ready (spawn to the first 200 on /readyz, store holding the app and token): \
         median **{}** of {} restarts ({} ms); first start on an empty store {:.1} ms. Stop on \
         SIGTERM: {:.1} ms.\n",
        ready_median.map_or("–".into(), |d| format!(
            "{:.1} ms",
            d.as_secs_f64() * 1000.0
        )),
        ready_samples.len(),
        samples.join(", "),
        first_ready.as_secs_f64() * 1000.0,
        sidecar_stop.as_secs_f64() * 1000.0,
    ));
    md.push_str(&format!(
        "- Release binary `target/release/mastodon-sidecar`: **{:.1} MiB**.\n",
        binary_size as f64 / 1024.0 / 1024.0
    ));
    md.push_str(&format!(
        "- The sidecar logs JSON at `info` (as shipped) to a file: {} bytes per request. The Status \
         it answers in JSON is {} bytes.\n",
        if sidecar_requests > 0 {
            format!(
                "{:.0}",
                log_after.saturating_sub(log_before) as f64 / sidecar_requests as f64
            )
        } else {
            "–".into()
        },
        status_bytes
    ));
    let created = match (created_before, created_after) {
        // The second probe is itself a status.
        (Ok(a), Ok(b)) => {
            let made = b.saturating_sub(a + 1);
            if made == ctx.ok_total {
                format!(
                    "yes: {} statuses for {} successful requests (warm-ups included)",
                    report::thousands(made as f64),
                    report::thousands(ctx.ok_total as f64)
                )
            } else {
                format!(
                    "**no**: {} statuses for {} successful requests",
                    report::thousands(made as f64),
                    report::thousands(ctx.ok_total as f64)
                )
            }
        }
        (Err(e), _) | (_, Err(e)) => format!("not checked ({e})"),
    };
    md.push_str(&format!(
        "- Every successful request created a status at the stand-in (distinct texts, so no \
         idempotent replay): {created}.\n"
    ));
    let lags: Vec<String> = plans
        .iter()
        .zip(&results)
        .filter_map(|(p, r)| r.lag_p99.map(|l| format!("{} {l} µs", p.slug)))
        .collect();
    md.push_str(&format!(
        "- How late requests left the generator at p99 (fixed rate; the generator's own lag plus \
         waiting for a free connection when all 64 were busy): {}.\n",
        lags.join(", ")
    ));
    let late = |pct| stats::percentile_us(&lateness, pct).unwrap_or(0);
    md.push_str(&format!(
        "- This machine's timer wake-up lateness (a thread sleeping 1 ms at a time for 2 s, before the \
         runs): p50 {} µs, p99 {} µs, p99.9 {} µs. It is a floor under the fixed-rate percentiles of \
         every row; the hypervisor stole at most {:.0} % of one CPU during a run.\n",
        late(50.0),
        late(99.0),
        late(99.9),
        ctx.steal_max,
    ));
    let noisy = ctx.compilers_seen > 0 || ctx.other_cpu_max > NOISE_CPU_PCT;
    md.push_str(&format!(
        "- Other load: compilers or linkers seen running {}; other processes used at most {:.0} % of \
         one CPU during a slice: {}.\n\n",
        ctx.compilers_seen,
        ctx.other_cpu_max,
        if noisy {
            "**noisy**, other work shared the CPUs"
        } else {
            "a quiet machine"
        }
    ));
    md.push_str("Targets:\n\n");
    md.push_str(&report::targets_table(&targets(
        &plans,
        &results,
        ready_median,
    )));
    md.push_str(&format!(
        "\nmachine: nproc={} cpu=\"{}\" mem_gib={:.1} kernel={} date={} commit={commit} nginx={} \
         duration_s={} rounds={} connections={} rate={} compilers_seen={} other_cpu_max_pct={:.0} steal_max_pct={:.0} timer_p99_us={} as_shipped={} bench_s={:.0}\n",
        machine.nproc,
        machine.cpu,
        machine.mem_gib,
        machine.kernel,
        today(),
        nginx_version.unwrap_or_else(|| "none".into()),
        o.duration.as_secs_f64(),
        o.rounds,
        o.connections,
        o.rate,
        ctx.compilers_seen,
        ctx.other_cpu_max,
        ctx.steal_max,
        late(99.0),
        o.overrides.is_empty(),
        started.elapsed().as_secs_f64(),
    ));
    drop(tmp);
    Ok(md)
}

async fn start_nginx(
    dir: &Path,
    upstream: SocketAddr,
) -> Result<(Proc, SocketAddr, Option<String>), String> {
    let bin = setup::nginx(&dir.join("apt-get.log"))?;
    let version = setup::nginx_version(&bin);
    let addr = loopback(procs::free_port().map_err(|e| e.to_string())?);
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, setup::nginx_config(dir, addr, upstream)).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(&bin);
    cmd.arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdin(Stdio::null())
        .stdout(log_file(&dir.join("stdout.log"))?)
        .stderr(log_file(&dir.join("stdout.log"))?);
    let mut proc = Proc::spawn("nginx", cmd, true).map_err(|e| e.to_string())?;
    procs::wait_listening(addr, &mut proc, Duration::from_secs(10))
        .map_err(|e| format!("{e}: {}", procs::tail(&dir.join("error.log"), 3)))?;
    // One request through it, to know the proxy works before loading it.
    let target = Target::new(addr, Payload::Mastodon, Some(DIRECT_TOKEN.into()));
    let mut conn = client::connect(addr).await.map_err(|e| e.to_string())?;
    let answer = client::exchange(&mut conn, target.request("nginx-check", 0))
        .await
        .map_err(|e| e.to_string())?;
    if answer.status != 200 {
        return Err(format!(
            "a request through nginx answered HTTP {}",
            answer.status
        ));
    }
    progress!(
        "nginx pid {} on {addr} ({})",
        proc.pid(),
        version.as_deref().unwrap_or("?")
    );
    Ok((proc, addr, version))
}

fn targets(
    plans: &[RowPlan],
    results: &[RowResult],
    ready: Option<Duration>,
) -> Vec<report::Target> {
    let find = |slug: &str| {
        plans
            .iter()
            .position(|p| p.slug == slug)
            .map(|i| &results[i])
    };
    let closed = |slug: &str| find(slug).and_then(|r| r.closed.outcome.as_ref().ok());
    let open = |slug: &str| find(slug).and_then(|r| r.open.outcome.as_ref().ok());
    let sidecar = ["json", "xml", "soap11"];
    let names = ["JSON", "XML", "SOAP"];
    let mut out = Vec::new();

    out.push(match (closed("json"), closed("nginx")) {
        (Some(j), Some(n)) if n.rps > 0.0 => report::Target {
            what: "Sidecar JSON throughput ≥ 50 % of nginx's (fixed concurrency)".into(),
            figure: format!(
                "{} vs {} req/s: {:.0} %",
                report::thousands(j.rps),
                report::thousands(n.rps),
                j.rps / n.rps * 100.0
            ),
            met: Some(j.rps >= 0.5 * n.rps),
        },
        _ => report::Target {
            what: "Sidecar JSON throughput ≥ 50 % of nginx's (fixed concurrency)".into(),
            figure: "–".into(),
            met: None,
        },
    });
    out.push(match (closed("soap11"), closed("json")) {
        (Some(s), Some(j)) if j.rps > 0.0 => report::Target {
            what: "SOAP 1.1 throughput ≥ 80 % of JSON's".into(),
            figure: format!(
                "{} vs {} req/s: {:.0} %",
                report::thousands(s.rps),
                report::thousands(j.rps),
                s.rps / j.rps * 100.0
            ),
            met: Some(s.rps >= 0.8 * j.rps),
        },
        _ => report::Target {
            what: "SOAP 1.1 throughput ≥ 80 % of JSON's".into(),
            figure: "–".into(),
            met: None,
        },
    });
    let base99 = open("direct").and_then(|d| d.p99);
    let added: Vec<(&str, Option<i64>)> = sidecar
        .iter()
        .zip(names)
        .map(|(slug, name)| {
            let a = open(slug)
                .and_then(|m| m.p99)
                .zip(base99)
                .map(|(r, b)| r as i64 - b as i64);
            (name, a)
        })
        .collect();
    out.push(report::Target {
        what: "p99 added latency < 1 ms at 1,000 req/s".into(),
        figure: added
            .iter()
            .map(|(n, a)| {
                format!(
                    "{n} {}",
                    a.map_or("–".into(), |a| format!("{:+.2} ms", a as f64 / 1000.0))
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        // A row faster than the baseline by more than half a millisecond says the baseline run
        // was disturbed: no verdict then.
        met: added
            .iter()
            .map(|(_, a)| a.filter(|a| *a > -500).map(|a| a < 1000))
            .collect::<Option<Vec<bool>>>()
            .map(|v| v.iter().all(|&b| b)),
    });
    if added.iter().any(|(_, a)| a.is_some_and(|a| a <= -500)) {
        if let Some(t) = out.last_mut() {
            t.figure
                .push_str(" (the direct row's p99 was higher: a disturbed baseline, run again)");
        }
    }
    let cpu: Vec<(&str, Option<f64>, Option<f64>)> = sidecar
        .iter()
        .zip(names)
        .map(|(slug, name)| {
            (
                name,
                closed(slug).and_then(|m| m.cpu_per_1k),
                open(slug).and_then(|m| m.cpu_per_1k),
            )
        })
        .collect();
    out.push(report::Target {
        what: "Sidecar CPU < 0.05 s per 1,000 requests (fixed concurrency / fixed rate)".into(),
        figure: cpu
            .iter()
            .map(|(n, c, o)| format!("{n} {} / {}", report::cpu(*c), report::cpu(*o)))
            .collect::<Vec<_>>()
            .join(", "),
        met: cpu
            .iter()
            .flat_map(|(_, c, o)| [*c, *o])
            .collect::<Option<Vec<f64>>>()
            .map(|v| v.iter().all(|&c| c < 0.05)),
    });
    let peaks: Vec<u64> = sidecar
        .iter()
        .flat_map(|slug| [closed(slug), open(slug)])
        .flatten()
        .filter_map(|m| m.peak_rss_kib)
        .collect();
    let peak = peaks.iter().copied().max();
    out.push(report::Target {
        what: "Sidecar peak RSS < 30 MiB".into(),
        figure: report::mib(peak),
        met: peak.map(|p| p < 30 * 1024),
    });
    out.push(report::Target {
        what: "Start to ready < 100 ms (median)".into(),
        figure: ready.map_or("–".into(), |d| {
            format!("{:.1} ms", d.as_secs_f64() * 1000.0)
        }),
        met: ready.map(|d| d < Duration::from_millis(100)),
    });
    let errors: u64 = results
        .iter()
        .flat_map(|r| [&r.closed.outcome, &r.open.outcome])
        .filter_map(|o| o.as_ref().ok())
        .map(|m| m.errors)
        .sum();
    out.push(report::Target {
        what: "No errors (every row, both modes)".into(),
        figure: format!("{errors} errors"),
        met: Some(errors == 0),
    });
    out
}

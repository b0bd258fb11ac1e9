//! The load generator: a closed loop at fixed concurrency (each connection sends its next request
//! when the previous answer is in) and an open loop at a fixed rate (requests are scheduled at fixed
//! intervals whatever the answers do, and latency is measured from the scheduled time, so a stall
//! is charged to every request it delayed: no coordinated omission).
//!
//! It runs on the caller's (single-threaded) tokio runtime, to leave the cores to the processes
//! under test; only the open loop's pacer is a thread of its own, because the runtime's timer
//! ticks in milliseconds and a 1,000 requests/s schedule needs better.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinSet;

use crate::client::{connect, exchange, Conn, Target};
use crate::stats::{self, RunStats};

/// How a run loads the target.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// `connections` connections, each sending back to back.
    Closed { connections: usize },
    /// `rate` requests per second spread over `connections` connections.
    Open { connections: usize, rate: u64 },
}

impl Mode {
    pub fn connections(self) -> usize {
        match self {
            Mode::Closed { connections } | Mode::Open { connections, .. } => connections,
        }
    }
}

/// What every worker adds up.
struct Tally {
    ok: u64,
    errors: u64,
    latency: Histogram<u64>,
    lag: Histogram<u64>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            ok: 0,
            errors: 0,
            latency: stats::histogram(),
            lag: stats::histogram(),
        }
    }
    fn merge(&mut self, other: &Tally) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.latency.add(&other.latency).expect("same bounds");
        self.lag.add(&other.lag).expect("same bounds");
    }
}

#[derive(Default)]
struct FirstError(StdMutex<Option<String>>);

impl FirstError {
    fn set(&self, message: impl FnOnce() -> String) {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(message());
        }
    }
    fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

async fn connect_all(addr: SocketAddr, n: usize) -> io::Result<Vec<Conn>> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(connect(addr).await?);
    }
    Ok(conns)
}

/// One request on `conn` (reconnecting after a transport failure), counted in `tally`.
async fn one(
    target: &Target,
    conn: &mut Option<Conn>,
    tag: &str,
    n: u64,
    tally: &mut Tally,
    first_error: &FirstError,
) -> Option<Instant> {
    if conn.is_none() {
        match connect(target.addr).await {
            Ok(c) => *conn = Some(c),
            Err(e) => {
                tally.errors += 1;
                first_error.set(|| format!("connect: {e}"));
                tokio::time::sleep(Duration::from_millis(10)).await;
                return None;
            }
        }
    }
    let c = conn.as_mut().expect("connected above");
    match exchange(c, target.request(tag, n)).await {
        Ok(answer) if (200..300).contains(&answer.status) => {
            tally.ok += 1;
            Some(Instant::now())
        }
        Ok(answer) => {
            tally.errors += 1;
            first_error.set(|| {
                let text = answer.text();
                format!(
                    "HTTP {}: {}",
                    answer.status,
                    text.chars().take(300).collect::<String>()
                )
            });
            None
        }
        Err(e) => {
            tally.errors += 1;
            first_error.set(|| format!("transport: {e}"));
            *conn = None;
            None
        }
    }
}

/// Runs `mode` against `target` for `duration`. `tag` makes this run's status texts unique.
pub async fn run(
    target: &Target,
    mode: Mode,
    duration: Duration,
    tag: &str,
) -> io::Result<RunStats> {
    match mode {
        Mode::Closed { connections } => closed(target, connections, duration, tag).await,
        Mode::Open { connections, rate } => open(target, connections, rate, duration, tag).await,
    }
}

async fn closed(
    target: &Target,
    connections: usize,
    duration: Duration,
    tag: &str,
) -> io::Result<RunStats> {
    let conns = connect_all(target.addr, connections).await?;
    let counter = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(FirstError::default());
    let tag: Arc<str> = Arc::from(tag);
    let start = Instant::now();
    let end = start + duration;
    let mut workers = JoinSet::new();
    for conn in conns {
        let target = target.clone();
        let counter = Arc::clone(&counter);
        let first_error = Arc::clone(&first_error);
        let tag = Arc::clone(&tag);
        workers.spawn(async move {
            let mut tally = Tally::new();
            let mut conn = Some(conn);
            let mut last = start;
            while Instant::now() < end {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                if let Some(done) = one(&target, &mut conn, &tag, n, &mut tally, &first_error).await
                {
                    stats::record(&mut tally.latency, done - sent);
                    last = done;
                }
            }
            (tally, last)
        });
    }
    let mut total = Tally::new();
    let mut last = start;
    while let Some(joined) = workers.join_next().await {
        let (tally, done) = joined.map_err(io::Error::other)?;
        total.merge(&tally);
        last = last.max(done);
    }
    Ok(RunStats {
        ok: total.ok,
        errors: total.errors,
        elapsed: last.max(end) - start,
        latency: total.latency,
        send_lag: None,
        first_error: first_error.take(),
    })
}

/// Sleeps the calling thread until `at`, precisely (the thread's timer slack is lowered first).
fn sleep_until(at: Instant) {
    loop {
        let now = Instant::now();
        if now >= at {
            return;
        }
        std::thread::sleep(at - now);
    }
}

/// The open loop's schedule: request `i` of `total` goes out at `start + i / rate`.
pub fn scheduled_at(start: Instant, rate: u64, i: u64) -> Instant {
    start + Duration::from_nanos(i.saturating_mul(1_000_000_000) / rate.max(1))
}

async fn open(
    target: &Target,
    connections: usize,
    rate: u64,
    duration: Duration,
    tag: &str,
) -> io::Result<RunStats> {
    let total = (rate as f64 * duration.as_secs_f64()).round() as u64;
    let conns = connect_all(target.addr, connections).await?;
    let (tx, rx) = mpsc::unbounded_channel::<(u64, Instant)>();
    let rx = Arc::new(Mutex::new(rx));
    let first_error = Arc::new(FirstError::default());
    let tag: Arc<str> = Arc::from(tag);
    let start = Instant::now() + Duration::from_millis(20);
    let stop = Arc::new(AtomicBool::new(false));
    let pacer = {
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("bench-pacer".into())
            .spawn(move || {
                lower_timer_slack();
                for i in 0..total {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let at = scheduled_at(start, rate, i);
                    sleep_until(at);
                    if tx.send((i, at)).is_err() {
                        break;
                    }
                }
            })?
    };
    let mut workers = JoinSet::new();
    for conn in conns {
        let target = target.clone();
        let rx = Arc::clone(&rx);
        let first_error = Arc::clone(&first_error);
        let tag = Arc::clone(&tag);
        workers.spawn(async move {
            let mut tally = Tally::new();
            let mut conn = Some(conn);
            let mut last = start;
            loop {
                let job = rx.lock().await.recv().await;
                let Some((n, at)) = job else { break };
                stats::record(&mut tally.lag, Instant::now().saturating_duration_since(at));
                if let Some(done) = one(&target, &mut conn, &tag, n, &mut tally, &first_error).await
                {
                    stats::record(&mut tally.latency, done - at);
                    last = done;
                }
            }
            (tally, last)
        });
    }
    // Bounded: a target that stops answering cannot hold the run (or the benchmark) forever.
    let limit = duration + Duration::from_secs(30);
    let mut sum = Tally::new();
    let mut last = start;
    let collected = tokio::time::timeout(limit, async {
        while let Some(joined) = workers.join_next().await {
            if let Ok((tally, done)) = joined {
                sum.merge(&tally);
                last = last.max(done);
            }
        }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    workers.abort_all();
    let _ = pacer.join();
    if collected.is_err() {
        first_error.set(|| format!("the run did not finish within {} s", limit.as_secs()));
    }
    let answered = sum.ok + sum.errors;
    sum.errors += total.saturating_sub(answered);
    Ok(RunStats {
        ok: sum.ok,
        errors: sum.errors,
        elapsed: last.saturating_duration_since(start),
        latency: sum.latency,
        send_lag: Some(sum.lag),
        first_error: first_error.take(),
    })
}

/// How late a thread sleeping 1 ms at a time wakes up, over `duration` (µs): the machine's own
/// floor under every latency measured at a fixed rate (on a virtual machine, the hypervisor's
/// vCPU wake-up latency shows here).
pub fn timer_wakeup_lateness(duration: Duration) -> Histogram<u64> {
    std::thread::spawn(move || {
        lower_timer_slack();
        let mut h = stats::histogram();
        let start = Instant::now();
        let n = (duration.as_millis() as u64).max(1);
        for i in 1..=n {
            let at = start + Duration::from_millis(i);
            sleep_until(at);
            stats::record(&mut h, Instant::now().saturating_duration_since(at));
        }
        h
    })
    .join()
    .unwrap_or_else(|_| stats::histogram())
}

/// The default timer slack (50 µs) would add to every scheduled send.
#[allow(unsafe_code)]
fn lower_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and affects only the calling thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_spaces_requests_evenly() {
        let t0 = Instant::now();
        assert_eq!(scheduled_at(t0, 1000, 0), t0);
        assert_eq!(scheduled_at(t0, 1000, 1), t0 + Duration::from_millis(1));
        assert_eq!(
            scheduled_at(t0, 1000, 2500),
            t0 + Duration::from_millis(2500)
        );
        assert_eq!(
            scheduled_at(t0, 3, 1),
            t0 + Duration::from_nanos(333_333_333)
        );
    }

    #[test]
    fn timer_lateness_counts_every_wakeup() {
        let h = timer_wakeup_lateness(Duration::from_millis(20));
        assert_eq!(h.len(), 20);
    }

    /// Both loops against a tiny local HTTP server: counts, no errors, rates as asked.
    #[test]
    fn both_loops_against_a_local_server() {
        use crate::client::Payload;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    tokio::spawn(serve(stream));
                }
            });
            let target = Target::new(addr, Payload::Json, None);
            let closed = run(
                &target,
                Mode::Closed { connections: 4 },
                Duration::from_millis(200),
                "t1",
            )
            .await
            .unwrap();
            assert_eq!(closed.errors, 0, "{:?}", closed.first_error);
            assert!(closed.ok > 10);
            assert_eq!(closed.latency.len(), closed.ok);
            let open = run(
                &target,
                Mode::Open {
                    connections: 4,
                    rate: 200,
                },
                Duration::from_millis(250),
                "t2",
            )
            .await
            .unwrap();
            assert_eq!(open.errors, 0, "{:?}", open.first_error);
            assert_eq!(open.ok, 50);
            assert!(open.rps() > 150.0 && open.rps() < 260.0, "{}", open.rps());
            assert_eq!(open.send_lag.as_ref().unwrap().len(), 50);
        });
    }

    /// Answers every HTTP/1.1 request on the connection with `204`.
    async fn serve(stream: tokio::net::TcpStream) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = stream;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            // Each request: headers, then content-length bytes of body.
            while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if buf.len() < end + 4 + len {
                    break;
                }
                buf.drain(..end + 4 + len);
                if stream
                    .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

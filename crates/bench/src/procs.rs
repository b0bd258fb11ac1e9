//! Child processes that always stop, and what `/proc` says about a process (CPU time, peak RSS).

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// A child process that is stopped when the value is dropped: on every exit path, panics included.
/// The kernel also kills it (`PR_SET_PDEATHSIG`) if the benchmark itself dies without unwinding.
pub struct Proc {
    pub name: &'static str,
    child: Child,
    /// Started in a process group of its own (nginx: the master and its workers), stopped as a group.
    group: bool,
    stopped: bool,
}

impl Proc {
    /// Starts `cmd`. With `group`, the child leads a new process group, signalled as a whole.
    pub fn spawn(name: &'static str, mut cmd: Command, group: bool) -> io::Result<Proc> {
        if group {
            cmd.process_group(0);
        }
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start {name}: {e}")))?;
        Ok(Proc {
            name,
            child,
            group,
            stopped: false,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = self.child.id() as libc::pid_t;
        let target = if self.group { -pid } else { pid };
        kill(target, sig);
    }

    /// SIGTERM (the sidecar's graceful stop), then SIGKILL after `grace`. Returns how long the
    /// process took to exit.
    pub fn stop(&mut self, grace: Duration) -> Duration {
        let started = Instant::now();
        if self.stopped {
            return Duration::ZERO;
        }
        self.stopped = true;
        if self.exited().is_none() {
            self.signal(libc::SIGTERM);
            while started.elapsed() < grace {
                if self.exited().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            if self.exited().is_none() {
                eprintln!(
                    "bench: {} did not stop within {} ms of SIGTERM; killing it",
                    self.name,
                    grace.as_millis()
                );
                self.signal(libc::SIGKILL);
                let _ = self.child.wait();
            }
        }
        if self.group {
            // Workers that outlived their master.
            kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        started.elapsed()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

#[allow(unsafe_code)]
fn kill(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions; a stale pid only yields ESRCH.
    unsafe {
        libc::kill(pid, sig);
    }
}

#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl and getppid are async-signal-safe and touch no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            if libc::getppid() == 1 {
                // The parent is already gone.
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// A temporary directory removed when dropped (unless `keep`).
pub struct TempDir {
    pub path: PathBuf,
    pub keep: bool,
}

impl TempDir {
    pub fn new(keep: bool) -> io::Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "mastodon-sidecar-bench-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir { path, keep })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("bench: kept {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A free loopback port (bound, then released; the processes bind it a moment later).
pub fn free_port() -> io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Waits until `addr` accepts connections, or `proc` exits, or `timeout`.
pub fn wait_listening(addr: SocketAddr, proc: &mut Proc, timeout: Duration) -> Result<(), String> {
    let started = Instant::now();
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Ok(());
        }
        if let Some(status) = proc.exited() {
            return Err(format!("{} exited ({status}) before listening", proc.name));
        }
        if started.elapsed() > timeout {
            return Err(format!(
                "{} did not listen on {addr} within {timeout:?}",
                proc.name
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `GET path` with a blocking socket: the status code, or `None` when there is no answer (yet).
pub fn http_get_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(100)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Polls `GET /readyz` every millisecond until it answers 200; the time since `spawned`.
pub fn wait_ready(
    addr: SocketAddr,
    proc: &mut Proc,
    spawned: Instant,
    timeout: Duration,
) -> Result<Duration, String> {
    loop {
        if http_get_status(addr, "/readyz") == Some(200) {
            return Ok(spawned.elapsed());
        }
        if let Some(status) = proc.exited() {
            return Err(format!(
                "{} exited ({status}) before it was ready",
                proc.name
            ));
        }
        if spawned.elapsed() > timeout {
            return Err(format!("{} was not ready within {timeout:?}", proc.name));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Clock ticks per second (`utime`/`stime` unit).
#[allow(unsafe_code)]
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// `utime + stime` in clock ticks from the text of `/proc/PID/stat`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The parent pid (field 4) from the text of `/proc/PID/stat`.
pub fn parse_stat_ppid(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// CPU seconds (user + system) a process has used so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(parse_stat_cpu_ticks(&stat)? as f64 / clock_ticks() as f64)
}

/// CPU seconds of several processes together.
pub fn cpu_seconds_all(pids: &[u32]) -> Option<f64> {
    pids.iter().map(|&p| cpu_seconds(p)).sum()
}

/// What the whole machine did, all CPUs together, in clock ticks: processes (user, nice, system),
/// interrupts (irq, softirq), and what the hypervisor stole (steal). From `/proc/stat`'s text.
pub fn parse_machine_ticks(stat: &str) -> Option<(u64, u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<Vec<u64>>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    Some((get(0) + get(1) + get(2), get(5) + get(6), get(7)))
}

/// CPU seconds so far, all CPUs together: processes, interrupts, stolen by the hypervisor.
pub fn machine_seconds() -> Option<(f64, f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let (busy, irq, steal) = parse_machine_ticks(&stat)?;
    let hz = clock_ticks() as f64;
    Some((busy as f64 / hz, irq as f64 / hz, steal as f64 / hz))
}

/// A `kB` line (`VmHWM`, `VmRSS`) of the text of `/proc/PID/status`, in KiB.
pub fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The peak resident set size (`VmHWM`) of a process, KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&status, "VmHWM")
}

/// Resets `VmHWM` to the current RSS (`echo 5 > /proc/PID/clear_refs`), so that the next reading
/// is the peak of what follows. False when the kernel refuses.
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{pid}/clear_refs"))
        .and_then(|mut f| f.write_all(b"5"))
        .is_ok()
}

/// The children of `pid` (scanning `/proc`).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| parse_stat_ppid(&s))
                == Some(pid)
        })
        .collect()
}

/// How many compilers and linkers are running now (other agents building on the same machine make
/// the figures noisy).
pub fn busy_compilers() -> usize {
    const NAMES: [&str; 6] = ["rustc", "cc1", "cc1plus", "ld", "ld.lld", "clippy-driver"];
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| NAMES.contains(&c.trim()))
        })
        .count()
}

/// The last `lines` lines of a file (for error messages about a process that failed).
pub fn tail(path: &Path, lines: usize) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_and_ppid_from_a_stat_line_whose_name_has_spaces() {
        let stat = "4242 (my (odd) proc) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 567 0 0 20 0 3 0 100 1000000 250 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(1234 + 567));
        assert_eq!(parse_stat_ppid(stat), Some(1));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn machine_busy_time_leaves_out_idle_and_iowait_and_steal_is_apart() {
        let stat = "cpu  100 5 50 9000 40 3 2 7 0 0\ncpu0 50 2 25 4500 20 1 1 0 0 0\n";
        assert_eq!(parse_machine_ticks(stat), Some((100 + 5 + 50, 3 + 2, 7)));
        assert!(machine_seconds().unwrap().0 > 0.0);
    }

    #[test]
    fn status_lines_in_kib() {
        let status = "Name:\tx\nVmPeak:\t  20000 kB\nVmHWM:\t   12345 kB\nVmRSS:\t    9000 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(12345));
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(9000));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn this_process_has_cpu_time_and_a_peak() {
        let me = std::process::id();
        assert!(cpu_seconds(me).is_some());
        assert!(peak_rss_kib(me).unwrap() > 0);
    }

    #[test]
    fn a_dropped_proc_is_stopped() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let proc = Proc::spawn("sleep", cmd, true).unwrap();
        let pid = proc.pid();
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        drop(proc);
        // Reaped by stop(): the pid is gone (or reused by something that is not our sleep).
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        assert_ne!(comm.trim(), "sleep");
    }
}

//! The Markdown the benchmark prints: one table per load mode, the targets, the machine.

use std::fmt::Write as _;

use crate::stats::RunStats;

/// One row of a table: a measured run, or why there is none.
#[derive(Clone, Debug)]
pub struct Row {
    pub name: String,
    pub outcome: Result<Measured, String>,
}

/// The figures of one run.
#[derive(Clone, Debug, Default)]
pub struct Measured {
    pub rps: f64,
    /// Latency percentiles, µs.
    pub p50: Option<u64>,
    pub p99: Option<u64>,
    pub p999: Option<u64>,
    pub errors: u64,
    /// CPU seconds per 1,000 requests of the process under test (the sidecar, or nginx).
    pub cpu_per_1k: Option<f64>,
    /// Peak RSS of the process under test during the run, KiB.
    pub peak_rss_kib: Option<u64>,
    /// CPU use during the run in % of one core: the process under test, the stand-in, the
    /// generator, other processes, interrupts, and what the hypervisor stole.
    pub cpu_pct: Option<[f64; 6]>,
    /// Open loop: the generator's own send lag at p99, µs.
    pub send_lag_p99: Option<u64>,
}

impl Measured {
    pub fn from_stats(s: &RunStats) -> Measured {
        Measured {
            rps: s.rps(),
            p50: s.p(50.0),
            p99: s.p(99.0),
            p999: s.p(99.9),
            errors: s.errors,
            send_lag_p99: s
                .send_lag
                .as_ref()
                .and_then(|h| crate::stats::percentile_us(h, 99.0)),
            ..Measured::default()
        }
    }
}

/// Microseconds as milliseconds, 2 decimals (3 below 0.1 ms).
pub fn ms(us: Option<u64>) -> String {
    match us {
        None => "–".into(),
        Some(us) if us < 100 => format!("{:.3} ms", us as f64 / 1000.0),
        Some(us) => format!("{:.2} ms", us as f64 / 1000.0),
    }
}

/// `row - base` as signed milliseconds.
pub fn added(row: Option<u64>, base: Option<u64>) -> String {
    match (row, base) {
        (Some(r), Some(b)) => {
            let d = r as f64 - b as f64;
            let sign = if d < 0.0 { "−" } else { "+" };
            format!("{sign}{:.2} ms", d.abs() / 1000.0)
        }
        _ => "–".into(),
    }
}

/// Requests per second without decimals, thousands separated: `12,345`.
pub fn thousands(n: f64) -> String {
    let n = n.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// KiB as MiB, one decimal.
pub fn mib(kib: Option<u64>) -> String {
    kib.map_or("–".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

/// Seconds per 1,000 requests, 4 decimals.
pub fn cpu(s: Option<f64>) -> String {
    s.map_or("–".into(), |s| format!("{s:.4} s"))
}

/// A Markdown table of `rows`; the added latency is over `rows[0]` (direct to the stand-in).
pub fn table(rows: &[Row]) -> String {
    let base = rows.first().and_then(|r| r.outcome.as_ref().ok());
    let mut out = String::new();
    out.push_str(
        "| Row | req/s | p50 | p99 | p99.9 | added p50 | added p99 | CPU s / 1k req | peak RSS | errors |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (i, row) in rows.iter().enumerate() {
        match &row.outcome {
            Ok(m) => {
                let (a50, a99) = if i == 0 {
                    ("–".to_owned(), "–".to_owned())
                } else {
                    (
                        added(m.p50, base.and_then(|b| b.p50)),
                        added(m.p99, base.and_then(|b| b.p99)),
                    )
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    row.name,
                    thousands(m.rps),
                    ms(m.p50),
                    ms(m.p99),
                    ms(m.p999),
                    a50,
                    a99,
                    cpu(m.cpu_per_1k),
                    mib(m.peak_rss_kib),
                    m.errors
                );
            }
            Err(why) => {
                let _ = writeln!(
                    out,
                    "| {} | {} | | | | | | | | |",
                    row.name,
                    why.replace('|', "/")
                );
            }
        }
    }
    out
}

/// Where the CPU went during each run: % of one core (2 cores = 200 %).
pub fn cpu_table(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str(
        "| Row | under test | stand-in | load generator | other processes | interrupts | stolen by the hypervisor |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        if let Ok(Measured {
            cpu_pct: Some([under, standin, generator, other, irq, steal]),
            ..
        }) = &row.outcome
        {
            let _ = writeln!(
                out,
                "| {} | {} | {standin:.0} % | {generator:.0} % | {other:.0} % | {irq:.0} % | {steal:.0} % |",
                row.name,
                if i_is_direct(&row.name) {
                    "–".to_owned()
                } else {
                    format!("{under:.0} %")
                }
            );
        }
    }
    out
}

fn i_is_direct(name: &str) -> bool {
    name.starts_with("direct")
}

/// A target: what it asks, the figure, and whether it is met (`None`: not measured).
#[derive(Clone, Debug)]
pub struct Target {
    pub what: String,
    pub figure: String,
    pub met: Option<bool>,
}

pub fn targets_table(targets: &[Target]) -> String {
    let mut out = String::from("| Target | Measured | Met |\n|---|---|---|\n");
    for t in targets {
        let met = match t.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "not measured",
        };
        let _ = writeln!(out, "| {} | {} | {} |", t.what, t.figure, met);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(rps: f64, p50: u64, p99: u64) -> Measured {
        Measured {
            rps,
            p50: Some(p50),
            p99: Some(p99),
            p999: Some(p99 * 2),
            ..Measured::default()
        }
    }

    #[test]
    fn numbers_are_formatted_for_people() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.5), "1,000");
        assert_eq!(thousands(1234567.0), "1,234,567");
        assert_eq!(ms(Some(1234)), "1.23 ms");
        assert_eq!(ms(Some(42)), "0.042 ms");
        assert_eq!(ms(None), "–");
        assert_eq!(added(Some(1500), Some(1000)), "+0.50 ms");
        assert_eq!(added(Some(900), Some(1000)), "−0.10 ms");
        assert_eq!(mib(Some(15 * 1024 + 512)), "15.5 MiB");
        assert_eq!(cpu(Some(0.01234)), "0.0123 s");
    }

    #[test]
    fn the_table_has_a_line_per_row_and_adds_latency_over_the_first() {
        let mut sidecar = m(5000.0, 3000, 9000);
        sidecar.cpu_per_1k = Some(0.04);
        sidecar.peak_rss_kib = Some(20480);
        sidecar.errors = 3;
        let rows = vec![
            Row {
                name: "direct".into(),
                outcome: Ok(m(20000.0, 1000, 4000)),
            },
            Row {
                name: "nginx".into(),
                outcome: Err("nginx could not be installed".into()),
            },
            Row {
                name: "sidecar JSON".into(),
                outcome: Ok(sidecar),
            },
        ];
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5, "{t}");
        assert!(lines[0].starts_with("| Row | req/s | p50 | p99 | p99.9 | added p50 | added p99"));
        assert_eq!(
            lines[2],
            "| direct | 20,000 | 1.00 ms | 4.00 ms | 8.00 ms | – | – | – | – | 0 |"
        );
        assert_eq!(
            lines[3],
            "| nginx | nginx could not be installed | | | | | | | | |"
        );
        assert_eq!(
            lines[4],
            "| sidecar JSON | 5,000 | 3.00 ms | 9.00 ms | 18.00 ms | +2.00 ms | +5.00 ms | 0.0400 s | 20.0 MiB | 3 |"
        );
        for line in &lines {
            assert_eq!(line.matches('|').count(), 11, "{line}");
        }
    }

    #[test]
    fn targets_say_met_or_not() {
        let t = targets_table(&[
            Target {
                what: "a".into(),
                figure: "1".into(),
                met: Some(true),
            },
            Target {
                what: "b".into(),
                figure: "2".into(),
                met: Some(false),
            },
            Target {
                what: "c".into(),
                figure: "–".into(),
                met: None,
            },
        ]);
        assert!(t.contains("| a | 1 | yes |"));
        assert!(t.contains("| b | 2 | **no** |"));
        assert!(t.contains("| c | – | not measured |"));
    }
}

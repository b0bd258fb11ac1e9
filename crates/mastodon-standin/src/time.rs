//! Dates by hand: Mastodon's ISO 8601 renderings and a lenient ISO 8601 parser.
//!
//! The conversions use Howard Hinnant's `days_from_civil` / `civil_from_days`
//! algorithms, so no date crate is needed.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> u64 {
    now_ms() / 1000
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn split(ms: u64) -> (i64, u32, u32, u64, u64, u64, u64) {
    let secs = ms / 1000;
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    (y, mo, d, rem / 3600, rem % 3600 / 60, rem % 60, ms % 1000)
}

/// `2026-11-22T10:35:00.123Z`, the way Mastodon renders `created_at`.
pub fn iso_millis(ms: u64) -> String {
    let (y, mo, d, h, mi, s, milli) = split(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

/// `2026-11-22T10:35:00.000000Z`, the way Mastodon renders `X-RateLimit-Reset`.
pub fn iso_micros(ms: u64) -> String {
    let (y, mo, d, h, mi, s, milli) = split(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}000Z")
}

/// `2026-11-22`, the way Mastodon renders `last_status_at`.
pub fn date(ms: u64) -> String {
    let (y, mo, d, ..) = split(ms);
    format!("{y:04}-{mo:02}-{d:02}")
}

/// Parses ISO 8601 / RFC 3339 date-times leniently, like Ruby's `to_datetime`:
/// `YYYY-MM-DD`, optionally `T` or a space and `HH:MM[:SS[.frac]]`, optionally `Z` or
/// `±HH[:MM]` (no zone means UTC). Returns milliseconds since the epoch.
pub fn parse_iso8601(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let mut p = Parser { b, i: 0 };
    let y = p.num(4)? as i64;
    p.eat(b'-')?;
    let mo = p.num(2)?;
    p.eat(b'-')?;
    let d = p.num(2)?;
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) {
        return None;
    }
    let mut ms = days_from_civil(y, mo, d) * 86_400_000;
    if p.i == b.len() {
        return Some(ms);
    }
    match p.next()? {
        b'T' | b't' | b' ' => {}
        _ => return None,
    }
    let h = p.num(2)? as i64;
    p.eat(b':')?;
    let mi = p.num(2)? as i64;
    let mut sec = 0;
    let mut frac_ms = 0;
    if p.peek() == Some(b':') {
        p.i += 1;
        sec = p.num(2)? as i64;
        if matches!(p.peek(), Some(b'.') | Some(b',')) {
            p.i += 1;
            let start = p.i;
            while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                p.i += 1;
            }
            let digits = &b[start..p.i];
            if digits.is_empty() {
                return None;
            }
            for k in 0..3 {
                frac_ms = frac_ms * 10 + digits.get(k).map_or(0, |c| i64::from(c - b'0'));
            }
        }
    }
    if h > 24 || mi > 59 || sec > 60 {
        return None;
    }
    ms += ((h * 60 + mi) * 60 + sec) * 1000 + frac_ms;
    match p.next() {
        None | Some(b'Z') | Some(b'z') => {}
        Some(sign @ (b'+' | b'-')) => {
            let oh = p.num(2)? as i64;
            if p.peek() == Some(b':') {
                p.i += 1;
            }
            let om = if p.i < b.len() { p.num(2)? as i64 } else { 0 };
            let offset = (oh * 60 + om) * 60_000;
            ms -= if sign == b'+' { offset } else { -offset };
        }
        _ => return None,
    }
    (p.i == b.len()).then_some(ms)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }
    fn eat(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }
    fn num(&mut self, digits: usize) -> Option<u32> {
        let mut n = 0u32;
        for _ in 0..digits {
            let c = self.next()?;
            if !c.is_ascii_digit() {
                return None;
            }
            n = n * 10 + u32::from(c - b'0');
        }
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_parses() {
        // 2026-11-22T10:35:00.123Z
        let ms = 1_795_343_700_123;
        assert_eq!(iso_millis(ms), "2026-11-22T10:35:00.123Z");
        assert_eq!(iso_micros(ms - 123), "2026-11-22T10:35:00.000000Z");
        assert_eq!(date(ms), "2026-11-22");
        assert_eq!(parse_iso8601("2026-11-22T10:35:00.123Z"), Some(ms as i64));
        assert_eq!(
            parse_iso8601("2026-11-22T11:35:00.123+01:00"),
            Some(ms as i64)
        );
        assert_eq!(parse_iso8601("2026-11-22 10:35:00.123456"), Some(ms as i64));
        assert_eq!(parse_iso8601("1970-01-01"), Some(0));
        assert_eq!(parse_iso8601("2026-02-30T00:00:00Z"), None);
        assert_eq!(parse_iso8601("tomorrow"), None);
        assert_eq!(civil_from_days(days_from_civil(2000, 2, 29)), (2000, 2, 29));
    }
}

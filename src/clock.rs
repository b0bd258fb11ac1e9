//! The wall clock as Unix seconds: what Mastodon's timestamps and the store's expiries are compared in.

pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

//! The server software the stand-in imitates, and what differs between them: the facts of
//! `/work/shared/reference/servers.md` turned into settings ([`Options::for_profile`]) and
//! into small questions the endpoints ask (`honours_idempotency`, `code_lifetime`, ...).

use std::time::Duration;

use crate::Options;

/// A Mastodon-compatible server whose observed behaviour the stand-in reproduces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Mastodon 4.3+ (the default).
    #[default]
    Mastodon,
    /// GoToSocial v0.20.0-rc1.
    GoToSocial,
    /// Takahē 0.11.0.
    Takahe,
    /// Hollo 0.10.0.
    Hollo,
    /// snac 2.94.
    Snac,
    /// Mitra 5.9.1.
    Mitra,
}

impl Profile {
    /// Every profile, Mastodon first.
    pub const ALL: [Profile; 6] = [
        Profile::Mastodon,
        Profile::GoToSocial,
        Profile::Takahe,
        Profile::Hollo,
        Profile::Snac,
        Profile::Mitra,
    ];

    /// `software.name` in nodeinfo, also the `--profile` value.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Mastodon => "mastodon",
            Profile::GoToSocial => "gotosocial",
            Profile::Takahe => "takahe",
            Profile::Hollo => "hollo",
            Profile::Snac => "snac",
            Profile::Mitra => "mitra",
        }
    }

    /// The profile named `name` (case-insensitive; `takahē` too).
    pub fn parse(name: &str) -> Option<Profile> {
        let name = name.trim().to_lowercase().replace('ē', "e");
        Profile::ALL.into_iter().find(|p| p.name() == name)
    }

    /// `software.version` in nodeinfo (the instance documents may say otherwise).
    pub fn software_version(self, opts: &Options) -> String {
        match self {
            Profile::Mastodon => opts.version.clone(),
            Profile::GoToSocial => "0.20.0-rc1".to_owned(),
            Profile::Takahe => "0.11.0".to_owned(),
            Profile::Hollo => "0.10.0".to_owned(),
            Profile::Snac => "2.94".to_owned(),
            Profile::Mitra => "5.9.1".to_owned(),
        }
    }

    /// Whether a repeated `Idempotency-Key` on `POST /api/v1/statuses` answers the first
    /// status (GoToSocial, Takahē and snac ignore the header).
    pub fn honours_idempotency(self) -> bool {
        matches!(self, Profile::Mastodon | Profile::Hollo | Profile::Mitra)
    }

    /// Whether `scheduled_at` makes a ScheduledStatus; the others publish at once.
    pub fn schedules(self) -> bool {
        matches!(self, Profile::Mastodon | Profile::GoToSocial)
    }

    /// How long an authorization code lives by default.
    pub fn code_lifetime(self) -> Duration {
        match self {
            Profile::Takahe => Duration::from_secs(60),
            Profile::Mitra => Duration::from_secs(300),
            _ => Duration::from_secs(600),
        }
    }

    /// Whether tokens carry scopes that are enforced (Mitra's are not scope-limited).
    pub fn enforces_scopes(self) -> bool {
        self != Profile::Mitra
    }

    /// A scope this server honours when checking a token: Takahē knows only the coarse
    /// ones, so `read:accounts` grants nothing there.
    pub fn honours_scope(self, scope: &str) -> bool {
        match self {
            Profile::Takahe => matches!(scope, "read" | "write" | "follow" | "push"),
            _ => true,
        }
    }
}

impl Options {
    /// The settings of `profile` as observed: version string, advertised limits, PKCE,
    /// instance documents; Takahē and Hollo start "not set up" (no admin identity yet).
    pub fn for_profile(profile: Profile) -> Options {
        let base = Options {
            profile,
            code_lifetime: profile.code_lifetime(),
            // Real servers refuse a media id nobody uploaded (422/400 "not found"), except snac,
            // which drops it; only the default options, which older tests use, take it as uploaded.
            strict_media_ids: true,
            ..Options::default()
        };
        match profile {
            Profile::Mastodon => base,
            Profile::GoToSocial => Options {
                version: "0.20.0-rc1".to_owned(),
                max_characters: 5000,
                characters_reserved_per_url: 25,
                max_media_attachments: 6,
                pkce: false,
                // GoToSocial's defaults (docs: media-local-max-size 40MiB,
                // media-description-max-chars 1500; internal/typeutils: matrix limits
                // 16777216, frame rate 60).
                image_size_limit: 40 * 1024 * 1024,
                video_size_limit: 40 * 1024 * 1024,
                image_matrix_limit: 16_777_216,
                video_matrix_limit: 16_777_216,
                video_frame_rate_limit: 60,
                ..base
            },
            Profile::Takahe => Options {
                version: "takahe/0.11.0".to_owned(),
                pkce: false,
                set_up: false,
                ..base
            },
            Profile::Hollo => Options {
                version: "0.10.0".to_owned(),
                max_characters: 10_000,
                characters_reserved_per_url: 256,
                set_up: false,
                ..base
            },
            Profile::Snac => Options {
                version: "2.94".to_owned(),
                max_characters: 100_000,
                characters_reserved_per_url: 32,
                pkce: false,
                v2_instance: false,
                ..base
            },
            Profile::Mitra => Options {
                version: "4.0.0 (compatible; Mitra 5.9.1)".to_owned(),
                max_characters: 5000,
                characters_reserved_per_url: 0,
                pkce: false,
                ..base
            },
        }
    }
}

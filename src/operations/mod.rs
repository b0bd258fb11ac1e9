//! THE connector: the closed set of operations and their dispatch.
//!
//! An operation is a free async function over the [`Core`] and a plain serde parameter struct. The same
//! struct is read from JSON, plain XML and SOAP (the codecs in `wire/` turn each into a JSON value
//! first), and what makes a value valid lives here, never in a codec. [`Operation`] drives everything
//! that lists operations: routing, SOAP dispatch, the `operation` metric label, and (through
//! [`Operation::parameters`]) the WSDL and the OpenAPI document. This module must not import
//! `actix_web` or `quick_xml`.

mod api;
mod authorize_url;
mod call_api;
pub mod callback;
mod context;
mod create_app;
pub(crate) mod get_token;
pub mod health;
mod init;
pub mod media;
pub mod params;
mod post_once;
mod post_status;
mod rest;
mod revoke_token;
pub mod status_length;
pub mod status_match;
mod verify_credentials;

use serde::de::DeserializeOwned;
use serde_json::Value;

pub use context::{Connection, Core};
pub use post_once::purge_ledger;

use crate::error::{Error, Result};
use crate::mastodon::Endpoint;

/// What an operation answers, for the documents (OpenAPI response schemas, WSDL result types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Returns {
    /// One entity.
    One(Entity),
    /// A page of entities: `{items, next, prev}`, the cursors read from the server's `Link` header.
    Page(Entity),
    /// A list the server does not paginate (relationships, lists): `{items}`.
    List(Entity),
}

/// The entities operations answer: Mastodon's, and the sidecar's own results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entity {
    Account,
    Status,
    /// A Status, or a ScheduledStatus when `scheduled_at` was given.
    StatusOrScheduled,
    ScheduledStatus,
    Context,
    MediaAttachment,
    Notification,
    Poll,
    List,
    Relationship,
    Instance,
    Search,
    Application,
    /// `init`'s report on a connection.
    ConnectionReport,
    /// `authorizeUrl`'s URL and state.
    AuthorizationUrl,
    /// `getToken`'s report (the token itself is kept, not answered).
    TokenReport,
    /// `revokeToken`'s report.
    Revocation,
    /// An empty object (Mastodon answers `{}`).
    Empty,
    /// Whatever the server answered (`callApi`).
    Any,
}

/// Whether an operation changes something on the server, and so how a retry is made safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writes {
    /// Reads only: repeated freely.
    No,
    /// A change whose repeat changes nothing more (favourite, follow, edit, delete): kept in the
    /// ledger so a repeated message is answered the first result, and sent again when in doubt.
    Idempotent,
    /// Creates something (a list, an upload): kept in the ledger; in doubt, never sent again until
    /// the doubt has settled (`doubt_settle_ms`).
    Creates,
}

/// Declares every operation once: its name, summary, parameter struct, function, the server's route
/// (for the operations that map onto one), result, scopes, whether it writes, and its rate-limit
/// bucket. Routing, SOAP dispatch, metric labels, the documents, the `mediation/` files and the API
/// key rights are all derived from this table.
macro_rules! operations {
    ($(
        $(#[doc = $summary:literal])+
        $variant:ident = $name:literal {
            params: $params:ty,
            run: $run:path,
            $(route: $method:ident $path:literal,)?
            returns: $returns:expr,
            scopes: $scopes:literal,
            writes: $writes:ident,
            $(bucket: $bucket:literal,)?
        }
    )*) => {
        /// Every operation the sidecar offers.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Operation {
            $($variant,)*
        }

        impl Operation {
            pub const ALL: [Operation; [$(stringify!($variant)),*].len()] = [$(Operation::$variant),*];

            /// The name callers use, in paths, XML roots, SOAP bodies and metric labels.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Operation::$variant => $name,)*
                }
            }

            /// One line saying what the operation does, for the documents.
            pub const fn summary(self) -> &'static str {
                match self {
                    $(Operation::$variant => concat!($($summary),+).trim_ascii(),)*
                }
            }

            /// The parameters: exactly the fields of its parameter struct, in their order.
            pub const fn parameters(self) -> &'static [Param] {
                match self {
                    $(Operation::$variant => <$params as params::Params>::PARAMS,)*
                }
            }

            /// The server's route, for an operation that is one call to it (`None` for the OAuth
            /// flow and `postStatus`, which are more than one).
            pub const fn route(self) -> Option<Endpoint> {
                match self {
                    $(Operation::$variant => operations!(@route $writes $($bucket)? ; $($method $path)?),)*
                }
            }

            pub const fn returns(self) -> Returns {
                match self {
                    $(Operation::$variant => $returns,)*
                }
            }

            /// The OAuth scopes the user token needs (empty: no token is sent).
            pub const fn scopes(self) -> &'static str {
                match self {
                    $(Operation::$variant => $scopes,)*
                }
            }

            pub const fn writes(self) -> Writes {
                match self {
                    $(Operation::$variant => Writes::$writes,)*
                }
            }
        }

        /// Runs `operation` with `params` read as its parameter struct.
        async fn dispatch(core: &Core, operation: Operation, params: Value, call: &CallContext) -> Result<Value> {
            match operation {
                $(Operation::$variant => {
                    let p: $params = parse(operation, params)?;
                    $run(core, p, call).await
                })*
            }
        }

        /// Reads `params` as `operation`'s parameter struct, exactly as [`execute`] does first,
        /// without running anything: how the tests hold the documents to the structs.
        #[cfg(test)]
        pub(crate) fn check_parameters(operation: Operation, params: Value) -> Result<()> {
            match operation {
                $(Operation::$variant => parse::<$params>(operation, params).map(drop),)*
            }
        }
    };
    (@route $writes:ident ; ) => { None };
    (@route $writes:ident $($bucket:literal)? ; $method:ident $path:literal) => {
        Some(Endpoint {
            method: stringify!($method),
            path: $path,
            label: concat!(stringify!($method), " ", $path),
            idempotent: !matches!(Writes::$writes, Writes::Creates),
            content: true,
            bucket: operations!(@bucket $method $path $($bucket)?),
        })
    };
    (@bucket $method:ident $path:literal) => { concat!(stringify!($method), " ", $path) };
    (@bucket $method:ident $path:literal $bucket:literal) => { $bucket };
}

use api::*;
use Entity as E;
use Returns::{List as Many, One, Page};

operations! {
    /// Checks a connection: instance, limits, credentials held
    Init = "init" { params: init::InitParams, run: init::init, returns: One(E::ConnectionReport), scopes: "", writes: No, }
    /// Registers the connection's app with the instance
    CreateApp = "createApp" { params: create_app::CreateAppParams, run: create_app::create_app, returns: One(E::Application), scopes: "", writes: No, }
    /// Builds the URL a person opens to approve the app
    AuthorizeUrl = "authorizeUrl" { params: authorize_url::AuthorizeUrlParams, run: authorize_url::authorize_url, returns: One(E::AuthorizationUrl), scopes: "", writes: No, }
    /// Obtains a token (from a code, or for the app) and keeps it
    GetToken = "getToken" { params: get_token::GetTokenParams, run: get_token::get_token, returns: One(E::TokenReport), scopes: "", writes: No, }
    /// Answers the Account of the connection's user token
    VerifyCredentials = "verifyCredentials" { params: verify_credentials::VerifyCredentialsParams, run: verify_credentials::verify_credentials, returns: One(E::Account), scopes: "read:accounts", writes: No, }
    /// Posts a status (or schedules it with scheduled_at), with media uploaded first if given
    PostStatus = "postStatus" { params: post_status::PostStatusParams, run: post_status::post_status, returns: One(E::StatusOrScheduled), scopes: "write:statuses", writes: Creates, }
    /// Revokes the user (or app) token and forgets it
    RevokeToken = "revokeToken" { params: revoke_token::RevokeTokenParams, run: revoke_token::revoke_token, returns: One(E::Revocation), scopes: "", writes: No, }

    /// Gets a status
    GetStatus = "getStatus" { params: StatusId, run: rest::run, route: GET "/api/v1/statuses/:id", returns: One(E::Status), scopes: "read:statuses", writes: No, }
    /// Edits a status: its text, content warning, media, poll, language
    EditStatus = "editStatus" { params: EditStatusParams, run: rest::run, route: PUT "/api/v1/statuses/:id", returns: One(E::Status), scopes: "write:statuses", writes: Idempotent, }
    /// Deletes a status; answers it with its source text
    DeleteStatus = "deleteStatus" { params: StatusId, run: rest::run, route: DELETE "/api/v1/statuses/:id", returns: One(E::Status), scopes: "write:statuses", writes: Idempotent, bucket: "deletes", }
    /// Gets a status's ancestors and descendants
    GetStatusContext = "getStatusContext" { params: StatusId, run: rest::run, route: GET "/api/v1/statuses/:id/context", returns: One(E::Context), scopes: "read:statuses", writes: No, }
    /// Favourites a status
    FavouriteStatus = "favouriteStatus" { params: StatusId, run: rest::run, route: POST "/api/v1/statuses/:id/favourite", returns: One(E::Status), scopes: "write:favourites", writes: Idempotent, }
    /// Undoes a favourite
    UnfavouriteStatus = "unfavouriteStatus" { params: StatusId, run: rest::run, route: POST "/api/v1/statuses/:id/unfavourite", returns: One(E::Status), scopes: "write:favourites", writes: Idempotent, }
    /// Boosts (reblogs) a status
    ReblogStatus = "reblogStatus" { params: ReblogParams, run: rest::run, route: POST "/api/v1/statuses/:id/reblog", returns: One(E::Status), scopes: "write:statuses", writes: Idempotent, }
    /// Undoes a boost
    UnreblogStatus = "unreblogStatus" { params: StatusId, run: rest::run, route: POST "/api/v1/statuses/:id/unreblog", returns: One(E::Status), scopes: "write:statuses", writes: Idempotent, bucket: "deletes", }
    /// Bookmarks a status
    BookmarkStatus = "bookmarkStatus" { params: StatusId, run: rest::run, route: POST "/api/v1/statuses/:id/bookmark", returns: One(E::Status), scopes: "write:bookmarks", writes: Idempotent, }
    /// Removes a bookmark
    UnbookmarkStatus = "unbookmarkStatus" { params: StatusId, run: rest::run, route: POST "/api/v1/statuses/:id/unbookmark", returns: One(E::Status), scopes: "write:bookmarks", writes: Idempotent, }
    /// Lists the statuses the account bookmarked, newest bookmark first
    GetBookmarks = "getBookmarks" { params: PageParams, run: rest::run, route: GET "/api/v1/bookmarks", returns: Page(E::Status), scopes: "read:bookmarks", writes: No, }
    /// Lists the statuses the account favourited, newest favourite first
    GetFavourites = "getFavourites" { params: PageParams, run: rest::run, route: GET "/api/v1/favourites", returns: Page(E::Status), scopes: "read:favourites", writes: No, }
    /// Pins one of the account's statuses to its profile
    PinStatus = "pinStatus" { params: StatusId, run: rest::run, route: POST "/api/v1/statuses/:id/pin", returns: One(E::Status), scopes: "write:accounts", writes: Idempotent, }
    /// Unpins a status
    UnpinStatus = "unpinStatus" { params: StatusId, run: rest::run, route: POST "/api/v1/statuses/:id/unpin", returns: One(E::Status), scopes: "write:accounts", writes: Idempotent, }

    /// Lists the statuses scheduled and not yet published
    ListScheduledStatuses = "listScheduledStatuses" { params: PageParams, run: rest::run, route: GET "/api/v1/scheduled_statuses", returns: Page(E::ScheduledStatus), scopes: "read:statuses", writes: No, }
    /// Gets a scheduled status
    GetScheduledStatus = "getScheduledStatus" { params: ScheduledId, run: rest::run, route: GET "/api/v1/scheduled_statuses/:id", returns: One(E::ScheduledStatus), scopes: "read:statuses", writes: No, }
    /// Moves a scheduled status to another time
    RescheduleStatus = "rescheduleStatus" { params: RescheduleParams, run: rest::run, route: PUT "/api/v1/scheduled_statuses/:id", returns: One(E::ScheduledStatus), scopes: "write:statuses", writes: Idempotent, }
    /// Cancels a scheduled status
    CancelScheduledStatus = "cancelScheduledStatus" { params: ScheduledId, run: rest::run, route: DELETE "/api/v1/scheduled_statuses/:id", returns: One(E::Empty), scopes: "write:statuses", writes: Idempotent, }

    /// Reads the home timeline (the accounts followed)
    HomeTimeline = "homeTimeline" { params: PageParams, run: rest::run, route: GET "/api/v1/timelines/home", returns: Page(E::Status), scopes: "read:statuses", writes: No, }
    /// Reads the public timeline (local, remote or both)
    PublicTimeline = "publicTimeline" { params: PublicTimelineParams, run: rest::run, route: GET "/api/v1/timelines/public", returns: Page(E::Status), scopes: "read:statuses", writes: No, }
    /// Reads the public statuses with a hashtag
    HashtagTimeline = "hashtagTimeline" { params: HashtagTimelineParams, run: rest::run, route: GET "/api/v1/timelines/tag/:hashtag", returns: Page(E::Status), scopes: "read:statuses", writes: No, }
    /// Reads the statuses of a list's accounts
    ListTimeline = "listTimeline" { params: ListTimelineParams, run: rest::run, route: GET "/api/v1/timelines/list/:list_id", returns: Page(E::Status), scopes: "read:lists", writes: No, }

    /// Lists notifications, filtered by type or account
    ListNotifications = "listNotifications" { params: NotificationsParams, run: rest::run, route: GET "/api/v1/notifications", returns: Page(E::Notification), scopes: "read:notifications", writes: No, }
    /// Gets a notification
    GetNotification = "getNotification" { params: NotificationId, run: rest::run, route: GET "/api/v1/notifications/:id", returns: One(E::Notification), scopes: "read:notifications", writes: No, }
    /// Dismisses a notification
    DismissNotification = "dismissNotification" { params: NotificationId, run: rest::run, route: POST "/api/v1/notifications/:id/dismiss", returns: One(E::Empty), scopes: "write:notifications", writes: Idempotent, }

    /// Searches accounts, statuses and hashtags
    Search = "search" { params: SearchParams, run: rest::run, route: GET "/api/v2/search", returns: One(E::Search), scopes: "read:search", writes: No, }

    /// Finds an account by its acct (user or user@domain)
    LookupAccount = "lookupAccount" { params: LookupParams, run: rest::run, route: GET "/api/v1/accounts/lookup", returns: One(E::Account), scopes: "read:accounts", writes: No, }
    /// Gets an account
    GetAccount = "getAccount" { params: AccountId, run: rest::run, route: GET "/api/v1/accounts/:id", returns: One(E::Account), scopes: "read:accounts", writes: No, }
    /// Reads an account's statuses
    GetAccountStatuses = "getAccountStatuses" { params: AccountStatusesParams, run: rest::run, route: GET "/api/v1/accounts/:id/statuses", returns: Page(E::Status), scopes: "read:statuses", writes: No, }
    /// Lists an account's followers
    GetFollowers = "getFollowers" { params: AccountPageParams, run: rest::run, route: GET "/api/v1/accounts/:id/followers", returns: Page(E::Account), scopes: "read:accounts", writes: No, }
    /// Lists the accounts an account follows
    GetFollowing = "getFollowing" { params: AccountPageParams, run: rest::run, route: GET "/api/v1/accounts/:id/following", returns: Page(E::Account), scopes: "read:accounts", writes: No, }
    /// Tells how the connection's account relates to others
    GetRelationships = "getRelationships" { params: RelationshipsParams, run: rest::run, route: GET "/api/v1/accounts/relationships", returns: Many(E::Relationship), scopes: "read:follows", writes: No, }
    /// Follows an account (or changes the follow's options)
    FollowAccount = "followAccount" { params: FollowParams, run: rest::run, route: POST "/api/v1/accounts/:id/follow", returns: One(E::Relationship), scopes: "write:follows", writes: Idempotent, }
    /// Unfollows an account
    UnfollowAccount = "unfollowAccount" { params: AccountId, run: rest::run, route: POST "/api/v1/accounts/:id/unfollow", returns: One(E::Relationship), scopes: "write:follows", writes: Idempotent, }

    /// Gets a poll
    GetPoll = "getPoll" { params: PollId, run: rest::run, route: GET "/api/v1/polls/:id", returns: One(E::Poll), scopes: "read:statuses", writes: No, }
    /// Votes in a poll
    VotePoll = "votePoll" { params: VoteParams, run: rest::run, route: POST "/api/v1/polls/:id/votes", returns: One(E::Poll), scopes: "write:statuses", writes: Idempotent, }

    /// Lists the account's lists
    GetLists = "getLists" { params: ConnectionOnly, run: rest::run, route: GET "/api/v1/lists", returns: Many(E::List), scopes: "read:lists", writes: No, }
    /// Gets a list
    GetList = "getList" { params: ListId, run: rest::run, route: GET "/api/v1/lists/:id", returns: One(E::List), scopes: "read:lists", writes: No, }
    /// Creates a list
    CreateList = "createList" { params: CreateListParams, run: rest::run, route: POST "/api/v1/lists", returns: One(E::List), scopes: "write:lists", writes: Creates, }
    /// Deletes a list
    DeleteList = "deleteList" { params: ListId, run: rest::run, route: DELETE "/api/v1/lists/:id", returns: One(E::Empty), scopes: "write:lists", writes: Idempotent, }
    /// Lists the accounts in a list
    GetListAccounts = "getListAccounts" { params: ListPageParams, run: rest::run, route: GET "/api/v1/lists/:id/accounts", returns: Page(E::Account), scopes: "read:lists", writes: No, }
    /// Adds accounts (followed ones) to a list
    AddListAccounts = "addListAccounts" { params: ListAccountsParams, run: rest::run, route: POST "/api/v1/lists/:id/accounts", returns: One(E::Empty), scopes: "write:lists", writes: Idempotent, }
    /// Removes accounts from a list
    RemoveListAccounts = "removeListAccounts" { params: ListAccountsParams, run: rest::run, route: DELETE "/api/v1/lists/:id/accounts", returns: One(E::Empty), scopes: "write:lists", writes: Idempotent, }

    /// Describes the instance: version, limits, configuration
    GetInstance = "getInstance" { params: ConnectionOnly, run: rest::run, route: GET "/api/v2/instance", returns: One(E::Instance), scopes: "", writes: No, }

    /// Uploads a file (image, video, audio) with its alt text; answers the attachment once the server has processed it
    UploadMedia = "uploadMedia" { params: media::UploadMediaParams, run: media::upload_media, route: POST "/api/v2/media", returns: One(E::MediaAttachment), scopes: "write:media", writes: Idempotent, bucket: "media", }
    /// Gets an uploaded attachment not yet attached to a status (its url is null while it is processed)
    GetMedia = "getMedia" { params: MediaId, run: rest::run, route: GET "/api/v1/media/:id", returns: One(E::MediaAttachment), scopes: "write:media", writes: No, }
    /// Changes an attachment's alt text or focal point, before it is attached to a status
    UpdateMedia = "updateMedia" { params: UpdateMediaParams, run: rest::run, route: PUT "/api/v1/media/:id", returns: One(E::MediaAttachment), scopes: "write:media", writes: Idempotent, }

    /// Calls any route under /api/ the caller's key allows (off by default): the rest of the API
    CallApi = "callApi" { params: call_api::CallApiParams, run: call_api::call_api, returns: One(E::Any), scopes: "", writes: Creates, }
}

impl Operation {
    /// Exact names first; a name that differs only in case is accepted too, because hand-written MI
    /// sequences get `poststatus` as often as `postStatus`.
    pub fn from_name(name: &str) -> Option<Operation> {
        Self::ALL
            .into_iter()
            .find(|op| op.name() == name)
            .or_else(|| {
                Self::ALL
                    .into_iter()
                    .find(|op| op.name().eq_ignore_ascii_case(name))
            })
    }

    /// The error for a name that is none of the operations.
    pub fn unknown(name: &str) -> Error {
        let names: Vec<&str> = Self::ALL.iter().map(|op| op.name()).collect();
        let shown: String = name.chars().take(64).collect();
        Error::new(
            crate::error::ErrorKind::UnknownOperation,
            format!(
                "there is no operation {shown:?}; the operations are {}",
                names.join(", ")
            ),
        )
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One parameter of an operation, as the WSDL and the OpenAPI document describe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param {
    /// The name in JSON and the element name in XML: Mastodon's own (snake_case).
    pub name: &'static str,
    pub kind: ParamKind,
    /// Must be present and not empty (checked before the struct is read).
    pub required: bool,
    pub description: &'static str,
}

/// What a parameter's value is, as the lenient readers in [`params`] take it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// Text (a number or a boolean is taken as its text).
    Text,
    /// A file's bytes as base64 text (`xs:base64Binary`, OpenAPI `format: byte`); whitespace, as
    /// XML tools wrap it, is skipped.
    Binary,
    /// `true` or `false`.
    Bool,
    /// A whole number, not negative.
    Count,
    /// A list of text; one value stands for a list of one, and XML repeats the element.
    List,
    /// Named parameters of its own.
    Object(&'static [Param]),
    /// A list of objects with named parameters; XML repeats the element.
    Objects(&'static [Param]),
}

/// What an operation knows about the request that carries it.
#[derive(Clone, Debug)]
pub struct CallContext {
    /// The caller's correlation id (or a fresh one): part of the derived idempotency key.
    pub correlation_id: String,
    /// The operation being run (the generic runner reads its route from it).
    pub operation: Operation,
    /// What `callApi` may reach for this caller (`security/routes.rs`); empty: callApi is off.
    pub call_api: std::sync::Arc<crate::security::Routes>,
    /// The file of a `multipart/form-data` call (uploadMedia's REST path), until the operation takes
    /// it: taken, so that the request's body is let go once the file is encoded.
    pub file: std::sync::Arc<std::sync::Mutex<Option<media::FilePart>>>,
}

impl CallContext {
    /// A call's context with no file.
    pub fn new(
        correlation_id: String,
        operation: Operation,
        call_api: std::sync::Arc<crate::security::Routes>,
    ) -> CallContext {
        CallContext {
            correlation_id,
            operation,
            call_api,
            file: Default::default(),
        }
    }

    /// The call's file, once.
    pub fn take_file(&self) -> Option<media::FilePart> {
        self.file.lock().map(|mut f| f.take()).unwrap_or_default()
    }
}

/// Runs `operation` with `params`, the decoded body (a JSON object, or null for an empty body).
pub async fn execute(
    core: &Core,
    operation: Operation,
    params: Value,
    call: &CallContext,
) -> Result<Value> {
    dispatch(core, operation, params, call).await
}

/// Reads the parameter struct of `operation`, naming the parameter at fault when it cannot.
fn parse<T: DeserializeOwned + params::Params>(operation: Operation, params: Value) -> Result<T> {
    let params = match params {
        Value::Null => Value::Object(Default::default()),
        obj @ Value::Object(_) => obj,
        other => {
            return Err(Error::invalid(format!(
                "{operation} takes an object of named parameters, not {}",
                match other {
                    Value::Array(_) => "a list",
                    Value::String(_) => "a string",
                    _ => "a single value",
                }
            )))
        }
    };
    if let Some(missing) = params::missing_required(T::PARAMS, &params) {
        return Err(Error::invalid(format!(
            "{operation} needs the parameter `{missing}`"
        )));
    }
    serde_path_to_error::deserialize(params).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        if let Some(rest) = message.strip_prefix("unknown field `") {
            let field: String = rest
                .split('`')
                .next()
                .unwrap_or("")
                .chars()
                .take(64)
                .collect();
            let expected = rest
                .split_once("expected ")
                .map(|(_, list)| format!("; {operation} takes {list}"))
                .unwrap_or_default();
            let at = if path == "." || path.is_empty() {
                String::new()
            } else {
                format!(" in {path}")
            };
            return Error::invalid(format!("unknown parameter `{field}`{at}{expected}"));
        }
        if let Some(rest) = message.strip_prefix("missing field `") {
            let field = rest.split('`').next().unwrap_or("");
            let at = if path == "." || path.is_empty() {
                field.to_owned()
            } else {
                format!("{path}.{field}")
            };
            return Error::invalid(format!("{operation} needs the parameter `{at}`"));
        }
        if let Some((inner, message)) = message
            .strip_prefix(params::NESTED)
            .and_then(|rest| rest.split_once("`: "))
        {
            return Error::invalid(format!("parameter `{path}.{inner}`: {message}"));
        }
        Error::invalid(format!("parameter `{path}`: {message}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operation_names_round_trip_and_tolerate_case() {
        for op in Operation::ALL {
            assert_eq!(Operation::from_name(op.name()), Some(op));
        }
        assert_eq!(
            Operation::from_name("poststatus"),
            Some(Operation::PostStatus)
        );
        assert_eq!(Operation::from_name("deleteEverything"), None);
    }

    /// A value every reader of `kind` takes.
    fn sample(kind: ParamKind) -> Value {
        match kind {
            ParamKind::Text => json!("text"),
            ParamKind::Binary => json!("aGVsbG8="),
            ParamKind::Bool => json!(true),
            ParamKind::Count => json!(300),
            ParamKind::List => json!(["a", "b"]),
            ParamKind::Object(fields) => object(fields),
            ParamKind::Objects(fields) => json!([object(fields)]),
        }
    }

    /// A value the readers of `kind` refuse, though the readers of every other kind take it: so an
    /// accepted sample and a refused misfit together pin the kind.
    fn misfit(kind: ParamKind) -> Value {
        match kind {
            ParamKind::Text | ParamKind::Binary => json!(["a", "b"]),
            ParamKind::Bool => json!("maybe"),
            ParamKind::Count => json!("3.5"),
            ParamKind::List => json!([{"a": 1}]),
            ParamKind::Object(_) => json!("text"),
            ParamKind::Objects(_) => json!(["text"]),
        }
    }

    fn object(params: &[Param]) -> Value {
        Value::Object(
            params
                .iter()
                .map(|p| (p.name.to_owned(), sample(p.kind)))
                .collect(),
        )
    }

    fn names(params: &[Param]) -> Vec<&'static str> {
        params.iter().map(|p| p.name).collect()
    }

    /// The names serde lists after `takes` in an unknown-parameter detail.
    fn listed_names(detail: &str) -> Vec<String> {
        let (_, list) = detail
            .split_once(" takes ")
            .unwrap_or_else(|| panic!("no list of names in {detail:?}"));
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_metadata_names_exactly_the_fields_of_every_parameter_struct() {
        for op in Operation::ALL {
            let params = op.parameters();
            check_parameters(op, object(params))
                .unwrap_or_else(|e| panic!("{op}: every listed parameter is taken: {e}"));

            let mut unknown = object(params);
            unknown["not_a_parameter"] = json!("x");
            let e = check_parameters(op, unknown).expect_err("an unlisted name is refused");
            assert_eq!(e.kind, crate::error::ErrorKind::InvalidRequest, "{op}");
            assert!(e.detail.contains("`not_a_parameter`"), "{op}: {}", e.detail);
            assert_eq!(listed_names(&e.detail), names(params), "{op}");

            for p in params {
                if let ParamKind::Object(fields) = p.kind {
                    let mut inner = object(fields);
                    inner["not_a_parameter"] = json!("x");
                    let mut outer = object(params);
                    outer[p.name] = inner;
                    let e = check_parameters(op, outer).expect_err("an unlisted nested name");
                    assert!(e.detail.contains(&format!("in {}", p.name)), "{}", e.detail);
                    assert_eq!(listed_names(&e.detail), names(fields), "{op}.{}", p.name);
                }
            }
        }
    }

    #[test]
    fn the_metadata_kinds_and_requirements_are_those_of_the_readers() {
        fn walk(op: Operation, params: &[Param], wrap: &dyn Fn(Value) -> Value) {
            for p in params {
                let mut with = object(params);
                with[p.name] = misfit(p.kind);
                assert!(
                    check_parameters(op, wrap(with)).is_err(),
                    "{op}.{} takes {}",
                    p.name,
                    misfit(p.kind)
                );
                let mut without = object(params);
                without.as_object_mut().unwrap().remove(p.name);
                assert_eq!(
                    check_parameters(op, wrap(without)).is_err(),
                    p.required,
                    "{op}.{}: required is {}",
                    p.name,
                    p.required
                );
                if let ParamKind::Object(fields) = p.kind {
                    let name = p.name;
                    let nest = |inner: Value| {
                        let mut outer = object(params);
                        outer[name] = inner;
                        wrap(outer)
                    };
                    walk(op, fields, &nest);
                }
            }
        }
        for op in Operation::ALL {
            walk(op, op.parameters(), &|v| v);
            assert!(!op.summary().is_empty());
        }
    }
}

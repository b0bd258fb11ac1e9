//! The intake: every request head is read and checked on the connection, before actix-http's parser
//! sees a byte of it.
//!
//! actix-http answers what its HTTP/1 parser cannot take (a head over its buffer, too many header
//! fields, a malformed request line) with an empty-bodied 431 or 400 of its own, and it answers
//! `Expect: 100-continue` with `100 Continue` before any handler runs. [`Intake`] wraps the accepted
//! stream (inside TLS, when TLS is on) and holds the bytes of each head until the head is complete.
//! A head that passes [`check_head`] goes on to actix unchanged; one that does not is replaced by a
//! short synthetic request for [`REFUSED_PATH`], its [`Refusal`] left in the connection's [`Signals`],
//! and the handler there answers in the contract's error shape, through the same rendering, logging and
//! metrics as every other error; after it actix sees the end of the stream and closes the connection.
//! An announced body over the operation's limit ([`super::limits::body_limit_for`]) is refused here
//! too, so it is never read and `100 Continue` is never sent for it.
//!
//! To know where each head starts, the intake follows the framing of the bodies it lets through
//! (`Content-Length`, or the chunked coding) without copying them more than once, and it refuses the
//! framings actix-http would refuse (two lengths, a length beside `Transfer-Encoding`, a coding
//! other than `chunked`), so the two never disagree about where a request ends. A chunked body that
//! breaks its framing is cut: actix sees the stream end, and the handler answers `invalid_request`.
//!
//! Two more duties keep memory bounded whatever the callers do: after a head that announces a body
//! the intake yields once, so the handler runs (and may refuse) before actix buffers the body; and
//! once a handler refused a call without reading its body ([`Signals::discard_input`]), the rest of
//! the connection's input is read and dropped here, never buffered by actix.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::config::ServerSettings;
use crate::error::ErrorKind;
use crate::operations::Operation;

/// The longest request head accepted (request line and header fields), bytes.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;
/// The longest request target accepted, bytes.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// The most header fields a request may carry (actix-http's own bound).
pub const MAX_HEADERS: usize = 96;
/// Where a refused head is sent instead (a connection-local request, never routed from outside).
pub const REFUSED_PATH: &str = "/_sidecar/refused";

/// How much is read from the connection at a time.
const READ_CHUNK: usize = 8 * 1024;
/// A chunk-size line (size and extensions) longer than this breaks the framing.
const MAX_CHUNK_LINE: usize = 4 * 1024;
/// Trailer fields after a chunked body, in all.
const MAX_TRAILER_BYTES: usize = 16 * 1024;
/// After a refusal, how long the rest of the caller's input is read and dropped before the
/// connection is closed (closing with unread input would reset it, and the caller could lose the
/// answer), and how much of it at most.
const DRAIN_TIME: Duration = Duration::from_secs(1);
const DRAIN_BYTES: usize = 8 * 1024 * 1024;

/// A head the intake refused, for the handler at [`REFUSED_PATH`] to answer.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub kind: ErrorKind,
    pub detail: String,
    /// The request went to `/soap`: the answer is a SOAP fault unless its Content-Type says otherwise.
    pub soap: bool,
    pub operation: Option<Operation>,
}

/// What the intake and the handlers of one connection tell each other.
#[derive(Debug, Default)]
pub struct Signals {
    refusal: RefCell<Option<Refusal>>,
    discard: Cell<bool>,
}

impl Signals {
    /// The refusal waiting to be answered, taken (the synthetic request answers it once).
    pub fn take_refusal(&self) -> Option<Refusal> {
        self.refusal.borrow_mut().take()
    }

    /// The handler answered before the body was read: actix closes the connection after the answer,
    /// so whatever else the caller sends is read and dropped here rather than buffered.
    pub fn discard_input(&self) {
        self.discard.set(true);
    }
}

/// The connection's [`Signals`], as handlers find them (`HttpRequest::conn_data`).
#[derive(Clone, Debug)]
pub struct ConnectionSignals(pub Rc<Signals>);

/// Where the intake is in the connection's input.
#[derive(Debug)]
enum Frame {
    /// A request head is expected.
    Head,
    /// This many bytes of a `Content-Length` body are still to pass.
    Body(u64),
    Chunked(Chunk),
    /// An upgrade or CONNECT: the rest passes unchecked (the sidecar serves neither).
    Pass,
    /// The framing broke: actix sees the end of the stream.
    Cut,
    /// A head was refused: the synthetic request went out, then the end of the stream.
    Refused,
}

/// The chunked coding, byte by byte outside the data.
#[derive(Debug, Clone, Copy)]
enum Chunk {
    Size { value: u64, digits: usize },
    Extension { value: u64, line: usize },
    SizeLf { value: u64 },
    Data(u64),
    DataCr,
    DataLf,
    TrailerStart { total: usize },
    TrailerLine { total: usize },
    TrailerLf { total: usize },
    EndLf,
}

enum ChunkOutcome {
    More,
    Done,
    Broken,
}

impl Chunk {
    fn start() -> Chunk {
        Chunk::Size {
            value: 0,
            digits: 0,
        }
    }

    /// Follows `input`; returns how many bytes belong to the body and whether it ended or broke.
    fn advance(&mut self, input: &[u8]) -> (usize, ChunkOutcome) {
        let mut i = 0;
        while i < input.len() {
            if let Chunk::Data(left) = self {
                let n = (*left).min((input.len() - i) as u64);
                i += n as usize;
                *left -= n;
                if *left == 0 {
                    *self = Chunk::DataCr;
                }
                continue;
            }
            let b = input[i];
            i += 1;
            let next = match *self {
                Chunk::Size { value, digits } => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' if digits < 16 => {
                        let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                        Some(Chunk::Size {
                            value: value * 16 + d,
                            digits: digits + 1,
                        })
                    }
                    b';' | b' ' | b'\t' if digits > 0 => Some(Chunk::Extension {
                        value,
                        line: digits,
                    }),
                    b'\r' if digits > 0 => Some(Chunk::SizeLf { value }),
                    _ => None,
                },
                Chunk::Extension { value, line } => match b {
                    b'\r' => Some(Chunk::SizeLf { value }),
                    b'\n' => None,
                    _ if line < MAX_CHUNK_LINE => Some(Chunk::Extension {
                        value,
                        line: line + 1,
                    }),
                    _ => None,
                },
                Chunk::SizeLf { value } => match b {
                    b'\n' if value == 0 => Some(Chunk::TrailerStart { total: 0 }),
                    b'\n' => Some(Chunk::Data(value)),
                    _ => None,
                },
                Chunk::Data(_) => unreachable!("handled above"),
                Chunk::DataCr => (b == b'\r').then_some(Chunk::DataLf),
                Chunk::DataLf => (b == b'\n').then(Chunk::start),
                Chunk::TrailerStart { total } => match b {
                    b'\r' => Some(Chunk::EndLf),
                    b'\n' => None,
                    _ => Some(Chunk::TrailerLine { total: total + 1 }),
                },
                Chunk::TrailerLine { total } => match b {
                    b'\r' => Some(Chunk::TrailerLf { total }),
                    b'\n' => None,
                    _ if total < MAX_TRAILER_BYTES => Some(Chunk::TrailerLine { total: total + 1 }),
                    _ => None,
                },
                Chunk::TrailerLf { total } => (b == b'\n').then_some(Chunk::TrailerStart { total }),
                Chunk::EndLf => {
                    if b == b'\n' {
                        return (i, ChunkOutcome::Done);
                    }
                    None
                }
            };
            match next {
                Some(state) => *self = state,
                None => return (i, ChunkOutcome::Broken),
            }
        }
        (i, ChunkOutcome::More)
    }
}

/// What a head (the start of `buf`) is.
#[derive(Debug)]
pub enum HeadCheck {
    /// Not complete yet, and not too large so far.
    Partial,
    /// A head of `len` bytes that actix may parse, and the framing of its body. `drop_expect`: the head
    /// asks for `100 Continue`, but the call will be refused from its head (see [`Policy::admits`]), so
    /// its `Expect` field is taken out and the refusal is the first and only answer.
    Accept {
        len: usize,
        framing: Framing,
        drop_expect: bool,
    },
    Refuse(Refusal),
}

/// What the intake needs to know of the sidecar's policy.
pub struct Policy {
    pub server: ServerSettings,
    /// Would a call of this operation (when the head names one) with this key (as presented) be
    /// admitted from its head: key, rights, a slot in flight? Asked only for `Expect: 100-continue`.
    pub admits: Admits,
}

/// See [`Policy::admits`]: the operation the head names, and the key it presents.
pub type Admits = Box<dyn Fn(Option<Operation>, Option<&str>) -> bool + Send + Sync>;

impl Policy {
    /// Every head admitted: no keys, no bound.
    #[cfg(test)]
    pub fn open(server: ServerSettings) -> Policy {
        Policy {
            server,
            admits: Box::new(|_, _| true),
        }
    }
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// How a checked request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Upgrade or CONNECT: not followed.
    Opaque,
}

fn refuse(kind: ErrorKind, detail: String, buf: &[u8]) -> HeadCheck {
    let target = request_target(buf);
    let path = target.map(|t| t.split(|b| *b == b'?').next().unwrap_or(t));
    HeadCheck::Refuse(Refusal {
        kind,
        detail,
        soap: path.is_some_and(|p| p == b"/soap"),
        operation: None,
    })
}

/// The request target of the request line at the start of `buf`, when that line is complete.
fn request_target(buf: &[u8]) -> Option<&[u8]> {
    let start = buf.iter().position(|b| !matches!(b, b'\r' | b'\n'))?;
    let line = &buf[start..];
    let end = line.iter().position(|b| *b == b'\n')?;
    let mut parts = line[..end].split(|b| *b == b' ');
    parts.next()?;
    parts.next()
}

/// The end of the first blank line in `buf[from..]` (a head's end), if any.
fn blank_line_end(buf: &[u8], from: usize) -> Option<usize> {
    memchr::memchr_iter(b'\n', buf.get(from..)?)
        .map(|i| from + i)
        .find_map(|i| match &buf[i + 1..] {
            [b'\n', ..] => Some(i + 2),
            [b'\r', b'\n', ..] => Some(i + 3),
            _ => None,
        })
}

fn too_large(buf: &[u8]) -> HeadCheck {
    match request_target(buf) {
        None => refuse(
            ErrorKind::UriTooLong,
            format!("the request line is longer than {MAX_URI_BYTES} bytes"),
            buf,
        ),
        Some(target) if target.len() > MAX_URI_BYTES => uri_too_long(target.len(), buf),
        Some(_) => refuse(
            ErrorKind::HeadersTooLarge,
            format!("the request head is larger than {MAX_HEAD_BYTES} bytes"),
            buf,
        ),
    }
}

fn uri_too_long(len: usize, buf: &[u8]) -> HeadCheck {
    refuse(
        ErrorKind::UriTooLong,
        format!("the request target has {len} bytes; at most {MAX_URI_BYTES} are accepted"),
        buf,
    )
}

fn malformed(detail: impl Into<String>, buf: &[u8]) -> HeadCheck {
    refuse(ErrorKind::MalformedRequest, detail.into(), buf)
}

/// Checks the head at the start of `buf`. `scanned` is how far an earlier call looked for the end of
/// the head (kept by the caller, so that a head sent byte by byte is not searched over and over).
pub fn check_head(buf: &[u8], scanned: &mut usize, policy: &Policy) -> HeadCheck {
    let settings = &policy.server;
    let Some(end) = blank_line_end(buf, scanned.saturating_sub(2)) else {
        *scanned = buf.len();
        if buf.len() > MAX_HEAD_BYTES {
            return too_large(buf);
        }
        return match request_target(buf) {
            Some(target) if target.len() > MAX_URI_BYTES => uri_too_long(target.len(), buf),
            None if buf.len() > MAX_URI_BYTES + 64 => too_large(buf),
            _ => HeadCheck::Partial,
        };
    };
    if end > MAX_HEAD_BYTES {
        return too_large(buf);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(&buf[..end]) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            // Only empty lines so far (they may precede a request line): wait for the rest.
            *scanned = end;
            return HeadCheck::Partial;
        }
        Err(httparse::Error::TooManyHeaders) => {
            return refuse(
                ErrorKind::HeadersTooLarge,
                format!("the request has more than {MAX_HEADERS} header fields"),
                buf,
            )
        }
        Err(e) => return malformed(format!("the request head cannot be read: {e}"), buf),
    };
    let target = request.path.unwrap_or("");
    if target.len() > MAX_URI_BYTES {
        return uri_too_long(target.len(), buf);
    }
    if actix_web::http::Uri::try_from(target).is_err() {
        return malformed("the request target is not a URI", buf);
    }
    let http11 = request.version == Some(1);
    let method = request.method.unwrap_or("");
    let mut hosts = 0;
    let mut length: Option<u64> = None;
    let mut lengths = 0;
    let mut codings = 0;
    let mut chunked = false;
    let mut websocket = false;
    let mut soap_action = None;
    let mut content_type = None;
    let mut expects_continue = false;
    let mut authorization = None;
    let mut x_api_key = None;
    for header in request.headers.iter() {
        let name = header.name;
        let value = std::str::from_utf8(header.value).map(str::trim);
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("content-length") {
            lengths += 1;
            match value {
                Ok(v)
                    if !v.is_empty() && v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    length = v.parse().ok();
                }
                _ => return malformed("Content-Length is not a number of bytes", buf),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            codings += 1;
            chunked = value.is_ok_and(|v| v.eq_ignore_ascii_case("chunked"));
            if !chunked {
                return malformed(
                    "Transfer-Encoding must be `chunked` (or send a Content-Length instead)",
                    buf,
                );
            }
        } else if name.eq_ignore_ascii_case("upgrade") {
            // actix-http hands over the stream only for a WebSocket upgrade; any other is a request
            // like another, framed by its length.
            websocket |= value.is_ok_and(|v| v.eq_ignore_ascii_case("websocket"));
        } else if name.eq_ignore_ascii_case("soapaction") {
            soap_action = value.ok();
        } else if name.eq_ignore_ascii_case("content-type") {
            content_type = value.ok();
        } else if name.eq_ignore_ascii_case("expect") {
            expects_continue |=
                value.is_ok_and(|v| v.to_ascii_lowercase().contains("100-continue"));
        } else if name.eq_ignore_ascii_case("authorization") {
            authorization = value.ok();
        } else if name.eq_ignore_ascii_case("x-api-key") {
            x_api_key = value.ok();
        }
    }
    if http11 && hosts != 1 {
        return malformed("an HTTP/1.1 request carries exactly one Host header", buf);
    }
    if !http11 && hosts > 1 {
        return malformed("a request carries at most one Host header", buf);
    }
    if lengths > 1 {
        return malformed("the request carries more than one Content-Length", buf);
    }
    if codings > 1 {
        return malformed("the request carries more than one Transfer-Encoding", buf);
    }
    if codings > 0 && !http11 {
        return malformed(
            "Transfer-Encoding is not HTTP/1.0: send a Content-Length",
            buf,
        );
    }
    if codings > 0 && lengths > 0 {
        return malformed(
            "the request carries both Content-Length and Transfer-Encoding",
            buf,
        );
    }
    if !http11 && method == "POST" && lengths == 0 {
        return malformed("an HTTP/1.0 POST needs a Content-Length", buf);
    }
    let path = target.split('?').next().unwrap_or(target);
    let soap = path == "/soap";
    let operation = match path.strip_prefix("/v1/operations/") {
        Some(name) => Operation::from_name(name),
        None if soap => soap_operation(soap_action, content_type),
        None => None,
    };
    if let Some(announced) = length {
        let limit = super::limits::body_limit_for(settings, operation);
        if announced > limit as u64 {
            return HeadCheck::Refuse(Refusal {
                kind: ErrorKind::PayloadTooLarge,
                detail: format!(
                    "the body ({announced} bytes) exceeds {limit} bytes ({})",
                    super::limits::body_limit_setting(operation)
                ),
                soap,
                operation,
            });
        }
    }
    // In actix-http's order: chunked, then a WebSocket upgrade (the stream to its end), then the length;
    // a CONNECT without a length is a stream too.
    let framing = if chunked {
        Framing::Chunked
    } else if websocket {
        Framing::Opaque
    } else {
        match length {
            Some(n) if n > 0 => Framing::Length(n),
            _ if method == "CONNECT" => Framing::Opaque,
            _ => Framing::None,
        }
    };
    let calls = operation.is_some() || soap || path.starts_with("/v1/operations/");
    let drop_expect = expects_continue
        && http11
        && calls
        && !(policy.admits)(
            operation,
            crate::security::presented_key(authorization, x_api_key),
        );
    HeadCheck::Accept {
        len,
        framing,
        drop_expect,
    }
}

/// `head` without its `Expect` fields.
fn without_expect(head: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len());
    for (i, line) in head.split_inclusive(|b| *b == b'\n').enumerate() {
        let name = line.split(|b| *b == b':').next().unwrap_or_default();
        if i > 0 && line.contains(&b':') && name.eq_ignore_ascii_case(b"expect") {
            continue;
        }
        out.extend_from_slice(line);
    }
    out
}

/// The operation a SOAP request names before its body is read: the SOAP 1.1 `SOAPAction` header, or
/// the `action` parameter of a SOAP 1.2 Content-Type.
pub fn soap_operation(soap_action: Option<&str>, content_type: Option<&str>) -> Option<Operation> {
    soap_action
        .or_else(|| crate::wire::negotiate::action_parameter(content_type))
        .and_then(crate::wire::soap::action_operation)
        .and_then(Operation::from_name)
}

/// The header fields the synthetic request carries over from a refused head, so that the refusal is
/// answered in the caller's format and under its correlation id.
const CARRIED: [&str; 6] = [
    "content-type",
    "accept",
    "soapaction",
    "activityid",
    "x-correlation-id",
    "x-request-id",
];

/// The synthetic request that stands for a refused head: the fields of [`CARRIED`] that can be read
/// from it (leniently: the head may be malformed), and `Connection: close`.
fn synthetic_head(head: &[u8]) -> Vec<u8> {
    let mut out = format!("GET {REFUSED_PATH} HTTP/1.1\r\nhost: sidecar\r\nconnection: close\r\n")
        .into_bytes();
    let end = blank_line_end(head, 0).unwrap_or(head.len());
    let mut seen = [false; CARRIED.len()];
    for line in head[..end].split(|b| *b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        let Some(i) = CARRIED
            .iter()
            .position(|c| c.as_bytes().eq_ignore_ascii_case(name))
        else {
            continue;
        };
        let sane = !value.is_empty()
            && value.len() <= 256
            && value
                .iter()
                .all(|b| (0x20..0x7f).contains(b) || *b == b'\t');
        if sane && !seen[i] {
            seen[i] = true;
            out.extend_from_slice(CARRIED[i].as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// An accepted connection's stream with the intake in front of actix-http; see the module docs.
pub struct Intake<S> {
    inner: S,
    policy: Arc<Policy>,
    signals: Rc<Signals>,
    /// Read, not yet passed: the head being gathered (and what followed it).
    inbox: BytesMut,
    /// How far the head in `inbox` was searched for its end.
    scanned: usize,
    /// Passed, not yet handed to actix.
    outbox: BytesMut,
    frame: Frame,
    /// Answer the next read with "not yet" (and a wake-up), so that actix hands a head with a body to
    /// its handler before it reads the body.
    yield_next: bool,
    eof: bool,
    shut: bool,
    drain: Option<(Pin<Box<tokio::time::Sleep>>, usize)>,
}

impl<S> Intake<S> {
    pub fn new(inner: S, policy: Arc<Policy>) -> Intake<S> {
        Intake {
            inner,
            policy,
            signals: Rc::new(Signals::default()),
            inbox: BytesMut::new(),
            scanned: 0,
            outbox: BytesMut::new(),
            frame: Frame::Head,
            yield_next: false,
            eof: false,
            shut: false,
            drain: None,
        }
    }

    /// The connection's signals, for its requests' extensions.
    pub fn signals(&self) -> ConnectionSignals {
        ConnectionSignals(Rc::clone(&self.signals))
    }

    fn pass(&mut self, n: usize) {
        let part = self.inbox.split_to(n);
        if self.outbox.is_empty() {
            self.outbox = part;
        } else {
            self.outbox.extend_from_slice(&part);
        }
    }

    /// Moves what may pass from `inbox` to `outbox`, following the framing.
    fn classify(&mut self) {
        while !self.inbox.is_empty() {
            match &mut self.frame {
                Frame::Head => match check_head(&self.inbox, &mut self.scanned, &self.policy) {
                    HeadCheck::Partial => return,
                    HeadCheck::Accept {
                        len,
                        framing,
                        drop_expect,
                    } => {
                        if drop_expect {
                            let head = self.inbox.split_to(len);
                            self.outbox.extend_from_slice(&without_expect(&head));
                        } else {
                            self.pass(len);
                        }
                        self.scanned = 0;
                        self.frame = match framing {
                            Framing::None => Frame::Head,
                            Framing::Length(n) => Frame::Body(n),
                            Framing::Chunked => Frame::Chunked(Chunk::start()),
                            Framing::Opaque => Frame::Pass,
                        };
                    }
                    HeadCheck::Refuse(refusal) => {
                        let head = synthetic_head(&self.inbox);
                        *self.signals.refusal.borrow_mut() = Some(refusal);
                        self.inbox = BytesMut::new();
                        self.outbox.extend_from_slice(&head);
                        self.frame = Frame::Refused;
                        return;
                    }
                },
                Frame::Body(left) => {
                    let n = (*left).min(self.inbox.len() as u64);
                    *left -= n;
                    if *left == 0 {
                        self.frame = Frame::Head;
                    }
                    self.pass(n as usize);
                }
                Frame::Chunked(chunk) => {
                    let (n, outcome) = chunk.advance(&self.inbox);
                    self.pass(n);
                    match outcome {
                        ChunkOutcome::More => {}
                        ChunkOutcome::Done => self.frame = Frame::Head,
                        ChunkOutcome::Broken => {
                            self.inbox.clear();
                            self.frame = Frame::Cut;
                        }
                    }
                }
                Frame::Pass => {
                    let n = self.inbox.len();
                    self.pass(n);
                }
                Frame::Cut | Frame::Refused => {
                    self.inbox.clear();
                    return;
                }
            }
        }
        if matches!(self.frame, Frame::Body(_) | Frame::Chunked(_)) {
            // The body has not arrived whole: let the handler see the head first.
            self.yield_next = true;
            // Nothing is gathered while a body passes: the buffer is let go.
            self.inbox = BytesMut::new();
        }
    }
}

impl<S: AsyncRead + Unpin> Intake<S> {
    /// Reads from the connection into `scratch`; `Ok(0)` at its end.
    fn read_inner(&mut self, cx: &mut Context<'_>, scratch: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut rb = ReadBuf::new(scratch);
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut rb))?;
        Poll::Ready(Ok(rb.filled().len()))
    }

    /// Reads from the connection onto the end of `inbox` (no zeroing); `Ok(0)` at its end.
    fn read_inbox(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.inbox.capacity() - self.inbox.len() < READ_CHUNK / 2 {
            self.inbox.reserve(READ_CHUNK);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.inner), cx, &mut self.inbox)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Intake<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.outbox.is_empty() {
                let n = this.outbox.len().min(buf.remaining());
                buf.put_slice(&this.outbox[..n]);
                this.outbox.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.yield_next {
                this.yield_next = false;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if this.eof || matches!(this.frame, Frame::Cut | Frame::Refused) {
                return Poll::Ready(Ok(()));
            }
            if this.signals.discard.get() {
                // The connection closes after the answer: what still comes is dropped unread.
                let mut scratch = [0u8; READ_CHUNK];
                match ready!(this.read_inner(cx, &mut scratch)) {
                    Ok(0) | Err(_) => {
                        this.eof = true;
                        return Poll::Ready(Ok(()));
                    }
                    Ok(_) => continue,
                }
            }
            if !this.inbox.is_empty() {
                let before = (this.inbox.len(), this.outbox.len());
                this.classify();
                if !this.outbox.is_empty() || (this.inbox.len(), this.outbox.len()) != before {
                    continue;
                }
            }
            if let (Frame::Body(left), true) = (&mut this.frame, this.inbox.is_empty()) {
                // The common case of a body: straight into actix's buffer, no copy.
                let filled = buf.filled().len();
                ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
                let got = buf.filled().len() - filled;
                if got == 0 {
                    this.eof = true;
                    return Poll::Ready(Ok(()));
                }
                if (got as u64) < *left {
                    *left -= got as u64;
                } else {
                    // The body ended within this read: what follows is the next head.
                    let keep = *left as usize;
                    this.inbox
                        .extend_from_slice(&buf.filled()[filled + keep..filled + got]);
                    buf.set_filled(filled + keep);
                    this.frame = Frame::Head;
                    if keep == 0 {
                        continue;
                    }
                }
                return Poll::Ready(Ok(()));
            }
            match ready!(this.read_inbox(cx)) {
                Ok(0) => {
                    // A head cut short is dropped: actix sees the end of the stream.
                    this.eof = true;
                    this.inbox.clear();
                }
                Ok(_) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Intake<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    /// After a refused head, the write side is closed, then the caller's remaining input is read and
    /// dropped (for [`DRAIN_TIME`], at most [`DRAIN_BYTES`]) so that closing does not reset the
    /// connection under the answer.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.shut {
            ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.shut = true;
            if matches!(this.frame, Frame::Refused) && !this.eof {
                this.drain = Some((Box::pin(tokio::time::sleep(DRAIN_TIME)), 0));
            }
        }
        let mut scratch = [0u8; READ_CHUNK];
        loop {
            let Some((deadline, drained)) = this.drain.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            if deadline.as_mut().poll(cx).is_ready() || *drained > DRAIN_BYTES {
                this.drain = None;
                continue;
            }
            let mut rb = ReadBuf::new(&mut scratch);
            match ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb)) {
                Ok(()) if !rb.filled().is_empty() => {
                    let n = rb.filled().len();
                    if let Some((_, drained)) = this.drain.as_mut() {
                        *drained += n;
                    }
                }
                _ => this.drain = None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(head: &[u8]) -> HeadCheck {
        check_head(head, &mut 0, &Policy::open(ServerSettings::default()))
    }

    fn refused(head: &[u8]) -> Refusal {
        match check(head) {
            HeadCheck::Refuse(r) => r,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_plain_head_passes_with_its_framing() {
        let head = b"POST /v1/operations/init HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
        match check(head) {
            HeadCheck::Accept { len, framing, .. } => {
                assert_eq!(len, head.len() - 2);
                assert_eq!(framing, Framing::Length(2));
            }
            other => panic!("{other:?}"),
        }
        let chunked = b"POST /soap HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(
            check(chunked),
            HeadCheck::Accept {
                framing: Framing::Chunked,
                ..
            }
        ));
        assert!(matches!(
            check(b"GET /healthz HTTP/1.1\r\nHost: x\r\n"),
            HeadCheck::Partial
        ));
    }

    #[test]
    fn oversized_heads_long_targets_and_header_floods_are_refused_with_their_codes() {
        let mut long_uri = b"GET /".to_vec();
        long_uri.extend(std::iter::repeat_n(b'a', MAX_URI_BYTES + 100));
        assert_eq!(refused(&long_uri).kind, ErrorKind::UriTooLong);
        let mut big = b"POST /soap HTTP/1.1\r\nHost: x\r\nX-API-Key: ".to_vec();
        big.extend(std::iter::repeat_n(b'k', MAX_HEAD_BYTES + 1));
        let r = refused(&big);
        assert_eq!(r.kind, ErrorKind::HeadersTooLarge);
        assert!(r.soap);
        let mut many = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        for i in 0..200 {
            many.extend(format!("X-H{i}: v\r\n").as_bytes());
        }
        many.extend(b"\r\n");
        assert_eq!(refused(&many).kind, ErrorKind::HeadersTooLarge);
        assert_eq!(
            refused(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n").kind,
            ErrorKind::MalformedRequest
        );
    }

    #[test]
    fn ambiguous_framing_is_malformed() {
        for head in [
            &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\n",
            b"POST / HTTP/1.0\r\n\r\n",
        ] {
            assert_eq!(
                refused(head).kind,
                ErrorKind::MalformedRequest,
                "{}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn an_announced_body_over_the_operations_limit_is_refused_before_it_is_read() {
        let head = b"POST /v1/operations/postStatus HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 99999999\r\n\r\n";
        let r = refused(head);
        assert_eq!(r.kind, ErrorKind::PayloadTooLarge);
        assert_eq!(r.operation, Some(Operation::PostStatus));
        let soap = b"POST /soap HTTP/1.1\r\nHost: x\r\nSOAPAction: \"urn:init\"\r\nContent-Length: 99999999\r\n\r\n";
        assert_eq!(refused(soap).operation, Some(Operation::Init));
    }

    #[test]
    fn an_expect_of_a_call_that_will_be_refused_is_dropped() {
        let head = b"POST /v1/operations/init HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nX-API-Key: k\r\nContent-Length: 2\r\n\r\n";
        let refusing = Policy {
            server: ServerSettings::default(),
            admits: Box::new(|op, key| {
                assert_eq!((op, key), (Some(Operation::Init), Some("k")));
                false
            }),
        };
        assert!(matches!(
            check_head(head, &mut 0, &refusing),
            HeadCheck::Accept {
                drop_expect: true,
                ..
            }
        ));
        assert!(matches!(
            check(head),
            HeadCheck::Accept {
                drop_expect: false,
                ..
            }
        ));
        let stripped = without_expect(head);
        assert_eq!(
            stripped,
            b"POST /v1/operations/init HTTP/1.1\r\nHost: x\r\nX-API-Key: k\r\nContent-Length: 2\r\n\r\n"
        );
    }

    #[test]
    fn the_chunked_framing_is_followed_to_its_end() {
        let mut c = Chunk::start();
        let body = b"5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\nGET";
        let (n, outcome) = c.advance(body);
        assert!(matches!(outcome, ChunkOutcome::Done));
        assert_eq!(&body[n..], b"GET");
        let mut c = Chunk::start();
        let (_, outcome) = c.advance(b"zz\r\n");
        assert!(matches!(outcome, ChunkOutcome::Broken));
        // Byte by byte, the same end.
        let mut c = Chunk::start();
        let mut total = 0;
        for b in body.iter() {
            let (n, outcome) = c.advance(std::slice::from_ref(b));
            total += n;
            if matches!(outcome, ChunkOutcome::Done) {
                break;
            }
        }
        assert_eq!(total, body.len() - 3);
    }

    #[test]
    fn the_synthetic_head_carries_only_sane_format_and_correlation_fields() {
        let head = synthetic_head(
            b"POST /soap HTTP/1.1\r\nContent-Type: application/soap+xml\r\nX-Correlation-ID: order-1\r\nX-Api-Key: secret\r\nAccept: \x01bad\r\n\r\n",
        );
        let text = String::from_utf8(head).unwrap();
        assert!(
            text.starts_with("GET /_sidecar/refused HTTP/1.1\r\n"),
            "{text}"
        );
        assert!(
            text.contains("content-type: application/soap+xml\r\n"),
            "{text}"
        );
        assert!(text.contains("x-correlation-id: order-1\r\n"), "{text}");
        assert!(!text.contains("secret"), "{text}");
        assert!(!text.contains("accept"), "{text}");
        assert!(text.ends_with("\r\n\r\n"));
    }

    /// Pumps `requests` pipelined requests through `read`, returning the bytes read.
    async fn pump<R: AsyncRead + Unpin>(mut read: R) -> usize {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 8192];
        let mut total = 0;
        loop {
            let n = read.read(&mut buf).await.unwrap();
            if n == 0 {
                return total;
            }
            total += n;
        }
    }

    #[tokio::test]
    async fn prints_what_the_intake_costs_per_request() {
        use tokio::io::AsyncWriteExt;
        const REQUESTS: usize = 20_000;
        // A head as WSO2 MI sends it, and a small postStatus body.
        let body = r#"{"status":"Order 1042 shipped","visibility":"unlisted","idempotency_key":"order-1042"}"#;
        let one = format!(
            "POST /v1/operations/postStatus HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json; charset=UTF-8\r\nAccept: application/json\r\nX-API-Key: mi-key-3f9a1c0b7d2e4f6a8b1c\r\nactivityid: urn:uuid:5f1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9\r\nUser-Agent: Synapse-PT-HttpComponents-NIO\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}",
            body.len()
        );
        let input = one.repeat(REQUESTS).into_bytes();
        let mut figures = Vec::new();
        for through_intake in [false, true] {
            let (mut client, server) = tokio::io::duplex(64 * 1024);
            let data = input.clone();
            let writer = tokio::spawn(async move {
                client.write_all(&data).await.unwrap();
                client.shutdown().await.unwrap();
                client
            });
            let started = std::time::Instant::now();
            let read = if through_intake {
                let intake = Intake::new(server, Arc::new(Policy::open(ServerSettings::default())));
                pump(intake).await
            } else {
                pump(server).await
            };
            let took = started.elapsed();
            drop(writer.await);
            assert_eq!(read, input.len());
            figures.push(took);
        }
        let per = |d: Duration| d.as_nanos() as f64 / REQUESTS as f64;
        println!(
            "{REQUESTS} pipelined requests of {} bytes: {:.0} ns each read directly, {:.0} ns each through the intake (+{:.0} ns; this build's profile)",
            one.len(),
            per(figures[0]),
            per(figures[1]),
            per(figures[1]) - per(figures[0])
        );
    }
}

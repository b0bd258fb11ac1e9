//! A minimal HTTP/1.1 client on hyper: keep-alive connections for the load, one-shot requests for
//! the set-up (OAuth flow, probes), and the requests each benchmark row sends.

use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One keep-alive connection.
pub type Conn = SendRequest<Full<Bytes>>;

/// Opens a connection (TCP_NODELAY) and drives it in a background task.
pub async fn connect(addr: SocketAddr) -> io::Result<Conn> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `request` on `conn` and reads the whole answer.
pub async fn exchange(conn: &mut Conn, request: Request<Full<Bytes>>) -> io::Result<Answer> {
    conn.ready().await.map_err(io::Error::other)?;
    let response = conn.send_request(request).await.map_err(io::Error::other)?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(io::Error::other)?
        .to_bytes();
    Ok(Answer { status, body })
}

/// One request on a fresh connection (set-up and probes, not load).
pub async fn once(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> io::Result<Answer> {
    let mut conn = connect(addr).await?;
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, addr.to_string());
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder
        .body(Full::new(body.into()))
        .map_err(io::Error::other)?;
    exchange(&mut conn, request).await
}

/// POSTs a JSON body on a fresh connection.
pub async fn post_json(addr: SocketAddr, path: &str, body: &str) -> io::Result<Answer> {
    once(
        addr,
        Method::POST,
        path,
        &[("content-type", "application/json")],
        body.to_owned(),
    )
    .await
}

/// What a benchmark row sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    /// `POST /api/v1/statuses` as the sidecar sends it to Mastodon: JSON, a Bearer token, an
    /// `Idempotency-Key`.
    Mastodon,
    /// `POST /v1/operations/postStatus`, `application/json`.
    Json,
    /// `POST /v1/operations/postStatus`, `application/xml` (MI's `format="pox"`).
    Xml,
    /// `POST /soap`, SOAP 1.1 (`text/xml`, `SOAPAction: "urn:postStatus"`).
    Soap11,
}

/// Where a row sends its requests, and how.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    pub payload: Payload,
    /// The Bearer token (`Payload::Mastodon`).
    pub token: Option<String>,
    host: HeaderValue,
    auth: Option<HeaderValue>,
}

pub const SYNAPSE_NS: &str = "http://ws.apache.org/ns/synapse";

impl Target {
    pub fn new(addr: SocketAddr, payload: Payload, token: Option<String>) -> Target {
        let host = HeaderValue::from_str(&addr.to_string()).expect("an address is a valid header");
        let auth = token
            .as_ref()
            .map(|t| HeaderValue::from_str(&format!("Bearer {t}")).expect("a printable token"));
        Target {
            addr,
            payload,
            token,
            host,
            auth,
        }
    }

    /// The status text of request `n` of run `tag`: distinct for every request, so that no
    /// idempotency key (the caller's or one the sidecar derives) ever repeats and every request
    /// really posts.
    pub fn status_text(tag: &str, n: u64) -> String {
        format!("Benchmark {tag} message {n}: order shipped, tracking updated #logistics")
    }

    /// The request number `n` of run `tag`. `tag` must be plain (letters, digits, `-`).
    pub fn request(&self, tag: &str, n: u64) -> Request<Full<Bytes>> {
        let status = Self::status_text(tag, n);
        let (path, content_type, body) = match self.payload {
            Payload::Mastodon => (
                "/api/v1/statuses",
                "application/json",
                format!(r#"{{"status":"{status}","visibility":"unlisted"}}"#),
            ),
            Payload::Json => (
                "/v1/operations/postStatus",
                "application/json",
                format!(r#"{{"status":"{status}","visibility":"unlisted"}}"#),
            ),
            Payload::Xml => (
                "/v1/operations/postStatus",
                "application/xml; charset=UTF-8",
                format!(
                    r#"<postStatus xmlns="{SYNAPSE_NS}"><status>{status}</status><visibility>unlisted</visibility></postStatus>"#
                ),
            ),
            Payload::Soap11 => (
                "/soap",
                "text/xml; charset=UTF-8",
                format!(
                    r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Header/><soapenv:Body><postStatus xmlns="{SYNAPSE_NS}"><status>{status}</status><visibility>unlisted</visibility></postStatus></soapenv:Body></soapenv:Envelope>"#
                ),
            ),
        };
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(HOST, self.host.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static(content_type));
        match self.payload {
            Payload::Mastodon => {
                if let Some(auth) = &self.auth {
                    builder = builder.header(AUTHORIZATION, auth.clone());
                }
                builder = builder.header("idempotency-key", format!("bench-{tag}-{n}"));
            }
            Payload::Soap11 => {
                builder =
                    builder.header("soapaction", HeaderValue::from_static("\"urn:postStatus\""));
            }
            Payload::Json | Payload::Xml => {}
        }
        builder
            .body(Full::new(Bytes::from(body)))
            .expect("a valid request")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(r: Request<Full<Bytes>>) -> (hyper::http::request::Parts, String) {
        let (parts, body) = r.into_parts();
        let bytes = futures_body(body);
        (parts, String::from_utf8(bytes.to_vec()).unwrap())
    }

    fn futures_body(body: Full<Bytes>) -> Bytes {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async { body.collect().await.unwrap().to_bytes() })
    }

    #[test]
    fn every_request_carries_a_distinct_status_and_the_mastodon_one_a_distinct_key() {
        let t = Target::new(
            "127.0.0.1:9".parse().unwrap(),
            Payload::Mastodon,
            Some("tok".into()),
        );
        let (a, body_a) = body(t.request("direct-closed-1", 1));
        let (b, body_b) = body(t.request("direct-closed-1", 2));
        assert_ne!(body_a, body_b);
        assert_ne!(a.headers["idempotency-key"], b.headers["idempotency-key"]);
        assert_eq!(a.headers["authorization"], "Bearer tok");
        assert_eq!(a.uri, "/api/v1/statuses");
        let v: serde_json::Value = serde_json::from_str(&body_a).unwrap();
        assert!(v["status"].as_str().unwrap().len() < 500);
    }

    #[test]
    fn soap_requests_go_to_soap_with_the_action() {
        let t = Target::new("127.0.0.1:9".parse().unwrap(), Payload::Soap11, None);
        let (parts, body) = body(t.request("soap", 7));
        assert_eq!(parts.uri, "/soap");
        assert_eq!(parts.headers["soapaction"], "\"urn:postStatus\"");
        assert!(body.contains("<status>Benchmark soap message 7:"));
        assert!(parts.headers.get("authorization").is_none());
    }
}

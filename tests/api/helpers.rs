//! Test harness: a sidecar on port 0 beside a Mastodon stand-in, and helpers to call it in every format.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use mastodon_sidecar::config::{ConnectionSettings, LogFormat, LogSettings, Settings};
use mastodon_sidecar::{telemetry, Application, Shutdown};
use mastodon_standin::{Options, StandIn};
use serde_json::{json, Value};

/// The four wire formats a caller can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
    Soap11,
    Soap12,
}

pub const FORMATS: [Format; 4] = [Format::Json, Format::Xml, Format::Soap11, Format::Soap12];

/// Every log record of every sidecar in this test binary, as JSON lines.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn logs() -> &'static CapturedLogs {
    static LOGS: OnceLock<CapturedLogs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = CapturedLogs::default();
        let writer = logs.clone();
        telemetry::init(
            &LogSettings {
                format: LogFormat::Json,
                level: "debug".into(),
            },
            move || writer.clone(),
        );
        logs
    })
}

pub fn captured_logs() -> String {
    String::from_utf8_lossy(&logs().0.lock().unwrap()).into_owned()
}

pub struct TestApp {
    pub address: String,
    pub standin: StandIn,
    pub client: reqwest::Client,
    pub shutdown: Shutdown,
    pub store_dir: Arc<tempfile::TempDir>,
    pub settings: Settings,
}

/// Settings for a sidecar on port 0 whose `main` connection is the stand-in.
pub fn test_settings(standin: &StandIn, store_dir: &tempfile::TempDir) -> Settings {
    let mut settings = Settings::default();
    settings.server.listen = "127.0.0.1:0".parse().unwrap();
    settings.store.path = store_dir.path().join("sidecar.db");
    let mut main = ConnectionSettings::for_instance(standin.url.parse().unwrap());
    main.scopes = "read write".into();
    main.timeout_ms = 2_000;
    main.connect_timeout_ms = Some(1_000);
    settings.connections.insert("main".into(), main);
    settings
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default(), |_| {}).await
}

pub async fn spawn_app_with(options: Options, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    logs();
    let standin = StandIn::start(options).await;
    let store_dir = Arc::new(tempfile::tempdir().unwrap());
    let mut settings = test_settings(&standin, &store_dir);
    tweak(&mut settings);
    start(standin, store_dir, settings).await
}

/// Starts a sidecar with exactly these settings beside an existing stand-in (restarts, second replicas).
pub async fn start(
    standin: StandIn,
    store_dir: Arc<tempfile::TempDir>,
    settings: Settings,
) -> TestApp {
    let app = Application::build(settings.clone())
        .await
        .expect("the sidecar builds");
    let address = format!("http://{}", app.local_addr());
    let shutdown = app.shutdown();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        standin,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        shutdown,
        store_dir,
        settings,
    }
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Answer {
    /// The answer's payload as JSON, whatever the format: JSON as is; XML and SOAP through the same
    /// element-to-value rules callers rely on (text values, repeated elements as lists).
    pub fn value(&self) -> Value {
        if self.content_type.contains("json") {
            return serde_json::from_str(&self.body).expect("a JSON body");
        }
        let root =
            mastodon_sidecar::wire::xml::parse(self.body.as_bytes()).expect("well-formed XML");
        let payload = if root.local == "Envelope" {
            let body = root
                .children
                .iter()
                .find(|c| c.local == "Body")
                .expect("a SOAP Body");
            let first = body.children.first().expect("a Body child");
            if first.local == "Fault" {
                // The fields are in the element `error` in detail (1.1) or Detail (1.2).
                let detail = first
                    .children
                    .iter()
                    .find(|c| c.local == "detail" || c.local == "Detail")
                    .expect("fault detail");
                assert_eq!(detail.children.len(), 1, "one detail entry");
                let error = &detail.children[0];
                assert_eq!(error.local, "error", "the detail entry is tns:error");
                error.clone()
            } else {
                first.clone()
            }
        } else {
            root
        };
        mastodon_sidecar::wire::xml::parameters(&payload).expect("XML parameters")
    }

    /// The error code, whatever the format.
    pub fn code(&self) -> String {
        self.value()["code"].as_str().unwrap_or_default().to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// `params` as XML elements: an object's keys become elements, lists repeat them.
pub fn xml_params(params: &Value) -> String {
    fn element(out: &mut String, name: &str, value: &Value) {
        match value {
            Value::Array(items) => items.iter().for_each(|i| element(out, name, i)),
            Value::Object(_) => {
                out.push_str(&format!("<{name}>"));
                children(out, value);
                out.push_str(&format!("</{name}>"));
            }
            Value::Null => {}
            Value::String(s) => out.push_str(&format!(
                "<{name}>{}</{name}>",
                s.replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;")
            )),
            other => out.push_str(&format!("<{name}>{other}</{name}>")),
        }
    }
    fn children(out: &mut String, value: &Value) {
        if let Value::Object(map) = value {
            for (k, v) in map {
                element(out, k, v);
            }
        }
    }
    let mut out = String::new();
    children(&mut out, params);
    out
}

pub const SYNAPSE_NS: &str = "http://ws.apache.org/ns/synapse";

impl TestApp {
    /// Calls `operation` in `format` the way WSO2 MI sends it.
    pub async fn call(&self, format: Format, operation: &str, params: Value) -> Answer {
        self.call_with(format, operation, params, &[]).await
    }

    pub async fn call_with(
        &self,
        format: Format,
        operation: &str,
        params: Value,
        headers: &[(&str, &str)],
    ) -> Answer {
        let (url, content_type, body, action) = match format {
            Format::Json => (
                format!("{}/v1/operations/{operation}", self.address),
                "application/json".to_owned(),
                params.to_string(),
                None,
            ),
            Format::Xml => (
                format!("{}/v1/operations/{operation}", self.address),
                "application/xml; charset=UTF-8".to_owned(),
                format!(
                    "<{operation} xmlns=\"{SYNAPSE_NS}\">{}</{operation}>",
                    xml_params(&params)
                ),
                None,
            ),
            Format::Soap11 => (
                format!("{}/soap", self.address),
                "text/xml; charset=UTF-8".to_owned(),
                format!(
                    "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"><soapenv:Header/><soapenv:Body><{operation} xmlns=\"{SYNAPSE_NS}\">{}</{operation}></soapenv:Body></soapenv:Envelope>",
                    xml_params(&params)
                ),
                Some(format!("\"urn:{operation}\"")),
            ),
            Format::Soap12 => (
                format!("{}/soap", self.address),
                format!("application/soap+xml; charset=UTF-8; action=\"urn:{operation}\""),
                format!(
                    "<env:Envelope xmlns:env=\"http://www.w3.org/2003/05/soap-envelope\"><env:Body><{operation} xmlns=\"{SYNAPSE_NS}\">{}</{operation}></env:Body></env:Envelope>",
                    xml_params(&params)
                ),
                None,
            ),
        };
        let mut request = self
            .client
            .post(url)
            .header("content-type", content_type)
            .body(body);
        if let Some(action) = action {
            request = request.header("SOAPAction", action);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        read(request.send().await.expect("the sidecar answers")).await
    }

    /// Sends a raw body to a path.
    pub async fn post_raw(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> Answer {
        let mut request = self
            .client
            .post(format!("{}{path}", self.address))
            .body(body);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        read(request.send().await.expect("the sidecar answers")).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        read(
            self.client
                .get(format!("{}{path}", self.address))
                .send()
                .await
                .expect("the sidecar answers"),
        )
        .await
    }

    /// Opens an authorization URL as the user's browser would and approves: the code Mastodon shows
    /// (out-of-band) or sends to the redirect URI.
    pub async fn approve(&self, authorize_url: &str) -> String {
        let response = self
            .client
            .get(authorize_url)
            .send()
            .await
            .expect("authorize answers");
        if response.status().is_redirection() {
            let location = response.headers()["location"].to_str().unwrap().to_owned();
            let url = url::Url::parse(&location).unwrap();
            return url
                .query_pairs()
                .find(|(k, _)| k == "code")
                .map(|(_, v)| v.into_owned())
                .expect("a code in the redirect");
        }
        assert_eq!(response.status(), 200, "authorize page");
        let page = response.text().await.unwrap();
        let start = page.find("value=\"").expect("a code on the page") + 7;
        page[start..].split('"').next().unwrap().to_owned()
    }

    /// createApp, authorizeUrl, approval and getToken in `format`; returns the state used.
    pub async fn connect_account(&self, format: Format) {
        let app = self.call(format, "createApp", json!({})).await;
        assert_eq!(app.status, 200, "createApp: {}", app.body);
        let auth = self.call(format, "authorizeUrl", json!({})).await;
        assert_eq!(auth.status, 200, "authorizeUrl: {}", auth.body);
        let auth = auth.value();
        let code = self.approve(auth["url"].as_str().unwrap()).await;
        let token = self
            .call(
                format,
                "getToken",
                json!({"code": code, "state": auth["state"]}),
            )
            .await;
        assert_eq!(token.status, 200, "getToken: {}", token.body);
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.body
    }
}

async fn read(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.text().await.unwrap_or_default();
    Answer {
        status,
        content_type,
        headers,
        body,
    }
}

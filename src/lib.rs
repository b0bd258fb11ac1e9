//! mastodon-sidecar: a native sidecar that gives integration engines (WSO2 Micro Integrator, other
//! ESBs, low-code flows) connector-style operations for Mastodon over JSON, plain XML and SOAP.
//!
//! The shape: `operations/` is the connector (one closed [`operations::Operation`] enum, one function
//! per operation); `mastodon/` is the only code that knows Mastodon; `wire/` holds the thin codecs for
//! the caller's formats; `http/` binds it all to actix-web; `store/` keeps what must survive a restart.
//! [`Application::build`] turns [`config::Settings`] into a bound server; tests use it on port 0.
//! See ARCHITECTURE.md for the map and the invariants.

#![forbid(unsafe_code)]

pub mod clock;
pub mod commands;
pub mod config;
pub mod error;
pub mod generate;
mod http;
pub mod mastodon;
pub mod metrics;
pub mod operations;
pub mod security;
pub mod store;
pub mod telemetry;
pub mod wire;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App};

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::operations::Core;
use crate::store::seal::KeySource;
use crate::store::Store;

/// Why the sidecar could not start: each names its cause in one line.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the store at {path}: {source}")]
    Store {
        path: String,
        source: store::StoreError,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot set up metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot set up the connections: {0}")]
    Core(#[from] error::Error),
    #[error("invalid API keys: {0}")]
    ApiKeys(String),
    #[error("cannot use {path} for TLS: {message}")]
    Tls { path: String, message: String },
}

/// A built, bound sidecar, ready to run.
pub struct Application {
    server: Server,
    addr: SocketAddr,
    core: Arc<Core>,
    draining: Arc<AtomicBool>,
    tls: bool,
}

/// Stops a running [`Application`] gracefully, as SIGTERM does.
#[derive(Clone)]
pub struct Shutdown {
    handle: ServerHandle,
    draining: Arc<AtomicBool>,
    drain_delay: std::time::Duration,
}

impl Shutdown {
    /// Turns readiness off, keeps accepting for `server.drain_delay_ms`, then stops accepting and
    /// waits for the requests in flight (at most `server.shutdown_grace_s`).
    pub async fn stop(&self) {
        self.draining.store(true, Ordering::SeqCst);
        tokio::time::sleep(self.drain_delay).await;
        self.handle.stop(true).await;
    }
}

impl Application {
    /// Opens the store, binds `server.listen` and builds the server (not yet running).
    pub async fn build(settings: Settings) -> Result<Application, StartError> {
        let settings = Arc::new(settings);
        let keys = security::Keys::from_settings(&settings).map_err(StartError::ApiKeys)?;
        // Read before anything is opened or bound: a bad file stops the start with its name.
        let tls = match (&settings.server.tls_cert, &settings.server.tls_key) {
            (Some(cert), Some(key)) => Some(tls_config(cert, key)?),
            _ => None,
        };
        let metrics = Metrics::new()?;
        let store = open_store(&settings).await?;
        let addr = settings.server.listen;
        let listener =
            TcpListener::bind(addr).map_err(|source| StartError::Listen { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| StartError::Listen { addr, source })?;
        let core = Arc::new(Core::new(Arc::clone(&settings), store, metrics.clone())?);
        let draining = Arc::new(AtomicBool::new(false));
        let state = web::Data::new(http::AppState {
            core: Arc::clone(&core),
            metrics,
            server: Arc::new(settings.server.clone()),
            body_budget: Arc::new(tokio::sync::Semaphore::new(
                settings
                    .server
                    .max_buffered_body_bytes
                    // Never below one whole body of the largest size a call may send.
                    .max(settings.server.max_body_bytes)
                    .max(settings.server.max_upload_bytes)
                    .min(tokio::sync::Semaphore::MAX_PERMITS),
            )),
            tls: tls.is_some(),
            draining: Arc::clone(&draining),
            in_flight: Arc::new(tokio::sync::Semaphore::new(settings.server.max_in_flight)),
            request_read_timeout: std::time::Duration::from_secs(
                settings.server.request_read_timeout_s,
            ),
            keys,
        });
        let server = serve(listener, tls, &settings, state)
            .map_err(|source| StartError::Listen { addr, source })?;
        Ok(Application {
            server,
            addr,
            core,
            draining,
            tls: settings.server.tls_cert.is_some(),
        })
    }

    /// The bound address (the real port when `listen` asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn shutdown(&self) -> Shutdown {
        Shutdown {
            handle: self.server.handle(),
            draining: Arc::clone(&self.draining),
            drain_delay: std::time::Duration::from_millis(self.core.settings.server.drain_delay_ms),
        }
    }

    /// Serves until SIGTERM or SIGINT (or [`Shutdown::stop`]), lets requests in flight finish within
    /// `server.shutdown_grace_s`, then flushes the store.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let shutdown = self.shutdown();
        let health = tokio::spawn(operations::health::watch_tokens(
            Arc::clone(&self.core),
            std::time::Duration::from_secs(self.core.settings.store.health_interval_s),
        ));
        let purge = tokio::spawn(operations::purge_ledger(Arc::clone(&self.core)));
        let signals = tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("stopping: finishing requests in flight");
            shutdown.stop().await;
        });
        tracing::info!(
            listen = %self.addr,
            tls = self.tls,
            api_keys = self.core.settings.security.api_keys.len(),
            version = env!("CARGO_PKG_VERSION"),
            "ready: listen={}",
            self.addr
        );
        let served = self.server.await;
        signals.abort();
        health.abort();
        purge.abort();
        if let Err(e) = self.core.store.close().await {
            tracing::error!(error = %e, "the store did not close cleanly");
        }
        tracing::info!("stopped");
        served
    }
}

/// The HTTP server on `listener`: actix-web's application behind actix-http's HTTP/1 service, with
/// the intake ([`http::Intake`]) between the accepted stream (after TLS, when TLS is on) and the
/// HTTP/1 parser. It is what `HttpServer` assembles, plus the intake: keep-alive, the head and
/// disconnect timeouts, and graceful shutdown (idle keep-alive connections close when stopping) are
/// set as `HttpServer` sets them.
fn serve(
    listener: TcpListener,
    tls: Option<rustls::ServerConfig>,
    settings: &Settings,
    state: web::Data<http::AppState>,
) -> std::io::Result<Server> {
    use actix_http::error::DispatchError;
    use actix_http::Protocol;
    use actix_service::{fn_service, ServiceFactoryExt};
    use tokio::net::TcpStream;

    let builder = actix_server::Server::build()
        // Signals are handled in `run_until_stopped`, so that readiness turns off before draining.
        .disable_signals()
        .shutdown_timeout(settings.server.shutdown_grace_s);
    let shutdown_signal = builder.graceful_shutdown_signal();
    let callback_path = settings.server.callback_path.clone();
    let admitting = state.clone();
    let server_settings = Arc::new(http::Policy {
        server: settings.server.clone(),
        // The handler's own checks from the head (`handlers::call`), asked for `Expect: 100-continue`.
        admits: Box::new(move |operation, key| {
            let state = &admitting;
            let rights = match state.keys.authenticate(key) {
                Ok(Some(key)) => operation.is_none_or(|op| key.authorize_operation(op).is_ok()),
                Ok(None) => true,
                Err(_) => false,
            };
            rights && state.in_flight.available_permits() > 0
        }),
    });
    let builder = match tls {
        None => builder.listen("mastodon-sidecar", listener, move || {
            let server = Arc::clone(&server_settings);
            let http = http_service(
                state.clone(),
                callback_path.clone(),
                shutdown_signal.clone(),
            );
            fn_service(move |io: TcpStream| {
                let peer = io.peer_addr().ok();
                let intake = http::Intake::new(io, Arc::clone(&server));
                async move { Ok::<_, DispatchError>((intake, Protocol::Http1, peer)) }
            })
            .and_then(http)
        })?,
        Some(mut config) => {
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            let acceptor = actix_tls::accept::rustls_0_23::Acceptor::new(config);
            builder.listen("mastodon-sidecar-tls", listener, move || {
                let server = Arc::clone(&server_settings);
                let http = http_service(
                    state.clone(),
                    callback_path.clone(),
                    shutdown_signal.clone(),
                );
                acceptor
                    .clone()
                    .map_err(|e| {
                        tracing::debug!(error = ?e, "TLS handshake failed");
                        DispatchError::Io(std::io::Error::other("TLS handshake failed"))
                    })
                    .map_init_err(|_| ())
                    .and_then(fn_service(
                        move |io: actix_tls::accept::rustls_0_23::TlsStream<TcpStream>| {
                            let peer = io.get_ref().0.peer_addr().ok();
                            let intake = http::Intake::new(io, Arc::clone(&server));
                            async move { Ok::<_, DispatchError>((intake, Protocol::Http1, peer)) }
                        },
                    ))
                    .and_then(http)
            })?
        }
    };
    Ok(builder.run())
}

/// The application and the HTTP/1 service around it, built once per worker thread, for streams of
/// type `T` behind the intake.
fn http_service<T>(
    state: web::Data<http::AppState>,
    callback_path: String,
    shutdown_signal: actix_server::GracefulShutdownSignal,
) -> impl actix_service::ServiceFactory<
    (http::Intake<T>, actix_http::Protocol, Option<SocketAddr>),
    Config = (),
    Response = (),
    Error = actix_http::error::DispatchError,
    InitError = (),
>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
{
    use actix_http::{HttpService, KeepAlive};
    use actix_service::{map_config, ServiceFactoryExt};
    let app = App::new()
        .app_data(state)
        .wrap(actix_web::middleware::from_fn(http::correlate))
        .configure(move |cfg| http::configure(cfg, &callback_path));
    HttpService::build()
        .graceful_shutdown_signal(move || {
            let signal = shutdown_signal.clone();
            async move { signal.notified().await }
        })
        // As `HttpServer` sets them.
        .keep_alive(KeepAlive::default())
        .client_request_timeout(std::time::Duration::from_secs(5))
        .client_disconnect_timeout(std::time::Duration::from_secs(1))
        .h1_allow_half_closed(true)
        .on_connect_ext(|io: &http::Intake<T>, ext: &mut actix_http::Extensions| {
            ext.insert(io.signals());
        })
        .finish(map_config(
            actix_service::IntoServiceFactory::into_factory(app)
                .map_err(|e: actix_web::Error| e.error_response()),
            |_| actix_web::dev::AppConfig::default(),
        ))
}

/// The TLS configuration of `server.tls_cert` and `server.tls_key` (PEM), with rustls' `ring` provider.
fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<rustls::ServerConfig, StartError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let fail = |path: &std::path::Path, message: String| StartError::Tls {
        path: path.display().to_string(),
        message,
    };
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| fail(path, format!("cannot read the file: {e}")))
    };
    let cert_pem = read(cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(cert, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(fail(
            cert,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    let key_pem = read(key)?;
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        fail(
            key,
            format!("not a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|e| {
            fail(
                key,
                format!(
                    "the key does not fit the certificate in {}, or is not supported: {e}",
                    cert.display()
                ),
            )
        })
}

/// Opens the configured store, saying once where a newly made key was put.
pub async fn open_store(settings: &Settings) -> Result<Arc<dyn Store>, StartError> {
    let (store, source) =
        store::open(&settings.store)
            .await
            .map_err(|source| StartError::Store {
                path: store_location(settings),
                source,
            })?;
    if let KeySource::Created(path) = source {
        tracing::warn!(
            key_file = %path.display(),
            "created a key to seal secrets at rest at {}; back it up with the database: without it the stored credentials cannot be read",
            path.display()
        );
    }
    Ok(store)
}

fn store_location(settings: &Settings) -> String {
    if settings.store.url.is_some() {
        "store.url".to_owned()
    } else {
        settings.store.path.display().to_string()
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

//! The FerroMQ dashboard: a JSON API (documented in `static/openapi.json`) and a browser
//! UI that uses only that API. It is a plain client of the cluster — it finds brokers
//! through the name server — so it serves any RocketMQ-compatible cluster. The UI is our
//! own HTML, CSS and JavaScript, compiled into the binary: no build step, no third-party
//! front-end code.

mod access;
mod api;
mod sampler;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use ferromq_client::admin::AdminClient;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use sampler::Sampler;

/// Dashboard settings.
#[derive(Debug, Clone, Default)]
pub struct DashboardConfig {
    /// Name servers of the cluster shown.
    pub namesrv: Vec<String>,
    /// `user:password` required on every page and API call, when set (HTTP Basic).
    pub login: Option<(String, String)>,
    /// Signs the dashboard's requests, for brokers with ACL on (an admin account).
    pub credentials: Option<ferromq_client::Credentials>,
    /// Served at `/metrics` when set: the metrics of a broker in the same process.
    pub metrics: Option<MetricsSource>,
}

/// Renders Prometheus metrics: OpenMetrics when asked with `true`, text 0.0.4 otherwise.
/// The dashboard only serves what it is handed; it does not see the servers.
#[derive(Clone)]
pub struct MetricsSource(pub Arc<dyn Fn(bool) -> String + Send + Sync>);

impl std::fmt::Debug for MetricsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsSource")
    }
}

/// The answer to a scrape, in the format the scraper asked for (Prometheus asks for
/// OpenMetrics in its Accept header; curl asks for nothing and gets text 0.0.4).
fn metrics_response(source: &MetricsSource, headers: &HeaderMap) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    (
        [(header::CONTENT_TYPE, content_type)],
        (source.0)(openmetrics),
    )
        .into_response()
}

fn metrics_routes<S: Clone + Send + Sync + 'static>(source: MetricsSource) -> Router<S> {
    Router::new().route(
        "/metrics",
        get(move |headers: HeaderMap| {
            let source = source.clone();
            async move { metrics_response(&source, &headers) }
        }),
    )
}

/// Serves only metrics, on a port of their own (`metricsExporterType=PROM`): at
/// `/metrics` and `/`, as Apache's exporter, with `/-/healthy` for probes.
pub async fn serve_metrics(
    listener: TcpListener,
    source: MetricsSource,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let root = source.clone();
    let app = metrics_routes(source)
        .route(
            "/",
            get(move |headers: HeaderMap| {
                let source = root.clone();
                async move { metrics_response(&source, &headers) }
            }),
        )
        .route("/-/healthy", get(|| async { "Exporter is Healthy." }));
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(|e| e.to_string())
}

pub(crate) struct AppState {
    pub admin: AdminClient,
    pub sampler: Arc<Sampler>,
    pub producer: tokio::sync::OnceCell<ferromq_client::Producer>,
    pub namesrv: Vec<String>,
    pub credentials: Option<ferromq_client::Credentials>,
}

const INDEX_HTML: &str = include_str!("../static/index.html");
const APP_JS: &str = include_str!("../static/app.js");
const STYLE_CSS: &str = include_str!("../static/style.css");
const OPENAPI_JSON: &str = include_str!("../static/openapi.json");

/// Serves the dashboard on `listener` until `shutdown`.
///
/// # Errors
/// No name server configured.
pub async fn serve(
    listener: TcpListener,
    config: DashboardConfig,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let mut admin = AdminClient::new(config.namesrv.clone()).map_err(|e| e.to_string())?;
    if let Some(c) = &config.credentials {
        admin = admin.with_credentials(c.clone());
    }
    let sampler = Sampler::start(admin.clone(), shutdown.clone());
    let state = Arc::new(AppState {
        admin,
        sampler,
        producer: tokio::sync::OnceCell::new(),
        namesrv: config.namesrv.clone(),
        credentials: config.credentials.clone(),
    });
    let login = config.login.clone();
    let app = Router::new()
        .route(
            "/",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                    INDEX_HTML,
                )
            }),
        )
        .route(
            "/app.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    APP_JS,
                )
            }),
        )
        .route(
            "/style.css",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
                    STYLE_CSS,
                )
            }),
        )
        .route(
            "/api/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON) }),
        )
        .nest("/api", api::routes())
        .merge(
            config
                .metrics
                .clone()
                .map(metrics_routes)
                .unwrap_or_default(),
        )
        .with_state(state)
        .layer(axum::middleware::from_fn(
            move |req: Request<Body>, next: Next| {
                let login = login.clone();
                async move { require_login(login, req, next).await }
            },
        ));
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(|e| e.to_string())
}

async fn require_login(
    login: Option<(String, String)>,
    req: Request<Body>,
    next: Next,
) -> Response {
    let Some((user, password)) = login else {
        return next.run(req).await;
    };
    if authorized(req.headers(), &user, &password) {
        return next.run(req).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"FerroMQ\"")],
        "login required",
    )
        .into_response()
}

fn authorized(headers: &HeaderMap, user: &str, password: &str) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return false;
    };
    decode_base64(encoded.trim()).is_some_and(|d| d == format!("{user}:{password}").as_bytes())
}

/// Standard base64, as HTTP Basic credentials use.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c)? << (18 - 6 * i);
        }
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
        if chunk.len() == 1 {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_decode() {
        assert_eq!(decode_base64("YWRtaW46c2VjcmV0").unwrap(), b"admin:secret");
        assert_eq!(decode_base64("YQ==").unwrap(), b"a");
        assert!(decode_base64("!!!!").is_none());
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            "Basic YWRtaW46c2VjcmV0".parse().unwrap(),
        );
        assert!(authorized(&h, "admin", "secret"));
        assert!(!authorized(&h, "admin", "other"));
        assert!(!authorized(&HeaderMap::new(), "admin", "secret"));
    }
}

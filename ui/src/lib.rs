//! The web console: the front end built by `ui/build.sh` into `ui/dist/` (committed, so `cargo
//! build` alone needs no JavaScript tooling) is compiled into the binary with `include_bytes!`
//! and served from memory — no file is read at run time.
//!
//! [`router`] has explicit routes only (no fallback): `/`, the console's page paths (the
//! single-page app's history routes, each answered with `index.html`) and `/assets/*`. It
//! therefore never shadows `/api/*`, `/loki/*`, `/metrics`, `/-/*` or `/v1/*`, and merges into
//! any application router; the server merges it last.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The page shell; loads `/assets/app.js` and `/assets/app.css`.
const INDEX_HTML: &[u8] = include_bytes!("../dist/index.html");
/// The bundled application (esbuild, minified; Preact and uPlot inside).
const APP_JS: &[u8] = include_bytes!("../dist/app.js");
/// The bundled styles (the console's and uPlot's).
const APP_CSS: &[u8] = include_bytes!("../dist/app.css");

/// Page paths of the console, each answered with `index.html` (the app routes on the client).
/// `/graph` is where Prometheus' alert generator URLs point (`/graph?g0.expr=…`): it opens
/// Explore with that query.
pub const PAGE_PATHS: &[&str] = &[
    "/",
    "/slos",
    "/slos/{id}",
    "/explore",
    "/graph",
    "/alerts",
    "/logs",
    "/traces",
    "/traces/{id}",
    "/status",
];

/// Content-Security-Policy of every console response: scripts, styles, images and requests
/// only from this server (the console never contacts another host).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
                   base-uri 'self'; form-action 'self'";

fn asset(body: &'static [u8], content_type: &'static str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The asset names are fixed, so browsers must revalidate; the binary is small enough that
    // a reload costs little.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

async fn index() -> Response {
    asset(INDEX_HTML, "text/html; charset=utf-8")
}

async fn app_js() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

async fn app_css() -> Response {
    asset(APP_CSS, "text/css; charset=utf-8")
}

/// The console's routes; merge into the application after the API routers.
pub fn router() -> Router {
    let mut r = Router::new()
        .route("/assets/app.js", get(app_js))
        .route("/assets/app.css", get(app_css));
    for path in PAGE_PATHS {
        r = r.route(path, get(index));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{to_bytes, Body};
    use axum::http::Request;
    use tower::ServiceExt;

    async fn fetch(app: Router, path: &str) -> (StatusCode, String, Vec<u8>) {
        let req = Request::get(path).body(Body::empty());
        let Ok(req) = req else { panic!("request") };
        let Ok(resp) = app.oneshot(req).await;
        let status = resp.status();
        let ct = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = to_bytes(resp.into_body(), usize::MAX).await;
        let Ok(body) = body else { panic!("body") };
        (status, ct, body.to_vec())
    }

    #[tokio::test]
    async fn pages_get_the_shell_and_the_shell_names_the_served_assets() {
        for path in [
            "/",
            "/slos",
            "/slos/api-availability",
            "/explore",
            "/graph?g0.expr=up",
            "/alerts",
            "/logs",
            "/traces/abc",
            "/status",
        ] {
            let (status, ct, body) = fetch(router(), path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert!(ct.starts_with("text/html"), "{path}: {ct}");
            assert_eq!(body, INDEX_HTML, "{path}");
        }
        let shell = String::from_utf8_lossy(INDEX_HTML);
        assert!(shell.contains("/assets/app.js") && shell.contains("/assets/app.css"));
        let (status, ct, body) = fetch(router(), "/assets/app.js").await;
        assert_eq!(
            (status, ct.as_str()),
            (StatusCode::OK, "text/javascript; charset=utf-8")
        );
        assert_eq!(body, APP_JS);
        let (status, ct, body) = fetch(router(), "/assets/app.css").await;
        assert_eq!(
            (status, ct.as_str()),
            (StatusCode::OK, "text/css; charset=utf-8")
        );
        assert_eq!(body, APP_CSS);
        // The bundle is self-contained: no URL of another host is loaded.
        assert!(!shell.contains("http://") && !shell.contains("https://"));
    }

    #[tokio::test]
    async fn api_and_other_paths_are_not_shadowed() {
        // A stand-in API router merged first, the console last: API paths reach the API, and
        // unknown paths are not answered with the shell.
        let api = Router::new().route("/api/v1/query", get(|| async { "api" }));
        let app = api.merge(router());
        let (status, _, body) = fetch(app.clone(), "/api/v1/query").await;
        assert_eq!(
            (status, body.as_slice()),
            (StatusCode::OK, b"api".as_slice())
        );
        for path in [
            "/api/v1/nope",
            "/loki/api/v1/query",
            "/metrics",
            "/-/ready",
            "/v1/metrics",
            "/assets/other.js",
            "/explorer",
        ] {
            let (status, _, _) = fetch(app.clone(), path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
    }
}

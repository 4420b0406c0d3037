//! Bearer tokens on API routes (RFC 6750) and, for a service that names itself an OAuth
//! protected resource as the MCP authorization spec asks, its RFC 9728 metadata document.
//!
//! The token is static (given to the server, handed to clients out of band), so there is no
//! authorization server to point clients at: the metadata names the resource and how to send
//! the token, and a 401 says where that metadata is.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::uri::Authority;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

/// Where RFC 9728 metadata lives (the root form; `<this><resource path>` serves it too).
pub const PROTECTED_RESOURCE_METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// How a service guarded by a static bearer token describes itself to OAuth-aware clients.
#[derive(Debug, Clone)]
pub struct ProtectedResource {
    /// Path of the guarded endpoint, e.g. `/mcp`: the resource identifier is `<base><path>`.
    pub path: &'static str,
    /// Human-readable name (`resource_name`).
    pub name: &'static str,
    /// The base URL clients use (`https://my-svc.a.run.app`). `None`: each request's Host and
    /// `X-Forwarded-Proto` (https behind Cloud Run and most proxies), else http.
    pub public_url: Option<String>,
}

impl ProtectedResource {
    /// `scheme://authority` of the service as the request reached it, or `None` when its Host is
    /// not a plain authority (nothing a client could use, and nothing to echo into a header).
    fn base_url(&self, headers: &HeaderMap, uri: &Uri) -> Option<String> {
        if let Some(url) = &self.public_url {
            return Some(url.trim_end_matches('/').to_string());
        }
        let host = match uri.authority() {
            Some(authority) => authority.as_str(),
            None => headers.get(header::HOST)?.to_str().ok()?,
        };
        let authority: Authority = host.parse().ok()?;
        if authority.as_str().contains('@') {
            return None;
        }
        let forwarded = headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim);
        let scheme = if forwarded == Some("https") {
            "https"
        } else {
            "http"
        };
        Some(format!("{scheme}://{authority}"))
    }

    /// The RFC 9728 document. Left out: `authorization_servers` (the MCP spec asks for at least
    /// one; a static token has none) and `scopes_supported` (the token grants everything).
    fn document(&self, base: &str) -> Value {
        json!({
            "resource": format!("{base}{}", self.path),
            "resource_name": self.name,
            "bearer_methods_supported": ["header"],
        })
    }
}

/// Who may call the routes of a guarded router, and how a refusal explains itself.
struct BearerToken {
    token: String,
    realm: &'static str,
    resource: Option<ProtectedResource>,
}

/// Requires `Authorization: Bearer <token>` on every route of `routes`; 401 with
/// `WWW-Authenticate: Bearer realm="<realm>"` otherwise. `None` leaves them open.
pub fn require_bearer(routes: Router, token: Option<String>, realm: &'static str) -> Router {
    match token {
        Some(token) => guard(
            routes,
            BearerToken {
                token,
                realm,
                resource: None,
            },
        ),
        None => routes,
    }
}

/// [`require_bearer`] for a service that is an OAuth protected resource (the MCP authorization
/// spec, as far as a static token allows): a 401 names the metadata document in
/// `resource_metadata` (and, for a wrong token, `error="invalid_token"`), and the document is
/// served, unguarded, at [`PROTECTED_RESOURCE_METADATA_PATH`] and at that path followed by the
/// resource's. `None` leaves the routes open and serves no metadata.
pub fn require_bearer_on_resource(
    routes: Router,
    token: Option<String>,
    realm: &'static str,
    resource: ProtectedResource,
) -> Router {
    let Some(token) = token else {
        return routes;
    };
    let metadata = get({
        let resource = resource.clone();
        move |headers: HeaderMap, uri: Uri| async move { metadata_document(&resource, &headers, &uri) }
    });
    let path_form = format!("{PROTECTED_RESOURCE_METADATA_PATH}{}", resource.path);
    guard(
        routes,
        BearerToken {
            token,
            realm,
            resource: Some(resource),
        },
    )
    .route(PROTECTED_RESOURCE_METADATA_PATH, metadata.clone())
    .route(&path_form, metadata)
}

fn guard(routes: Router, expected: BearerToken) -> Router {
    routes.layer(middleware::from_fn_with_state(
        Arc::new(expected),
        check_bearer,
    ))
}

fn metadata_document(resource: &ProtectedResource, headers: &HeaderMap, uri: &Uri) -> Response {
    let Some(base) = resource.base_url(headers, uri) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "the request's Host header is not a host[:port]; send one"})),
        )
            .into_response();
    };
    let mut response = Json(resource.document(&base)).into_response();
    // Public metadata: browser-based clients (the MCP Inspector) read it from another origin.
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

/// What the request presented in `Authorization`.
enum Presented<'a> {
    /// No `Authorization` header, or another scheme: the client has not tried a bearer token.
    Nothing,
    Bearer(&'a str),
}

fn presented(headers: &HeaderMap) -> Presented<'_> {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Presented::Nothing;
    };
    // The scheme name is case-insensitive (RFC 7235 §2.1).
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            Presented::Bearer(token.trim())
        }
        _ => Presented::Nothing,
    }
}

async fn check_bearer(
    State(expected): State<Arc<BearerToken>>,
    request: Request,
    next: Next,
) -> Response {
    let presented = presented(request.headers());
    if let Presented::Bearer(token) = presented
        && constant_time_eq(token.as_bytes(), expected.token.as_bytes())
    {
        return next.run(request).await;
    }
    let mut response = (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "missing or wrong bearer token: send `Authorization: Bearer <token>` (the server's --token)"})),
    )
        .into_response();
    let challenge = challenge(&expected, &presented, request.headers(), request.uri());
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// The `WWW-Authenticate` value: RFC 6750 §3 (no error code when no token was sent), plus
/// RFC 9728 §5.1's `resource_metadata` for a protected resource.
fn challenge(
    expected: &BearerToken,
    presented: &Presented<'_>,
    headers: &HeaderMap,
    uri: &Uri,
) -> String {
    let mut params = vec![format!("realm=\"{}\"", expected.realm)];
    if let Some(resource) = &expected.resource {
        if let Presented::Bearer(_) = presented {
            params.push("error=\"invalid_token\"".into());
            params.push("error_description=\"the bearer token is not this server's\"".into());
        }
        if let Some(base) = resource.base_url(headers, uri) {
            params.push(format!(
                "resource_metadata=\"{base}{PROTECTED_RESOURCE_METADATA_PATH}\""
            ));
        }
    }
    format!("Bearer {}", params.join(", "))
}

/// Compares secrets without an early exit, so timing does not reveal a matching prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Server, bind};
    use tokio_util::sync::CancellationToken;

    #[test]
    fn secrets_compare_by_content_and_length() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
    }

    async fn serve(app: Router) -> Server<()> {
        Server::spawn(
            bind("127.0.0.1", 0).await.unwrap(),
            app,
            CancellationToken::new(),
            (),
        )
    }

    #[tokio::test]
    async fn a_token_guards_its_routes_and_the_server_drains_on_cancel() {
        let api = require_bearer(
            Router::new().route("/api", get(|| async { "ok" })),
            Some("t0k".into()),
            "test",
        );
        let server = serve(api.route("/open", get(|| async { "open" }))).await;
        let base = server.base_url();
        let client = reqwest::Client::new();
        let denied = client.get(format!("{base}/api")).send().await.unwrap();
        assert_eq!(denied.status(), 401);
        assert_eq!(
            denied.headers()["www-authenticate"],
            "Bearer realm=\"test\""
        );
        let api_with = |token: &str| client.get(format!("{base}/api")).bearer_auth(token).send();
        let wrong = api_with("t0K").await.unwrap();
        assert_eq!(wrong.status(), 401);
        // Without a protected resource, the challenge stays as it was.
        assert_eq!(wrong.headers()["www-authenticate"], "Bearer realm=\"test\"");
        let allowed = api_with("t0k").await.unwrap();
        assert_eq!(allowed.text().await.unwrap(), "ok");
        let lower_case_scheme = client
            .get(format!("{base}/api"))
            .header("authorization", "bearer t0k")
            .send()
            .await
            .unwrap();
        assert_eq!(lower_case_scheme.status(), 200);
        let open = client.get(format!("{base}/open")).send().await.unwrap();
        assert_eq!(open.status(), 200);
        // No metadata without a protected resource: the path falls to the guarded fallback.
        let metadata = client
            .get(format!("{base}{PROTECTED_RESOURCE_METADATA_PATH}"))
            .send()
            .await
            .unwrap();
        assert_eq!(metadata.status(), 401);
        assert_eq!(
            metadata.headers()["www-authenticate"],
            "Bearer realm=\"test\""
        );
        server.shutdown().await.unwrap();
        assert!(client.get(format!("{base}/open")).send().await.is_err());
    }

    fn resource(public_url: Option<&str>) -> ProtectedResource {
        ProtectedResource {
            path: "/api",
            name: "test API",
            public_url: public_url.map(String::from),
        }
    }

    #[tokio::test]
    async fn a_protected_resource_names_its_metadata_in_every_refusal() {
        let api = Router::new().route("/api", get(|| async { "ok" }));
        let app = require_bearer_on_resource(api, Some("t0k".into()), "test", resource(None));
        let server = serve(app).await;
        let base = server.base_url();
        let client = reqwest::Client::new();
        let metadata_url = format!("{base}{PROTECTED_RESOURCE_METADATA_PATH}");

        let anonymous = client.get(format!("{base}/api")).send().await.unwrap();
        assert_eq!(anonymous.status(), 401);
        assert_eq!(
            anonymous.headers()["www-authenticate"].to_str().unwrap(),
            format!("Bearer realm=\"test\", resource_metadata=\"{metadata_url}\"")
        );
        // Another scheme counts as no bearer token: no error code (RFC 6750 §3.1).
        let basic = client
            .get(format!("{base}/api"))
            .header("authorization", "Basic dXNlcjpwdw==")
            .send()
            .await
            .unwrap();
        assert!(
            !basic.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("error=")
        );
        let wrong = client
            .get(format!("{base}/api"))
            .bearer_auth("nope")
            .send()
            .await
            .unwrap();
        let challenge = wrong.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.starts_with(
                "Bearer realm=\"test\", error=\"invalid_token\", error_description=\""
            ),
            "{challenge}"
        );
        assert!(
            challenge.ends_with(&format!("resource_metadata=\"{metadata_url}\"")),
            "{challenge}"
        );

        // Behind a proxy that terminates TLS, the metadata names the https URL.
        let proxied = client
            .get(format!("{base}/api"))
            .header("host", "api.example.com")
            .header("x-forwarded-proto", "https")
            .send()
            .await
            .unwrap();
        assert_eq!(
            proxied.headers()["www-authenticate"].to_str().unwrap(),
            "Bearer realm=\"test\", resource_metadata=\"https://api.example.com/.well-known/oauth-protected-resource\""
        );

        for path in [
            PROTECTED_RESOURCE_METADATA_PATH,
            "/.well-known/oauth-protected-resource/api",
        ] {
            let reply = client.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(reply.status(), 200, "{path}");
            assert_eq!(reply.headers()["access-control-allow-origin"], "*");
            let document: Value = reply.json().await.unwrap();
            assert_eq!(
                document,
                json!({
                    "resource": format!("{base}/api"),
                    "resource_name": "test API",
                    "bearer_methods_supported": ["header"],
                }),
                "{path}"
            );
        }
        server.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn a_public_url_names_the_resource_whatever_the_host() {
        let api = Router::new().route("/api", get(|| async { "ok" }));
        let app = require_bearer_on_resource(
            api,
            Some("t0k".into()),
            "test",
            resource(Some("https://svc.example.com/")),
        );
        let server = serve(app).await;
        let client = reqwest::Client::new();
        let reply = client
            .get(format!(
                "{}{PROTECTED_RESOURCE_METADATA_PATH}",
                server.base_url()
            ))
            .send()
            .await
            .unwrap();
        let document: Value = reply.json().await.unwrap();
        assert_eq!(document["resource"], "https://svc.example.com/api");
        // An open service has no metadata to serve.
        let open = require_bearer_on_resource(
            Router::new().route("/api", get(|| async { "ok" })),
            None,
            "test",
            resource(None),
        );
        let open = serve(open).await;
        let reply = client
            .get(format!(
                "{}{PROTECTED_RESOURCE_METADATA_PATH}",
                open.base_url()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 404);
        assert_eq!(
            client
                .get(format!("{}/api", open.base_url()))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
}

//! Who may call: bearer tokens, Origin and Host validation, health endpoints.

use serde_json::json;

use crate::{Fixture, tool_call};

fn query() -> serde_json::Value {
    tool_call("1", "query", json!({"query": "SELECT 1"}))
}

async fn post(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("Accept", "application/json, text/event-stream")
        .json(&query());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn bearer_token_is_required_when_configured() {
    let fixture = Fixture::start(sqlrft_mcp::DEMO_SQL, |c| c.token = Some("s3cret".into())).await;
    let url = sqlrft_mcp::mcp_url(&fixture.server);
    let base = fixture.server.base_url();
    let metadata_url = format!("{base}/.well-known/oauth-protected-resource");
    let anonymous = post(&url, &[]).await;
    assert_eq!(anonymous.status(), 401);
    // The MCP authorization spec: the 401 says where the protected-resource metadata is.
    assert_eq!(
        anonymous.headers()["www-authenticate"].to_str().unwrap(),
        format!("Bearer realm=\"sqlrft\", resource_metadata=\"{metadata_url}\"")
    );
    let wrong = post(&url, &[("Authorization", "Bearer wrong")]).await;
    assert_eq!(wrong.status(), 401);
    let challenge = wrong.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("error=\"invalid_token\"")
            && challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{challenge}"
    );
    // The metadata (RFC 9728) is served without the token and names the MCP endpoint.
    for path in ["", "/mcp"] {
        let document: serde_json::Value = reqwest::get(format!("{metadata_url}{path}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(document["resource"], format!("{base}/mcp"), "{document}");
        assert_eq!(document["bearer_methods_supported"], json!(["header"]));
        assert!(
            document.get("authorization_servers").is_none(),
            "{document}"
        );
    }
    assert_eq!(
        post(&url, &[("Authorization", "Bearer s3cret")])
            .await
            .status(),
        200
    );
    // Health checks stay open so Cloud Run can probe without the secret.
    let health = reqwest::get(format!("{}/healthz", fixture.server.base_url()))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn an_open_server_has_no_oauth_metadata() {
    let fixture = Fixture::demo().await;
    let reply = reqwest::get(format!(
        "{}/.well-known/oauth-protected-resource",
        fixture.server.base_url()
    ))
    .await
    .unwrap();
    assert_eq!(reply.status(), 404);
}

#[tokio::test]
async fn foreign_browser_origins_are_rejected() {
    let fixture = Fixture::demo().await;
    let url = sqlrft_mcp::mcp_url(&fixture.server);
    assert_eq!(
        post(&url, &[("Origin", "http://evil.example")])
            .await
            .status(),
        403
    );
    let local = format!("http://localhost:{}", fixture.server.addr.port());
    assert_eq!(post(&url, &[("Origin", &local)]).await.status(), 200);
}

#[tokio::test]
async fn loopback_server_rejects_foreign_host_headers() {
    let fixture = Fixture::demo().await;
    let url = sqlrft_mcp::mcp_url(&fixture.server);
    assert_eq!(
        post(&url, &[("Host", "attacker.example")]).await.status(),
        403
    );
    let allowed = Fixture::start(sqlrft_mcp::DEMO_SQL, |c| {
        c.allowed_hosts = vec!["api.example.com".into()]
    })
    .await;
    assert_eq!(
        post(
            &sqlrft_mcp::mcp_url(&allowed.server),
            &[("Host", "api.example.com")]
        )
        .await
        .status(),
        200
    );
}

#[tokio::test]
async fn readiness_checks_the_database() {
    let fixture = Fixture::demo().await;
    let ready = reqwest::get(format!("{}/readyz", fixture.server.base_url()))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn rmcp_client_sees_typed_results() {
    use rmcp::ServiceExt;
    use rmcp::model::CallToolRequestParams;
    use rmcp::transport::StreamableHttpClientTransport;

    let fixture = Fixture::demo().await;
    let transport = StreamableHttpClientTransport::from_uri(sqlrft_mcp::mcp_url(&fixture.server));
    let client = ().serve(transport).await.expect("rmcp client connects");
    let tools = client.list_all_tools().await.unwrap();
    assert!(
        tools
            .iter()
            .any(|t| t.name == "query" && t.output_schema.is_some())
    );
    let mut call = CallToolRequestParams::new("query");
    call.arguments = Some(
        json!({"query": "SELECT name, altitude FROM airports WHERE country = 'Norway' ORDER BY altitude"})
            .as_object()
            .unwrap()
            .clone(),
    );
    let result = client.call_tool(call).await.unwrap();
    let structured = result.structured_content.expect("structured content");
    // The same query through the pool directly must give the same typed rows.
    let pool =
        sqlrft_duck::ReadOnlyPool::open(&fixture.server.state.db, Default::default()).unwrap();
    let direct = pool
        .query("SELECT name, altitude FROM airports WHERE country = 'Norway' ORDER BY altitude")
        .await
        .unwrap();
    assert_eq!(structured, sqlrft_mcp::structured(&direct));
    client.cancel().await.unwrap();
}

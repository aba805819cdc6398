//! Both roles: health, metrics, Swagger UI and the OpenAPI document, JSON errors, binding and stopping.

use crate::support::{assert_json_error, content, TestApp};

#[actix_web::test]
async fn health_reports_both_roles() {
    let app = TestApp::spawn().await;
    let health: serde_json::Value = app.health().await.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["seeder"], true);
    assert_eq!(health["tracker"], true);
}

#[actix_web::test]
async fn metrics_count_requests_by_route_and_status_and_bytes_served() {
    let data = content(5000);
    let app = TestApp::spawn_with(&[("m.bin", &data[..])], |_| {}).await;
    app.wait_for_torrent("m.bin").await;
    app.get_file("m.bin", &[]).await.bytes().await.unwrap();
    app.get_file("nothing", &[]).await;

    let metrics = app.metrics().await;
    assert!(
        metrics.contains(
            r#"gotorrent_http_requests_total{method="GET",route="/files/{name:.+}",status="200"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"route="/files/{name:.+}",status="404"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("gotorrent_bytes_served_total 5000"),
        "{metrics}"
    );
    assert!(metrics.contains("gotorrent_torrents 1"), "{metrics}");
    assert!(metrics.contains("gotorrent_live_seeders"), "{metrics}");
}

#[actix_web::test]
async fn swagger_ui_and_the_openapi_document_are_served() {
    let app = TestApp::spawn().await;
    let ui = app
        .client
        .get(format!("{}/swagger-ui/", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.unwrap().contains("swagger"));

    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = no_follow
        .get(format!("{}/swagger-ui", app.url))
        .send()
        .await
        .unwrap();
    assert!(redirect.status().is_redirection());
    assert_eq!(redirect.headers()["location"], "/swagger-ui/");

    let doc: serde_json::Value = app
        .client
        .get(format!("{}/api-docs/openapi.json", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let generated: serde_json::Value =
        serde_json::from_str(&gotorrent_http::server::openapi::json()).unwrap();
    assert_eq!(doc, generated);
    for path in [
        "/chunks/{file}/{index}",
        "/files/{name}",
        "/torrents",
        "/torrents/{info_hash}",
        "/torrents/{info_hash}/manifest",
        "/announce",
        "/peers",
        "/health",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} undocumented");
    }
}

#[actix_web::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = TestApp::spawn().await;
    assert_json_error(
        app.client
            .get(format!("{}/nope", app.url))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    let wrong_method = app
        .client
        .delete(format!("{}/torrents", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.headers()["allow"], "GET, POST");
    assert_json_error(wrong_method, 405).await;
}

#[actix_web::test]
async fn a_role_that_is_off_has_no_routes() {
    let app = TestApp::spawn_with(&[], |o| {
        o.no_tracker = true;
        o.no_seeder = true;
    })
    .await;
    let health: serde_json::Value = app.health().await.json().await.unwrap();
    assert_eq!(health["tracker"], false);
    assert_json_error(app.peers(&"ab".repeat(32)).await, 404).await;
    assert_json_error(app.get_file("x", &[]).await, 404).await;
}

#[actix_web::test]
async fn a_port_in_use_is_refused_not_shared_with_the_server_on_it() {
    // Arrange: a server on some port.
    let first = TestApp::spawn().await;
    let dirs = tempfile::tempdir().unwrap();
    let bind = format!("127.0.0.1:{}", first.port);
    let settings =
        crate::support::test_settings(&dirs.path().join("data"), &dirs.path().join("state"), |o| {
            o.bind = Some(bind.clone());
        });
    std::fs::create_dir_all(dirs.path().join("data")).unwrap();

    // Act: a second server asks for the same port (each worker's socket can share a port with
    // its siblings; the server must still not share one with anybody else).
    let second = gotorrent_http::app::Application::build(settings, Default::default()).await;

    // Assert
    let error = format!("{:#}", second.err().expect("the port is taken"));
    assert!(
        error.contains(&format!("cannot bind server.bind = {bind}")),
        "{error}"
    );
    assert!(first.health().await.status().is_success());
}

#[actix_web::test]
async fn a_graceful_stop_finishes_the_response_in_flight_then_refuses_connections() {
    // Arrange: two workers, a file large enough to be in flight, and an idle kept-alive
    // connection (the client's pool keeps the one its health checks used).
    let data = content(16 << 20);
    let app = TestApp::spawn_with(&[("big file.bin", &data[..])], |o| {
        o.set("server.workers", 2);
    })
    .await;
    app.wait_for_torrent("big file.bin").await;
    let response = app.get_file("big%20file.bin", &[]).await;
    assert_eq!(response.status(), 200);

    // Act: stop while the body is still coming, then read it.
    let stopping = actix_web::rt::spawn({
        let handle = app.handle.clone();
        async move {
            handle.stop(true).await;
            std::time::Instant::now()
        }
    });
    let body = response.bytes().await.unwrap();
    let read_at = std::time::Instant::now();
    let stopped_at = stopping.await.unwrap();

    // Assert: the whole body, a stop that did not wait for the idle connection's 5 s
    // keep-alive, and no one listening afterwards.
    assert!(
        body == data,
        "the body in flight was cut short ({} bytes)",
        body.len()
    );
    assert!(stopped_at - read_at < std::time::Duration::from_secs(3));
    let refused = std::net::TcpStream::connect(("127.0.0.1", app.port));
    assert!(
        refused.is_err(),
        "something still listens on port {}",
        app.port
    );
}

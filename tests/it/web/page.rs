//! The server-rendered pages over plain HTTP: escaping, links that work, CSP, assets, CORS.

use super::sharing_awkward_names;
use crate::support::{content, TestApp};

async fn page(app: &TestApp, path: &str) -> (reqwest::header::HeaderMap, String) {
    let response = app
        .client
        .get(format!("{}{path}", app.url))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    let headers = response.headers().clone();
    (headers, response.text().await.unwrap())
}

#[actix_web::test]
async fn the_listing_shows_every_name_as_text_under_a_strict_csp() {
    // Arrange
    let (app, _) = sharing_awkward_names().await;

    // Act
    let (headers, html) = page(&app, "/").await;

    // Assert: names are escaped text; no inline script may run.
    assert!(
        html.contains("&#60;img src=x onerror=alert(1)&#62;.bin"),
        "{html}"
    );
    assert!(!html.contains("<img"), "an unescaped name: {html}");
    assert!(html.contains("my file ü &#38; &#60;b&#62;co.bin"), "{html}");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(!html.contains("<script>"), "an inline script: {html}");
    assert!(html.contains("3 of 3 torrents"), "{html}");
    for landmark in [
        "<header>",
        "<main id=\"main\">",
        "<footer>",
        "role=\"search\"",
    ] {
        assert!(html.contains(landmark), "{landmark} missing");
    }
}

#[actix_web::test]
async fn the_listing_filters_and_sorts_without_javascript_and_json_clients_keep_their_api() {
    let (app, _) = sharing_awkward_names().await;

    let (_, filtered) = page(&app, "/?q=ALBUM&sort=size").await;
    assert!(filtered.contains("1 of 3 torrents"), "{filtered}");
    assert!(filtered.contains(">album</a>"), "{filtered}");
    let (_, by_size) = page(&app, "/?sort=size").await;
    let big = by_size.find("my file ü").unwrap();
    let small = by_size.find("onerror").unwrap();
    assert!(big < small, "largest first");

    let json: serde_json::Value = app
        .client
        .get(format!("{}/", app.url))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json.as_array().unwrap().len(), 3);
    let paged = app
        .client
        .get(format!("{}/?limit=2", app.url))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert!(
        paged.headers()["link"]
            .to_str()
            .unwrap()
            .contains("rel=\"next\""),
        "GET / for JSON pages as GET /torrents does"
    );
    let paged: serde_json::Value = paged.json().await.unwrap();
    assert_eq!(paged.as_array().unwrap().len(), 2);
}

#[actix_web::test]
async fn the_listing_comes_a_hundred_rows_a_page_and_shows_a_new_torrent_at_once() {
    // Arrange: 250 registered torrents with awkward names.
    let app = TestApp::spawn().await;
    let register = |i: usize| {
        let meta = gotorrent_http::metainfo::create::from_bytes(
            &format!("reg <{i:03}> & co"),
            &content(100 + i),
            gotorrent_http::types::PieceLength::new(16384).unwrap(),
            vec![],
            vec![],
        )
        .unwrap();
        app.register_torrent(meta.bytes.to_vec())
    };
    for i in 0..250 {
        assert_eq!(register(i).await.status(), 201);
    }

    // Act
    let (_, first) = page(&app, "/").await;
    let (_, last) = page(&app, "/?sort=name&page=3").await;
    let (_, past_the_end) = page(&app, "/?page=99").await;
    let (_, filtered) = page(&app, "/?q=%3C1&page=2").await;

    // Assert
    let rows = |html: &str| html.matches("<tr data-name=").count();
    assert_eq!(rows(&first), 100);
    assert!(
        first.contains("100 on this page, 250 of 250 torrents"),
        "{first}"
    );
    assert!(first.contains("Page 1 of 3"), "{first}");
    assert!(
        first.contains(r#"<a href="/?sort=name&#38;page=2" rel="next">"#),
        "{first}"
    );
    assert!(first.contains("reg &#60;000&#62; &#38; co") && !first.contains("&#60;100&#62;"));
    assert_eq!(rows(&last), 50);
    assert!(last.contains("reg &#60;249&#62; &#38; co") && !last.contains("rel=\"next\""));
    assert!(past_the_end.contains("Page 3 of 3"), "{past_the_end}");
    // "<1" matches 100 to 199, one page: asking for a second shows that one.
    assert_eq!(rows(&filtered), 100);
    assert!(filtered.contains("100 of 250 torrents"), "{filtered}");

    // A torrent registered now is listed within a second, not after the counts' 5 s.
    assert_eq!(register(250).await.status(), 201);
    let registered = std::time::Instant::now();
    crate::support::poll("the new torrent listed", || async {
        page(&app, "/?q=%3C250%3E")
            .await
            .1
            .contains("1 of 251 torrents")
    })
    .await;
    assert!(registered.elapsed() < std::time::Duration::from_millis(1500));
}

#[actix_web::test]
async fn the_listing_shows_bittorrent_peers_completed_downloads_and_age() {
    // Arrange: two BitTorrent peers announce the awkward file's v1 hash; one has completed.
    let (app, v2) = sharing_awkward_names().await;
    let listed = app.list_torrents().await;
    let torrent = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["info_hash_v2"] == v2.as_str())
        .unwrap();
    let v1 = hex::decode(torrent["info_hash_v1"].as_str().unwrap()).unwrap();
    let escaped: String = v1.iter().map(|b| format!("%{b:02X}")).collect();
    for (peer, event) in [
        ("-XX0001-aaaaaaaaaaaa", "completed"),
        ("-XX0001-bbbbbbbbbbbb", "started"),
    ] {
        let left = if event == "completed" { 0 } else { 500 };
        let url = format!(
            "{}/announce?info_hash={escaped}&peer_id={peer}&port=6881&uploaded=0&downloaded=0&left={left}&event={event}&compact=1",
            app.url
        );
        assert_eq!(app.client.get(url).send().await.unwrap().status(), 200);
    }

    // Act
    let (_, html) = page(&app, "/?q=my+file").await;

    // Assert: 2 peers, 1 completed, and an age for a file shared here.
    let row = &html[html.find("data-name=\"my file").unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.contains("<td>2</td>") && row.contains("<td>1</td>"),
        "{row}"
    );
    assert!(row.contains(" s</td>"), "{row}");
    for column in ["BitTorrent peers", "Completed", "Age"] {
        assert!(html.contains(&format!(">{column}</th>")), "{column}");
    }
    let (_, newest) = page(&app, "/?sort=newest").await;
    assert!(
        newest.contains("<option value=\"newest\" selected>"),
        "{newest}"
    );
}

#[actix_web::test]
async fn a_torrent_page_links_to_what_works() {
    // Arrange
    let (app, v2) = sharing_awkward_names().await;

    // Act
    let (_, html) = page(&app, &format!("/t/{v2}")).await;

    // Assert: the .torrent parses to this hash, the magnet names it, the file link serves it.
    let torrent = app.get_torrent(&v2).await.bytes().await.unwrap();
    let meta = gotorrent_http::metainfo::Metainfo::from_bytes(&torrent).unwrap();
    assert_eq!(meta.info_hash_v2.to_string(), v2);
    assert!(html.contains(&format!("href=\"/torrents/{v2}\"")), "{html}");
    assert!(html.contains(&format!("urn:btmh:1220{v2}")), "{html}");
    assert!(
        html.contains(&format!("urn:btih:{}", meta.info_hash_v1)),
        "{html}"
    );
    let file_link = format!("{}/files/my%20file%20%C3%BC%20%26%20%3Cb%3Eco.bin", app.url);
    assert!(html.contains(&file_link), "{html}");
    assert!(app.get_bytes(&file_link).await == content(70_000));
    assert!(
        html.contains("<svg role=\"img\" aria-label=\"QR code of this page\""),
        "{html}"
    );
    assert!(html.contains(&format!(
        "gotorrent-http download {}/torrents/{v2}",
        app.url
    )));
    assert!(
        html.contains(&format!("{} s ago", 0)) || html.contains(" s ago"),
        "{html}"
    );
    // A folder lists its files with links.
    let listed = app.list_torrents().await;
    let album = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "album")
        .unwrap();
    let (_, folder) = page(
        &app,
        &format!("/t/{}", album["info_hash_v2"].as_str().unwrap()),
    )
    .await;
    assert!(
        folder.contains(&format!("{}/files/album/a.txt", app.url)),
        "{folder}"
    );
}

#[actix_web::test]
async fn assets_are_compiled_in_and_cached_under_their_version() {
    let app = TestApp::spawn().await;
    let version = env!("CARGO_PKG_VERSION");
    for (file, kind) in [("app.css", "text/css"), ("app.js", "text/javascript")] {
        let response = app
            .client
            .get(format!("{}/assets/{version}/{file}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(kind));
        assert!(response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable"));
    }
    let missing = app
        .client
        .get(format!("{}/assets/{version}/x.js", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[actix_web::test]
async fn pieces_files_peers_and_torrents_answer_other_origins_read_only() {
    let (app, v2) = sharing_awkward_names().await;
    for path in [
        format!("/chunks/{v2}/0"),
        "/files/album/a.txt".to_owned(),
        format!("/peers?info_hash={v2}"),
        format!("/torrents/{v2}"),
    ] {
        // A preflight for a ranged GET, then the GET itself.
        let preflight = app
            .client
            .request(reqwest::Method::OPTIONS, format!("{}{path}", app.url))
            .header("origin", "http://elsewhere.example")
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "range")
            .send()
            .await
            .unwrap();
        assert!(
            preflight.status().is_success(),
            "{path}: {}",
            preflight.status()
        );
        assert_eq!(
            preflight.headers()["access-control-allow-origin"],
            "*",
            "{path}"
        );
        let get = app
            .client
            .get(format!("{}{path}", app.url))
            .header("origin", "http://elsewhere.example")
            .send()
            .await
            .unwrap();
        assert_eq!(get.headers()["access-control-allow-origin"], "*", "{path}");
        assert!(get
            .headers()
            .get("access-control-allow-credentials")
            .is_none());
        // Writes are not opened to other origins.
        let post = app
            .client
            .request(reqwest::Method::OPTIONS, format!("{}{path}", app.url))
            .header("origin", "http://elsewhere.example")
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap();
        assert!(
            post.headers().get("access-control-allow-origin").is_none(),
            "{path}"
        );
    }
}

#[actix_web::test]
async fn pages_need_the_read_token_when_one_is_set() {
    let app = TestApp::spawn_with(&[], |o| {
        o.set("tracker.read_token", "let me read, please");
    })
    .await;
    for path in [
        "/",
        "/t/00000000000000000000000000000000000000000000000000000000000000aa",
    ] {
        let refused = app
            .client
            .get(format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401, "{path}");
    }
    let allowed = app
        .client
        .get(format!("{}/", app.url))
        .bearer_auth("let me read, please")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
}

#[actix_web::test]
async fn the_share_form_appears_only_with_uploads_on_and_asks_for_the_write_token_when_set() {
    let off = TestApp::spawn().await;
    let (_, html) = page(&off, "/").await;
    assert!(!html.contains("id=\"upload\""), "{html}");

    let open = TestApp::spawn_with(&[], |o| {
        o.set("seeder.uploads", true);
    })
    .await;
    let (_, html) = page(&open, "/").await;
    assert!(
        html.contains("id=\"upload\"") && !html.contains("id=\"token\""),
        "{html}"
    );
    assert!(html.contains("at most 4.0 GiB"), "{html}");

    let guarded = TestApp::spawn_with(&[], |o| {
        o.set("seeder.uploads", true);
        o.set("tracker.write_token", "a write token of some length");
    })
    .await;
    let (_, html) = page(&guarded, "/").await;
    assert!(
        html.contains("<label for=\"token\">Write token</label>"),
        "{html}"
    );
}

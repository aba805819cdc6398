//! The seeder role over HTTP: chunks, whole files, ranges, caching headers, path safety.

use crate::support::{assert_json_error, content, percent_encode, TestApp};
use gotorrent_http::types::PieceLength;

const PIECE: usize = 64 * 1024;

async fn app_sharing(name: &str, bytes: &[u8]) -> (TestApp, serde_json::Value) {
    let piece_length = PieceLength::new(PIECE as u64).unwrap();
    let app = TestApp::spawn_with(&[(name, bytes)], |o| {
        o.set("seeder.piece_length", piece_length.get());
    })
    .await;
    let summary = app.wait_for_torrent(name.rsplit('/').next().unwrap()).await;
    (app, summary)
}

#[actix_web::test]
async fn chunks_by_name_and_by_either_info_hash_return_the_piece_bytes() {
    // Arrange: 3 full pieces and a short last one, under an awkward name.
    let data = content(3 * PIECE + 1234);
    let (app, summary) = app_sharing("a file ü.bin", &data).await;
    let v2 = summary["info_hash_v2"].as_str().unwrap();
    let v1 = summary["info_hash_v1"].as_str().unwrap();
    assert_eq!(summary["piece_count"], 4);

    for (file, immutable) in [
        (percent_encode("a file ü.bin"), false),
        (v2.to_owned(), true),
        (v1.to_owned(), true),
    ] {
        for index in 0..4 {
            // Act
            let response = app.get_chunk(&file, &index.to_string(), None).await;
            // Assert
            assert_eq!(response.status(), 200, "{file} {index}");
            let cache = response.headers()["cache-control"]
                .to_str()
                .unwrap()
                .to_owned();
            assert_eq!(cache.contains("immutable"), immutable);
            let etag = response.headers()["etag"].to_str().unwrap().to_owned();
            let start = index * PIECE;
            let end = (start + PIECE).min(data.len());
            assert_eq!(
                response.headers()["content-length"],
                (end - start).to_string().as_str()
            );
            assert_eq!(response.bytes().await.unwrap(), &data[start..end]);
            // The strong ETag is the BEP 52 piece hash of exactly these bytes.
            let expected = gotorrent_http::metainfo::merkle::piece_hash(
                &data[start..end],
                PieceLength::new(PIECE as u64).unwrap(),
                data.len() as u64,
            );
            assert_eq!(etag, format!("\"{}\"", hex::encode(expected)));
        }
    }
}

#[actix_web::test]
async fn chunk_ranges_conditional_requests_and_errors() {
    let data = content(2 * PIECE);
    let (app, summary) = app_sharing("c.bin", &data).await;
    let v2 = summary["info_hash_v2"].as_str().unwrap();

    let partial = app.get_chunk(v2, "1", Some("bytes=10-19")).await;
    assert_eq!(partial.status(), 206);
    assert_eq!(
        partial.headers()["content-range"],
        format!("bytes 10-19/{PIECE}").as_str()
    );
    assert_eq!(
        partial.bytes().await.unwrap(),
        &data[PIECE + 10..PIECE + 20]
    );

    let etag = app.get_chunk(v2, "0", None).await.headers()["etag"].clone();
    let not_modified = app
        .client
        .get(format!("{}/chunks/{v2}/0", app.url))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);

    assert_json_error(
        app.get_chunk(v2, "0", Some(&format!("bytes={PIECE}-")))
            .await,
        416,
    )
    .await;
    assert_json_error(app.get_chunk(v2, "2", None).await, 404).await;
    assert_json_error(app.get_chunk(v2, "99999999999", None).await, 400).await;
    assert_json_error(app.get_chunk(v2, "-1", None).await, 400).await;
    assert_json_error(app.get_chunk(v2, "one", None).await, 400).await;
    assert_json_error(app.get_chunk("no-such-file", "0", None).await, 404).await;
    assert_json_error(app.get_chunk(&"ab".repeat(32), "0", None).await, 404).await;
}

/// Polls the torrent list until `name` is listed with these file paths; returns its summary.
/// (Earlier versions of the folder stay listed too: the seeder registered them with its
/// tracker.)
async fn wait_for_files(app: &TestApp, name: &str, paths: &[&str]) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let listed = app.list_torrents().await;
        let versions: Vec<(&serde_json::Value, Vec<&str>)> = listed
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["name"] == name)
            .map(|t| {
                let files = t["files"].as_array().unwrap();
                (
                    t,
                    files.iter().map(|f| f["path"].as_str().unwrap()).collect(),
                )
            })
            .collect();
        if let Some((torrent, _)) = versions.iter().find(|(_, listed)| listed == paths) {
            return (*torrent).clone();
        }
        let listed_paths: Vec<&Vec<&str>> = versions.iter().map(|(_, p)| p).collect();
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {name:?} with files {paths:?}; listed {listed_paths:?}"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn a_top_level_folder_is_one_torrent_served_by_piece_and_by_path() {
    // Arrange: a folder with an awkward name, a nested file, an empty and a hidden file.
    let (intro, disc) = (content(PIECE + 100), content(2 * PIECE));
    let folder = "Album <b>ü & co";
    let piece_length = PieceLength::new(PIECE as u64).unwrap();
    let app = TestApp::spawn_with(
        &[
            (&format!("{folder}/01 intro.flac"), &intro[..]),
            (&format!("{folder}/disc 2/b.bin"), &disc[..]),
            (&format!("{folder}/empty.txt"), &[][..]),
            (&format!("{folder}/.hidden"), &b"secret"[..]),
        ],
        |o| {
            o.set("seeder.piece_length", piece_length.get());
            o.set("storage.rescan_interval_secs", 1);
        },
    )
    .await;

    // Act
    let summary = wait_for_files(
        &app,
        folder,
        &["01 intro.flac", "disc 2/b.bin", "empty.txt"],
    )
    .await;

    // Assert: one torrent, files listed with their first pieces; hidden files left out.
    assert_eq!(summary["is_folder"], true);
    assert_eq!(summary["piece_count"], 4);
    assert_eq!(summary["length"], intro.len() + disc.len());
    let firsts: Vec<u64> = summary["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["first_piece"].as_u64().unwrap())
        .collect();
    assert_eq!(firsts, [0, 2, 4]);
    assert!(summary["files"][2]["pieces_root"].is_null());

    // A piece is a slice of one file, by name or hash, its ETag the piece hash.
    let v2 = summary["info_hash_v2"].as_str().unwrap().to_owned();
    let last_of_intro = app.get_chunk(&percent_encode(folder), "1", None).await;
    assert_eq!(last_of_intro.status(), 200);
    let expected_etag = gotorrent_http::metainfo::merkle::piece_hash(
        &intro[PIECE..],
        piece_length,
        intro.len() as u64,
    );
    assert_eq!(
        last_of_intro.headers()["etag"].to_str().unwrap(),
        format!("\"{}\"", hex::encode(expected_etag))
    );
    assert_eq!(last_of_intro.bytes().await.unwrap(), &intro[PIECE..]);
    let first_of_disc = app.get_chunk(&v2, "2", None).await;
    assert_eq!(first_of_disc.bytes().await.unwrap(), &disc[..PIECE]);
    assert_json_error(app.get_chunk(&v2, "4", None).await, 404).await;

    // /files/<folder>/<path> is the BEP 19 layout, with Range.
    let base = percent_encode(folder);
    let nested = format!(
        "{base}/{}/{}",
        percent_encode("disc 2"),
        percent_encode("b.bin")
    );
    let ranged = app.get_file(&nested, &[("range", "bytes=10-19")]).await;
    assert_eq!(ranged.status(), 206);
    assert_eq!(
        ranged.headers()["content-range"],
        format!("bytes 10-19/{}", disc.len()).as_str()
    );
    assert_eq!(ranged.bytes().await.unwrap(), &disc[10..20]);
    let empty = app.get_file(&format!("{base}/empty.txt"), &[]).await;
    assert_eq!(empty.status(), 200);
    assert!(empty.bytes().await.unwrap().is_empty());

    // Pad files, as clients without BEP 47 ask for them: zeros, with Range.
    let pad = PIECE - 100;
    let zeros = app.get_file(&format!("{base}/.pad/{pad}"), &[]).await;
    assert_eq!(zeros.status(), 200);
    assert_eq!(zeros.bytes().await.unwrap(), vec![0u8; pad]);
    let tail = app
        .get_file(&format!("{base}/.pad/{pad}"), &[("range", "bytes=-5")])
        .await;
    assert_eq!(tail.status(), 206);
    assert_eq!(tail.bytes().await.unwrap(), vec![0u8; 5]);

    for missing in [
        format!("{base}/.hidden"),
        format!("{base}/nope"),
        format!("{base}/.pad/0"),
        format!("{base}/.pad/{PIECE}"),
        base.clone(),
        format!("{base}/{}", percent_encode("disc 2")),
    ] {
        assert_json_error(app.get_file(&missing, &[]).await, 404).await;
    }

    // The .torrent's web seed is the /files/ directory: clients append <name>/<path>.
    let meta = gotorrent_http::metainfo::Metainfo::from_bytes(
        &app.get_torrent(&v2).await.bytes().await.unwrap(),
    )
    .unwrap();
    assert!(meta.is_folder);
    assert_eq!(meta.url_list, [format!("{}/files/", app.url)]);

    // Rescans notice files added, changed and removed inside the folder.
    app.write_file(&format!("{folder}/new.txt"), b"new");
    let grown = wait_for_files(
        &app,
        folder,
        &["01 intro.flac", "disc 2/b.bin", "empty.txt", "new.txt"],
    )
    .await;
    assert_ne!(grown["info_hash_v2"], v2.as_str());
    std::fs::remove_file(app.data_dir.join(folder).join("disc 2/b.bin")).unwrap();
    let shrunk = wait_for_files(&app, folder, &["01 intro.flac", "empty.txt", "new.txt"]).await;
    assert_eq!(shrunk["piece_count"], 3);
    app.write_file(&format!("{folder}/new.txt"), b"changed");
    crate::support::poll("the changed file's length", || async {
        let listed = app.list_torrents().await;
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == folder && t["files"][2]["length"] == 7)
    })
    .await;
}

#[actix_web::test]
async fn files_serve_whole_files_and_single_ranges_like_a_web_seed() {
    let data = content(3 * PIECE + 7);
    let (app, summary) = app_sharing("whole.bin", &data).await;
    let etag = format!("\"{}\"", summary["info_hash_v2"].as_str().unwrap());

    let full = app.get_file("whole.bin", &[]).await;
    assert_eq!(full.status(), 200);
    assert_eq!(full.headers()["accept-ranges"], "bytes");
    assert_eq!(full.headers()["etag"], etag.as_str());
    assert_eq!(full.bytes().await.unwrap(), &data[..]);

    let cases = [
        ("bytes=0-0", 0, 1),
        ("bytes=65536-131071", PIECE, PIECE),
        ("bytes=-7", data.len() - 7, 7),
        ("bytes=196600-", 196600, data.len() - 196600),
        ("bytes=10-999999999", 10, data.len() - 10),
    ];
    for (range, start, len) in cases {
        let response = app.get_file("whole.bin", &[("range", range)]).await;
        assert_eq!(response.status(), 206, "{range}");
        let expected = format!("bytes {}-{}/{}", start, start + len - 1, data.len());
        assert_eq!(
            response.headers()["content-range"],
            expected.as_str(),
            "{range}"
        );
        assert_eq!(
            response.bytes().await.unwrap(),
            &data[start..start + len],
            "{range}"
        );
    }

    let unsatisfiable = app
        .get_file("whole.bin", &[("range", "bytes=999999999-")])
        .await;
    assert_eq!(
        unsatisfiable.headers()["content-range"],
        format!("bytes */{}", data.len()).as_str()
    );
    assert_json_error(unsatisfiable, 416).await;

    // If-Range with a stale validator: the whole file, not a fragment of something else.
    let stale = app
        .get_file(
            "whole.bin",
            &[("range", "bytes=0-9"), ("if-range", "\"stale\"")],
        )
        .await;
    assert_eq!(stale.status(), 200);
    let fresh = app
        .get_file("whole.bin", &[("range", "bytes=0-9"), ("if-range", &etag)])
        .await;
    assert_eq!(fresh.status(), 206);

    let head = app.head_file("whole.bin").await;
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"],
        data.len().to_string().as_str()
    );
    assert!(head.bytes().await.unwrap().is_empty());

    assert_json_error(app.get_file("missing.bin", &[]).await, 404).await;
}

#[actix_web::test]
async fn paths_never_reach_outside_the_data_dir() {
    let data = content(100);
    let (app, _) = app_sharing("inside.bin", &data).await;
    // A secret next to the data dir, and a symlink inside pointing at it.
    let secret = app.data_dir.parent().unwrap().join("secret.txt");
    std::fs::write(&secret, b"top secret").unwrap();
    std::os::unix::fs::symlink(&secret, app.data_dir.join("link.txt")).unwrap();
    std::os::unix::fs::symlink("/etc", app.data_dir.join("etc")).unwrap();

    let attempts = [
        "../secret.txt",
        "..%2Fsecret.txt",
        "%2e%2e/secret.txt",
        "%2e%2e%2fsecret.txt",
        "%252e%252e%252fsecret.txt",
        "..%5csecret.txt",
        "/etc/passwd",
        "%2Fetc%2Fpasswd",
        "link.txt",
        "etc/passwd",
        "inside.bin%00",
        "inside.bin/..",
        "./inside.bin/../../secret.txt",
        "%c0%ae%c0%ae/secret.txt",
        "%c0%ae%c0%ae%c0%afsecret.txt",
        "%e0%80%ae%e0%80%ae/secret.txt",
        "..%255csecret.txt",
        "..%00/secret.txt",
        "%00",
        "..\\secret.txt",
        "%5c..%5csecret.txt",
        "....//secret.txt",
        "..;/secret.txt",
        "%2e%2e%5csecret.txt",
        "data%20dir/../secret.txt",
        "%2Ftmp%2Fsecret.txt",
        "file:%2F%2F%2Fetc%2Fpasswd",
    ];
    let absolute = crate::support::percent_encode(&secret.to_string_lossy());
    let attempts: Vec<&str> = attempts
        .iter()
        .copied()
        .chain([absolute.as_str()])
        .collect();
    for attempt in attempts {
        for response in [
            app.get_file(attempt, &[]).await,
            app.get_chunk(attempt, "0", None).await,
        ] {
            let status = response.status().as_u16();
            let body = response.bytes().await.unwrap();
            assert!(matches!(status, 400 | 404), "{attempt}: {status}");
            assert!(
                !body.windows(10).any(|w| w == b"top secret") && !body.starts_with(b"root:"),
                "{attempt}"
            );
        }
    }
}

#[actix_web::test]
async fn files_added_while_running_are_picked_up_and_hashes_are_cached_across_restarts() {
    // Arrange: a server rescanning every second.
    let dirs = tempfile::tempdir().unwrap();
    let (data_dir, state_dir) = (dirs.path().join("data"), dirs.path().join("state"));
    std::fs::create_dir_all(&data_dir).unwrap();
    let settings = |_: ()| {
        crate::support::test_settings(&data_dir, &state_dir, |o| {
            o.set("storage.rescan_interval_secs", 1);
        })
    };
    let app = TestApp::start(settings(()), vec![]).await;

    // Act: add a file after start.
    app.write_file("late.bin", &content(5000));
    let summary = app.wait_for_torrent("late.bin").await;
    app.stop().await;

    // Assert: a restart finds the same torrent without hashing again (the cache hit is logged
    // as no "hashing" line; here we check the torrent is listed at once after the first scan).
    let again = TestApp::start(settings(()), vec![]).await;
    let relisted = again.wait_for_torrent("late.bin").await;
    assert_eq!(relisted["info_hash_v2"], summary["info_hash_v2"]);
    again.stop().await;
}

#[actix_web::test]
async fn seed_files_outside_the_data_dir_are_shared_by_file_name() {
    let dirs = tempfile::tempdir().unwrap();
    let (data_dir, state_dir) = (dirs.path().join("data"), dirs.path().join("state"));
    let extra = dirs.path().join("extra file.bin");
    std::fs::write(&extra, content(777)).unwrap();
    let app = TestApp::start(
        crate::support::test_settings(&data_dir, &state_dir, |_| {}),
        vec![extra],
    )
    .await;
    app.wait_for_torrent("extra file.bin").await;
    let response = app.get_file(&percent_encode("extra file.bin"), &[]).await;
    assert_eq!(response.bytes().await.unwrap(), &content(777)[..]);
}

async fn put_file(
    app: &TestApp,
    name: &str,
    body: reqwest::Body,
    token: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .put(format!("{}/files/{name}", app.url))
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[actix_web::test]
async fn an_upload_is_stored_hashed_and_served_back_never_over_a_shared_file() {
    // Arrange
    let app = TestApp::spawn_with(&[("taken.bin", &b"old"[..])], |o| {
        o.set("seeder.uploads", true);
        o.set("seeder.max_upload_bytes", 1_000_000);
    })
    .await;
    app.wait_for_torrent("taken.bin").await;
    let data = content(300_000);

    // Act
    let stored = put_file(
        &app,
        &percent_encode("up load ü.bin"),
        data.clone().into(),
        None,
    )
    .await;

    // Assert: 201, listed once hashed, served back byte for byte.
    assert_eq!(stored.status(), 201);
    let body: serde_json::Value = stored.json().await.unwrap();
    assert_eq!(body["name"], "up load ü.bin");
    assert_eq!(body["length"], 300_000);
    app.wait_for_torrent("up load ü.bin").await;
    let back = app.get_file(&percent_encode("up load ü.bin"), &[]).await;
    assert!(back.bytes().await.unwrap() == data);
    // Never over a shared file, never a hidden or nested name.
    assert_json_error(
        put_file(&app, "taken.bin", b"new".to_vec().into(), None).await,
        409,
    )
    .await;
    assert_json_error(
        put_file(
            &app,
            &percent_encode("up load ü.bin"),
            b"x".to_vec().into(),
            None,
        )
        .await,
        409,
    )
    .await;
    assert_json_error(
        put_file(&app, ".hidden", b"x".to_vec().into(), None).await,
        400,
    )
    .await;
    assert_json_error(
        put_file(&app, "a%2Fb.bin", b"x".to_vec().into(), None).await,
        400,
    )
    .await;
    assert_eq!(
        std::fs::read(app.data_dir.join("taken.bin")).unwrap(),
        b"old"
    );
    // An empty file is never shared, so it is not stored either.
    assert_json_error(
        put_file(&app, "empty.bin", Vec::new().into(), None).await,
        400,
    )
    .await;
    assert!(!app.data_dir.join("empty.bin").exists());
}

/// The write token of [`accepting_uploads_of_1000_bytes`].
const UPLOAD_TOKEN: &str = "a write token of some length";

/// A server with uploads on, 1000 bytes at most, guarded by [`UPLOAD_TOKEN`].
async fn accepting_uploads_of_1000_bytes() -> TestApp {
    TestApp::spawn_with(&[], |o| {
        o.set("seeder.uploads", true);
        o.set("seeder.max_upload_bytes", 1000);
        o.set("tracker.write_token", UPLOAD_TOKEN);
    })
    .await
}

#[actix_web::test]
async fn uploads_are_off_by_default_limited_in_size_and_guarded_by_the_write_token() {
    let off = TestApp::spawn().await;
    let refused = assert_json_error(
        put_file(&off, "a.bin", b"x".to_vec().into(), None).await,
        403,
    )
    .await;
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("seeder.uploads"),
        "{refused}"
    );

    let token = UPLOAD_TOKEN;
    let app = accepting_uploads_of_1000_bytes().await;
    assert_json_error(
        put_file(&app, "a.bin", b"x".to_vec().into(), None).await,
        401,
    )
    .await;
    // Declared too large: refused before reading. Streamed (no length) past the limit: cut off,
    // and nothing is left behind, not even the hidden part.
    let declared = put_file(&app, "big.bin", vec![0u8; 2000].into(), Some(token)).await;
    let error = assert_json_error(declared, 413).await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("seeder.max_upload_bytes"),
        "{error}"
    );
    let chunks =
        futures_util::stream::iter((0..4).map(|_| Ok::<_, std::io::Error>(vec![1u8; 400])));
    let streamed = put_file(
        &app,
        "streamed.bin",
        reqwest::Body::wrap_stream(chunks),
        Some(token),
    )
    .await;
    assert_json_error(streamed, 413).await;
    let left: Vec<_> = std::fs::read_dir(&app.data_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let fits = put_file(&app, "fits.bin", vec![7u8; 1000].into(), Some(token)).await;
    assert_eq!(fits.status(), 201);
}

#[actix_web::test]
async fn a_large_refused_upload_gets_its_answer_not_a_reset() {
    // Arrange: uploads on, 1000 bytes at most, a write token.
    let token = UPLOAD_TOKEN;
    let app = accepting_uploads_of_1000_bytes().await;

    // Act: 16 MiB sent anyway, without and with the token (401, then 413 before reading).
    let unauthorized = put_file(&app, "big one.bin", vec![0u8; 16 << 20].into(), None).await;
    let too_large = put_file(&app, "big one.bin", vec![0u8; 16 << 20].into(), Some(token)).await;

    // Assert: the JSON answers arrive; closing on the unread body would reset the connection.
    assert_json_error(unauthorized, 401).await;
    assert_json_error(too_large, 413).await;
}

#[actix_web::test]
async fn health_shows_what_is_being_hashed_and_how_far() {
    // Arrange: a server, then a 64 MiB file it must hash.
    let app = TestApp::spawn_with(&[], |o| {
        o.set("storage.rescan_interval_secs", 1);
    })
    .await;
    app.write_file("big hash ü.bin", &content(64 << 20));

    // Act: watch /health until the torrent is listed.
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let health: serde_json::Value = app.health().await.json().await.unwrap();
        if !health["hashing"].is_null() {
            seen.push(health["hashing"].clone());
        }
        let listed = app.list_torrents().await;
        if listed
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "big hash ü.bin")
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never listed");
        actix_web::rt::time::sleep(std::time::Duration::from_millis(5)).await;
    }

    // Assert: progress was reported, and is gone once done.
    assert!(!seen.is_empty(), "hashing was never reported");
    for h in &seen {
        assert_eq!(h["name"], "big hash ü.bin");
        assert_eq!(h["total"], 64 << 20);
        assert!(h["done"].as_u64().unwrap() <= 64 << 20);
    }
    let health: serde_json::Value = app.health().await.json().await.unwrap();
    assert!(health["hashing"].is_null(), "{health}");
}

#[actix_web::test]
async fn a_folder_its_torrent_would_refuse_is_not_even_hashed() {
    // Arrange: two names equal case-insensitively in one folder, beside a plain file.
    let app = TestApp::spawn_with(
        &[
            ("clash/README", &b"upper"[..]),
            ("clash/readme", &b"lower"[..]),
            ("fine.bin", &b"fine"[..]),
        ],
        |_| {},
    )
    .await;

    // Act
    app.wait_for_torrent("fine.bin").await;

    // Assert: not listed, and not read: only fine.bin's 4 bytes were hashed.
    let listed = app.list_torrents().await;
    assert!(
        !listed
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "clash"),
        "{listed}"
    );
    let hashed = crate::support::metric(&app.url, "gotorrent_hashed_bytes_total").await;
    assert_eq!(hashed, 4.0);
}

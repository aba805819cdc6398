//! Seeders reading an S3-compatible bucket (`storage.backend = "s3"`) on a real Garage: every
//! endpoint behaves as with local files, rescans notice new, changed and deleted objects, and a
//! torrent hashed by one instance is a sidecar object every other instance serves from.

use crate::support::{content, metric, percent_encode, poll, Garage, TestApp};
use gotorrent_http::settings::Overrides;
use serde_json::Value;

const PREFIX: &str = "shared/files";

/// A name with a space, unicode and HTML characters, in a folder: the objects under a first
/// path component are that folder's torrent, here of one file.
const NAME: &str = "sub dir/ü <b>&'.bin";
/// The folder, and so the torrent name.
const FOLDER: &str = "sub dir";

/// [`NAME`] as a /files path: each segment percent-encoded.
fn nested_path() -> String {
    NAME.split('/')
        .map(percent_encode)
        .collect::<Vec<_>>()
        .join("/")
}

/// Rescans as often as the settings allow, so tests see a changed bucket soon.
fn fast_rescans(overrides: &mut Overrides) {
    overrides.set("storage.rescan_interval_secs", 1);
}

/// The v2 info-hash of the file shared under `name` now (its ETag), or "" when none is. The
/// listing would not do: earlier versions stay registered with the seeder's tracker.
async fn info_hash_of(app: &TestApp, name: &str) -> String {
    let head = app.head_file(name).await;
    if head.status() != 200 {
        return String::new();
    }
    head.headers()["etag"]
        .to_str()
        .unwrap()
        .trim_matches('"')
        .to_owned()
}

#[actix_web::test]
async fn an_s3_backed_seeder_serves_chunks_and_files_like_a_local_one() {
    // Arrange: a 2.5 MiB object under the prefix, one beside it that is not shared.
    let garage = Garage::start();
    let bytes = content(5 * 512 * 1024 + 123);
    garage.put(&format!("{PREFIX}/{NAME}"), &bytes).await;
    garage.put("elsewhere/not shared.bin", b"private").await;
    let app = TestApp::spawn_s3(&garage, PREFIX, false, |_| {}).await;

    // Act
    let summary = app.wait_for_torrent(FOLDER).await;
    let v2 = summary["info_hash_v2"].as_str().unwrap().to_owned();
    let encoded = percent_encode(FOLDER);

    // Assert: chunks by name and by hash, each the right bytes.
    let by_name = app.get_chunk(&encoded, "1", None).await;
    assert_eq!(by_name.status(), 200);
    assert_eq!(
        by_name.bytes().await.unwrap(),
        &bytes[1 << 20..2 << 20],
        "chunk 1 by name"
    );
    let by_hash = app.get_chunk(&v2, "2", None).await;
    assert_eq!(by_hash.status(), 200);
    assert_eq!(by_hash.bytes().await.unwrap(), &bytes[2 << 20..]);
    let part = app.get_chunk(&v2, "0", Some("bytes=10-19")).await;
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap(), &bytes[10..20]);

    // Whole file, Range, If-Range, HEAD and 416, as with local files.
    let path = nested_path();
    let whole = app.get_file(&path, &[]).await;
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.bytes().await.unwrap(), &bytes[..]);
    let ranged = app
        .get_file(&path, &[("range", "bytes=1048570-1048599")])
        .await;
    assert_eq!(ranged.status(), 206);
    assert_eq!(
        ranged.headers()["content-range"],
        format!("bytes 1048570-1048599/{}", bytes.len()).as_str()
    );
    assert_eq!(ranged.bytes().await.unwrap(), &bytes[1048570..1048600]);
    let stale = app
        .get_file(&path, &[("range", "bytes=0-9"), ("if-range", "\"old\"")])
        .await;
    assert_eq!(stale.status(), 200, "a stale If-Range gets the whole file");
    assert_eq!(stale.bytes().await.unwrap().len(), bytes.len());
    let head = app.head_file(&path).await;
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"],
        bytes.len().to_string().as_str()
    );
    let past = app.get_file(&path, &[("range", "bytes=99999999-")]).await;
    assert_eq!(past.status(), 416);

    // Nothing outside the prefix, nor our own metadata, is shared.
    let listed = app.list_torrents().await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let sidecars = garage.keys(&format!("{PREFIX}/.gotorrent-http")).await;
    assert_eq!(sidecars.len(), 1, "{sidecars:?}");
    assert!(
        sidecars[0].starts_with(&format!(
            "{PREFIX}/.gotorrent-http/torrents/{FOLDER}/folder-"
        )) && sidecars[0].ends_with(".1048576.torrent"),
        "{sidecars:?}"
    );
}

#[actix_web::test]
async fn rescans_notice_new_changed_and_deleted_objects() {
    let garage = Garage::start();
    garage
        .put(&format!("{PREFIX}/first.bin"), &content(70_000))
        .await;
    let app = TestApp::spawn_s3(&garage, PREFIX, false, fast_rescans).await;
    let first = app.wait_for_torrent("first.bin").await;

    // New.
    garage
        .put(&format!("{PREFIX}/new.bin"), &content(1000))
        .await;
    app.wait_for_torrent("new.bin").await;

    // Changed: the old version is never served under the old torrent, the new one gets its own.
    let old_v2 = first["info_hash_v2"].as_str().unwrap().to_owned();
    let changed = vec![7u8; 70_000];
    garage.put(&format!("{PREFIX}/first.bin"), &changed).await;
    poll("the changed object's new torrent", || async {
        let now = info_hash_of(&app, "first.bin").await;
        !now.is_empty() && now != old_v2
    })
    .await;
    assert_eq!(app.get_chunk(&old_v2, "0", None).await.status(), 404);
    let served = app.get_file("first.bin", &[]).await;
    assert_eq!(served.bytes().await.unwrap(), &changed[..]);
    let sidecars = garage
        .keys(&format!("{PREFIX}/.gotorrent-http/torrents/first.bin"))
        .await;
    assert_eq!(
        sidecars.len(),
        1,
        "the old version's sidecar is removed: {sidecars:?}"
    );

    // Deleted.
    garage.delete(&format!("{PREFIX}/new.bin")).await;
    poll("the deleted object to go", || async {
        app.get_file("new.bin", &[]).await.status() == 404
    })
    .await;
}

#[actix_web::test]
async fn an_object_changed_between_rescans_is_refused_not_served() {
    let garage = Garage::start();
    let key = format!("{PREFIX}/moving.bin");
    garage.put(&key, &content(50_000)).await;
    // Rescans far apart: the change is found by serving, through the store's If-Match.
    let app = TestApp::spawn_s3(&garage, PREFIX, false, |o| {
        o.set("storage.rescan_interval_secs", 3600);
    })
    .await;
    let summary = app.wait_for_torrent("moving.bin").await;
    let v2 = summary["info_hash_v2"].as_str().unwrap().to_owned();

    garage.put(&key, &vec![1u8; 50_000]).await;
    let refused = app.get_chunk(&v2, "0", None).await;
    assert_eq!(
        refused.status(),
        503,
        "bytes of another version are never served"
    );
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("moving.bin"),
        "{body}"
    );
    // The refusal asks for a rescan, which picks up the new version.
    poll("the new version's torrent", || async {
        let now = info_hash_of(&app, "moving.bin").await;
        !now.is_empty() && now != v2
    })
    .await;
}

#[actix_web::test]
async fn a_new_instance_serves_from_the_sidecar_without_hashing() {
    // Arrange: instance A hashes the object and writes the sidecar.
    let garage = Garage::start();
    let bytes = content(3 * 1024 * 1024);
    garage.put(&format!("{PREFIX}/{NAME}"), &bytes).await;
    let a = TestApp::spawn_s3(&garage, PREFIX, false, |_| {}).await;
    let hashed_by_a = a.wait_for_torrent(FOLDER).await;
    assert_eq!(
        metric(&a.url, "gotorrent_hashed_bytes_total").await,
        bytes.len() as f64
    );

    // Act: a brand-new instance with an empty state dir, even one that may only read.
    let b = TestApp::spawn_s3(&garage, PREFIX, true, |_| {}).await;
    let served_by_b = b.wait_for_torrent(FOLDER).await;

    // Assert: same torrent, not one byte hashed, and it serves.
    assert_eq!(served_by_b["info_hash_v2"], hashed_by_a["info_hash_v2"]);
    assert_eq!(metric(&b.url, "gotorrent_hashed_bytes_total").await, 0.0);
    let v2 = served_by_b["info_hash_v2"].as_str().unwrap();
    assert_eq!(
        b.get_chunk(v2, "2", None).await.bytes().await.unwrap(),
        &bytes[2 << 20..]
    );
}

#[actix_web::test]
async fn a_seeder_that_may_not_write_hashes_itself_and_still_serves() {
    let garage = Garage::start();
    garage
        .put(&format!("{PREFIX}/a.bin"), &content(40_000))
        .await;

    let app = TestApp::spawn_s3(&garage, PREFIX, true, |_| {}).await;
    let summary = app.wait_for_torrent("a.bin").await;

    assert_eq!(
        metric(&app.url, "gotorrent_hashed_bytes_total").await,
        40_000.0
    );
    assert!(garage
        .keys(&format!("{PREFIX}/.gotorrent-http"))
        .await
        .is_empty());
    let v2 = summary["info_hash_v2"].as_str().unwrap();
    assert_eq!(
        app.get_chunk(v2, "0", None).await.bytes().await.unwrap(),
        &content(40_000)[..]
    );
}

#[actix_web::test]
async fn files_can_redirect_to_a_presigned_url_and_chunks_still_stream() {
    let garage = Garage::start();
    let bytes = content(100_000);
    garage.put(&format!("{PREFIX}/{NAME}"), &bytes).await;
    let app = TestApp::spawn_s3(&garage, PREFIX, false, |o| {
        o.set("storage.s3.redirect_files", true);
    })
    .await;
    let summary = app.wait_for_torrent(FOLDER).await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let path = nested_path();

    let answer = no_redirects
        .get(format!("{}/files/{path}", app.url))
        .send()
        .await
        .unwrap();

    assert_eq!(answer.status(), 307);
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&garage.endpoint), "{location}");
    assert!(location.contains("X-Amz-Signature="), "{location}");
    // The presigned URL serves the bytes, Range included, straight from the store.
    let direct = reqwest::get(&location).await.unwrap();
    assert_eq!(direct.bytes().await.unwrap(), &bytes[..]);
    let v2 = summary["info_hash_v2"].as_str().unwrap();
    let chunk = no_redirects
        .get(format!("{}/chunks/{v2}/0", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(chunk.status(), 200);
    assert_eq!(chunk.bytes().await.unwrap(), &bytes[..]);

    // A changed object is not handed out under its old torrent, even by a redirect.
    garage
        .put(&format!("{PREFIX}/{NAME}"), &content(100_001))
        .await;
    let changed = no_redirects
        .get(format!("{}/files/{path}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 503);
}

#[actix_web::test]
async fn web_seed_clients_download_from_an_s3_backed_seeder() {
    // Arrange: the seeder's own .torrent for a nested object, as a user would fetch it.
    use crate::support::clients::{aria2c_download, libtorrent_webseed_download};
    let garage = Garage::start();
    let bytes = content(3 * 1024 * 1024 - 1000);
    garage.put(&format!("{PREFIX}/{NAME}"), &bytes).await;
    let app = TestApp::spawn_s3(&garage, PREFIX, false, |_| {}).await;
    let summary = app.wait_for_torrent(FOLDER).await;
    let v2 = summary["info_hash_v2"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let torrent = dir.path().join("from the seeder.torrent");
    std::fs::write(&torrent, app.get_torrent(v2).await.bytes().await.unwrap()).unwrap();

    // Act: aria2c, then libtorrent, each with only our web seed to fetch from.
    let (aria_out, lt_out) = (dir.path().join("aria2 out"), dir.path().join("lt out"));
    aria2c_download(&torrent, &aria_out).await;
    let log = libtorrent_webseed_download(&torrent, &lt_out).await;

    // Assert
    assert!(
        std::fs::read(aria_out.join(NAME)).unwrap() == bytes,
        "aria2c's file differs"
    );
    // libtorrent's web seed asks a one-file torrent for /files/<name> even when it is a folder
    // (it picks the URL form by the file count); the seeder serves that file there.
    assert!(
        std::fs::read(lt_out.join(NAME)).unwrap() == bytes,
        "libtorrent's file differs: {log}"
    );
}

#[actix_web::test]
async fn an_upload_to_an_s3_backed_seeder_lands_in_the_bucket_whole_or_not_at_all() {
    // Arrange: uploads on, at most 8 MiB.
    let garage = Garage::start();
    let app = TestApp::spawn_s3(&garage, PREFIX, false, |o| {
        fast_rescans(o);
        o.set("seeder.uploads", true);
        o.set("seeder.max_upload_bytes", 8 << 20);
    })
    .await;
    let data = content((6 << 20) + 3); // two multipart parts
    let put = |name: &str, body: reqwest::Body| {
        app.client
            .put(format!("{}/files/{}", app.url, percent_encode(name)))
            .body(body)
            .send()
    };

    // Act
    let stored = put("uploaded ü.bin", data.clone().into()).await.unwrap();
    let streamed =
        futures_util::stream::iter((0..9).map(|_| Ok::<_, std::io::Error>(vec![0u8; 1 << 20])));
    let too_large = put("too large.bin", reqwest::Body::wrap_stream(streamed))
        .await
        .unwrap();

    // Assert: the object is in the bucket, hashed and served; the cut one left nothing.
    assert_eq!(stored.status(), 201);
    assert_eq!(too_large.status(), 413);
    let keys = garage.keys(PREFIX).await;
    assert!(
        keys.contains(&format!("{PREFIX}/uploaded ü.bin")),
        "{keys:?}"
    );
    assert!(!keys.iter().any(|k| k.contains("too large")), "{keys:?}");
    app.wait_for_torrent("uploaded ü.bin").await;
    let back = app.get_file(&percent_encode("uploaded ü.bin"), &[]).await;
    assert!(back.bytes().await.unwrap() == data);
    assert_eq!(
        put("uploaded ü.bin", b"again".to_vec().into())
            .await
            .unwrap()
            .status(),
        409
    );
}

#[actix_web::test]
async fn a_piece_served_once_is_served_again_from_memory_even_without_the_store() {
    // Arrange: a shared object, its first piece served once.
    let mut garage = Garage::start();
    let bytes = content(3 * 1024 * 1024);
    garage.put(&format!("{PREFIX}/{NAME}"), &bytes).await;
    let app = TestApp::spawn_s3(&garage, PREFIX, false, |_| {}).await;
    let summary = app.wait_for_torrent(FOLDER).await;
    let v2 = summary["info_hash_v2"].as_str().unwrap().to_owned();
    let first = app.get_chunk(&v2, "0", None).await.bytes().await.unwrap();

    // Act: again, and again once the store is gone; then a piece never served.
    let again = app.get_chunk(&v2, "0", None).await.bytes().await.unwrap();
    garage.kill();
    let without_store = app.get_chunk(&v2, "0", None).await;
    let never_served = app.get_chunk(&v2, "1", None).await;

    // Assert
    assert!(!first.is_empty() && first[..] == bytes[..first.len()]);
    assert_eq!(again, first);
    assert_eq!(without_store.status(), 200);
    assert_eq!(without_store.bytes().await.unwrap(), first);
    assert_eq!(never_served.status(), 503);
    let reads = |from: &str| format!("gotorrent_range_cache_reads_total{{from=\"{from}\"}}");
    assert_eq!(metric(&app.url, &reads("memory")).await, 2.0);
    assert_eq!(metric(&app.url, &reads("store")).await, 2.0);
    assert_eq!(
        metric(&app.url, "gotorrent_range_cache_bytes").await,
        first.len() as f64
    );
}

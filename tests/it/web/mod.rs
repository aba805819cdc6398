//! The web page for people (`/`, `/t/{hash}`, assets) and the CORS headers that let a page on
//! one server read from the others: over plain HTTP (`page`) and in chromium (`browser`).

mod browser;
mod page;

use crate::support::{content, TestApp};

/// A file name that would run script if it were not escaped.
pub const HOSTILE: &str = "<img src=x onerror=alert(1)>.bin";
/// A name with a space, unicode and HTML characters.
pub const AWKWARD: &str = "my file ü & <b>co.bin";

/// A server sharing [`HOSTILE`] (1 byte), [`AWKWARD`] (70,000 bytes) and the folder `album`;
/// returns it and AWKWARD's v2 info-hash.
pub async fn sharing_awkward_names() -> (TestApp, String) {
    let data = content(70_000);
    let app = TestApp::spawn_with(
        &[
            (HOSTILE, &b"x"[..]),
            (AWKWARD, &data[..]),
            ("album/a.txt", &b"a"[..]),
        ],
        |_| {},
    )
    .await;
    app.wait_for_torrent(HOSTILE).await;
    app.wait_for_torrent("album").await;
    let v2 = app.wait_for_torrent(AWKWARD).await["info_hash_v2"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_for_seeders(&v2, 1).await;
    (app, v2)
}

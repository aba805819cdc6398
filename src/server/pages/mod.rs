//! The web page for people: `GET /` lists the torrents (filtered and sorted on the server, so it
//! works without JavaScript), `GET /t/{info_hash}` shows one (hashes, links, magnet, a QR code,
//! live seeders, ready-to-copy commands), and `/assets/{version}/{file}` serves the stylesheet
//! and script compiled into the binary.
//!
//! Invariants: every value reaches the page through an askama template, which escapes it (file
//! names are user input); pages carry a Content-Security-Policy that allows no inline script
//! and no third-party asset, so nothing on the page runs but our own script.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::error::ApiError;
use super::AppState;
use crate::seeder::file_url;
use crate::types::InfoHash;

mod listing;

pub use listing::ListingCache;
use listing::{Row, PAGE_ROWS, SORT_OPTIONS};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const APP_CSS: &str = include_str!("assets/app.css");
const APP_JS: &str = include_str!("assets/app.js");
const ICON_SVG: &str = include_str!("assets/icon.svg");
/// Our own assets only; `connect-src` stays open because the verified download fetches pieces
/// from other seeders.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src * blob:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
/// Folder files listed on a torrent's page; the rest are counted.
const MAX_FILES_SHOWN: usize = 1000;

/// What every page's footer says about this server.
struct Footer {
    roles: &'static str,
    public_url: String,
    version: &'static str,
}

impl Footer {
    fn of(state: &AppState) -> Self {
        let roles = match (state.seeder.is_some(), state.tracker.is_some()) {
            (true, true) => "seeder and tracker",
            (true, false) => "seeder",
            (false, true) => "tracker",
            (false, false) => "neither seeder nor tracker",
        };
        Footer {
            roles,
            public_url: state.reach.url().to_string(),
            version: VERSION,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    sort: Option<String>,
    /// From 1.
    page: Option<usize>,
}

/// The upload form, shown when uploads are on.
struct UploadForm {
    /// The size limit, for people.
    max: String,
    /// Whether the page must ask for the write token.
    token: bool,
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage<'a> {
    footer: Footer,
    upload: Option<UploadForm>,
    q: String,
    sort: String,
    sort_options: [(&'static str, &'static str); 5],
    total: usize,
    matching: usize,
    rows: Vec<&'a Row>,
    /// "Page 2 of 7", with links to the neighbours, when there is more than one page.
    pages: Option<Pages>,
}

struct Pages {
    page: usize,
    count: usize,
    previous: Option<String>,
    next: Option<String>,
}

/// `GET /`: the listing for browsers (the route table sends a client asking for JSON alone to
/// `GET /torrents`).
pub async fn index(
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let q = query.q.unwrap_or_default();
    let (sort_index, sort) = SORT_OPTIONS
        .iter()
        .enumerate()
        .find(|(_, (key, _))| query.sort.as_deref() == Some(*key))
        .map_or((0, "name"), |(i, (key, _))| (i, *key));
    let needle = q.trim().to_lowercase();
    let snapshot = state.listing.get(&state).await?;
    let mut page = query.page.unwrap_or(1).max(1);
    let mut selection = snapshot.select(sort_index, &needle, page);
    let count = selection.matching.div_ceil(PAGE_ROWS).max(1);
    if page > count {
        // Past the end (the list shrank, or a hand-made link): the last page.
        page = count;
        selection = snapshot.select(sort_index, &needle, page);
    }
    let link = |page: usize| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if !q.is_empty() {
            query.append_pair("q", &q);
        }
        query.append_pair("sort", sort);
        query.append_pair("page", &page.to_string());
        format!("/?{}", query.finish())
    };
    let pages = (count > 1).then(|| Pages {
        page,
        count,
        previous: (page > 1).then(|| link(page - 1)),
        next: (page < count).then(|| link(page + 1)),
    });
    let max_upload = state.seeder.as_ref().and_then(|s| s.max_upload());
    let upload = max_upload.map(|max| UploadForm {
        max: human_bytes(max),
        token: state.guard.write_token.is_some(),
    });
    html(IndexPage {
        footer: Footer::of(&state),
        upload,
        q,
        sort: sort.to_owned(),
        sort_options: SORT_OPTIONS,
        total: selection.total,
        matching: selection.matching,
        rows: selection.rows,
        pages,
    })
}

struct FileRow {
    path: String,
    size: String,
    url: Option<String>,
}

#[derive(Template)]
#[template(path = "torrent.html")]
struct TorrentPage {
    footer: Footer,
    name: String,
    v1: String,
    v2: String,
    size: String,
    length: u64,
    pieces: u32,
    piece_length: String,
    magnet: String,
    page_url: String,
    qr_svg: String,
    /// The single file's download URL, when this server shares it.
    file_url: Option<String>,
    commands: Vec<String>,
    is_folder: bool,
    file_count: usize,
    files: Vec<FileRow>,
    /// Live seeders: URL and how long ago they announced.
    seeders: Vec<(String, String)>,
}

/// `GET /t/{info_hash}`: one torrent.
pub async fn torrent(
    info_hash: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let meta = state.directory.find(&InfoHash::parse(&info_hash)?).await?;
    let public = &state.reach.url();
    let shared_here = state.seeder.as_ref().is_some_and(|s| {
        s.catalog()
            .by_hash(&InfoHash::V2(meta.info_hash_v2))
            .is_some()
    });
    let url_of = |path: &str| shared_here.then(|| file_url(public, path).to_string());
    let v2 = meta.info_hash_v2.to_string();
    let page_url = format!("{}/t/{v2}", public.as_str().trim_end_matches('/'));
    let torrent_url = format!("{}/torrents/{v2}", public.as_str().trim_end_matches('/'));
    let file_url = (!meta.is_folder).then(|| url_of(&meta.name)).flatten();
    let mut commands = vec![
        format!("gotorrent-http download {torrent_url}"),
        format!("aria2c {torrent_url}"),
    ];
    if let Some(url) = &file_url {
        commands.insert(1, format!("curl -O {url}"));
    }
    let files = meta
        .files
        .iter()
        .take(MAX_FILES_SHOWN)
        .map(|f| FileRow {
            path: f.path_string(),
            size: human_bytes(f.length),
            url: url_of(&format!("{}/{}", meta.name, f.path_string())),
        })
        .collect();
    let seeders = match &state.tracker {
        Some(tracker) => {
            let now = crate::tracker::unix_now();
            tracker
                .peers(&InfoHash::V2(meta.info_hash_v2))
                .await?
                .into_iter()
                .map(|p| {
                    let ago = now.saturating_sub(p.last_announce);
                    (p.url.as_str().to_owned(), format!("{ago} s ago"))
                })
                .collect()
        }
        None => Vec::new(),
    };
    html(TorrentPage {
        footer: Footer::of(&state),
        name: meta.name.clone(),
        v1: meta.info_hash_v1.to_string(),
        size: human_bytes(meta.length),
        length: meta.length,
        pieces: meta.piece_count(),
        piece_length: human_bytes(meta.piece_length.get()),
        magnet: crate::magnet::build(&meta),
        qr_svg: qr_svg(&page_url),
        page_url,
        file_url,
        commands,
        is_folder: meta.is_folder,
        file_count: meta.files.len(),
        files,
        seeders,
        v2,
    })
}

/// `GET /assets/{version}/{file}`: compiled in; immutable under this version's path.
pub async fn asset(path: web::Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    let (version, file) = path.into_inner();
    let (body, content_type) = match file.as_str() {
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "icon.svg" => (ICON_SVG, "image/svg+xml"),
        _ => return Err(ApiError::NotFound(format!("no asset {file:?}"))),
    };
    let cache = if version == VERSION {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body))
}

fn html(page: impl Template) -> Result<HttpResponse, ApiError> {
    let body = page
        .render()
        .map_err(|e| ApiError::Internal(format!("rendering a page: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body))
}

/// The QR code of `text` as an SVG element, sized by the page's stylesheet.
fn qr_svg(text: &str) -> String {
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color>()
                .quiet_zone(true)
                .build();
            // Inline in HTML: no XML declaration, and a name for screen readers.
            let svg = svg.trim_start_matches(|c| c != '<');
            let svg = match svg.strip_prefix("<?xml") {
                Some(rest) => rest.split_once("?>").map_or(rest, |(_, after)| after),
                None => svg,
            };
            svg.trim_start().replacen(
                "<svg ",
                "<svg role=\"img\" aria-label=\"QR code of this page\" ",
                1,
            )
        }
        // Longer than a QR code holds: the caption still gives the URL.
        Err(_) => String::new(),
    }
}

/// `90` -> `1 min`: how long ago, roughly.
pub fn human_age(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min", seconds / 60),
        3600..86400 => format!("{} h", seconds / 3600),
        _ => format!("{} days", seconds / 86400),
    }
}

/// `1536` -> `1.5 KiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if n == 1 {
        "1 byte".to_owned()
    } else if unit == 0 {
        format!("{n} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_bytes(0), "0 bytes");
        assert_eq!(human_bytes(1023), "1023 bytes");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(human_age(59), "59 s");
        assert_eq!(human_age(3 * 86400 + 5), "3 days");
    }

    #[test]
    fn the_qr_code_is_an_svg_element() {
        let svg = qr_svg("http://127.0.0.1:8080/t/abc");
        assert!(
            svg.starts_with("<svg role=\"img\"") && svg.ends_with("</svg>"),
            "{svg}"
        );
    }
}

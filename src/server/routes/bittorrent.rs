//! The BitTorrent tracker protocol on the shared paths: `GET /announce` (BEP 3) and
//! `GET /scrape` (BEP 48). Errors are bencoded `failure reason` bodies with status 200, which is
//! what clients read.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::server::client::ClientIp;
use crate::server::schema::Binary;
use crate::server::AppState;
use crate::tracker::bep3::{self, AnnounceReply};

fn bencoded(body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/x-bittorrent")
        .body(body)
}

fn failure(reason: &str) -> HttpResponse {
    bencoded(bep3::encode_failure(reason))
}

/// BEP 3 announce: registers the peer and returns others (compact by default).
#[utoipa::path(
    get,
    path = "/announce",
    tag = "bittorrent",
    params(
        ("info_hash" = Option<String>, Query, description = "Required by BEP 3. 20 raw bytes, URL-escaped: the v1 info-hash, or a v2 info-hash truncated to 20 bytes"),
        ("peer_id" = Option<String>, Query, description = "Required by BEP 3. 20 raw bytes, URL-escaped"),
        ("port" = Option<String>, Query, description = "Required by BEP 3. The client's listening port, 1-65535"),
        ("uploaded" = Option<String>, Query, description = "Bytes uploaded, decimal"),
        ("downloaded" = Option<String>, Query, description = "Bytes downloaded, decimal"),
        ("left" = Option<String>, Query, description = "Bytes still needed, decimal; 0 means a seeder"),
        ("event" = Option<String>, Query, description = "started, completed, stopped, paused or empty"),
        ("compact" = Option<String>, Query, description = "1 (default): BEP 23 compact peers; 0: a list of dictionaries"),
        ("numwant" = Option<String>, Query, description = "Peers wanted, decimal (default 50, capped by tracker.max_peers)"),
        ("key" = Option<String>, Query, description = "Client key (accepted, unused)"),
        ("no_peer_id" = Option<String>, Query, description = "1: omit peer ids in the non-compact form"),
        ("token" = Option<String>, Query, description = "The tracker's write token, when tracker.write_token is set"),
    ),
    description = "The tracker protocol answers every query with status 200: a malformed or refused one gets a bencoded `failure reason`, as BitTorrent clients expect, so all parameters are documented as optional strings.",
    responses((status = 200, description = "Bencoded: interval, min interval, complete, incomplete, peers (and peers6 for IPv6), BEP 24 `external ip` (the client's address as the tracker sees it, 4 or 16 bytes), or `failure reason`", content_type = "application/x-bittorrent", body = Binary))
)]
pub async fn announce(
    req: HttpRequest,
    ClientIp(client): ClientIp,
    state: web::Data<AppState>,
) -> HttpResponse {
    let tracker = match state.tracker() {
        Ok(tracker) => tracker,
        Err(e) => return failure(&e.to_string()),
    };
    let query = match bep3::parse_announce(req.query_string()) {
        Ok(q) => q,
        Err(e) => return failure(&e.to_string()),
    };
    let Some(client) = client else {
        return failure("cannot tell the client's address");
    };
    let (compact, no_peer_id) = (query.compact, query.no_peer_id);
    match tracker.bt_announce(query, client).await {
        Ok(answer) => bencoded(bep3::encode_announce(
            &AnnounceReply {
                interval: answer.interval,
                min_interval: answer.min_interval,
                complete: answer.stats.complete,
                incomplete: answer.stats.incomplete,
                peers: &answer.peers,
                external_ip: client,
            },
            compact,
            no_peer_id,
        )),
        Err(e) => failure(&e.to_string()),
    }
}

/// BEP 48 scrape: counts per torrent; every known torrent (at most 1000) when none is named.
#[utoipa::path(
    get,
    path = "/scrape",
    tag = "bittorrent",
    params(("info_hash" = Option<String>, Query, description = "20 raw bytes, URL-escaped; repeat for several (at most 100)")),
    responses((status = 200, description = "Bencoded {files: {<info_hash>: {complete, downloaded, incomplete}}}, or `failure reason`", content_type = "application/x-bittorrent", body = Binary))
)]
pub async fn scrape(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let tracker = match state.tracker() {
        Ok(tracker) => tracker,
        Err(e) => return failure(&e.to_string()),
    };
    let hashes = match bep3::parse_scrape(req.query_string()) {
        Ok(hashes) => hashes,
        Err(e) => return failure(&e.to_string()),
    };
    match tracker.bt_scrape(&hashes).await {
        Ok(files) => bencoded(bep3::encode_scrape(&files)),
        Err(e) => failure(&e.to_string()),
    }
}

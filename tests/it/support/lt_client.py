#!/usr/bin/env python3
"""Drives libtorrent (python3-libtorrent) against our server, for the real-client tests.

    lt_client.py webseed TORRENT SAVE_DIR
        Downloads TORRENT using only its web seeds (url-list); libtorrent verifies every piece
        (v1 and, for hybrid torrents, v2 hashes). Exits 0 once seeding.
    lt_client.py swarm TORRENT SEED_DIR LEECH_DIR
        A seeding session (SEED_DIR holds the file) and a leeching one, on loopback, find each
        other through the torrent's tracker and transfer over the BitTorrent peer protocol.
        Exits 0 once the leecher is seeding.
Every run ends by itself within TIMEOUT seconds.
"""
import sys
import time
import urllib.parse
import urllib.request

import libtorrent as lt

TIMEOUT = 90


def session():
    return lt.session({
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": lt.alert.category_t.error_notification | lt.alert.category_t.status_notification,
    })


def add(ses, torrent, save_dir, **flags):
    info = lt.torrent_info(torrent)
    params = {"ti": info, "save_path": save_dir}
    params.update(flags)
    return ses.add_torrent(params)


def wait_until(predicate, sessions, what):
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        for ses in sessions:
            for alert in ses.pop_alerts():
                if alert.category() & lt.alert.category_t.error_notification:
                    print("alert:", alert.message(), file=sys.stderr)
        if predicate():
            return
        time.sleep(0.1)
    sys.exit(f"timed out after {TIMEOUT} s waiting for {what}")


def webseed(torrent, save_dir):
    ses = session()
    handle = add(ses, torrent, save_dir)
    wait_until(lambda: handle.status().is_seeding, [ses], "the web-seed download")
    status = handle.status()
    print(f"seeding after {status.total_download} bytes downloaded, {status.num_pieces} pieces")


def scrape(info):
    """(complete, downloaded) for the torrent's v1 hash, from our tracker's /scrape."""
    url = next(iter(info.trackers())).url.replace("/announce", "/scrape")
    query = urllib.parse.urlencode({"info_hash": bytes.fromhex(str(info.info_hashes().v1))})
    body = lt.bdecode(urllib.request.urlopen(f"{url}?{query}", timeout=5).read())
    stats = next(iter(body[b"files"].values()))
    return stats[b"complete"], stats[b"downloaded"]


def swarm(torrent, seed_dir, leech_dir):
    info = lt.torrent_info(torrent)
    seeder_ses, leecher_ses = session(), session()
    seeder = add(seeder_ses, torrent, seed_dir)
    wait_until(lambda: seeder.status().is_seeding, [seeder_ses], "the seeder to check its file")
    seeder.force_reannounce()
    # The leecher starts once the tracker lists the seeder, so its first announce finds it.
    wait_until(lambda: scrape(info)[0] >= 1, [seeder_ses], "the tracker to list the seeder")
    leecher = add(leecher_ses, torrent, leech_dir)
    wait_until(lambda: leecher.status().is_seeding, [seeder_ses, leecher_ses], "the leecher to finish")
    wait_until(lambda: scrape(info)[1] >= 1, [seeder_ses, leecher_ses], "the 'completed' announce")
    print("leecher complete:", leecher.status().total_download, "bytes over the peer protocol")


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "webseed":
        webseed(sys.argv[2], sys.argv[3])
    elif mode == "swarm":
        swarm(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(f"unknown mode {mode}")

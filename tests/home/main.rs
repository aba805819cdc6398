//! Seeding from home, for real: our seeder behind Debian's miniupnpd doing NAT, our tracker and
//! a downloader on the "internet", all in network namespaces this test creates (see `lab`).
//! Needs root (CI runs as root), iproute2, nftables, miniupnpd-nftables, bind9, dnsutils and
//! curl; a missing one fails the test.

mod lab;

use std::time::Duration;

use lab::{Host, Lab, EXTERNAL, HOME, INTERNET, MOVED_EXTERNAL};
use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_gotorrent-http");
const SEEDER_PORT: u16 = 8080;
const TRACKER: &str = "http://45.10.0.1:9000";
/// Seconds between the seeder's gateway checks in these tests.
const CHECK_SECS: u64 = 2;

/// A file with an awkward name, its bytes, and where it lies.
fn shared_file(lab: &Lab) -> (String, Vec<u8>, std::path::PathBuf) {
    let name = "home movie & <notes> é.bin".to_owned();
    let bytes: Vec<u8> = (0..3 * 1024 * 1024 + 123)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let path = lab.path(&name);
    std::fs::write(&path, &bytes).unwrap();
    (name, bytes, path)
}

/// Our tracker in the internet, alone (no seeder role).
fn start_tracker(lab: &mut Lab) {
    let (data, state) = (lab.path("tracker-data"), lab.path("tracker-state"));
    lab.spawn(
        Host::Internet,
        "tracker",
        BINARY.as_ref(),
        &[
            "serve",
            "--no-seeder",
            "--bind",
            "45.10.0.1:9000",
            "--data-dir",
            data.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
        &[],
    );
    lab::wait_until("the tracker answering", Duration::from_secs(20), || {
        lab.curl(Host::Internet, &format!("{TRACKER}/health"))
            .is_some()
    });
}

/// Our seeder at home, on its LAN address, announcing to the tracker, with `extra` settings
/// (TOML) and environment.
fn start_seeder(lab: &mut Lab, file: &std::path::Path, extra: &str, env: &[(&str, &str)]) {
    let config = lab.path("seeder.toml");
    std::fs::write(
        &config,
        format!("[nat]\ncheck_interval_secs = {CHECK_SECS}\nlease_secs = 600\n{extra}"),
    )
    .unwrap();
    let (data, state) = (lab.path("seeder-data"), lab.path("seeder-state"));
    let bind = format!("{HOME}:{SEEDER_PORT}");
    lab.spawn(
        Host::Home,
        "seeder",
        BINARY.as_ref(),
        &[
            "seed",
            file.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--bind",
            &bind,
            "--no-tracker",
            "--tracker",
            TRACKER,
            "--data-dir",
            data.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
        env,
    );
}

/// The seeder's /health, asked from home, once its first gateway attempt has ended.
fn settled_reachability(lab: &Lab) -> Value {
    let health = format!("http://{HOME}:{SEEDER_PORT}/health");
    let mut reach = Value::Null;
    lab::wait_until(
        "the seeder's first mapping attempt",
        Duration::from_secs(30),
        || {
            reach = lab
                .curl(Host::Home, &health)
                .and_then(|body| serde_json::from_str::<Value>(&body).ok())
                .map(|h| h["reachability"].clone())
                .unwrap_or(Value::Null);
            reach["state"] != Value::Null && reach["state"] != "pending"
        },
    );
    reach
}

/// The seeder URLs the tracker lists for the torrent of `name`, asked from the internet.
fn listed_urls(lab: &Lab, info_hash: &str) -> Vec<String> {
    lab.curl(
        Host::Internet,
        &format!("{TRACKER}/peers?info_hash={info_hash}"),
    )
    .and_then(|body| serde_json::from_str::<Value>(&body).ok())
    .map(|peers| {
        peers["peers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["url"].as_str().unwrap().to_owned())
            .collect()
    })
    .unwrap_or_default()
}

/// The v2 info-hash of the shared torrent, from the seeder's own listing.
fn info_hash(lab: &Lab) -> String {
    let mut hash = String::new();
    lab::wait_until(
        "the seeder sharing the file",
        Duration::from_secs(30),
        || {
            let listing = lab.curl(Host::Home, &format!("http://{HOME}:{SEEDER_PORT}/torrents"));
            let torrents: Value = listing
                .and_then(|b| serde_json::from_str(&b).ok())
                .unwrap_or(Value::Null);
            let found = torrents
                .as_array()
                .and_then(|t| t.first())
                .and_then(|t| t["info_hash_v2"].as_str().map(str::to_owned));
            hash = found.unwrap_or_default();
            !hash.is_empty()
        },
    );
    hash
}

/// Downloads the torrent in the internet, through the tracker and the NAT; returns its bytes.
fn download_from_internet(lab: &Lab, info_hash: &str, name: &str, attempt: &str) -> Vec<u8> {
    let out = lab.path(&format!("downloads-{attempt}"));
    lab.exec(
        Host::Internet,
        BINARY,
        &[
            "download",
            info_hash,
            "--tracker",
            TRACKER,
            "--output-dir",
            out.to_str().unwrap(),
            "--quiet",
        ],
    );
    std::fs::read(out.join(name)).unwrap()
}

/// Maps the port with `protocol` and proves it: the seeder announces the router's external
/// address, a download in the internet crosses the NAT byte for byte, and SIGTERM removes the
/// mapping from the router.
fn maps_and_serves_through_the_nat(upnp_on_router: bool, protocols: &str, expected: &str) {
    // Arrange
    let mut lab = Lab::new();
    lab.start_miniupnpd(upnp_on_router);
    start_tracker(&mut lab);
    let (name, bytes, file) = shared_file(&lab);

    // Act
    start_seeder(&mut lab, &file, &format!("protocols = {protocols}\n"), &[]);
    let reach = settled_reachability(&lab);
    let hash = info_hash(&lab);

    // Assert
    let public = format!("http://{EXTERNAL}:{SEEDER_PORT}");
    assert_eq!(reach["state"], "mapped", "{reach}\n{}", lab.log("seeder"));
    assert_eq!(reach["protocol"], expected, "{reach}");
    assert_eq!(
        reach["external_address"],
        format!("{EXTERNAL}:{SEEDER_PORT}")
    );
    assert_eq!(reach["public_url"], format!("{public}/"));
    assert!(reach["lease_expires_at"].as_u64().is_some() && reach["last_check"].as_u64().is_some());
    lab::wait_until(
        "the tracker listing the public URL",
        Duration::from_secs(20),
        || listed_urls(&lab, &hash) == vec![public.clone()],
    );
    // The tracker echoes the address it saw: the router's.
    assert_eq!(settled_reachability(&lab)["tracker_sees"], EXTERNAL);
    assert!(
        download_from_internet(&lab, &hash, &name, "first") == bytes,
        "the download differs"
    );

    lab.terminate("seeder");
    let rules = String::from_utf8(
        lab.exec(
            Host::Router,
            "nft",
            &["list", "chain", "inet", "filter", "prerouting_miniupnpd"],
        )
        .stdout,
    )
    .unwrap();
    assert!(
        !rules.contains(HOME),
        "the mapping outlived the seeder:\n{rules}"
    );
    assert!(
        listed_urls(&lab, &hash).is_empty(),
        "stopped was not announced"
    );
}

#[test]
fn upnp_maps_the_port_and_a_download_crosses_the_nat() {
    maps_and_serves_through_the_nat(true, r#"["upnp", "pcp", "nat-pmp"]"#, "upnp");
}

#[test]
fn without_upnp_on_the_router_pcp_maps_the_port() {
    maps_and_serves_through_the_nat(false, r#"["upnp", "pcp", "nat-pmp"]"#, "pcp");
}

#[test]
fn nat_pmp_alone_maps_the_port() {
    maps_and_serves_through_the_nat(false, r#"["nat-pmp"]"#, "nat-pmp");
}

#[test]
fn a_new_external_address_is_announced_within_one_check_and_the_old_stopped() {
    // Arrange
    let mut lab = Lab::new();
    lab.start_miniupnpd(true);
    start_tracker(&mut lab);
    let (name, bytes, file) = shared_file(&lab);
    start_seeder(&mut lab, &file, "", &[]);
    let hash = info_hash(&lab);
    let (old, new) = (
        format!("http://{EXTERNAL}:{SEEDER_PORT}"),
        format!("http://{MOVED_EXTERNAL}:{SEEDER_PORT}"),
    );
    lab::wait_until("the first announce", Duration::from_secs(20), || {
        listed_urls(&lab, &hash) == vec![old.clone()]
    });

    // Act
    lab.move_external_address(true);
    let took = lab::wait_until(
        "the new URL replacing the old",
        Duration::from_secs(3 * CHECK_SECS + 10),
        || listed_urls(&lab, &hash) == vec![new.clone()],
    );

    // Assert: one check interval, plus miniupnpd's restart and the announce itself.
    eprintln!("address change to re-announce: {took:?}");
    assert!(
        took <= Duration::from_secs(CHECK_SECS + 5),
        "took {took:?}\n{}",
        lab.log("seeder")
    );
    let reach = settled_reachability(&lab);
    assert_eq!(
        reach["external_address"],
        format!("{MOVED_EXTERNAL}:{SEEDER_PORT}")
    );
    assert!(download_from_internet(&lab, &hash, &name, "after-move") == bytes);
}

#[test]
fn ddns_keeps_a_name_at_the_external_address_across_a_change() {
    // Arrange
    let mut lab = Lab::new();
    lab.start_miniupnpd(true);
    let secret = lab.start_bind();
    start_tracker(&mut lab);
    let (name, bytes, file) = shared_file(&lab);
    let ddns = format!(
        "[ddns]\nname = \"seeder.home.test\"\nzone = \"home.test\"\nserver = \"{INTERNET}:53\"\n\
         key_name = \"ddns-key\"\nttl_secs = 5\n"
    );

    // Act
    start_seeder(
        &mut lab,
        &file,
        &ddns,
        &[("GOTORRENT_DDNS_SECRET", &secret)],
    );
    let hash = info_hash(&lab);

    // Assert: the name is the public URL, and it resolves to the router.
    let public = format!("http://seeder.home.test:{SEEDER_PORT}");
    lab::wait_until("the name announced", Duration::from_secs(20), || {
        listed_urls(&lab, &hash) == vec![public.clone()]
    });
    assert_eq!(
        lab.dig("seeder.home.test"),
        EXTERNAL,
        "{}",
        lab.log("seeder")
    );
    let reach = settled_reachability(&lab);
    assert_eq!(reach["ddns"]["name"], "seeder.home.test.");
    assert_eq!(reach["ddns"]["address"], EXTERNAL);

    lab.move_external_address(true);
    let took = lab::wait_until(
        "the name following the address",
        Duration::from_secs(3 * CHECK_SECS + 10),
        || lab.dig("seeder.home.test") == MOVED_EXTERNAL,
    );
    eprintln!("address change to DNS update: {took:?}");
    assert!(took <= Duration::from_secs(CHECK_SECS + 5), "took {took:?}");
    assert!(download_from_internet(&lab, &hash, &name, "by-name") == bytes);
}

#[test]
fn with_no_gateway_the_seeder_says_so_and_serves_the_lan() {
    // Arrange: a home network with no way out (no default route, so no gateway to ask).
    let mut lab = Lab::new();
    lab.exec(Host::Home, "ip", &["route", "del", "default"]);
    let (name, bytes, file) = shared_file(&lab);

    // Act
    start_seeder(&mut lab, &file, "", &[]);
    let reach = settled_reachability(&lab);

    // Assert
    assert_eq!(reach["state"], "local", "{reach}");
    assert_eq!(reach["public_url"], format!("http://{HOME}:{SEEDER_PORT}/"));
    assert!(
        reach["error"]
            .as_str()
            .is_some_and(|e| e.contains("no default IPv4 gateway")),
        "{reach}"
    );
    let log = lab.log("seeder");
    assert_eq!(
        log.matches("not reachable from outside this network")
            .count(),
        1,
        "{log}"
    );
    // A neighbour on the LAN is served.
    info_hash(&lab);
    let url = format!("http://{HOME}:{SEEDER_PORT}/files/{}", percent(&name));
    assert!(served_binary(&lab, &url) == bytes);
}

/// The body of `url` fetched from the router (on the home LAN), as raw bytes.
fn served_binary(lab: &Lab, url: &str) -> Vec<u8> {
    let out = lab.path("lan-copy");
    lab.exec(
        Host::Router,
        "curl",
        &["-sf", "-o", out.to_str().unwrap(), url],
    );
    std::fs::read(out).unwrap()
}

fn percent(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string()
}

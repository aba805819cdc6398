//! Loading and validation, through the same entry point the binary uses.

use super::*;
use crate::storage::StorageConfig;

fn load(env: &[(&str, &str)], overrides: Overrides) -> Result<Settings, SettingsError> {
    let env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::load_with_env(None, &overrides, env)
}

#[test]
fn port_mapping_is_automatic_only_off_loopback_without_a_public_url() {
    let on =
        |env: &[(&str, &str)], overrides: Overrides| load(env, overrides).unwrap().reach.mapping;
    assert!(!on(&[], Overrides::default()));
    assert!(on(&[("PORT", "9000")], Overrides::default()));
    let with_url = Overrides {
        bind: Some("0.0.0.0:8080".into()),
        public_url: Some("https://files.example.com".into()),
        ..Default::default()
    };
    assert!(!on(&[], with_url));
    let forced = Overrides {
        nat: Some(NatMapping::On),
        ..Default::default()
    };
    assert!(on(&[], forced));
}

#[test]
fn nat_and_ddns_errors_name_the_key() {
    let short_lease = [
        ("GOTORRENT__NAT__LEASE_SECS", "60"),
        ("GOTORRENT__NAT__CHECK_INTERVAL_SECS", "60"),
    ];
    let e = load(&short_lease, Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("nat.lease_secs") && e.contains("twice"), "{e}");
    let e = load(
        &[("GOTORRENT__NAT__GATEWAY", "router.lan")],
        Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("nat.gateway") && e.contains("router.lan"), "{e}");

    let ddns = [
        ("GOTORRENT__DDNS__NAME", "seeder.home.test"),
        ("GOTORRENT__DDNS__ZONE", "home.test"),
        ("GOTORRENT__DDNS__SERVER", "192.0.2.53:53"),
        ("GOTORRENT__DDNS__KEY_NAME", "ddns-key"),
    ];
    let e = load(&ddns, Overrides::default()).unwrap_err().to_string();
    assert!(
        e.contains("ddns.secret_env") && e.contains("GOTORRENT_DDNS_SECRET"),
        "{e}"
    );
    let with_secret: Vec<_> = ddns
        .iter()
        .copied()
        .chain([("GOTORRENT_DDNS_SECRET", "c2VjcmV0")])
        .collect();
    let reach = load(&with_secret, Overrides::default()).unwrap().reach;
    assert_eq!(reach.ddns.unwrap().secret, b"secret");
    let outside: Vec<_> = with_secret
        .iter()
        .copied()
        .chain([("GOTORRENT__DDNS__ZONE", "other.test")])
        .collect();
    let e = load(&outside, Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("ddns.name") && e.contains("other.test"), "{e}");
}

#[test]
fn compiled_in_defaults_are_valid() {
    let s = load(&[], Overrides::default()).unwrap();
    assert_eq!(s.server.bind.to_string(), "127.0.0.1:8080");
    assert_eq!(s.seeder.piece_length.get(), 1 << 20);
    assert!(s.server.public_url.is_none() && s.seeder.tracker.is_none());
    assert!(s.seeder.enabled && s.tracker.enabled);
    assert_eq!(s.tracker.store, TrackerStoreConfig::Embedded);
    assert!(matches!(s.storage.backend, StorageConfig::Local { .. }));
    assert!(s.warnings.is_empty());
}

#[test]
fn paas_variables_set_bind_and_public_url() {
    let s = load(
        &[
            ("PORT", "9999"),
            ("RAILWAY_PUBLIC_DOMAIN", "x.up.railway.app"),
        ],
        Overrides::default(),
    )
    .unwrap();
    assert_eq!(s.server.bind.to_string(), "0.0.0.0:9999");
    assert_eq!(
        s.server.public_url.unwrap().as_str(),
        "https://x.up.railway.app/"
    );
}

#[test]
fn gotorrent_variables_override_the_defaults() {
    let s = load(
        &[
            ("GOTORRENT__SERVER__BIND", "127.0.0.1:9000"),
            ("GOTORRENT__TRACKER__ANNOUNCE_INTERVAL_SECS", "5"),
            ("GOTORRENT__SEEDER__ENABLED", "false"),
        ],
        Overrides::default(),
    )
    .unwrap();
    assert_eq!(s.server.bind.port(), 9000);
    assert_eq!(s.tracker.announce_interval, Duration::from_secs(5));
    assert!(!s.seeder.enabled);
    let err = load(
        &[("GOTORRENT__SEEDER__PIECE_LENGTH", "1000")],
        Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("seeder.piece_length") && err.contains("1000"),
        "{err}"
    );
}

#[test]
fn flags_win_over_the_environment() {
    let overrides = Overrides {
        bind: Some("127.0.0.1:0".into()),
        public_url: Some("http://example.com".into()),
        no_tracker: true,
        ..Overrides::default()
    };
    let s = load(
        &[("PORT", "9999"), ("RAILWAY_PUBLIC_DOMAIN", "x")],
        overrides,
    )
    .unwrap();
    assert_eq!(s.server.bind.port(), 0);
    assert_eq!(s.server.public_url.unwrap().host_str(), Some("example.com"));
    assert!(!s.tracker.enabled);
}

#[test]
fn errors_name_the_key_and_value() {
    let overrides = Overrides {
        bind: Some("nonsense".into()),
        ..Overrides::default()
    };
    let err = load(&[], overrides).unwrap_err().to_string();
    assert!(
        err.contains("server.bind") && err.contains("nonsense"),
        "{err}"
    );

    let overrides = Overrides {
        tracker: Some("ftp://x".into()),
        ..Overrides::default()
    };
    let err = load(&[], overrides).unwrap_err().to_string();
    assert!(err.contains("seeder.tracker"), "{err}");
}

#[test]
fn unknown_keys_are_errors_naming_the_key_and_the_nearest_one() {
    let err = load(
        &[("GOTORRENT__STORAGE__BACKND", "s3")],
        Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("storage.backnd") && err.contains("GOTORRENT__STORAGE__BACKND"),
        "{err}"
    );
    let err = load(
        &[("GOTORRENT__TRACKER__PRIVATE_SEEDER", "always")],
        Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("did you mean tracker.private_seeders"),
        "{err}"
    );
    let err = load(&[("GOTORRENT__NEWSECTION__KEY", "1")], Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("newsection"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.toml");
    std::fs::write(&file, "[seeder]\nmax_stream = 3\n").unwrap();
    let err = Settings::load_with_env(Some(&file), &Overrides::default(), HashMap::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("seeder.max_stream ") && err.contains("in the config file"),
        "{err}"
    );
    assert!(err.contains("did you mean seeder.max_streams?"), "{err}");
}

#[test]
fn every_key_is_documented_in_the_compiled_in_defaults() {
    for key in known_keys() {
        let (_, name) = key.rsplit_once('.').unwrap();
        assert!(
            DEFAULTS.contains(&format!("\n{name} = "))
                || DEFAULTS.contains(&format!("\n# {name} = ")),
            "{key} is not in config/default.toml"
        );
    }
}

#[test]
fn the_configuration_docs_table_lists_exactly_the_keys() {
    let readme = include_str!("../../docs/configuration.md");
    let documented: std::collections::BTreeSet<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(key, _)| key.to_owned()))
        .filter(|key| key.contains('.') && !key.contains(' '))
        .collect();
    let known: std::collections::BTreeSet<String> = known_keys().into_iter().collect();
    assert_eq!(
        documented, known,
        "docs/configuration.md's table vs the settings"
    );
}

#[test]
fn the_s3_backend_takes_its_bucket_from_settings_and_credentials_from_aws_variables() {
    let s = load(
        &[
            ("GOTORRENT__STORAGE__BACKEND", "s3"),
            ("GOTORRENT__STORAGE__S3__BUCKET", "files"),
            ("GOTORRENT__STORAGE__S3__PREFIX", "/shared/"),
            ("GOTORRENT__STORAGE__S3__ENDPOINT", "http://127.0.0.1:3900"),
            ("AWS_ACCESS_KEY_ID", "GK0123"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ],
        Overrides::default(),
    )
    .unwrap();
    let StorageConfig::ObjectStore(s3) = s.storage.backend else {
        panic!("{:?}", s.storage.backend)
    };
    assert_eq!(
        (s3.bucket.as_str(), s3.prefix.as_str(), s3.region.as_str()),
        ("files", "shared", "us-east-1")
    );
    assert_eq!(s3.endpoint.unwrap().as_str(), "http://127.0.0.1:3900/");
    assert_eq!(
        (s3.access_key_id.as_str(), s3.session_token),
        ("GK0123", None)
    );
    assert!(matches!(
        load(&[], Overrides::default()).unwrap().storage.backend,
        StorageConfig::Local { .. }
    ));
}

#[test]
fn s3_errors_name_the_key_or_the_missing_variable() {
    let s3 = [("GOTORRENT__STORAGE__BACKEND", "s3")];
    let err = load(&s3, Overrides::default()).unwrap_err().to_string();
    assert!(
        err.contains("storage.s3.bucket") && err.contains("GOTORRENT__STORAGE__S3__BUCKET"),
        "{err}"
    );

    let bucket = [s3[0], ("GOTORRENT__STORAGE__S3__BUCKET", "files")];
    let err = load(&bucket, Overrides::default()).unwrap_err().to_string();
    assert!(
        err.contains("AWS_ACCESS_KEY_ID") && err.contains("AWS_SECRET_ACCESS_KEY"),
        "{err}"
    );

    let bad = [
        bucket[0],
        bucket[1],
        ("GOTORRENT__STORAGE__S3__ENDPOINT", "garage:3900"),
        ("AWS_ACCESS_KEY_ID", "a"),
        ("AWS_SECRET_ACCESS_KEY", "b"),
    ];
    let err = load(&bad, Overrides::default()).unwrap_err().to_string();
    assert!(
        err.contains("storage.s3.endpoint") && err.contains("garage:3900"),
        "{err}"
    );

    let huge = [
        bucket[0],
        bucket[1],
        ("GOTORRENT__STORAGE__S3__CACHE_MIB", "2000000"),
        ("AWS_ACCESS_KEY_ID", "a"),
        ("AWS_SECRET_ACCESS_KEY", "b"),
    ];
    let err = load(&huge, Overrides::default()).unwrap_err().to_string();
    assert!(
        err.contains("storage.s3.cache_mib") && err.contains("2000000"),
        "{err}"
    );

    let err = load(
        &[("GOTORRENT__STORAGE__BACKEND", "ftp")],
        Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("ftp") && err.contains("backend"), "{err}");
}

#[test]
fn the_deprecated_allow_private_seeders_still_works_with_a_warning_naming_the_new_key() {
    for (old, meant) in [
        ("true", PrivateSeeders::Always),
        ("false", PrivateSeeders::Never),
    ] {
        let s = load(
            &[("GOTORRENT__TRACKER__ALLOW_PRIVATE_SEEDERS", old)],
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(s.tracker.private_seeders, meant);
        assert_eq!(s.warnings.len(), 1);
        assert!(
            s.warnings[0].contains("tracker.allow_private_seeders is deprecated")
                && s.warnings[0].contains("tracker.private_seeders"),
            "{:?}",
            s.warnings
        );
    }
    for new in ["never", "same-network"] {
        let err = load(
            &[
                ("GOTORRENT__TRACKER__ALLOW_PRIVATE_SEEDERS", "true"),
                ("GOTORRENT__TRACKER__PRIVATE_SEEDERS", new),
            ],
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("tracker.allow_private_seeders") && err.contains("contradicts"),
            "{err}"
        );
    }
    let agreeing = load(
        &[
            ("GOTORRENT__TRACKER__ALLOW_PRIVATE_SEEDERS", "true"),
            ("GOTORRENT__TRACKER__PRIVATE_SEEDERS", "always"),
        ],
        Overrides::default(),
    )
    .unwrap();
    assert_eq!(agreeing.tracker.private_seeders, PrivateSeeders::Always);
}

#[test]
fn keys_set_by_name_are_validated_like_a_config_file() {
    let mut overrides = Overrides::default();
    overrides
        .set("tracker.max_peers", 7)
        .set("seeder.uploads", true)
        .set("tracker.redis_url", "redis://127.0.0.1:6379/2");
    let s = load(&[], overrides).unwrap();
    assert_eq!(s.tracker.max_peers, 7);
    assert_eq!(s.seeder.max_upload_bytes, Some(4 << 30));
    assert!(matches!(s.tracker.store, TrackerStoreConfig::Redis { .. }));

    let mut overrides = Overrides::default();
    overrides.set("tracker.max_peer", 7);
    let err = load(&[], overrides).unwrap_err().to_string();
    assert!(err.contains("did you mean tracker.max_peers"), "{err}");
    let mut overrides = Overrides::default();
    overrides.set("seeder.max_streams", 0);
    let err = load(&[], overrides).unwrap_err().to_string();
    assert!(
        err.contains("seeder.max_streams") && err.contains("at least 1"),
        "{err}"
    );
}

//! The binary's commands: `create` against the libtorrent oracle, errors, `openapi`.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::content;

fn gotorrent(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gotorrent-http"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the binary runs")
}

/// Debian's python3-libtorrent lives in the system interpreter's dist-packages.
fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

fn libtorrent_hashes(file: &Path, piece_length: u64, extra: &[&str]) -> (String, String) {
    let oracle =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/libtorrent_oracle.py");
    let out = Command::new(python())
        .arg(oracle)
        .arg(file)
        .arg(piece_length.to_string())
        .args(extra)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the libtorrent oracle failed (is python3-libtorrent installed? .ci/run installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut parts = text.split_whitespace().map(String::from);
    (parts.next().unwrap(), parts.next().unwrap())
}

/// `create FILE --piece-length N [extra] -o OUT`, returning stdout; the command must succeed.
fn create(file: &Path, piece_length: u64, extra: &[&str], out_path: &Path) -> String {
    let piece_length = piece_length.to_string();
    let mut args = vec![
        "create",
        file.to_str().unwrap(),
        "--piece-length",
        &piece_length,
    ];
    args.extend(extra);
    args.extend(["-o", out_path.to_str().unwrap()]);
    let out = gotorrent(&args, file.parent().unwrap());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn created_torrents_have_the_same_info_hashes_as_libtorrent() {
    let dir = tempfile::tempdir().unwrap();
    const K16: usize = 16 * 1024;
    let cases: &[(&str, usize, u64)] = &[
        ("tiny ü.bin", 1, 16384),
        ("smaller than a piece.bin", 1000, 1 << 20),
        ("one block short.bin", K16 - 1, 16384),
        ("exactly four pieces.bin", 4 * 65536, 65536),
        ("short last piece.bin", 5 * 65536 + 12345, 65536),
        ("odd blocks.bin", 3 * K16 + 5, 16384),
        ("many pieces.bin", 3_000_000, 32768),
        ("default piece.bin", 2_500_000, 1 << 20),
        ("executable.sh", 300, 16384),
    ];
    for (name, len, piece_length) in cases {
        // Arrange
        let file = dir.path().join(name);
        std::fs::write(&file, content(*len)).unwrap();
        if name.ends_with(".sh") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let out_path = dir.path().join(format!("{name}.torrent"));

        // Act
        let stdout = create(&file, *piece_length, &[], &out_path);

        // Assert
        let (v1, v2) = libtorrent_hashes(&file, *piece_length, &[]);
        assert!(
            stdout.contains(&format!("info-hash v2: {v2}")),
            "{name}: ours {stdout} libtorrent v2 {v2}"
        );
        assert!(
            stdout.contains(&format!("info-hash v1: {v1}")),
            "{name}: ours {stdout} libtorrent v1 {v1}"
        );
        let meta =
            gotorrent_http::metainfo::Metainfo::from_bytes(&std::fs::read(&out_path).unwrap())
                .unwrap();
        assert_eq!(meta.info_hash_v2.to_string(), v2);
    }
}

/// Writes `files` (path, length) under `root`, creating directories.
fn write_tree(root: &Path, files: &[(&str, usize)]) {
    for (path, len) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content(*len)).unwrap();
    }
}

#[test]
fn created_folder_torrents_have_the_same_info_hashes_as_libtorrent() {
    use std::os::unix::fs::{symlink, PermissionsExt};
    const K16: usize = 16 * 1024;
    let dir = tempfile::tempdir().unwrap();
    // Arrange: one awkward folder, and a single file inside a folder.
    let album = dir.path().join("Album <b>ü & co");
    write_tree(
        &album,
        &[
            ("01 intro.flac", 70_000),
            ("empty.txt", 0),
            ("Z upper.bin", 100),
            ("disc 2/exact two pieces.bin", 2 * 65536),
            ("disc 2/nested/deeper/one block.bin", K16),
            ("disc 2/nested/deeper/empty", 0),
            ("disc 2.txt", 10),
            ("ünïcode 名前.txt", 5000),
            ("run.sh", 300),
            (".hidden", 1),
            (".git/config", 50),
        ],
    );
    std::fs::set_permissions(album.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    symlink("01 intro.flac", album.join("link to intro")).unwrap();
    std::fs::write(dir.path().join("outside.bin"), content(10)).unwrap();
    symlink(dir.path().join("outside.bin"), album.join("escapes")).unwrap();
    symlink("disc 2", album.join("dir link")).unwrap();
    let single = dir.path().join("just one");
    write_tree(&single, &[("inside.bin", 40_000)]);

    for (folder, piece_length) in [(&album, 16384u64), (&album, 65536), (&single, 16384)] {
        let out_path = dir.path().join("folder.torrent");

        // Act
        let stdout = create(folder, piece_length, &[], &out_path);

        // Assert
        let (v1, v2) = libtorrent_hashes(folder, piece_length, &[]);
        assert!(
            stdout.contains(&format!("info-hash v2: {v2}"))
                && stdout.contains(&format!("info-hash v1: {v1}")),
            "{}: ours {stdout} libtorrent v1 {v1} v2 {v2}",
            folder.display()
        );
        let meta =
            gotorrent_http::metainfo::Metainfo::from_bytes(&std::fs::read(&out_path).unwrap())
                .unwrap();
        assert!(meta.is_folder);
        let paths: Vec<String> = meta.files.iter().map(|f| f.path_string()).collect();
        if folder == &single {
            assert_eq!(paths, ["inside.bin"]);
        } else {
            // Byte-wise order by component; hidden names and links leading outside or to a
            // directory left out; a link inside is shared as a file.
            assert_eq!(
                paths,
                [
                    "01 intro.flac",
                    "Z upper.bin",
                    "disc 2/exact two pieces.bin",
                    "disc 2/nested/deeper/empty",
                    "disc 2/nested/deeper/one block.bin",
                    "disc 2.txt",
                    "empty.txt",
                    "link to intro",
                    "run.sh",
                    "ünïcode 名前.txt",
                ]
            );
        }
    }
}

#[test]
fn v1_only_torrents_have_libtorrents_v1_info_hash() {
    let dir = tempfile::tempdir().unwrap();
    for (len, piece_length) in [(1000usize, 16384u64), (5 * 65536 + 7, 65536)] {
        let file = dir.path().join(format!("v1 only {len}.bin"));
        std::fs::write(&file, content(len)).unwrap();
        let out_path = dir.path().join("v1.torrent");
        let stdout = create(&file, piece_length, &["--v1-only"], &out_path);
        let (v1, _) = libtorrent_hashes(&file, piece_length, &["v1-only"]);
        assert!(
            stdout.contains(&format!("info-hash v1: {v1}")),
            "ours {stdout} libtorrent {v1}"
        );
        assert!(!stdout.contains("v2"), "{stdout}");
        // Our registry and downloader need SHA-256 piece hashes: a clear refusal, not a panic.
        let err =
            gotorrent_http::metainfo::Metainfo::from_bytes(&std::fs::read(&out_path).unwrap())
                .unwrap_err();
        assert!(err.to_string().contains("hybrid"), "{err}");
    }
}

#[test]
fn create_writes_to_torrents_dir_by_default_with_trackers_and_web_seeds() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("movie.mkv"), content(70_000)).unwrap();
    let out = gotorrent(
        &[
            "create",
            "movie.mkv",
            "--tracker",
            "http://t1.example:8080",
            "--tracker",
            "http://t2.example/announce",
            "--web-seed",
            "http://s.example/files/",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = dir.path().join("torrents/movie.mkv.torrent");
    let meta =
        gotorrent_http::metainfo::Metainfo::from_bytes(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(
        meta.trackers,
        [
            "http://t1.example:8080/announce",
            "http://t2.example/announce"
        ]
    );
    // A single file's directory web seed is written as the file's own URL (issue "Rewire",
    // item 10), as the server's torrents carry it.
    assert_eq!(meta.url_list, ["http://s.example/files/movie.mkv"]);
}

/// `create SOURCE --web-seed ... -o OUT` in `cwd`, returning the written torrent.
fn create_with_web_seeds(
    cwd: &Path,
    source: &str,
    seeds: &[&str],
    out: &str,
) -> gotorrent_http::metainfo::Metainfo {
    let mut args = vec!["create", source, "-o", out];
    for seed in seeds {
        args.extend(["--web-seed", seed]);
    }
    let run = gotorrent(&args, cwd);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    gotorrent_http::metainfo::Metainfo::from_bytes(&std::fs::read(cwd.join(out)).unwrap()).unwrap()
}

#[test]
fn create_writes_a_single_files_full_url_for_a_directory_web_seed_and_a_folder_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let name = "my file ü 名前 #1 (final).bin";
    std::fs::write(dir.path().join(name), content(70_000)).unwrap();
    write_tree(
        &dir.path().join("album ü"),
        &[("a b.bin", 100), ("disc 2/c.bin", 50)],
    );
    let directory = "http://127.0.0.1:9/files/";

    let single = create_with_web_seeds(
        dir.path(),
        name,
        &[directory, "http://127.0.0.1:9/mirror/renamed.bin"],
        "single.torrent",
    );
    assert!(!single.is_folder);
    assert_eq!(
        single.url_list,
        [
            "http://127.0.0.1:9/files/my%20file%20%C3%BC%20%E5%90%8D%E5%89%8D%20%231%20%28final%29.bin",
            // A URL that names the file already is written as given.
            "http://127.0.0.1:9/mirror/renamed.bin",
        ]
    );

    let folder = create_with_web_seeds(
        dir.path(),
        "album ü",
        &[directory, "http://127.0.0.1:9/mirror"],
        "folder.torrent",
    );
    assert!(folder.is_folder);
    assert_eq!(folder.url_list, [directory, "http://127.0.0.1:9/mirror"]);
}

#[actix_web::test]
async fn create_writes_the_web_seed_the_servers_own_torrent_carries() {
    // Arrange: a server sharing a file and a folder with awkward names.
    let name = "own ü 名前 #1.bin";
    let data = content(20_000);
    let files: [(&str, &[u8]); 2] = [(name, &data), ("own album ü/x y.bin", &data)];
    let app = crate::support::TestApp::spawn_with(&files, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(name), &data).unwrap();
    write_tree(&dir.path().join("own album ü"), &[("x y.bin", 20_000)]);
    let directory = format!("{}/files/", app.url);

    for (source, out) in [(name, "single.torrent"), ("own album ü", "folder.torrent")] {
        // Act
        let created = create_with_web_seeds(dir.path(), source, &[&directory], out);

        // Assert
        let v2 = app.wait_for_torrent(source).await["info_hash_v2"]
            .as_str()
            .unwrap()
            .to_owned();
        let response = app.get_torrent(&v2).await;
        assert_eq!(response.status(), 200);
        let served =
            gotorrent_http::metainfo::Metainfo::from_bytes(&response.bytes().await.unwrap())
                .unwrap();
        assert_eq!(served.url_list, created.url_list, "{source}");
    }
}

#[test]
fn create_writes_a_bare_output_name_in_the_working_directory_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.bin"), content(1000)).unwrap();
    std::fs::write(dir.path().join("out.torrent"), b"an older torrent").unwrap();
    let out = gotorrent(&["create", "f.bin", "-o", "out.torrent"], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta = gotorrent_http::metainfo::Metainfo::from_bytes(
        &std::fs::read(dir.path().join("out.torrent")).unwrap(),
    )
    .unwrap();
    assert_eq!(meta.name, "f.bin");
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["f.bin", "out.torrent"]);
}

#[test]
fn bad_input_exits_non_zero_with_one_line_naming_the_value() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.bin"), b"").unwrap();
    std::fs::write(dir.path().join("f.bin"), b"data").unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["create", "empty.bin"], "empty"),
        (&["create", "missing.bin"], "missing.bin"),
        (&["create", "f.bin", "--piece-length", "1000"], "1000"),
        (&["create", "f.bin", "--tracker", "nota url"], "nota url"),
        (&["serve", "--bind", "not-an-address"], "not-an-address"),
        (&["serve", "--public-url", "ftp://x"], "ftp://x"),
        (
            &["seed", "no such file.bin", "--bind", "127.0.0.1:0"],
            "no such file.bin",
        ),
    ];
    for (args, needle) in cases {
        let out = gotorrent(args, dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(errors.len(), 1, "{args:?}: {stderr}");
        assert!(errors[0].contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn the_s3_backend_names_what_it_is_missing_or_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.bin"), b"data").unwrap();
    let s3 = [
        ("GOTORRENT__STORAGE__BACKEND", "s3"),
        ("GOTORRENT__STORAGE__S3__BUCKET", "files"),
    ];
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_gotorrent-http"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };

    let no_keys = run(&["serve", "--bind", "127.0.0.1:0"], &s3);
    assert!(
        no_keys.contains("AWS_ACCESS_KEY_ID") && no_keys.contains("storage.backend"),
        "{no_keys}"
    );
    let keys = [
        s3[0],
        s3[1],
        ("AWS_ACCESS_KEY_ID", "id"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
    ];
    let seed = run(&["seed", "f.bin", "--bind", "127.0.0.1:0"], &keys);
    assert!(
        seed.contains("s3://files/") && seed.contains("upload the files there"),
        "{seed}"
    );
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["create", "serve", "seed", "openapi"] {
        let out = gotorrent(&[sub, "--help"], Path::new("."));
        assert!(out.status.success(), "{sub}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"));
    }
}

#[test]
fn the_committed_openapi_document_matches_the_generated_one() {
    let out = gotorrent(&["openapi"], Path::new("."));
    assert!(out.status.success());
    let generated: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let committed_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&committed_path).unwrap()).unwrap();
    assert!(
        generated == committed,
        "openapi/openapi.json is stale: run `cargo run -- openapi > openapi/openapi.json`"
    );
}

#[actix_web::test]
async fn seed_with_a_torrent_serves_the_file_under_that_torrent_once_its_bytes_match() {
    use gotorrent_http::metainfo::Metainfo;
    use std::os::unix::fs::PermissionsExt;
    // Arrange: an executable file whose torrent (32 KiB pieces, BEP 47 `x` attribute) differs
    // from what the server would hash (1 MiB pieces, no attribute), and a torrent whose file
    // changed since it was made.
    let dir = tempfile::tempdir().unwrap();
    let data = content(100_000);
    let script = dir.path().join("run me ü.sh");
    std::fs::write(&script, &data).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let changed = dir.path().join("changed.bin");
    std::fs::write(&changed, content(50_000)).unwrap();
    for (file, torrent) in [(&script, "script.torrent"), (&changed, "changed.torrent")] {
        let out = gotorrent(
            &[
                "create",
                file.to_str().unwrap(),
                "--piece-length",
                "32768",
                "-o",
                torrent,
            ],
            dir.path(),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::write(&changed, vec![7u8; 50_000]).unwrap();
    let torrent =
        |name: &str| Metainfo::from_bytes(&std::fs::read(dir.path().join(name)).unwrap()).unwrap();
    let (script_torrent, changed_torrent) = (torrent("script.torrent"), torrent("changed.torrent"));

    // Act
    let (data_dir, state_dir) = (dir.path().join("data"), dir.path().join("state"));
    let (script_t, changed_t) = (
        dir.path().join("script.torrent"),
        dir.path().join("changed.torrent"),
    );
    let args: Vec<&std::ffi::OsStr> = vec![
        "seed".as_ref(),
        script.as_os_str(),
        changed.as_os_str(),
        "--torrent".as_ref(),
        script_t.as_os_str(),
        "--torrent".as_ref(),
        changed_t.as_os_str(),
        "--bind".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--data-dir".as_ref(),
        data_dir.as_os_str(),
        "--state-dir".as_ref(),
        state_dir.as_os_str(),
    ];
    let (child, url) = crate::support::spawn_binary(&args, &[]);
    let _server = crate::support::Running(child);

    // Assert: the script is served under its own torrent, the changed file under none.
    let v2 = script_torrent.info_hash_v2.to_string();
    crate::support::poll("the script to be served under its torrent", || async {
        reqwest::get(format!("{url}/torrents/{v2}"))
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    let served = reqwest::get(format!("{url}/torrents/{v2}"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let served = Metainfo::from_bytes(&served).unwrap();
    assert_eq!(served.info_hash_v1, script_torrent.info_hash_v1);
    assert_eq!(served.piece_length.get(), 32768);
    let piece = reqwest::get(format!("{url}/chunks/{v2}/1"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(piece, &data[32768..65536]);
    let refused = reqwest::get(format!("{url}/torrents/{}", changed_torrent.info_hash_v2))
        .await
        .unwrap();
    assert_eq!(
        refused.status(),
        404,
        "bytes that do not match are not served under it"
    );
    let not_shared = reqwest::get(format!("{url}/files/changed.bin"))
        .await
        .unwrap();
    assert_eq!(not_shared.status(), 404);
}

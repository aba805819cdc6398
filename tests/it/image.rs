//! The container image, checked without a container engine: the Dockerfile's build stage is
//! replayed (its COPY lines, filtered by .dockerignore, into an empty directory, then its cargo
//! command as `cargo check`), and the runtime stage's promises are played on this machine (the
//! binary alone, started by the entrypoint as the service user, on the port PORT names), along
//! with what Railway needs of both.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// One `FROM` and the instructions after it, continuation lines joined, comments dropped.
struct Stage {
    name: Option<String>,
    instructions: Vec<String>,
}

impl Stage {
    fn find<'a>(&'a self, keyword: &'a str) -> Option<&'a str> {
        self.all(keyword).next()
    }

    /// The instructions with this keyword, whole.
    fn all<'a>(&'a self, keyword: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.instructions
            .iter()
            .filter(move |i| instruction_keyword(i) == keyword)
            .map(String::as_str)
    }
}

fn instruction_keyword(instruction: &str) -> String {
    instruction
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase()
}

fn dockerfile() -> Vec<Stage> {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let joined = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\\\n", " ");
    let mut stages: Vec<Stage> = Vec::new();
    for instruction in joined.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if instruction_keyword(instruction) == "FROM" {
            let words: Vec<&str> = instruction.split_whitespace().collect();
            let name = match words.as_slice() {
                [_, _, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_string()),
                _ => None,
            };
            stages.push(Stage {
                name,
                instructions: Vec::new(),
            });
        }
        stages
            .last_mut()
            .expect("the Dockerfile starts with FROM")
            .instructions
            .push(instruction.to_owned());
    }
    stages
}

/// The patterns of .dockerignore. Only the syntax the file uses is understood (names, `*` within
/// a name, `**` for any number of directories); anything else fails the test rather than being
/// replayed wrongly.
fn dockerignore() -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(root().join(".dockerignore"))
        .expect("a .dockerignore beside the Dockerfile");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|pattern| {
            assert!(
                !pattern.starts_with('!') && !pattern.contains(['?', '[', '\\']),
                ".dockerignore pattern {pattern:?}: this replay does not understand it"
            );
            pattern
                .trim_matches('/')
                .split('/')
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

/// Whether `pattern` matches `path` or one of its directories (Docker excludes what is under a
/// matched directory).
fn ignored(patterns: &[Vec<String>], path: &[&str]) -> bool {
    fn name_matches(pattern: &str, name: &str) -> bool {
        match pattern.split_once('*') {
            None => pattern == name,
            Some((head, tail)) => name.strip_prefix(head).is_some_and(|rest| {
                rest.char_indices()
                    .map(|(i, _)| i)
                    .chain([rest.len()])
                    .any(|i| name_matches(tail, &rest[i..]))
            }),
        }
    }
    fn matches(pattern: &[String], path: &[&str]) -> bool {
        match (pattern.first().map(String::as_str), path.first()) {
            (None, _) => true,
            (Some("**"), _) => (0..=path.len()).any(|skip| matches(&pattern[1..], &path[skip..])),
            (Some(_), None) => false,
            (Some(p), Some(name)) => name_matches(p, name) && matches(&pattern[1..], &path[1..]),
        }
    }
    patterns.iter().any(|p| matches(p, path))
}

/// The build context as Docker sends it: the tree less what .dockerignore names.
fn context_files() -> Vec<PathBuf> {
    let patterns = dockerignore();
    let parts = |path: &Path| -> Vec<String> {
        path.components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect()
    };
    walkdir::WalkDir::new(root())
        .min_depth(1)
        .into_iter()
        .filter_entry(|entry| {
            let relative = parts(entry.path().strip_prefix(root()).unwrap());
            !ignored(
                &patterns,
                &relative.iter().map(String::as_str).collect::<Vec<_>>(),
            )
        })
        .map(Result::unwrap)
        .filter(|entry| entry.file_type().is_file())
        .map(|entry| entry.path().strip_prefix(root()).unwrap().to_owned())
        .collect()
}

fn build_stage(stages: &[Stage]) -> &Stage {
    stages
        .iter()
        .find(|s| s.name.as_deref() == Some("build"))
        .expect("a stage named build")
}

fn runtime_stage(stages: &[Stage]) -> &Stage {
    stages.last().unwrap()
}

/// The build stage's COPY lines, played into `into` (its WORKDIR) from the filtered context.
fn replay_copies(stage: &Stage, into: &Path) {
    let context = context_files();
    for copy in stage.all("COPY") {
        let words: Vec<&str> = copy.split_whitespace().skip(1).collect();
        assert!(
            words.iter().all(|w| !w.starts_with("--")),
            "{copy}: the build stage copies from the context only"
        );
        let (destination, sources) = words.split_last().expect("COPY SRC... DEST");
        let destination = into.join(destination);
        for source in sources {
            let source = source.trim_start_matches("./").trim_end_matches('/');
            let mut copied = 0;
            for file in &context {
                let relative = match source {
                    "." | "" => Some(file.as_path()),
                    _ if file == Path::new(source) => Some(Path::new(file.file_name().unwrap())),
                    _ => file.strip_prefix(source).ok(),
                };
                let Some(relative) = relative else { continue };
                let target = destination.join(relative);
                std::fs::create_dir_all(target.parent().unwrap()).unwrap();
                std::fs::copy(root().join(file), target).unwrap();
                copied += 1;
            }
            assert!(copied > 0, "{copy}: {source} is not in the build context");
        }
    }
}

#[test]
fn the_dockerfile_build_stage_compiles_from_what_it_copies() {
    // Arrange: the build stage's files in an empty directory, as Docker would lay them.
    let stages = dockerfile();
    let build = build_stage(&stages);
    assert_eq!(build.find("WORKDIR"), Some("WORKDIR /src"));
    let workdir = tempfile::Builder::new()
        .prefix("image build ")
        .tempdir()
        .unwrap();
    replay_copies(build, workdir.path());
    for unwanted in [".git", "target", "tests", "docs"] {
        assert!(
            !workdir.path().join(unwanted).exists(),
            "{unwanted} is sent to the image build"
        );
    }

    // Act: its cargo command, as a check (same crates, features and profile; no code generated),
    // sharing a target dir across runs so dependencies are checked once per machine. The cargo
    // running these tests, at the lowest priority: timing-sensitive tests run beside it.
    let cargo_lines: Vec<&str> = build.all("RUN").filter(|r| r.contains("cargo ")).collect();
    let [run] = cargo_lines[..] else {
        panic!("expected one RUN of cargo in the build stage: {cargo_lines:?}");
    };
    let command = run
        .strip_prefix("RUN ")
        .unwrap()
        .replace("cargo build", "cargo check");
    assert!(command.contains("cargo check --release --locked"), "{run}");
    let cargo = PathBuf::from(std::env::var("CARGO").expect("cargo runs the tests"));
    let path = format!(
        "{}:{}",
        cargo.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("nice")
        .args(["-n", "19", "sh", "-c", &command])
        .current_dir(workdir.path())
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", root().join("target/image-build"))
        .output()
        .unwrap();

    // Assert
    assert!(
        out.status.success(),
        "{command} failed in the replayed build stage:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dockerignore_leaves_out_build_output_and_local_data_only() {
    let patterns = dockerignore();
    let is_ignored = |path: &str| ignored(&patterns, &path.split('/').collect::<Vec<_>>());
    for left_out in [
        "target/release/gotorrent-http",
        ".git/HEAD",
        "tests/web/node_modules/playwright-core/package.json",
        "data/shared file.bin",
        "state/gotorrent.db",
        "benches/__pycache__/run.cpython-311.pyc",
        "docs/architecture.md",
        "tests/it/main.rs",
        "README.md",
    ] {
        assert!(
            is_ignored(left_out),
            "{left_out} is sent to the image build"
        );
    }
    for kept in [
        "Cargo.toml",
        "src/main.rs",
        "templates/index.html",
        "benches/micro.rs",
        "config/default.toml",
        "src/storage/mod.rs",
    ] {
        assert!(!is_ignored(kept), "{kept} is left out of the image build");
    }
}

#[test]
fn the_image_deploys_on_railway() {
    let railway = std::fs::read_to_string(root().join("railway.toml")).unwrap();
    for needed in [
        r#"builder = "DOCKERFILE""#,
        r#"healthcheckPath = "/health""#,
    ] {
        assert!(railway.contains(needed), "railway.toml lacks {needed}");
    }
    // A start command would replace the image's entrypoint, which drops root.
    assert!(
        !railway
            .lines()
            .any(|l| l.trim_start().starts_with("startCommand")),
        "{railway}"
    );

    let stages = dockerfile();
    // Railway refuses images that declare a volume.
    assert!(
        stages.iter().all(|s| s.find("VOLUME").is_none()),
        "the Dockerfile declares a VOLUME"
    );
    let runtime = runtime_stage(&stages);
    assert!(runtime
        .find("HEALTHCHECK")
        .is_some_and(|h| h.contains("/health")));
    assert_eq!(
        runtime.find("ENTRYPOINT"),
        Some(r#"ENTRYPOINT ["/usr/local/bin/gotorrent-entrypoint"]"#)
    );
    assert!(runtime
        .all("COPY")
        .any(|i| i.contains("deploy/entrypoint.sh /usr/local/bin/gotorrent-entrypoint")));
    assert!(
        runtime.find("USER").is_none(),
        "the entrypoint starts as root to take over a root-owned volume, then drops to the user"
    );
}

/// The runtime stage's `ENV` assignments (`KEY=value` pairs).
fn runtime_env(stage: &Stage) -> Vec<(String, String)> {
    stage
        .all("ENV")
        .flat_map(|env| env.split_whitespace().skip(1))
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .unwrap_or_else(|| panic!("ENV {pair}: expected KEY=value"));
            (key.to_owned(), value.trim_matches('"').to_owned())
        })
        .collect()
}

fn assert_root() {
    let euid = Command::new("id").arg("-u").output().unwrap().stdout;
    assert_eq!(
        String::from_utf8_lossy(&euid).trim(),
        "0",
        "this test plays the container's start as root: run it as root (CI does)"
    );
}

#[test]
fn the_entrypoint_hands_a_root_owned_volume_to_the_service_user_and_drops_root() {
    use std::os::unix::fs::MetadataExt;
    assert_root();
    // A volume as Railway mounts it: owned by root, with a file from an earlier deploy.
    let volume = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(volume.path().join("state")).unwrap();
    std::fs::write(volume.path().join("state/old.db"), b"x").unwrap();

    let out = Command::new("sh")
        .arg(root().join("deploy/entrypoint.sh"))
        .args(["sh", "-c", "id -u && touch data/new.bin && echo written"])
        .current_dir(volume.path())
        .env("GOTORRENT_HOME", volume.path())
        .env("GOTORRENT_USER", "nobody")
        .output()
        .unwrap();

    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let nobody = std::fs::metadata(volume.path().join("data")).unwrap().uid();
    assert_ne!(nobody, 0);
    assert_eq!(
        stdout.lines().next(),
        Some(nobody.to_string().as_str()),
        "runs as the user"
    );
    assert!(
        stdout.contains("written"),
        "the user can write the data dir"
    );
    for path in ["", "state", "state/old.db", "data/new.bin"] {
        let owner = std::fs::metadata(volume.path().join(path)).unwrap().uid();
        assert_eq!(owner, nobody, "{path} belongs to the service user");
    }
}

#[test]
fn the_image_serves_as_the_service_user_on_port_from_the_binary_alone() {
    use std::os::unix::fs::PermissionsExt;
    assert_root();
    // Arrange: the binary alone in a directory of its own (no config/ or templates/ beside it),
    // a root-owned volume as the working directory, and only the image's environment.
    let stages = dockerfile();
    let runtime = runtime_stage(&stages);
    let image = tempfile::tempdir().unwrap();
    std::fs::set_permissions(image.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let binary = image.path().join("gotorrent-http");
    std::fs::copy(env!("CARGO_BIN_EXE_gotorrent-http"), &binary).unwrap();
    let volume = tempfile::tempdir().unwrap();
    let port = crate::support::free_port();
    let cmd = runtime.find("CMD").expect("a CMD");
    assert_eq!(cmd, r#"CMD ["gotorrent-http", "serve"]"#);

    // Act: the entrypoint starts the image's command, as the container would.
    let server = Command::new("sh")
        .arg(root().join("deploy/entrypoint.sh"))
        .args([binary.to_str().unwrap(), "serve"])
        .current_dir(volume.path())
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .envs(runtime_env(runtime))
        .env("GOTORRENT_HOME", volume.path())
        .env("GOTORRENT_USER", "nobody")
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = crate::support::Running(server);

    // Assert: it answers /health on PORT, as the service user, with state in the volume.
    let deadline = Instant::now() + Duration::from_secs(20);
    let health = loop {
        let answer = Command::new("curl")
            .args(["-fsS", &format!("http://127.0.0.1:{port}/health")])
            .output()
            .expect("curl is required (.ci/test installs it)");
        if answer.status.success() {
            break String::from_utf8_lossy(&answer.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the server did not answer /health on PORT {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(health.contains(r#""status":"ok""#), "{health}");
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.0.id())).unwrap();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let nobody = Command::new("id")
        .args(["-u", "nobody"])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(uid, String::from_utf8_lossy(&nobody).trim(), "{status}");
    assert!(volume
        .path()
        .join("state")
        .read_dir()
        .unwrap()
        .next()
        .is_some());
}

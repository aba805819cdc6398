//! A home network on one machine, made of network namespaces joined by veth pairs:
//!
//! ```text
//!  internet 45.10.0.1 ── 45.10.0.2 router 192.168.77.1 ── 192.168.77.2 home
//!  (tracker, bind9,       (nftables NAT,                  (our seeder)
//!   downloader)            miniupnpd)
//! ```
//!
//! The external range is an ordinary-looking public one that exists only inside these
//! namespaces: Debian's miniupnpd 2.3.1 refuses to map on a private or reserved external
//! address. Its nft_init.sh sources a file the package does not ship, so the table, its chains
//! and the masquerade are made here. Nothing touches the host's network; every namespace (and
//! the per-namespace resolv.conf under /etc/netns) is removed on drop, even when a test fails.
//! A missing tool or a refused `ip netns add` fails the test: nothing is skipped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const EXTERNAL: &str = "45.10.0.2";
pub const MOVED_EXTERNAL: &str = "45.10.0.3";
pub const INTERNET: &str = "45.10.0.1";
pub const HOME: &str = "192.168.77.2";
const ROUTER_LAN: &str = "192.168.77.1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    Internet,
    Router,
    Home,
}

pub struct Lab {
    id: String,
    pub dir: tempfile::TempDir,
    children: Vec<(String, Child)>,
    miniupnpd: Option<Child>,
    namespaces: Vec<String>,
    external: String,
}

/// Runs a command to completion; panics with its output when it fails.
pub fn run(program: &str, args: &[&str]) -> Output {
    finish(Command::new(program).args(args))
}

fn finish(command: &mut Command) -> Output {
    let output = command.output().unwrap_or_else(|e| {
        panic!("{command:?}: a program is missing ({e}); .ci/test installs it")
    });
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

pub fn wait_until(what: &str, within: Duration, mut ready: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

impl Lab {
    /// The three hosts, linked and routed, the router doing NAT; no miniupnpd yet.
    pub fn new() -> Lab {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // Interface names have at most 15 bytes: keep the id short.
        let id = format!("g{:04x}{n}", std::process::id() & 0xffff);
        let mut lab = Lab {
            dir: tempfile::tempdir().unwrap(),
            children: Vec::new(),
            miniupnpd: None,
            namespaces: Vec::new(),
            external: EXTERNAL.into(),
            id,
        };
        for host in [Host::Internet, Host::Router, Host::Home] {
            let ns = lab.ns(host);
            run("ip", &["netns", "add", &ns]);
            lab.namespaces.push(ns.clone());
            run("ip", &["-n", &ns, "link", "set", "lo", "up"]);
        }
        let (i, r, h) = (
            lab.ns(Host::Internet),
            lab.ns(Host::Router),
            lab.ns(Host::Home),
        );
        let (wan, lan) = (lab.ifname("r0"), lab.ifname("r1"));
        run(
            "ip",
            &[
                "link",
                "add",
                &lab.ifname("i0"),
                "netns",
                &i,
                "type",
                "veth",
                "peer",
                "name",
                &wan,
                "netns",
                &r,
            ],
        );
        run(
            "ip",
            &[
                "link",
                "add",
                &lan,
                "netns",
                &r,
                "type",
                "veth",
                "peer",
                "name",
                &lab.ifname("h0"),
                "netns",
                &h,
            ],
        );
        for (ns, dev, addr) in [
            (&i, lab.ifname("i0"), format!("{INTERNET}/24")),
            (&r, wan.clone(), format!("{EXTERNAL}/24")),
            (&r, lan.clone(), format!("{ROUTER_LAN}/24")),
            (&h, lab.ifname("h0"), format!("{HOME}/24")),
        ] {
            run("ip", &["-n", ns, "addr", "add", &addr, "dev", &dev]);
            run("ip", &["-n", ns, "link", "set", &dev, "up"]);
        }
        run(
            "ip",
            &["-n", &h, "route", "add", "default", "via", ROUTER_LAN],
        );
        run(
            "ip",
            &[
                "netns",
                "exec",
                &r,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ],
        );
        let ruleset = lab.dir.path().join("router.nft");
        std::fs::write(
            &ruleset,
            format!(
                "table inet filter {{
  chain forward {{
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname \"{lan}\" oifname \"{wan}\" accept
    jump miniupnpd
  }}
  chain miniupnpd {{
  }}
  chain prerouting {{
    type nat hook prerouting priority -100; policy accept;
    jump prerouting_miniupnpd
  }}
  chain postrouting {{
    type nat hook postrouting priority 100; policy accept;
    jump postrouting_miniupnpd
    oifname \"{wan}\" masquerade
  }}
  chain prerouting_miniupnpd {{
  }}
  chain postrouting_miniupnpd {{
  }}
}}
"
            ),
        )
        .unwrap();
        lab.exec(Host::Router, "nft", &["-f", ruleset.to_str().unwrap()]);
        lab
    }

    pub fn ns(&self, host: Host) -> String {
        let suffix = match host {
            Host::Internet => "internet",
            Host::Router => "router",
            Host::Home => "home",
        };
        format!("{}-{suffix}", self.id)
    }

    fn ifname(&self, end: &str) -> String {
        format!("{}{end}", self.id)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs a command inside `host` to completion, panicking with its output if it fails.
    pub fn exec(&self, host: Host, program: &str, args: &[&str]) -> Output {
        finish(
            Command::new("ip")
                .args(["netns", "exec", &self.ns(host), program])
                .args(args),
        )
    }

    /// Starts a long-running program inside `host`, its output in `<name>.log`; killed on drop.
    pub fn spawn(
        &mut self,
        host: Host,
        name: &str,
        program: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) {
        let log = std::fs::File::create(self.path(&format!("{name}.log"))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(host)])
            .arg(program)
            .args(args)
            .envs(env.iter().copied())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children.push((name.to_owned(), child));
    }

    /// What a spawned program has written so far.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(&format!("{name}.log"))).unwrap_or_default()
    }

    /// Stops a spawned program as SIGTERM does and waits for it to exit.
    pub fn terminate(&mut self, name: &str) {
        let index = self.children.iter().position(|(n, _)| n == name).unwrap();
        let (_, mut child) = self.children.remove(index);
        run("kill", &["-TERM", &child.id().to_string()]);
        let exited = Instant::now();
        while child.try_wait().unwrap().is_none() {
            assert!(
                exited.elapsed() < Duration::from_secs(20),
                "{name} did not exit on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// curl inside `host`: the body, or `None` when the request fails.
    pub fn curl(&self, host: Host, url: &str) -> Option<String> {
        let output = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns(host),
                "curl",
                "-sf",
                "--max-time",
                "5",
                url,
            ])
            .output()
            .expect("curl is required (Debian package curl)");
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Debian's miniupnpd on the router: UPnP IGD (unless `upnp` is false), NAT-PMP and PCP,
    /// mapping only for the home network, with its lease file in the lab's dir.
    pub fn start_miniupnpd(&mut self, upnp: bool) {
        let config = self.path("miniupnpd.conf");
        std::fs::write(
            &config,
            format!(
                "ext_ifname={wan}\nlistening_ip={lan}\nhttp_port=0\nenable_upnp={upnp}\n\
                 enable_natpmp=yes\nsecure_mode=yes\nsystem_uptime=yes\nlease_file={leases}\n\
                 uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b\n\
                 allow 1024-65535 192.168.77.0/24 1024-65535\ndeny 0-65535 0.0.0.0/0 0-65535\n",
                wan = self.ifname("r0"),
                lan = self.ifname("r1"),
                upnp = if upnp { "yes" } else { "no" },
                leases = self.path("miniupnpd.leases").display(),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(self.path("miniupnpd.log")).unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns(Host::Router),
                "miniupnpd",
                "-d",
                "-f",
            ])
            .arg(&config)
            .arg("-P")
            .arg(self.path("miniupnpd.pid"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("miniupnpd is required (Debian package miniupnpd-nftables)");
        self.miniupnpd = Some(child);
        wait_until("miniupnpd listening", Duration::from_secs(10), || {
            std::fs::read_to_string(self.path("miniupnpd.log"))
                .unwrap_or_default()
                .matches("Listening for NAT-PMP/PCP traffic")
                .count()
                > 0
        });
    }

    fn stop_miniupnpd(&mut self) {
        if let Some(mut child) = self.miniupnpd.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// The ISP hands the router a new external address: the old one goes, the new one comes,
    /// and miniupnpd is restarted (as a router does on a new WAN lease). Its rules outlive it.
    pub fn move_external_address(&mut self, upnp: bool) {
        let wan = self.ifname("r0");
        let router = self.ns(Host::Router);
        let old = format!("{}/24", self.external);
        self.stop_miniupnpd();
        run("ip", &["-n", &router, "addr", "del", &old, "dev", &wan]);
        run(
            "ip",
            &[
                "-n",
                &router,
                "addr",
                "add",
                &format!("{MOVED_EXTERNAL}/24"),
                "dev",
                &wan,
            ],
        );
        self.external = MOVED_EXTERNAL.into();
        // Removing the address made the masquerade forget every connection NATed to it, as a
        // real router does: connections kept alive from home are dead now.
        let log = self.path("miniupnpd.log");
        let _ = std::fs::rename(&log, self.path("miniupnpd-before-move.log"));
        self.start_miniupnpd(upnp);
    }

    /// A name server for `home.test` in the internet, taking dynamic updates for
    /// seeder.home.test signed with a fresh TSIG key; every host resolves through it.
    /// Returns the key's secret.
    pub fn start_bind(&mut self) -> String {
        let dir = self.path("bind");
        std::fs::create_dir_all(&dir).unwrap();
        let key = run("tsig-keygen", &["-a", "hmac-sha256", "ddns-key"]).stdout;
        let key = String::from_utf8(key).unwrap();
        let secret = key
            .split("secret \"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("tsig-keygen prints the secret")
            .to_owned();
        let d = dir.display();
        std::fs::write(dir.join("key.conf"), &key).unwrap();
        std::fs::write(
            dir.join("home.test.db"),
            format!(
                "$TTL 60\n@ IN SOA ns.home.test. admin.home.test. ( 1 3600 600 86400 60 )\n\
                 @ IN NS ns.home.test.\nns IN A {INTERNET}\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("named.conf"),
            format!(
                "options {{ directory \"{d}\"; pid-file \"{d}/named.pid\"; \
                 session-keyfile \"{d}/session.key\"; managed-keys-directory \"{d}\"; \
                 listen-on port 53 {{ {INTERNET}; }}; listen-on-v6 {{ none; }}; \
                 recursion no; dnssec-validation no; }};\n\
                 include \"{d}/key.conf\";\n\
                 zone \"home.test\" {{ type primary; file \"{d}/home.test.db\"; \
                 update-policy {{ grant ddns-key name seeder.home.test. A; }}; }};\n"
            ),
        )
        .unwrap();
        let named = PathBuf::from("/usr/sbin/named");
        let conf = format!("{d}/named.conf");
        self.spawn(Host::Internet, "named", &named, &["-g", "-c", &conf], &[]);
        wait_until("named running", Duration::from_secs(15), || {
            self.log("named").contains("running")
        });
        // `ip netns exec` mounts /etc/netns/<ns>/resolv.conf over /etc/resolv.conf.
        for host in [Host::Internet, Host::Home] {
            let etc = PathBuf::from("/etc/netns").join(self.ns(host));
            std::fs::create_dir_all(&etc).unwrap();
            std::fs::write(etc.join("resolv.conf"), format!("nameserver {INTERNET}\n")).unwrap();
        }
        secret
    }

    /// The A record of `name` as the name server answers it now.
    pub fn dig(&self, name: &str) -> String {
        let output = self.exec(
            Host::Internet,
            "dig",
            &["+short", &format!("@{INTERNET}"), name, "A"],
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.stop_miniupnpd();
        for ns in &self.namespaces {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
            let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(ns));
        }
    }
}

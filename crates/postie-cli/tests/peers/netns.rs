//! Network namespaces a test makes for itself: a client "beyond loopback" on a veth pair, or a
//! world of its own with its own name server. No packet leaves the machine.

/// A network namespace of the test's own, joined to this one by a veth pair with private
/// addresses: a client there reaches the relay from beyond loopback, and no packet leaves the
/// machine. Removed when dropped. Creating one needs root, as `ci/test.sh` runs.
pub struct Netns {
    name: String,
    host_if: Option<String>,
    /// This side's address (the relay listens here) and the namespace's.
    pub host: String,
    pub inside: String,
}

fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip {}: {} (the test needs root, as ci/test.sh runs)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    /// A namespace with only its own loopback: nothing in it reaches anything outside.
    pub fn isolated() -> Netns {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("postie-i{}-{n}", std::process::id());
        ip(&["netns", "add", &name]);
        let ns = Netns {
            name,
            host_if: None,
            host: String::new(),
            inside: String::new(),
        };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    /// A namespace joined to this one by a veth pair (see [`Netns`]).
    pub fn new() -> Netns {
        let n = std::process::id() % 200 + 20;
        let name = format!("postie-t{}", std::process::id());
        let host_if = format!("pth{}", std::process::id() % 100_000);
        let peer_if = format!("ptn{}", std::process::id() % 100_000);
        let (host, inside) = (format!("10.231.{n}.1"), format!("10.231.{n}.2"));
        let ns = Netns {
            name: name.clone(),
            host_if: Some(host_if.clone()),
            host: host.clone(),
            inside: inside.clone(),
        };
        for args in [
            vec!["netns", "add", &name],
            vec![
                "link", "add", &host_if, "type", "veth", "peer", "name", &peer_if,
            ],
            vec!["link", "set", &peer_if, "netns", &name],
            vec!["addr", "add", &format!("{host}/30"), "dev", &host_if],
            vec!["link", "set", &host_if, "up"],
            vec![
                "-n",
                &name,
                "addr",
                "add",
                &format!("{inside}/30"),
                "dev",
                &peer_if,
            ],
            vec!["-n", &name, "link", "set", &peer_if, "up"],
            vec!["-n", &name, "link", "set", "lo", "up"],
        ] {
            ip(&args);
        }
        ns
    }

    /// A command run inside the namespace.
    pub fn exec(&self, program: &std::ffi::OsStr) -> std::process::Command {
        let mut c = std::process::Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// `cmd` (program, arguments, environment and directory) run inside the namespace with
    /// `resolv_conf` as its /etc/resolv.conf: bind-mounted in the mount namespace `ip netns
    /// exec` makes for the one command, so the machine's own is untouched.
    pub fn wrap_with_resolver(
        &self,
        cmd: &std::process::Command,
        resolv_conf: &std::path::Path,
    ) -> std::process::Command {
        let mut c = self.exec("sh".as_ref());
        c.args(["-c", r#"mount --bind "$0" /etc/resolv.conf && exec "$@""#])
            .arg(resolv_conf)
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        if let Some(d) = cmd.get_current_dir() {
            c.current_dir(d);
        }
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(host_if) = &self.host_if {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", host_if])
                .status();
        }
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

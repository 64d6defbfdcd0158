//! Nothing lost (issue 15): a test binary with a real node that is SIGKILLed leaves
//! no process (the node's PID namespace dies with its supervisor, which carries
//! PR_SET_PDEATHSIG) and no mount on the machine; the next start's sweep removes
//! the netns, veth, routes, bridge and cgroups it left, and nothing of a live cluster.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const HELPER_ENV: &str = "STEWARD_TEST_CRASH_INFO";

/// Run by the test below in a child process: starts a cluster with one real node,
/// writes `<netns> <cgroup root> <cluster dir>` to the file named by the env, and
/// waits to be killed.
#[test]
#[ignore = "helper: run by crash_of_the_owner_leaves_nothing_after_the_sweep"]
fn helper_cluster_until_killed() {
    let Some(info) = std::env::var_os(HELPER_ENV) else {
        return;
    };
    let cluster = testkit::cluster_with_real_nodes(1);
    let ns = cluster.real_node_netns("real-node-1").unwrap();
    let line = format!("{ns} /steward-{ns} {}\n", cluster.dir().display());
    std::fs::write(PathBuf::from(info), line).unwrap();
    loop {
        std::thread::park();
    }
}

#[test]
fn crash_of_the_owner_leaves_nothing_after_the_sweep() {
    let info = std::env::temp_dir().join(format!("steward-crash-{}", std::process::id()));
    let _ = std::fs::remove_file(&info);
    // The images first, here: building them (steward's own image after a change can
    // take minutes) is no part of the helper's deadline below.
    let images = std::env::join_paths(testkit::images().unwrap()).unwrap();
    let mut child = Helper(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "helper_cluster_until_killed",
                "--ignored",
                "--nocapture",
            ])
            .env(HELPER_ENV, &info)
            .env("STEWARD_REALNODE_IMAGES", images)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let text = until(Duration::from_secs(180), "the helper's cluster", || {
        std::fs::read_to_string(&info)
            .ok()
            .filter(|t| t.ends_with('\n'))
    });
    let mut f = text.split_whitespace();
    let (ns, cgroup, dir) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
    let n: u8 = ns
        .trim_start_matches("stw")
        .split('n')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let before = cgroup_pids(cgroup);
    assert!(
        before.len() >= 4,
        "kubelet, containerd, kube-proxy and the node's init run: {before:?}"
    );
    assert!(
        netns(ns) && link(&format!("stwb{n}")),
        "the node's netns and bridge exist"
    );

    child.0.kill().unwrap();
    child.0.wait().unwrap();
    // No process: the kernel ends the node's PID namespace with its supervisor.
    until(
        Duration::from_secs(30),
        "every process of the node to end",
        || cgroup_pids(cgroup).is_empty().then_some(()),
    );
    // No mount but the netns file (which only `ip netns del` removes): everything
    // else lived in the node's own mount namespace.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let left: Vec<&str> = mounts.lines().filter(|l| l.contains(dir)).collect();
    assert!(left.is_empty(), "mounts left under {dir}: {left:#?}");

    let swept = steward_sim::sweep_stale().unwrap();
    assert!(swept.contains(&n), "10.{n} not swept: {swept:?}");
    assert!(!netns(ns), "netns {ns} left");
    assert!(
        !link(ns) && !link(&format!("stwb{n}")),
        "veth or bridge left"
    );
    let routes = run("ip", &["-4", "route", "show", "table", "all"]);
    assert!(
        !routes.contains(&format!("10.{n}.")),
        "routes left: {routes}"
    );
    let cgroups: Vec<PathBuf> = hierarchies()
        .into_iter()
        .map(|h| h.join(cgroup.trim_start_matches('/')))
        .filter(|p| p.exists())
        .collect();
    assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&format!("netns/{ns} ")),
        "netns mount left"
    );
    assert!(
        !Path::new(&format!("/run/steward-sim/net-{n}")).exists(),
        "record left"
    );
}

/// The helper process, killed when the test ends however it ends (a failed wait or
/// assertion must not leave a cluster with a real node running).
struct Helper(std::process::Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill(); // already killed and reaped by the test, normally
        let _ = self.0.wait();
    }
}

fn until<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn netns(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

fn link(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", name])
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn hierarchies() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.get(2) == Some(&"cgroup")).then(|| PathBuf::from(f[1]))
        })
        .collect()
}

fn cgroup_pids(root: &str) -> Vec<u32> {
    fn walk(d: &Path, out: &mut Vec<u32>) {
        if let Ok(t) = std::fs::read_to_string(d.join("cgroup.procs")) {
            out.extend(t.lines().filter_map(|l| l.parse::<u32>().ok()));
        }
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&e.path(), out);
            }
        }
    }
    let mut pids = Vec::new();
    for h in hierarchies() {
        walk(&h.join(root.trim_start_matches('/')), &mut pids);
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

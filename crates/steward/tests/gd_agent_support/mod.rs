//! Real peers of the node agent's tests: pod servers in network namespaces and
//! kubelet-named cgroups, held client connections, a decoy in the host's
//! namespace, and the agent process itself.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;

use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::api::Api;
use serde_json::Value;
use testkit::TestEnv;
use testkit::wait;

use super::gd_support::{T, free_port};

pub const ANN_AGENT: &str = "steward.io/drain-agent";
pub const ANN_AGENT_ID: &str = "steward.io/drain-agent-id";

/// Accepts connections and holds each until the peer closes it.
pub const SERVER: &str = r#"
import socket, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(128)
print("listening", flush=True)
def hold(c):
    while c.recv(1024):
        pass
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=hold, args=(c,), daemon=True).start()
"#;

/// Opens N keep-alive connections and holds them until stdin closes.
pub const CLIENT: &str = r#"
import socket, sys
cs = [socket.create_connection(("127.0.0.1", int(sys.argv[1]))) for _ in range(int(sys.argv[2]))]
print("connected", flush=True)
sys.stdin.read()
"#;

#[derive(Clone, Copy, Debug)]
pub enum Layout {
    /// cgroup v1, cgroupfs driver: `pids:/kubepods/besteffort/pod<uid>`.
    V1Cgroupfs,
    /// cgroup v2, systemd driver: `0::/kubepods.slice/.../kubepods-besteffort-pod<uid_>.slice`.
    V2Systemd,
}

impl Layout {
    /// The directories to create, outermost first.
    pub fn dirs(self, uid: &str) -> Vec<PathBuf> {
        let (root, parts) = match self {
            Layout::V1Cgroupfs => (
                "/sys/fs/cgroup/pids",
                vec![
                    "kubepods".to_string(),
                    "besteffort".into(),
                    format!("pod{uid}"),
                ],
            ),
            Layout::V2Systemd => (
                "/sys/fs/cgroup/unified",
                vec![
                    "kubepods.slice".to_string(),
                    "kubepods-besteffort.slice".into(),
                    format!("kubepods-besteffort-pod{}.slice", uid.replace('-', "_")),
                ],
            ),
        };
        let mut p = PathBuf::from(root);
        parts
            .into_iter()
            .map(|c| {
                p.push(c);
                p.clone()
            })
            .collect()
    }
}

/// A pod's server: its own network namespace, the kubelet's cgroup for the pod.
/// Killed, and its cgroup removed, on drop.
pub struct PodProcess {
    child: std::process::Child,
    cgroups: Vec<PathBuf>,
}

impl PodProcess {
    pub fn start(uid: &str, port: u16, layout: Layout) -> Self {
        let cgroups = layout.dirs(uid);
        std::fs::create_dir_all(cgroups.last().unwrap()).unwrap();
        let mut child = std::process::Command::new("unshare")
            .args([
                "-n",
                "sh",
                "-c",
                "ip link set lo up && exec python3 -c \"$0\" \"$1\"",
            ])
            .arg(SERVER)
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::fs::write(
            cgroups.last().unwrap().join("cgroup.procs"),
            child.id().to_string(),
        )
        .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "listening", "pod server did not start");
        Self { child, cgroups }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for PodProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Innermost first; the shared `kubepods` levels stay if another test uses them.
        for dir in self.cgroups.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// A server and `n` held connections in the host's own network namespace.
pub struct Decoy {
    _server: tokio::process::Child,
    _clients: Clients,
}

pub async fn decoy(port: u16, n: usize) -> Decoy {
    let mut server = tokio::process::Command::new("python3")
        .args(["-c", SERVER, &port.to_string()])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    first_line(&mut server, "listening").await;
    Decoy {
        _server: server,
        _clients: Clients::open(None, port, n).await,
    }
}

/// `n` connections to 127.0.0.1:`port` inside the network namespace of `netns_of`
/// (the host's when `None`); closed when dropped.
pub struct Clients(tokio::process::Child);

impl Clients {
    pub async fn open(netns_of: Option<u32>, port: u16, n: usize) -> Self {
        let mut cmd = match netns_of {
            Some(pid) => {
                let mut c = tokio::process::Command::new("nsenter");
                c.args(["-t", &pid.to_string(), "-n", "python3"]);
                c
            }
            None => tokio::process::Command::new("python3"),
        };
        let mut child = cmd
            .args(["-c", CLIENT, &port.to_string(), &n.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        first_line(&mut child, "connected").await;
        Self(child)
    }

    /// Closes every connection (stdin EOF) and waits until the client exited.
    pub async fn close(mut self) {
        drop(self.0.stdin.take());
        let status = tokio::time::timeout(T, self.0.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "client: {status}");
    }
}

pub async fn first_line(child: &mut tokio::process::Child, want: &str) {
    use tokio::io::AsyncBufReadExt;
    let mut line = String::new();
    tokio::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .await
        .unwrap();
    assert_eq!(line.trim(), want);
}

/// A running `steward graceful-drain agent`; killed on drop.
pub struct Agent {
    pub child: tokio::process::Child,
    pub url: String,
    pub node: String,
}

pub async fn start_agent(client: &kube::Client, node: &str, identity: &str) -> Agent {
    let port = free_port();
    let kubeconfig = testkit::cluster().kubeconfig().display().to_string();
    let listen = format!("127.0.0.1:{port}");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(["graceful-drain", "agent", "--kubeconfig", &kubeconfig])
        .args(["--node", node, "--listen", &listen, "--advertise", &listen])
        .args(["--identity", identity, "--recheck-interval", "1s"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://{listen}");
    let nodes: Api<Node> = Api::all(client.clone());
    wait::object(
        &nodes,
        node,
        T,
        "the Node advertises the agent",
        |n: &Node| n.annotations().get(ANN_AGENT) == Some(&url),
    )
    .await
    .unwrap();
    Agent {
        child,
        url,
        node: node.to_string(),
    }
}

impl Agent {
    /// GET /v1/connections; (status, body).
    pub async fn count(&self, uid: &str, ports: &str) -> (u16, Value) {
        let r = testkit::http()
            .get(format!("{}/v1/connections", self.url))
            .query(&[("uid", uid), ("ports", ports)])
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// Waits until the agent reports `n` ESTABLISHED connections for the pod.
    pub async fn wait_count(&self, uid: &str, port: u16, n: u64) -> Value {
        let last = std::sync::Arc::new(std::sync::Mutex::new(Value::Null));
        let ports = port.to_string();
        let found = wait::until(T, &format!("agent counts {n} connections"), || {
            let last = last.clone();
            let ports = ports.clone();
            async move {
                let (status, body) = self.count(uid, &ports).await;
                let hit = status == 200 && body["established"] == n;
                *last.lock().unwrap() = body;
                Ok(hit)
            }
        })
        .await;
        let last = last.lock().unwrap().clone();
        found.unwrap_or_else(|e| panic!("{e}; last answer {last}"));
        last
    }

    /// A counter's value from /metrics (0 when absent).
    pub async fn metric(&self, series: &str) -> f64 {
        let text = testkit::http()
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// SIGTERM, then waits for a clean exit.
    pub async fn stop(mut self) {
        let pid = self.child.id().unwrap().to_string();
        let ok = tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(ok.success());
        let status = tokio::time::timeout(T, self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "agent exit: {status}");
    }
}

pub fn netns_inode(pid: &str) -> u64 {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let s = link.to_str().unwrap();
    s.trim_start_matches("net:[")
        .trim_end_matches(']')
        .parse()
        .unwrap()
}

pub async fn setup(prefix: &str) -> (TestEnv, String) {
    let env = testkit::env(prefix).await.unwrap();
    let node = env.add_nodes("n", 1, |s| s).await.unwrap().remove(0);
    (env, node)
}

pub async fn node_annotations(
    client: &kube::Client,
    node: &str,
) -> std::collections::BTreeMap<String, String> {
    Api::<Node>::all(client.clone())
        .get_metadata(node)
        .await
        .unwrap()
        .annotations()
        .clone()
}

//! Fixtures for integration tests against the real local control plane.
//!
//! One [`Cluster`] per test binary, started on first use and killed with the
//! binary (even when it crashes); a binary that tests on real nodes takes
//! [`cluster_with_real_nodes`] instead (helpers in [`realnode`]). Each test takes a fresh namespace from [`env`],
//! creates its own nodes with [`TestEnv::add_nodes`] (labelled and tainted for that
//! test only, so tests running in parallel never share nodes), and waits with
//! deadlines through [`wait`]. Nothing here sleeps a fixed time.

pub mod karpenter;
pub mod node_load;
pub mod prometheus;
pub mod realnode;
pub mod traffic;
pub mod wait;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Namespace, Node, ServiceAccount, Taint, Toleration};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
pub use steward_sim::{Cluster, NodeSpec};

/// Label and taint key that ties nodes and workloads to one test.
pub const TEST_KEY: &str = "steward.io/test";

/// The cluster of this test binary, started on first use.
///
/// The processes are spawned from a thread that never ends, because the kernel's
/// parent-death signal follows the spawning thread; they die with the test binary.
pub fn cluster() -> &'static Cluster {
    // A failed start is kept too, so the other tests fail at once with the same cause.
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    started(&CLUSTER, 0)
}

/// The cluster with `n` real nodes of this test binary (`real-node-1`..`n`, label
/// [`steward_sim::REAL_NODE_LABEL`]), started on first use, beside the one of
/// [`cluster`] if that is used too. Every call in one binary must ask for the same
/// `n`. Images: [`images`]. Needs root.
pub fn cluster_with_real_nodes(n: usize) -> &'static Cluster {
    static N: OnceLock<usize> = OnceLock::new();
    let first = *N.get_or_init(|| {
        stop_real_nodes_at_exit();
        n
    });
    assert_eq!(
        first, n,
        "cluster_with_real_nodes: asked for {n} real nodes after {first}"
    );
    started(&REAL, n)
}

/// The cluster with real nodes, if this binary started one.
static REAL: OnceLock<Result<Cluster, String>> = OnceLock::new();

/// The clusters live in statics, never dropped: their control planes die with the
/// test binary (PR_SET_PDEATHSIG), and so do the real nodes' processes, but the
/// nodes' netns, veths, routes, bridge and cgroups would wait for the next start's
/// sweep. So the real nodes are stopped and cleaned up when the binary exits
/// normally (libtest returns from main or calls `exit`, both run atexit handlers);
/// a crash still leaves them to the sweep.
fn stop_real_nodes_at_exit() {
    extern "C" fn stop() {
        if let Some(Ok(cluster)) = REAL.get() {
            cluster.stop_real_nodes();
        }
    }
    #[allow(unsafe_code)]
    // SAFETY: atexit(3) with a function that takes nothing and does not unwind
    // (stop_real_nodes catches every failure and logs it).
    let rc = unsafe { libc::atexit(stop) };
    if rc != 0 {
        eprintln!("testkit: could not register the real nodes' clean-up at exit");
    }
}

fn started(
    cell: &'static OnceLock<Result<Cluster, String>>,
    real_nodes: usize,
) -> &'static Cluster {
    let started = cell.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("testkit-cluster".into())
            .spawn(move || {
                let started = start_cluster(real_nodes);
                let failed = started.is_err();
                let _ = tx.send(started);
                if !failed {
                    loop {
                        std::thread::park();
                    }
                }
            })
            .expect("spawning the cluster thread");
        rx.recv()
            .expect("cluster thread ended")
            .map_err(|e| format!("{e:#}"))
    });
    match started {
        Ok(c) => c,
        Err(e) => panic!("the simulated control plane did not start: {e}"),
    }
}

static AUDIT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Asks for the API server's audit log (JSON, every request at Metadata level) in
/// this test binary's cluster; call it before anything starts the cluster.
pub fn enable_audit() {
    AUDIT.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// The audit log of this test binary's cluster ([`enable_audit`] first).
pub fn audit_log() -> Result<PathBuf> {
    let path = cluster().dir().join("audit.log");
    anyhow::ensure!(
        path.is_file(),
        "{} missing: call testkit::enable_audit() before the cluster starts",
        path.display()
    );
    Ok(path)
}

fn start_cluster(real_nodes: usize) -> Result<Cluster> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Another prefix for the cluster with real nodes: every name under
    // `steward-testkit-` must be a pid (older checkouts remove the others).
    let prefix = if real_nodes > 0 {
        "steward-realnodes-"
    } else {
        "steward-testkit-"
    };
    let dir = std::env::temp_dir().join(format!("{prefix}{}", std::process::id()));
    remove_stale_dirs();
    let _ = std::fs::remove_dir_all(&dir);
    let mut opts = steward_sim::Options::new(dir, bin_dir()?);
    opts.audit = AUDIT.load(std::sync::atomic::Ordering::SeqCst);
    if real_nodes > 0 {
        opts.real_nodes = real_nodes;
        opts.images = images()?;
    }
    let cluster = rt.block_on(Cluster::start(&opts))?;
    eprintln!(
        "testkit: control plane ready in {:.1}s at {}",
        cluster.started_in().as_secs_f64(),
        cluster.server()
    );
    if real_nodes > 0 {
        eprintln!(
            "testkit: {real_nodes} real nodes Ready {:.1}s later",
            cluster.real_nodes_ready_in().as_secs_f64()
        );
    }
    Ok(cluster)
}

/// The real nodes' image archives: `STEWARD_REALNODE_IMAGES` (paths separated by
/// `:`), or what `hack/realnode/images.sh` prints (a no-op when its cache is warm).
pub fn images() -> Result<Vec<PathBuf>> {
    if let Some(list) = std::env::var_os("STEWARD_REALNODE_IMAGES") {
        return Ok(std::env::split_paths(&list).collect());
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../hack/realnode/images.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!("{} failed ({})", script.display(), out.status);
    }
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
        .collect())
}

/// Directories of earlier test binaries whose process is gone.
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name
            .strip_prefix("steward-testkit-")
            .or_else(|| name.strip_prefix("steward-realnodes-"))
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// The release `steward` binary the benchmarks run: `STEWARD_BIN`, or
/// `target/release/steward` of this workspace.
pub fn release_steward() -> Result<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let steward = std::env::var_os("STEWARD_BIN")
        .map_or_else(|| root.join("target/release/steward"), PathBuf::from);
    anyhow::ensure!(
        steward.is_file(),
        "{} not found; run cargo build --release -p steward",
        steward.display()
    );
    Ok(steward)
}

/// The control-plane binaries: `STEWARD_CONTROLPLANE_BIN`, or what
/// `hack/controlplane/build.sh` prints (a no-op when its cache is warm).
pub fn bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("STEWARD_CONTROLPLANE_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../hack/controlplane/build.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!("{} failed ({})", script.display(), out.status);
    }
    Ok(PathBuf::from(String::from_utf8(out.stdout)?.trim()))
}

/// One test's view of the cluster: a client and a namespace of its own.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // kube::Client has no Debug
pub struct TestEnv {
    /// Admin client, bound to the calling test's runtime.
    pub client: Client,
    /// The test's namespace; also the value of [`TEST_KEY`] on its nodes.
    pub ns: String,
}

/// A fresh namespace `<prefix>-<n>` with its default ServiceAccount ready.
pub async fn env(prefix: &str) -> Result<TestEnv> {
    env_in(cluster(), prefix).await
}

/// [`env`] in another cluster, such as [`cluster_with_real_nodes`].
pub async fn env_in(cluster: &Cluster, prefix: &str) -> Result<TestEnv> {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let client = cluster.client().await?;
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ns = format!("{prefix}-{}-{n}", std::process::id() % 100_000);
    let meta = ObjectMeta {
        name: Some(ns.clone()),
        ..ObjectMeta::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: meta,
                ..Namespace::default()
            },
        )
        .await
        .with_context(|| format!("creating namespace {ns}"))?;
    // Pods are refused until the ServiceAccount controller has made `default`.
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    wait::until(
        Duration::from_secs(30),
        "default ServiceAccount",
        || async { Ok(sas.get_opt("default").await?.is_some()) },
    )
    .await?;
    Ok(TestEnv { client, ns })
}

impl TestEnv {
    /// Creates `count` kwok nodes named `<ns>-<prefix>-<i>`, labelled and tainted
    /// with [`TEST_KEY`]=`<ns>`, and waits until the scheduler may use all of them
    /// ([`wait::node_schedulable`]: Ready, and the `not-ready` taint every new node
    /// gets is gone). `f` adjusts each spec.
    pub async fn add_nodes(
        &self,
        prefix: &str,
        count: usize,
        f: impl Fn(NodeSpec) -> NodeSpec,
    ) -> Result<Vec<String>> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let mut names = Vec::with_capacity(count);
        for i in 0..count {
            let mut spec =
                f(NodeSpec::new(format!("{}-{prefix}-{i}", self.ns)).label(TEST_KEY, &self.ns));
            spec.taints.push(Taint {
                key: TEST_KEY.into(),
                value: Some(self.ns.clone()),
                effect: "NoSchedule".into(),
                ..Taint::default()
            });
            let node = nodes
                .create(&PostParams::default(), &spec.to_node())
                .await
                .with_context(|| format!("creating node {}", spec.name))?;
            names.push(node.name_any());
        }
        for name in &names {
            wait::object(
                &nodes,
                name,
                Duration::from_secs(60),
                "node Ready and untainted by the node lifecycle controller",
                wait::node_schedulable,
            )
            .await?;
        }
        Ok(names)
    }

    /// Toleration for this test's node taint; put it on every workload the test runs.
    pub fn toleration(&self) -> Toleration {
        Toleration {
            key: Some(TEST_KEY.into()),
            operator: Some("Equal".into()),
            value: Some(self.ns.clone()),
            effect: Some("NoSchedule".into()),
            ..Toleration::default()
        }
    }

    /// Node selector for this test's nodes.
    pub fn node_selector(&self) -> std::collections::BTreeMap<String, String> {
        [(TEST_KEY.to_string(), self.ns.clone())].into()
    }
}

/// A free loopback port for a program the test starts, picked outside the kernel's
/// ephemeral range and held for this test binary, so no other process (and no
/// outgoing connection) takes it before the program binds it; see
/// [`steward_sim::free_port`].
pub fn free_port() -> u16 {
    steward_sim::free_port().expect("a free loopback port")
}

/// An HTTP client for tests (rustls on ring, as the product uses).
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

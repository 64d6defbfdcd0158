//! Starting and stopping the control plane.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::certs::{self, Pki};
use crate::error::{Error, Result, io};
use crate::ports::free_port;
use crate::process::Proc;
use crate::state::SimState;

const STAGES: &str = include_str!("../assets/stages.yaml");
/// Programs the cluster needs, in start order.
const PROGRAMS: [&str; 5] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
];

/// What happens to the cluster's processes when the process that started them ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// They are killed with the thread that spawned them (tests).
    WithParent,
    /// They keep running until `steward sim down` (people).
    Detached,
}

/// How to start a cluster.
#[derive(Debug, Clone)]
pub struct Options {
    /// Working directory: certificates, etcd data, kubeconfig, logs.
    pub dir: PathBuf,
    /// Directory holding etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok.
    pub bin_dir: PathBuf,
    /// Whether the processes outlive the caller.
    pub lifetime: Lifetime,
    /// Write an API audit log (`<dir>/audit.log`, JSON, one line per request), for
    /// counting requests by user agent in benchmarks.
    pub audit: bool,
}

/// A running control plane with kwok.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    kubeconfig: PathBuf,
    server: String,
    procs: Vec<Proc>,
    started_in: Duration,
}

struct Ports {
    etcd: u16,
    etcd_peer: u16,
    apiserver: u16,
    kcm: u16,
    scheduler: u16,
    kwok: u16,
}

impl Cluster {
    /// Starts etcd, the API server, the controller manager, the scheduler and kwok,
    /// and returns once the API server is ready and the controllers run. Ports are
    /// picked outside the kernel's ephemeral range and held for this process (see
    /// [`free_port`](crate::free_port)); a program that still finds its port in use
    /// (one some unrelated program bound by number) fails the start, which is then
    /// retried with new ports and a fresh etcd, up to three times.
    pub async fn start(opts: &Options) -> Result<Self> {
        let mut attempt = 1;
        loop {
            match Self::start_once(opts).await {
                Err(Error::Exited { tail, .. })
                    if attempt < 3 && tail.contains("address already in use") =>
                {
                    tracing::warn!(
                        attempt,
                        "a port was taken during start-up; retrying with new ports"
                    );
                    let etcd = opts.dir.join("etcd");
                    let _ = std::fs::remove_dir_all(&etcd);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn start_once(opts: &Options) -> Result<Self> {
        let begin = Instant::now();
        let bins = resolve_bins(&opts.bin_dir)?;
        let logs = opts.dir.join("logs");
        for d in [&opts.dir, &logs] {
            std::fs::create_dir_all(d).map_err(io("creating", d.as_path()))?;
        }
        let net = RealNodeNet::from_env();
        let pki = certs::generate(&opts.dir.join("pki"), &net.extra_sans())?;
        let stages = opts.dir.join("kwok-stages.yaml");
        std::fs::write(&stages, STAGES).map_err(io("writing", &stages))?;
        let ports = Ports {
            etcd: free_port()?,
            etcd_peer: free_port()?,
            apiserver: free_port()?,
            kcm: free_port()?,
            scheduler: free_port()?,
            kwok: free_port()?,
        };
        let server = format!("https://{}:{}", net.api_address(), ports.apiserver);
        let kubeconfig = opts.dir.join("kubeconfig");
        write_kubeconfig(&kubeconfig, &server, &pki)?;

        let mut cluster = Self {
            dir: opts.dir.clone(),
            kubeconfig,
            server,
            procs: Vec::new(),
            started_in: Duration::ZERO,
        };
        let spawn = |name: &'static str, args: Vec<String>| {
            Proc::spawn(name, &bins.join(name), &args, &logs, opts.lifetime)
        };

        cluster
            .procs
            .push(spawn("etcd", etcd_args(&opts.dir, &ports))?);
        cluster
            .wait("etcd to accept connections", 30, || async {
                Ok(tokio::net::TcpStream::connect(("127.0.0.1", ports.etcd))
                    .await
                    .is_ok())
            })
            .await?;

        let mut api_args = apiserver_args(&opts.dir, &ports, &pki, &net);
        if opts.audit {
            let policy = opts.dir.join("audit-policy.yaml");
            let text = "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n";
            std::fs::write(&policy, text).map_err(io("writing", &policy))?;
            api_args.push(format!("--audit-policy-file={}", policy.display()));
            api_args.push(format!(
                "--audit-log-path={}",
                opts.dir.join("audit.log").display()
            ));
            api_args.push("--audit-log-format=json".into());
        }
        cluster.procs.push(spawn("kube-apiserver", api_args)?);
        let client = cluster.client().await?;
        cluster
            .wait("kube-apiserver /readyz", 90, || async {
                let req = http_get("/readyz");
                Ok(client
                    .request_text(req)
                    .await
                    .is_ok_and(|body| body.trim() == "ok"))
            })
            .await?;

        let kc = cluster.kubeconfig.display().to_string();
        cluster.procs.push(spawn(
            "kube-controller-manager",
            kcm_args(&kc, &ports, &pki),
        )?);
        cluster
            .procs
            .push(spawn("kube-scheduler", scheduler_args(&kc, &ports))?);
        cluster
            .procs
            .push(spawn("kwok", kwok_args(&kc, &ports, &stages))?);
        let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
        cluster
            .wait(
                "kube-controller-manager to create the default ServiceAccount",
                60,
                || async { Ok(sas.get_opt("default").await?.is_some()) },
            )
            .await?;
        cluster.started_in = begin.elapsed();
        tracing::info!(server = %cluster.server, seconds = cluster.started_in.as_secs_f64(), "simulated cluster ready");
        Ok(cluster)
    }

    /// Path of the admin kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// URL of the API server.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Working directory of the cluster.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Time from [`Cluster::start`] until the cluster was ready.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// Program name and process id of each running component.
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        self.procs.iter().map(|p| (p.name, p.child.id())).collect()
    }

    /// A client with admin rights. Create one per Tokio runtime.
    pub async fn client(&self) -> Result<kube::Client> {
        client_for(&self.kubeconfig).await
    }

    /// Leaves the processes running and records them for `steward sim status|down`.
    pub fn detach(mut self) -> Result<SimState> {
        let state = SimState {
            dir: self.dir.clone(),
            kubeconfig: self.kubeconfig.clone(),
            server: self.server.clone(),
            pids: self
                .procs
                .iter()
                .map(|p| (p.name.to_string(), p.child.id()))
                .collect(),
        };
        state.save()?;
        self.procs.clear();
        Ok(state)
    }

    async fn wait<F, Fut>(&mut self, what: &str, seconds: u64, mut ready: F) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<bool>>,
    {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            for p in &mut self.procs {
                p.check_alive()?;
            }
            if ready().await.unwrap_or(false) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Timeout {
                    what: what.to_string(),
                    seconds,
                    logs: self.dir.join("logs"),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in self.procs.iter_mut().rev() {
            p.kill();
        }
    }
}

/// A client for the kubeconfig of a simulated cluster.
pub(crate) async fn client_for(kubeconfig: &Path) -> Result<kube::Client> {
    let err = |source| Error::Kubeconfig {
        path: kubeconfig.to_path_buf(),
        source,
    };
    let kc = Kubeconfig::read_from(kubeconfig).map_err(err)?;
    let mut config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(err)?;
    // Components and tests share one API server; keep requests from queueing client-side.
    config.read_timeout = Some(Duration::from_secs(300));
    // kube retries 429 by default (up to 15 times, backing off to minutes), which
    // turns an eviction refused by a PodDisruptionBudget into a long hang; callers
    // classify and retry API errors themselves.
    config.default_retry = false;
    Ok(kube::Client::try_from(config)?)
}

pub(crate) fn http_get(path: &str) -> http::Request<Vec<u8>> {
    let mut req = http::Request::new(Vec::new());
    *req.uri_mut() = http::Uri::try_from(path).unwrap_or_default();
    req
}

fn resolve_bins(dir: &Path) -> Result<PathBuf> {
    for program in PROGRAMS {
        if !dir.join(program).is_file() {
            return Err(Error::MissingBinary {
                program,
                dir: dir.to_path_buf(),
            });
        }
    }
    Ok(dir.to_path_buf())
}

fn write_kubeconfig(path: &Path, server: &str, pki: &Pki) -> Result<()> {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: steward-sim\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\n\
         users:\n- name: steward-admin\n  user:\n    client-certificate: {cert}\n    client-key: {key}\n\
         contexts:\n- name: steward-sim\n  context:\n    cluster: steward-sim\n    user: steward-admin\ncurrent-context: steward-sim\n",
        ca = pki.ca_cert.display(),
        cert = pki.admin_cert.display(),
        key = pki.admin_key.display(),
    );
    std::fs::write(path, text).map_err(io("writing kubeconfig", path))
}

fn etcd_args(dir: &Path, p: &Ports) -> Vec<String> {
    let client = format!("http://127.0.0.1:{}", p.etcd);
    let peer = format!("http://127.0.0.1:{}", p.etcd_peer);
    vec![
        "--name=sim".into(),
        format!("--data-dir={}", dir.join("etcd").display()),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=sim={peer}"),
        // A throw-away test cluster: durability is not worth an fsync per write.
        "--unsafe-no-fsync=true".into(),
        "--log-level=warn".into(),
    ]
}

/// PROTOTYPE (hack/realnode): `STEWARD_SIM_REALNODE_NET=10.N` puts the API server on
/// 10.N.0.1, the host end of the real nodes' bridge (`hack/realnode/net.sh` creates
/// it first), so kubelets, kube-proxies and pods in the node network namespaces reach
/// it; Services get 10.N.64.0/20, routed to a real node's kube-proxy.
struct RealNodeNet(Option<String>);

impl RealNodeNet {
    fn from_env() -> Self {
        Self(std::env::var("STEWARD_SIM_REALNODE_NET").ok())
    }
    fn api_address(&self) -> String {
        match &self.0 {
            Some(n) => format!("{n}.0.1"),
            None => "127.0.0.1".into(),
        }
    }
    fn service_cidr(&self) -> String {
        match &self.0 {
            Some(n) => format!("{n}.64.0/20"),
            None => "10.96.0.0/16".into(),
        }
    }
    fn extra_sans(&self) -> Vec<String> {
        match &self.0 {
            Some(n) => vec![format!("{n}.0.1"), format!("{n}.64.1")],
            None => vec!["10.96.0.1".into()],
        }
    }
}

fn apiserver_args(dir: &Path, p: &Ports, pki: &Pki, net: &RealNodeNet) -> Vec<String> {
    let (key, public) = (pki.sa_key.display(), pki.sa_pub.display());
    let address = net.api_address();
    let mut args = vec![
        format!("--etcd-servers=http://127.0.0.1:{}", p.etcd),
        format!("--bind-address={address}"),
        // On one address only, the API server must be told its address.
        format!("--advertise-address={address}"),
        format!("--secure-port={}", p.apiserver),
        format!("--cert-dir={}", dir.join("apiserver").display()),
        format!("--tls-cert-file={}", pki.serving_cert.display()),
        format!("--tls-private-key-file={}", pki.serving_key.display()),
        format!("--client-ca-file={}", pki.ca_cert.display()),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        format!("--service-account-key-file={public}"),
        format!("--service-account-signing-key-file={key}"),
        // Without real nodes only used to allocate ClusterIPs; nothing routes to them.
        format!("--service-cluster-ip-range={}", net.service_cidr()),
        // The API server's identity towards kubelets (logs, exec): the admin certificate.
        format!("--kubelet-client-certificate={}", pki.admin_cert.display()),
        format!("--kubelet-client-key={}", pki.admin_key.display()),
        "--authorization-mode=Node,RBAC".into(),
        "--allow-privileged=true".into(),
        "--profiling=false".into(),
        "--v=1".into(),
    ];
    if net.0.is_some() {
        // Real nodes never pull: a MutatingAdmissionPolicy (beta, off by default in
        // 1.34) sets imagePullPolicy: Never on every container (hack/realnode).
        args.push("--feature-gates=MutatingAdmissionPolicy=true".into());
        args.push("--runtime-config=admissionregistration.k8s.io/v1beta1=true".into());
        // Node names resolve nowhere here; reach real kubelets at their InternalIP.
        // (Not without real nodes: kwok nodes' InternalIPs lead nowhere, and a name
        // that does not resolve fails faster than an address that does not answer.)
        args.push("--kubelet-preferred-address-types=InternalIP".into());
    }
    args
}

/// Flags kube-controller-manager and kube-scheduler share: admin kubeconfig for API,
/// authentication and authorization, no leader election, serving on loopback.
fn component_args(kubeconfig: &str, port: u16) -> Vec<String> {
    vec![
        format!("--kubeconfig={kubeconfig}"),
        format!("--authentication-kubeconfig={kubeconfig}"),
        format!("--authorization-kubeconfig={kubeconfig}"),
        "--leader-elect=false".into(),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={port}"),
        "--v=1".into(),
    ]
}

fn kcm_args(kubeconfig: &str, p: &Ports, pki: &Pki) -> Vec<String> {
    let mut args = component_args(kubeconfig, p.kcm);
    args.extend([
        format!(
            "--service-account-private-key-file={}",
            pki.sa_key.display()
        ),
        format!("--root-ca-file={}", pki.ca_cert.display()),
        "--use-service-account-credentials=false".into(),
        // The defaults (20 QPS) make thousands of simulated pods crawl.
        "--kube-api-qps=200".into(),
        "--kube-api-burst=400".into(),
        "--concurrent-replicaset-syncs=10".into(),
        "--concurrent-gc-syncs=40".into(),
    ]);
    args
}

fn scheduler_args(kubeconfig: &str, p: &Ports) -> Vec<String> {
    component_args(kubeconfig, p.scheduler)
}

fn kwok_args(kubeconfig: &str, p: &Ports, stages: &Path) -> Vec<String> {
    vec![
        format!("--kubeconfig={kubeconfig}"),
        format!("--config={}", stages.display()),
        "--manage-all-nodes=false".into(),
        format!(
            "--manage-nodes-with-annotation-selector={}=fake",
            crate::KWOK_NODE_ANNOTATION
        ),
        format!("--server-address=127.0.0.1:{}", p.kwok),
        "--node-lease-duration-seconds=40".into(),
        // Pod IPs are only data in pod status here; a /16 holds thousands of pods.
        "--cidr=10.244.0.0/16".into(),
    ]
}

//! Starting and stopping the control plane, and the real nodes beside it.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;

use crate::certs;
use crate::client::{client_for, http_get, write_kubeconfig};
use crate::error::{Error, Result, io};
use crate::flags::{self, Ports};
use crate::options::{Options, check};
use crate::ports::free_port;
use crate::process::Proc;
use crate::realnode::{self, RealNodes};
use crate::state::{RealNodesState, SimState};

const STAGES: &str = include_str!("../assets/stages.yaml");
/// A running control plane with kwok, and real nodes if asked for.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    kubeconfig: PathBuf,
    server: String,
    procs: Vec<Proc>,
    /// In a mutex so that a cluster shared as `&'static` (testkit) can still stop its
    /// real nodes at process exit.
    real: Mutex<Option<RealNodes>>,
    started_in: Duration,
    nodes_ready_in: Duration,
}

impl Cluster {
    /// Starts etcd, the API server, the controller manager, the scheduler and kwok
    /// (then the real nodes), and returns once the API server is ready, the
    /// controllers run and every real node is Ready. Ports are picked outside the
    /// kernel's ephemeral range and held for this process (see
    /// [`free_port`](crate::free_port)); a program that still finds its port in use
    /// (one some unrelated program bound by number) fails the start, which is then
    /// retried with new ports and a fresh etcd, up to three times.
    pub async fn start(opts: &Options) -> Result<Self> {
        check(opts)?;
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
        let logs = opts.dir.join("logs");
        for d in [&opts.dir, &logs] {
            std::fs::create_dir_all(d).map_err(io("creating", d.as_path()))?;
        }
        // The bridge first: the API server binds its address.
        let real = match opts.real_nodes {
            0 => None,
            n => Some(RealNodes::reserve(n)?),
        };
        let net = real.as_ref().map(RealNodes::net);
        let (pki, ca) = certs::generate(&opts.dir.join("pki"), &flags::extra_sans(net))?;
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
        let server = format!("https://{}:{}", flags::api_address(net), ports.apiserver);
        let kubeconfig = opts.dir.join("kubeconfig");
        write_kubeconfig(&kubeconfig, &server, &pki)?;

        let mut cluster = Self {
            dir: opts.dir.clone(),
            kubeconfig,
            server,
            procs: Vec::new(),
            real: Mutex::new(real),
            started_in: Duration::ZERO,
            nodes_ready_in: Duration::ZERO,
        };
        let spawn = |name: &'static str, args: Vec<String>| {
            Proc::spawn(name, &opts.bin_dir.join(name), &args, &logs, opts.lifetime)
        };

        cluster
            .procs
            .push(spawn("etcd", flags::etcd_args(&opts.dir, &ports))?);
        cluster
            .wait("etcd to accept connections", 30, || async {
                Ok(tokio::net::TcpStream::connect(("127.0.0.1", ports.etcd))
                    .await
                    .is_ok())
            })
            .await?;

        let mut api_args = flags::apiserver_args(&opts.dir, &ports, &pki, net);
        if opts.audit {
            api_args.extend(audit_args(&opts.dir)?);
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
            flags::kcm_args(&kc, &ports, &pki),
        )?);
        cluster
            .procs
            .push(spawn("kube-scheduler", flags::scheduler_args(&kc, &ports))?);
        cluster
            .procs
            .push(spawn("kwok", flags::kwok_args(&kc, &ports, &stages))?);
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

        let mut real = cluster
            .real
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(real) = real.as_mut() {
            let nodes_begin = Instant::now();
            realnode::never_pull(&client).await?;
            real.start(
                &ca,
                &realnode::Start {
                    dir: &opts.dir,
                    bin_dir: &opts.bin_dir,
                    images: &opts.images,
                    server: &cluster.server,
                    ca_cert: &pki.ca_cert,
                    lifetime: opts.lifetime,
                },
            )?;
            real.wait_ready(&client, Duration::from_secs(120)).await?;
            cluster.nodes_ready_in = nodes_begin.elapsed();
            tracing::info!(nodes = ?real.names(), seconds = cluster.nodes_ready_in.as_secs_f64(), "real nodes ready");
        }
        *cluster
            .real
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner) = real;
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

    /// Time from [`Cluster::start`] until the control plane was ready.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// Time from the control plane being ready until every real node was Ready.
    pub fn real_nodes_ready_in(&self) -> Duration {
        self.nodes_ready_in
    }

    /// Names of the real nodes (`real-node-1`, ...).
    pub fn real_nodes(&self) -> Vec<String> {
        self.real()
            .as_ref()
            .map(RealNodes::names)
            .unwrap_or_default()
    }

    /// Stops the real nodes now and removes everything they set up on the machine
    /// (what dropping the cluster does first); for a cluster that is never dropped.
    pub fn stop_real_nodes(&self) {
        let nodes = self.real().take();
        drop(nodes);
    }

    fn real(&self) -> MutexGuard<'_, Option<RealNodes>> {
        self.real.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The network namespace of a real node (`ip netns exec NAME ...` runs a command
    /// where the node's pods and Services are reachable), if it is one of ours.
    pub fn real_node_netns(&self, node: &str) -> Option<String> {
        let real = self.real();
        let real = real.as_ref()?;
        let i: u8 = node.strip_prefix("real-node-")?.parse().ok()?;
        real.names()
            .contains(&node.to_string())
            .then(|| real.net().node(i).netns)
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
        let pids: std::collections::BTreeMap<String, u32> = self
            .procs
            .iter()
            .map(|p| (p.name.to_string(), p.child.id()))
            .collect();
        let real = self.real().as_mut().map(|r| RealNodesState {
            net: r.net().0,
            nodes: r.detach().into_iter().collect(),
        });
        if let Some(r) = &real {
            let owners: Vec<u32> = pids.values().chain(r.nodes.values()).copied().collect();
            realnode::record_owners(realnode::Net(r.net), &owners)?;
        }
        let state = SimState {
            dir: self.dir.clone(),
            kubeconfig: self.kubeconfig.clone(),
            server: self.server.clone(),
            pids,
            real_nodes: real,
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
        // Nodes first: their kubelets would otherwise log the API server's end.
        self.stop_real_nodes();
        for p in self.procs.iter_mut().rev() {
            p.kill();
        }
    }
}

fn audit_args(dir: &Path) -> Result<Vec<String>> {
    let policy = dir.join("audit-policy.yaml");
    let text = "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n";
    std::fs::write(&policy, text).map_err(io("writing", &policy))?;
    Ok(vec![
        format!("--audit-policy-file={}", policy.display()),
        format!("--audit-log-path={}", dir.join("audit.log").display()),
        "--audit-log-format=json".into(),
    ])
}

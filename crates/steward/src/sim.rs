//! `steward sim up|down|status`: the same real control plane the tests use, started
//! for people. The processes outlive `up`; their pids and the kubeconfig are kept in
//! the state directory for `status` and `down`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use steward_runtime::i18n::{Lang, Localized};
use steward_sim::{Cluster, Lifetime, NodeSpec, Options, SimState};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// State directory: certificates, etcd data, logs, kubeconfig.
    #[arg(long, env = "STEWARD_SIM_DIR", global = true, value_name = "DIR")]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    command: SimCommand,
}

#[derive(Debug, clap::Subcommand)]
enum SimCommand {
    /// Start the cluster and add kwok nodes; prints the kubeconfig path.
    Up(UpArgs),
    /// Show the processes, API server, nodes and pods of the cluster.
    Status,
    /// Stop the cluster and delete its state directory.
    Down,
}

#[derive(Debug, clap::Args)]
struct UpArgs {
    /// Directory with etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (printed by hack/controlplane/build.sh).
    #[arg(long, env = "STEWARD_CONTROLPLANE_BIN", value_name = "DIR")]
    bin_dir: PathBuf,
    /// Number of kwok nodes to add.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Labels for the nodes, as key=value (repeatable), e.g. karpenter.sh/nodepool=default.
    #[arg(long = "node-label", value_name = "KEY=VALUE", value_parser = parse_label)]
    node_labels: Vec<(String, String)>,
    /// Cpu capacity of each node.
    #[arg(long, default_value = "4")]
    node_cpu: String,
    /// Memory capacity of each node.
    #[arg(long, default_value = "16Gi")]
    node_memory: String,
    /// Write the API server's audit log (JSON lines) to DIR/audit.log.
    #[arg(long)]
    audit: bool,
    /// Number of real nodes (real kubelet, containerd, runc, CNI, kube-proxy, each in
    /// its own network namespace) beside the kwok nodes; needs root.
    #[arg(long, default_value_t = 0, value_name = "N")]
    real_nodes: usize,
    /// OCI image archive to import into every real node (repeatable; at least the
    /// pause image). hack/realnode/images.sh builds pause, the test images and steward's
    /// own, and prints their paths.
    #[arg(long = "image", value_name = "ARCHIVE")]
    images: Vec<PathBuf>,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("--node-label \"{s}\": expected KEY=VALUE"))?;
    if k.is_empty() {
        return Err(format!("--node-label \"{s}\": the key is empty"));
    }
    Ok((k.to_string(), v.to_string()))
}

enum Msg {
    Ready { seconds: f64, nodes: usize },
    RealReady { seconds: f64, nodes: Vec<String> },
    Export(PathBuf),
    Stopped(PathBuf),
    AlreadyRunning(PathBuf),
}

impl Localized for Msg {
    fn en(&self) -> String {
        match self {
            Self::Ready { seconds, nodes } => {
                format!("simulated cluster ready in {seconds:.1}s with {nodes} kwok nodes")
            }
            Self::RealReady { seconds, nodes } => {
                format!("real nodes {} Ready {seconds:.1}s later", nodes.join(", "))
            }
            Self::Export(p) => format!("use it with:\n  export KUBECONFIG={}", p.display()),
            Self::Stopped(d) => format!("simulated cluster stopped; removed {}", d.display()),
            Self::AlreadyRunning(p) => format!(
                "a simulated cluster is already running; KUBECONFIG={}",
                p.display()
            ),
        }
    }

    fn ko(&self) -> String {
        match self {
            Self::Ready { seconds, nodes } => format!(
                "시뮬레이션 클러스터가 {seconds:.1}초 만에 준비되었습니다 (kwok 노드 {nodes}대)"
            ),
            Self::RealReady { seconds, nodes } => format!(
                "실제 노드 {}가 {seconds:.1}초 뒤 준비되었습니다",
                nodes.join(", ")
            ),
            Self::Export(p) => format!(
                "다음과 같이 사용하세요:\n  export KUBECONFIG={}",
                p.display()
            ),
            Self::Stopped(d) => {
                format!("시뮬레이션 클러스터를 멈추고 {}를 지웠습니다", d.display())
            }
            Self::AlreadyRunning(p) => format!(
                "시뮬레이션 클러스터가 이미 실행 중입니다; KUBECONFIG={}",
                p.display()
            ),
        }
    }
}

pub async fn run(args: Args, lang: Lang) -> anyhow::Result<steward_runtime::Exit> {
    let dir = match args.dir {
        Some(d) => d,
        None => default_dir()?,
    };
    match args.command {
        SimCommand::Up(up) => self::up(dir, up, lang).await,
        SimCommand::Status => status(&dir).await,
        SimCommand::Down => {
            SimState::load(&dir)?.stop(Duration::from_secs(10))?;
            println!("{}", Msg::Stopped(dir).render(lang));
            Ok(steward_runtime::Exit::Ok)
        }
    }
}

fn default_dir() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_STATE_HOME") {
        Some(d) => PathBuf::from(d),
        None => std::env::home_dir()
            .context("HOME is not set; pass --dir")?
            .join(".local/state"),
    };
    Ok(base.join("steward/sim"))
}

async fn up(dir: PathBuf, args: UpArgs, lang: Lang) -> anyhow::Result<steward_runtime::Exit> {
    if let Ok(state) = SimState::load(&dir) {
        if state.running().values().any(|r| *r) {
            bail!(Msg::AlreadyRunning(state.kubeconfig).en());
        }
        // Left over from a crash or reboot: nothing runs, start afresh.
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("removing stale {}", dir.display()))?;
    }
    let cluster = Cluster::start(&Options {
        dir,
        bin_dir: args.bin_dir,
        lifetime: Lifetime::Detached,
        audit: args.audit,
        real_nodes: args.real_nodes,
        images: args.images,
    })
    .await?;
    let client = cluster.client().await?;
    let specs: Vec<NodeSpec> = (0..args.nodes)
        .map(|i| {
            let spec =
                NodeSpec::new(format!("kwok-node-{i}")).capacity(&args.node_cpu, &args.node_memory);
            args.node_labels
                .iter()
                .fold(spec, |s, (k, v)| s.label(k, v))
        })
        .collect();
    steward_sim::add_nodes(&client, &specs, Duration::from_secs(60)).await?;
    let seconds = cluster.started_in().as_secs_f64();
    let real = Msg::RealReady {
        seconds: cluster.real_nodes_ready_in().as_secs_f64(),
        nodes: cluster.real_nodes(),
    };
    let state = cluster.detach()?;
    println!(
        "{}",
        Msg::Ready {
            seconds,
            nodes: args.nodes
        }
        .render(lang)
    );
    if state.real_nodes.is_some() {
        println!("{}", real.render(lang));
    }
    println!("{}", Msg::Export(state.kubeconfig).render(lang));
    Ok(steward_runtime::Exit::Ok)
}

async fn status(dir: &std::path::Path) -> anyhow::Result<steward_runtime::Exit> {
    let state = SimState::load(dir)?;
    let running = state.running();
    println!("{:<26} {:>8}  STATE", "COMPONENT", "PID");
    let programs = state.pids.iter().map(|(n, p)| (n.clone(), *p));
    for (name, pid) in programs.chain(state.real_node_pids()) {
        let s = if running.get(&name).copied().unwrap_or(false) {
            "running"
        } else {
            "stopped"
        };
        println!("{name:<26} {pid:>8}  {s}");
    }
    if let Some(r) = &state.real_nodes {
        println!(
            "real nodes: network 10.{}.0.0/16, bridge stwb{}",
            r.net, r.net
        );
    }
    println!("kubeconfig: {}", state.kubeconfig.display());
    let client = state.client().await?;
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .with_context(|| format!("API server {}", state.server))?;
    let pods = Api::<Pod>::all(client).list(&ListParams::default()).await?;
    let ready = nodes
        .items
        .iter()
        .filter(|n| steward_sim::is_ready(n))
        .count();
    let running_pods = pods
        .items
        .iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .count();
    println!("api server: {} (reachable)", state.server);
    let real: Vec<&Node> = nodes
        .items
        .iter()
        .filter(|n| n.labels().contains_key(steward_sim::REAL_NODE_LABEL))
        .collect();
    let real_ready = real.iter().filter(|n| steward_sim::is_ready(n)).count();
    println!(
        "nodes: {} ({ready} Ready; {} real, {real_ready} of them Ready)",
        nodes.items.len(),
        real.len()
    );
    println!("pods: {} ({running_pods} Running)", pods.items.len());
    let all_up = running.values().all(|r| *r);
    Ok(if all_up {
        steward_runtime::Exit::Ok
    } else {
        steward_runtime::Exit::Failed
    })
}

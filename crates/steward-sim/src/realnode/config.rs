//! The configuration files of one real node: containerd, the CNI network, kubelet,
//! kube-proxy and their kubeconfigs. Pure: paths and addresses in, file text out.

use std::path::Path;

use super::plan::{Net, NodePlan};

/// Everything a node's configuration depends on.
#[derive(Debug, Clone)]
pub(crate) struct NodeConfig<'a> {
    /// The node's directory (state of containerd, kubelet, logs).
    pub dir: &'a Path,
    pub net: Net,
    pub node: &'a NodePlan,
    /// The API server as the node reaches it, `https://10.N.0.1:PORT`.
    pub server: &'a str,
    pub ca_cert: &'a Path,
    /// The runc binary containerd runs.
    pub runc: &'a str,
    /// kube-proxy's mode: `iptables` or `nftables`.
    pub proxy_mode: &'a str,
}

impl NodeConfig<'_> {
    fn path(&self, rel: &str) -> String {
        self.dir.join(rel).display().to_string()
    }

    /// A kubeconfig for a client certificate `pki/<user>.crt`.
    pub fn kubeconfig(&self, user: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\n\
             clusters: [{{name: sim, cluster: {{server: \"{server}\", certificate-authority: \"{ca}\"}}}}]\n\
             users: [{{name: u, user: {{client-certificate: \"{cert}\", client-key: \"{key}\"}}}}]\n\
             contexts: [{{name: c, context: {{cluster: sim, user: u}}}}]\ncurrent-context: c\n",
            server = self.server,
            ca = self.ca_cert.display(),
            cert = self.path(&format!("pki/{user}.crt")),
            key = self.path(&format!("pki/{user}.key")),
        )
    }

    /// containerd's configuration (version 2 schema, which containerd 1.6 and 2 read).
    pub fn containerd(&self) -> String {
        format!(
            r#"version = 2
root = "{d}/containerd/root"
state = "{d}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{d}/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  stream_server_address = "127.0.0.1"
  netns_mounts_under_state_dir = true
  # This machine's bounding set may lack CAP_SYS_RESOURCE: then nobody may lower an
  # oom_score_adj (the pause container's -998), and runc fails every sandbox. Clamp
  # scores to containerd's own, as for rootless containerd.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "{runc}"
        # runc's state of this node's containers (default /run/containerd/runc, shared
        # by every containerd on the machine).
        Root = "{d}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{d}/containerd/certs.d"
"#,
            d = self.dir.display(),
            pause = crate::images::PAUSE_IMAGE,
            runc = self.runc,
        )
    }

    /// The registry host of every registry: a closed port on the node's own loopback,
    /// so a pull (which the never-pull policy should already prevent) fails at once.
    pub fn registry_hosts() -> &'static str {
        "server = \"http://127.0.0.1:9\"\n[host.\"http://127.0.0.1:9\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
    }

    /// The CNI network: a bridge `cni0` in the node's netns, host-local addresses from
    /// the node's pod range, no masquerading (pod IPs are routed on the host).
    pub fn cni(&self) -> String {
        format!(
            r#"{{"cniVersion": "1.0.0", "name": "steward", "plugins": [
  {{"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {{"type": "host-local", "dataDir": "{ipam}",
            "ranges": [[{{"subnet": "{pods}"}}]], "routes": [{{"dst": "0.0.0.0/0"}}]}}}},
  {{"type": "portmap", "capabilities": {{"portMappings": true}}}}
]}}
"#,
            ipam = self.path("cni/ipam"),
            pods = self.node.pods,
        )
    }

    /// The kubelet's configuration.
    pub fn kubelet(&self) -> String {
        format!(
            r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://{d}/containerd.sock
# containerd 1.6 cannot tell the kubelet its cgroup driver; this machine has cgroup v1.
cgroupDriver: cgroupfs
failCgroupV1: false
# Its own root: two kubelets never see (and remove) each other's pod cgroups.
cgroupRoot: {cgroup}
address: {ip}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
tlsCertFile: {d}/pki/kubelet-serving.crt
tlsPrivateKeyFile: {d}/pki/kubelet-serving.key
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {ca}}}
authorization: {{mode: Webhook}}
podLogsDir: {d}/pod-logs
# No cluster DNS here.
resolvConf: ""
failSwapOn: false
# Images come only from archives imported at start: never collect them.
imageGCHighThresholdPercent: 100
evictionHard: {{memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}}
registerWithTaints: []
nodeStatusReportFrequency: 10s
"#,
            d = self.dir.display(),
            cgroup = self.node.cgroup,
            ip = self.node.ip,
            ca = self.ca_cert.display(),
        )
    }

    /// kube-proxy's configuration.
    pub fn kube_proxy(&self) -> String {
        format!(
            r#"apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {{kubeconfig: {kc}}}
hostnameOverride: {name}
mode: {mode}
clusterCIDR: {cidr}
bindAddress: {ip}
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# conntrack limits are machine-wide: leave them alone.
conntrack: {{maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}}
"#,
            kc = self.path("kube-proxy.kubeconfig"),
            name = self.node.name,
            mode = self.proxy_mode,
            cidr = self.net.cluster_cidr(),
            ip = self.node.ip,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with<T>(f: impl FnOnce(&NodeConfig<'_>) -> T) -> T {
        let node = Net(201).node(2);
        let cfg = NodeConfig {
            dir: Path::new("/tmp/sim/realnodes/real-node-2"),
            net: Net(201),
            node: &node,
            server: "https://10.201.0.1:6443",
            ca_cert: Path::new("/tmp/sim/pki/ca.crt"),
            runc: "/usr/sbin/runc",
            proxy_mode: "iptables",
        };
        f(&cfg)
    }

    #[test]
    fn files_parse_and_carry_the_plan() {
        with(|c| {
            let kubelet: serde_json::Value = serde_saphyr::from_str(&c.kubelet()).unwrap();
            assert_eq!(kubelet["cgroupRoot"], "/steward-stw201n2");
            assert_eq!(kubelet["address"], "10.201.0.12");
            assert_eq!(kubelet["imageGCHighThresholdPercent"], 100);
            let proxy: serde_json::Value = serde_saphyr::from_str(&c.kube_proxy()).unwrap();
            assert_eq!(proxy["clusterCIDR"], "10.201.128.0/17");
            assert_eq!(proxy["hostnameOverride"], "real-node-2");
            let cni: serde_json::Value = serde_json::from_str(&c.cni()).unwrap();
            assert_eq!(
                cni["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
                "10.201.130.0/24"
            );
            let kc: serde_json::Value =
                serde_saphyr::from_str(&c.kubeconfig("kube-proxy")).unwrap();
            assert_eq!(
                kc["users"][0]["user"]["client-key"],
                "/tmp/sim/realnodes/real-node-2/pki/kube-proxy.key"
            );
            let toml = c.containerd();
            assert!(toml.contains("restrict_oom_score_adj = true"));
            assert!(toml.contains("Root = \"/tmp/sim/realnodes/real-node-2/runc\""));
        });
    }
}

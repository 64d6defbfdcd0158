//! The address plan and names of one cluster's real nodes. Pure.
//!
//! A cluster with real nodes owns 10.N.0.0/16 (N in 200..=250, one not used by any
//! address or route of the machine): the host bridge `stwbN` holds 10.N.0.1 (the API
//! server binds there), node I sits at 10.N.0.(10+I) in network namespace `stwNnI`
//! (its host-side veth has the same name) with cgroup root `/steward-stwNnI`, its pods
//! get 10.N.(128+I).0/24, and Services 10.N.64.0/20. The rest of the /16 is routed
//! `unreachable`, so nothing of the cluster's range ever leaves by the default route.

use serde::{Deserialize, Serialize};

/// Lowest and highest N tried.
pub(crate) const FIRST: u8 = 200;
pub(crate) const LAST: u8 = 250;
/// Most real nodes one cluster may have (node IPs 10.N.0.11..=10.N.0.110).
pub const MAX_REAL_NODES: usize = 100;
/// Label every real node carries (`steward.io/real-node=true`).
pub const REAL_NODE_LABEL: &str = "steward.io/real-node";
/// Metric of the `unreachable` route that covers the cluster's /16.
pub(crate) const UNREACHABLE_METRIC: u32 = 4000;

/// The 10.N.0.0/16 of one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Net(pub u8);

/// Names and addresses of one real node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlan {
    /// Index, from 1.
    pub index: u8,
    /// Node name, `real-node-I`.
    pub name: String,
    /// Network namespace and host-side veth name, `stwNnI`.
    pub netns: String,
    /// The node's address on the bridge.
    pub ip: String,
    /// The node's pod range.
    pub pods: String,
    /// The node's cgroup root in every v1 hierarchy, `/steward-stwNnI`.
    pub cgroup: String,
}

impl Net {
    /// The host bridge, `stwbN`.
    pub fn bridge(self) -> String {
        format!("stwb{}", self.0)
    }
    /// The API server's address: the host end of the bridge.
    pub fn api_address(self) -> String {
        format!("10.{}.0.1", self.0)
    }
    /// The whole range, `10.N.0.0/16`.
    pub fn range(self) -> String {
        format!("10.{}.0.0/16", self.0)
    }
    /// Services, `10.N.64.0/20`.
    pub fn service_cidr(self) -> String {
        format!("10.{}.64.0/20", self.0)
    }
    /// The `kubernetes` Service's ClusterIP (first of the Service range).
    pub fn kubernetes_service_ip(self) -> String {
        format!("10.{}.64.1", self.0)
    }
    /// Every node's pods, `10.N.128.0/17` (kube-proxy's cluster CIDR).
    pub fn cluster_cidr(self) -> String {
        format!("10.{}.128.0/17", self.0)
    }
    /// Node `index` (from 1).
    pub fn node(self, index: u8) -> NodePlan {
        let n = self.0;
        let netns = format!("stw{n}n{index}");
        NodePlan {
            index,
            name: format!("real-node-{index}"),
            cgroup: format!("/steward-{netns}"),
            netns,
            ip: format!("10.{n}.0.{}", 10 + u16::from(index)),
            pods: format!("10.{n}.{}.0/24", 128 + u16::from(index)),
        }
    }
}

/// The first N whose 10.N. appears nowhere in `used` (the text of `ip -4 addr` and
/// `ip -4 route show table all`) and that is not in `taken` (bridges and records that
/// exist already).
pub(crate) fn pick(used: &str, taken: &[u8]) -> Option<Net> {
    (FIRST..=LAST)
        .find(|n| !taken.contains(n) && !mentions(used, *n))
        .map(Net)
}

/// Whether `text` holds an address starting `10.N.` as a whole word.
fn mentions(text: &str, n: u8) -> bool {
    let needle = format!("10.{n}.");
    text.match_indices(&needle).any(|(at, _)| {
        at == 0 || !text.as_bytes()[at - 1].is_ascii_digit() && text.as_bytes()[at - 1] != b'.'
    })
}

/// `stwbN` → N.
pub(crate) fn parse_bridge(name: &str) -> Option<u8> {
    name.strip_prefix("stwb")?.parse().ok().filter(in_range)
}

/// `stwNnI` (netns or veth) → (N, I).
pub(crate) fn parse_netns(name: &str) -> Option<(u8, u8)> {
    let (n, i) = name.strip_prefix("stw")?.split_once('n')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(n) || !digits(i) {
        return None;
    }
    let n: u8 = n.parse().ok().filter(in_range)?;
    Some((n, i.parse().ok()?))
}

/// `steward-stwNnI` (a cgroup directory) → (N, I).
pub(crate) fn parse_cgroup(name: &str) -> Option<(u8, u8)> {
    parse_netns(name.strip_prefix("steward-")?)
}

fn in_range(n: &u8) -> bool {
    (FIRST..=LAST).contains(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_plan() {
        let p = Net(201).node(3);
        assert_eq!(p.name, "real-node-3");
        assert_eq!(p.netns, "stw201n3");
        assert_eq!(p.ip, "10.201.0.13");
        assert_eq!(p.pods, "10.201.131.0/24");
        assert_eq!(p.cgroup, "/steward-stw201n3");
        assert_eq!(Net(201).node(100).ip, "10.201.0.110");
        assert_eq!(Net(201).node(100).pods, "10.201.228.0/24");
    }

    #[test]
    fn pick_skips_used_ranges() {
        let used = "inet 10.200.0.1/24 scope global stwb200\n\
                    10.202.5.0/24 via 10.202.0.11 dev x\n\
                    inet 110.201.0.1/8\n\
                    10.2010.1.1";
        // 110.201. and 10.2010. do not mention 10.201.
        assert_eq!(pick(used, &[]), Some(Net(201)));
        assert_eq!(pick(used, &[201]), Some(Net(203)));
        assert_eq!(pick("", &[]), Some(Net(200)));
        let all: Vec<u8> = (FIRST..=LAST).collect();
        assert_eq!(pick("", &all), None);
    }

    #[test]
    fn names_parse_only_our_own() {
        assert_eq!(parse_bridge("stwb201"), Some(201));
        assert_eq!(parse_bridge("stwb20"), None);
        assert_eq!(parse_bridge("stwbx"), None);
        assert_eq!(parse_netns("stw201n3"), Some((201, 3)));
        assert_eq!(parse_netns("stw201n"), None);
        assert_eq!(parse_netns("steward-test"), None);
        assert_eq!(parse_netns("stw12n3"), None);
        assert_eq!(parse_netns("stw201n3x"), None);
        assert_eq!(parse_cgroup("steward-stw250n1"), Some((250, 1)));
        assert_eq!(parse_cgroup("stw250n1"), None);
    }
}

//! The real image: `hack/image.sh` builds the static musl steward binary and packs
//! it. Run twice, it writes the same bytes (so the same manifest digest). Unpacked,
//! the binary runs alone under `chroot` as 65532:65532; resolves a cluster name
//! through resolv.conf search domains and a host name through /etc/hosts with musl's
//! own resolver (no NSS); verifies HTTPS with the CA bundle the image ships (and
//! fails without it). containerd's own importer names the image so a pod finds it,
//! and runs it as 65532. Needs root (chroot, DNS on port 53, containerd), musl-tools,
//! skopeo and containerd (hack/setup.sh). The first run compiles steward for musl in
//! release mode (minutes on 2 cores); later runs reuse target/.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::collections::HashMap;
use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Output};

use common::dns::Dns;
use common::https::{Https, PROMETHEUS_MARKER, SERVER_VERSION, Seen};
use common::real_image::{VERSION, image, repo, rootfs, steward_in, text, work};

#[test]
fn image_sh_twice_gives_the_same_digest() {
    let img = image();
    assert!(
        img.first == img.second,
        "two runs of hack/image.sh wrote different archives"
    );
    let l = &img.layout;
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(repo())
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    let labels = &l.config["config"]["Labels"];
    assert_eq!(labels["org.opencontainers.image.version"], VERSION);
    assert_eq!(
        labels["org.opencontainers.image.source"],
        env!("CARGO_PKG_REPOSITORY")
    );
    let revision = labels["org.opencontainers.image.revision"]
        .as_str()
        .unwrap();
    assert!(
        revision == head || revision == format!("{head}-dirty"),
        "{revision} vs {head}"
    );
    let ann = &l.index["manifests"][0]["annotations"];
    assert_eq!(ann["org.opencontainers.image.ref.name"], VERSION);
    assert_eq!(
        ann["io.containerd.image.name"],
        format!("localhost/steward:{VERSION}")
    );
    assert_eq!(
        img.path.file_name().unwrap().to_string_lossy(),
        format!("steward-{VERSION}-linux-amd64.oci.tar")
    );
    let layer = &l.manifest["layers"][0];
    let uncompressed: usize = l.layer.iter().map(|e| e.data.len()).sum();
    eprintln!(
        "image {} manifest {}: archive {} bytes, layer {} bytes compressed, files {} bytes",
        img.path.display(),
        l.manifest_digest,
        img.first.len(),
        layer["size"],
        uncompressed
    );
}

#[test]
fn skopeo_reads_the_real_archive() {
    let img = image();
    let o = Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci-archive:{}:{VERSION}", img.path.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["Digest"], img.layout.manifest_digest.as_str());
    assert_eq!(v["Architecture"], "amd64");
}

#[test]
fn binary_runs_alone_in_the_rootfs_as_65532() {
    let root = rootfs();
    let mut files = Vec::new();
    let mut stack = vec![root.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p.clone());
            } else {
                files.push(p.strip_prefix(root.path()).unwrap().display().to_string());
            }
        }
    }
    files.sort();
    assert_eq!(
        files,
        [
            "etc/group",
            "etc/passwd",
            "etc/ssl/certs/ca-certificates.crt",
            "usr/local/bin/steward"
        ],
        "no shell, no libraries, nothing else"
    );
    let o = steward_in(root.path(), &[], &["version", "--client"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("v{VERSION}")),
        "{}",
        text(&o)
    );

    // No path of the build machine is left in the binary.
    let bin = fs::read(root.path().join("usr/local/bin/steward")).unwrap();
    let home = std::env::var("HOME").unwrap_or_default();
    let cargo_home = std::env::var("CARGO_HOME").unwrap_or_else(|_| format!("{home}/.cargo"));
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .unwrap();
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    for path in [repo().display().to_string(), cargo_home, sysroot] {
        assert!(
            !bin.windows(path.len()).any(|w| w == path.as_bytes()),
            "the binary holds the build path {path}"
        );
    }
}

/// kubelet-style /etc/hosts and, for `dns`, /etc/resolv.conf of a pod in `default`.
fn pod_network(root: &Path, dns: Option<&Dns>, extra_hosts: &str) {
    let hosts =
        format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{extra_hosts}");
    fs::write(root.join("etc/hosts"), hosts).unwrap();
    if let Some(dns) = dns {
        let conf = format!(
            "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver {}\noptions ndots:5\n",
            dns.addr.ip()
        );
        fs::write(root.join("etc/resolv.conf"), conf).unwrap();
    }
}

#[test]
fn in_cluster_api_server_name_resolves_through_resolv_conf() {
    let root = rootfs();
    let https = Https::start(&["kubernetes.default.svc"]);
    let dns = Dns::start(
        Ipv4Addr::new(127, 83, 12, 53),
        HashMap::from([(
            "kubernetes.default.svc.cluster.local".to_string(),
            Ipv4Addr::LOCALHOST,
        )]),
    );
    pod_network(root.path(), Some(&dns), "");
    let sa = root
        .path()
        .join("var/run/secrets/kubernetes.io/serviceaccount");
    fs::create_dir_all(&sa).unwrap();
    fs::write(sa.join("ca.crt"), &https.ca_pem).unwrap();
    fs::write(sa.join("token"), "image-test-token").unwrap();
    fs::write(sa.join("namespace"), "default").unwrap();
    let port = https.addr.port().to_string();
    let env = [
        ("KUBERNETES_SERVICE_HOST", "kubernetes.default.svc"),
        ("KUBERNETES_SERVICE_PORT", port.as_str()),
    ];
    let o = steward_in(root.path(), &env, &["version", "--kube-config", "cluster"]);
    assert!(
        o.status.success(),
        "{}\nDNS questions: {:?}",
        text(&o),
        dns.questions()
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(SERVER_VERSION),
        "{}",
        text(&o)
    );
    let seen = https.seen();
    assert!(
        seen.iter()
            .any(|s| matches!(s, Seen::Request { path, host, bearer }
            if path.starts_with("/version") && *host == format!("kubernetes.default.svc:{port}")
               && bearer.as_deref() == Some("image-test-token"))),
        "{seen:?}"
    );
    // ndots:5: the name is tried with each search domain, in order, until one answers.
    let names: Vec<String> = dns
        .questions()
        .into_iter()
        .filter(|(_, t)| *t == 1)
        .map(|(n, _)| n)
        .collect();
    let walk = [
        "kubernetes.default.svc.default.svc.cluster.local",
        "kubernetes.default.svc.svc.cluster.local",
        "kubernetes.default.svc.cluster.local",
    ];
    let first: Vec<&str> = names.iter().map(String::as_str).take(3).collect();
    assert_eq!(first, walk, "A questions: {names:?}");
}

#[test]
fn https_to_a_named_host_verifies_with_the_image_ca_bundle() {
    let root = rootfs();
    let https = Https::start(&["prometheus.steward.test"]);
    pod_network(root.path(), None, "127.0.0.1\tprometheus.steward.test\n");
    let address = format!("https://prometheus.steward.test:{}", https.addr.port());
    let allocate = || {
        steward_in(
            root.path(),
            &[],
            &[
                "karpenter",
                "allocate-rate",
                "--nodepool-name",
                "np",
                "--prometheus-address",
                &address,
            ],
        )
    };
    let bundle = root.path().join("etc/ssl/certs/ca-certificates.crt");
    let shipped = fs::read_to_string(&bundle).unwrap();

    // The shipped roots do not know the test CA: refused before any request.
    let o = allocate();
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("UnknownIssuer"),
        "{}",
        text(&o)
    );
    assert!(
        https.seen().iter().all(|s| matches!(s, Seen::TlsError(_))),
        "{:?}",
        https.seen()
    );

    // The same bundle file with the test CA added: resolved through /etc/hosts,
    // verified, asked, and the stand-in's answer read.
    fs::write(&bundle, format!("{shipped}{}", https.ca_pem)).unwrap();
    let o = allocate();
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(PROMETHEUS_MARKER),
        "{}",
        text(&o)
    );
    assert!(
        https
            .seen()
            .iter()
            .any(|s| matches!(s, Seen::Request { path, host, .. }
            if path.starts_with("/api/v1/query") && host.starts_with("prometheus.steward.test:"))),
        "{:?}",
        https.seen()
    );

    // Without the bundle the HTTP client cannot even be built.
    fs::remove_file(&bundle).unwrap();
    let o = allocate();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("No CA certificates were loaded"),
        "{}",
        text(&o)
    );
}

#[test]
fn containerd_imports_it_by_name_and_runs_it_as_65532() {
    let img = image();
    let ctd = common::containerd::Containerd::start(&work());
    let name = format!("localhost/steward:{VERSION}");
    let ok = |o: Output| {
        assert!(
            o.status.success(),
            "{}\ncontainerd log: {}",
            text(&o),
            ctd.log()
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let archive = img.path.display().to_string();
    // The flags `kind load image-archive` passes (kind's nodeutils.LoadImageArchive).
    ok(ctd.ctr(&[
        "images",
        "import",
        "--all-platforms",
        "--digests",
        "--snapshotter",
        "native",
        &archive,
    ]));
    let list = ok(ctd.ctr(&["images", "ls"]));
    let line = list
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in\n{list}"));
    assert!(line.contains(&img.layout.manifest_digest), "{line}");

    let out = ok(ctd.ctr(&[
        "run",
        "--snapshotter",
        "native",
        "--rm",
        &name,
        "steward-version",
        "/usr/local/bin/steward",
        "version",
        "--client",
    ]));
    assert!(out.contains(&format!("v{VERSION}")), "{out}");

    ok(ctd.ctr(&[
        "containers",
        "create",
        "--snapshotter",
        "native",
        &name,
        "steward-spec",
    ]));
    let info: serde_json::Value =
        serde_json::from_str(&ok(ctd.ctr(&["containers", "info", "steward-spec"]))).unwrap();
    ok(ctd.ctr(&["containers", "rm", "steward-spec"]));
    let process = &info["Spec"]["process"];
    assert_eq!(
        (
            process["user"]["uid"].as_u64(),
            process["user"]["gid"].as_u64()
        ),
        (Some(65532), Some(65532)),
        "{process}"
    );
    assert_eq!(
        process["args"],
        serde_json::json!(["/usr/local/bin/steward"])
    );
    assert_eq!(info["Image"], name.as_str());
}

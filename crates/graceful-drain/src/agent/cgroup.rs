//! Which pod a process belongs to, from its `/proc/<pid>/cgroup`. Pure.
//!
//! The kubelet names a pod's cgroup after the pod UID, under both cgroup drivers
//! (`pkg/kubelet/cm/cgroup_manager_linux.go`, `ConvertCgroupNameToSystemd`):
//!
//! - cgroupfs: `/kubepods/besteffort/pod<uid>/<container>` (QoS class
//!   `burstable`/`besteffort`, none for guaranteed pods);
//! - systemd: `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice/cri-containerd-<id>.scope`,
//!   with the UID's `-` written as `_` (systemd reserves `-` for nesting).
//!
//! Both appear on cgroup v1 (one line per hierarchy) and v2 (`0::/...`), possibly
//! below a prefix (`/kubelet.slice/kubelet-kubepods.slice`, a kind node's
//! `/kubelet/kubepods`) and, seen from inside a cgroup namespace, relative to it
//! (`0::/../../kubepods-...-pod<uid>.slice/...`). So the path is matched by its
//! components, not by a prefix.

/// The pod UID a process's cgroup file names, lower-case with `-`; `None` when
/// the process belongs to no pod (a host daemon, the kubelet itself).
pub fn pod_uid(cgroup_file: &str) -> Option<String> {
    cgroup_file
        .lines()
        .filter_map(|line| line.splitn(3, ':').nth(2))
        .flat_map(|path| path.split('/'))
        .find_map(component_uid)
}

fn component_uid(component: &str) -> Option<String> {
    // systemd: `<anything>-pod<uid with _>.slice`.
    if let Some(slice) = component.strip_suffix(".slice") {
        let (_, uid) = slice.rsplit_once("-pod")?;
        return normalize(&uid.replace('_', "-"));
    }
    // cgroupfs: `pod<uid>`.
    normalize(component.strip_prefix("pod")?)
}

/// A pod UID as the API server writes it: a UUID (8-4-4-4-12 hex digits), or the
/// 32 hex digits the kubelet gives a static pod. Lower-cased; `None` otherwise.
pub fn normalize(uid: &str) -> Option<String> {
    let uid = uid.to_ascii_lowercase();
    let dashed = uid.len() == 36
        && uid.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    let plain = uid.len() == 32 && uid.chars().all(|c| c.is_ascii_hexdigit());
    (dashed || plain).then_some(uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "6f1c0a3e-2b7d-4c41-9a55-0e8b1d2c3f40";

    #[test]
    fn kubelet_cgroup_names() {
        let table: [(&str, Option<&str>); 14] = [
            // cgroup v1, cgroupfs driver, per QoS class.
            (
                "12:pids:/kubepods/besteffort/pod6f1c0a3e-2b7d-4c41-9a55-0e8b1d2c3f40/0123abcd\n11:memory:/kubepods/besteffort/pod6f1c0a3e-2b7d-4c41-9a55-0e8b1d2c3f40/0123abcd\n",
                Some(UID),
            ),
            (
                "4:cpu,cpuacct:/kubepods/burstable/pod6f1c0a3e-2b7d-4c41-9a55-0e8b1d2c3f40/abc",
                Some(UID),
            ),
            (
                "4:memory:/kubepods/pod6f1c0a3e-2b7d-4c41-9a55-0e8b1d2c3f40/abc",
                Some(UID),
            ),
            // cgroup v2, systemd driver, per QoS class.
            (
                "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod6f1c0a3e_2b7d_4c41_9a55_0e8b1d2c3f40.slice/cri-containerd-0123.scope\n",
                Some(UID),
            ),
            (
                "0::/kubepods.slice/kubepods-pod6f1c0a3e_2b7d_4c41_9a55_0e8b1d2c3f40.slice/cri-containerd-0123.scope",
                Some(UID),
            ),
            // The pause container's cgroup is the pod's own.
            (
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod6f1c0a3e_2b7d_4c41_9a55_0e8b1d2c3f40.slice",
                Some(UID),
            ),
            // Under a prefix (kind nodes, kubelet in a slice).
            (
                "0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod6f1c0a3e_2b7d_4c41_9a55_0e8b1d2c3f40.slice/cri-containerd-9.scope",
                Some(UID),
            ),
            // Seen from inside a cgroup namespace.
            (
                "0::/../../kubepods-besteffort-pod6f1c0a3e_2b7d_4c41_9a55_0e8b1d2c3f40.slice/cri-containerd-9.scope",
                Some(UID),
            ),
            // Upper case from a hand-made cgroup is still this pod.
            (
                "8:pids:/kubepods/besteffort/pod6F1C0A3E-2B7D-4C41-9A55-0E8B1D2C3F40",
                Some(UID),
            ),
            // A static pod: 32 hex digits.
            (
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0123456789abcdef0123456789abcdef.slice",
                Some("0123456789abcdef0123456789abcdef"),
            ),
            // Not pods.
            ("0::/system.slice/containerd.service", None),
            ("0::/kubepods.slice/kubepods-besteffort.slice", None),
            ("12:pids:/kubepods/besteffort/podnot-a-uid\n0::/\n", None),
            ("", None),
        ];
        for (file, want) in table {
            assert_eq!(pod_uid(file).as_deref(), want, "{file}");
        }
    }

    #[test]
    fn uids() {
        assert_eq!(normalize(UID).as_deref(), Some(UID));
        for bad in [
            "",
            "6f1c0a3e2b7d4c419a550e8b1d2c3f40aa",
            "6f1c0a3e-2b7d-4c41-9a55_0e8b1d2c3f40",
            "6f1c0a3e-2b7d-4c41-9a55-0e8b1d2c3f4g",
            "../../etc",
        ] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }
}

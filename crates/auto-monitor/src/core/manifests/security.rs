//! What the stack's Deployments run as: Pod Security `restricted` (non-root, no
//! privilege escalation, every capability dropped, seccomp `RuntimeDefault`), a
//! read-only root filesystem (each program writes only to its volumes), and
//! `fsGroup` so a PersistentVolume is writable by the program's user. The users
//! are the images' own (`nobody` for the Prometheus project's images, 472 for
//! Grafana's), so nothing in the images needs changing. node-exporter needs the
//! host's namespaces and is not covered (see docs/monitor.md). Pure.

use k8s_openapi::api::core::v1::{
    Capabilities, PodSecurityContext, SeccompProfile, SecurityContext,
};

/// The user (and group) a component's image runs as.
pub fn user(component: &str) -> i64 {
    match component {
        "grafana" => 472,
        _ => 65534,
    }
}

/// The pod's security context.
pub fn pod(component: &str) -> PodSecurityContext {
    let uid = user(component);
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(uid),
        run_as_group: Some(uid),
        fs_group: Some(uid),
        // Only a volume whose root is not already the group's is walked.
        fs_group_change_policy: Some("OnRootMismatch".into()),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

/// Every container's security context.
pub fn container() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restricted_as_the_images_own_users() {
        for (component, uid) in [
            ("prometheus", 65534),
            ("alertmanager", 65534),
            ("kube-state-metrics", 65534),
            ("grafana", 472),
        ] {
            let p = pod(component);
            assert_eq!(
                (p.run_as_user, p.fs_group, p.run_as_non_root),
                (Some(uid), Some(uid), Some(true)),
                "{component}"
            );
            assert_eq!(p.seccomp_profile.unwrap().type_, "RuntimeDefault");
        }
        let c = container();
        assert_eq!(c.allow_privilege_escalation, Some(false));
        assert_eq!(c.capabilities.unwrap().drop.unwrap(), ["ALL"]);
    }
}

//! `steward graceful-drain doctor`: the VerticalPodAutoscalers whose evictions
//! could be avoided altogether. When the API server has the `pods/resize`
//! subresource (in-place pod resize, beta and on by default since Kubernetes 1.33),
//! a VPA in `Recreate` (or its old alias `Auto`) mode can switch to
//! `InPlaceOrRecreate` and resize pods without evicting them.

use kube::api::{Api, DynamicObject, ListParams};
use kube::{Client, ResourceExt};
use serde::Serialize;
use steward_runtime::kube_client::KubeArgs;
use steward_runtime::{Lang, Localized};

use crate::error::{Result, kube as kerr};
use crate::messages::Msg;

/// `steward graceful-drain doctor`.
#[derive(Debug, Clone, clap::Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Only this namespace (default: all).
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: Option<String>,
    /// Print JSON instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// One VPA that could resize in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// `namespace/name` of the VPA.
    pub vpa: String,
    /// `Kind/name` of its target.
    pub target: String,
    /// Its update mode now.
    pub mode: String,
}

/// The report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The API server serves `pods/resize`.
    pub in_place_resize: bool,
    /// Whether the VPA API is installed.
    pub vpa_installed: bool,
    /// VPAs that could use `InPlaceOrRecreate`.
    pub candidates: Vec<Candidate>,
}

/// The candidate, if this VPA object is one. Pure.
pub fn candidate(vpa: &DynamicObject) -> Option<Candidate> {
    vpa.data.get("spec")?;
    // An absent updatePolicy means Auto, which the VPA treats as Recreate.
    let mode = crate::vpa::update_mode(vpa);
    if mode != "Recreate" && mode != "Auto" {
        return None;
    }
    Some(Candidate {
        vpa: format!("{}/{}", vpa.namespace().unwrap_or_default(), vpa.name_any()),
        target: crate::vpa::target(vpa).unwrap_or_else(|| "?/?".into()),
        mode: mode.to_string(),
    })
}

/// Whether the API server serves `pods/resize` (discovery, not the version: the
/// feature gate can be off on 1.33+ and on before).
pub async fn in_place_resize(client: &Client) -> Result<bool> {
    let core = client
        .list_core_api_resources("v1")
        .await
        .map_err(kerr("reading the core API's resources"))?;
    Ok(core.resources.iter().any(|r| r.name == "pods/resize"))
}

/// Builds the report.
pub async fn report(client: &Client, namespace: Option<&str>) -> Result<Report> {
    let in_place_resize = in_place_resize(client).await?;
    let ar = crate::vpa::api_resource();
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    let vpas = match api.list(&ListParams::default()).await {
        Ok(l) => l.items,
        Err(kube::Error::Api(s)) if s.code == 404 => {
            return Ok(Report {
                in_place_resize,
                vpa_installed: false,
                candidates: Vec::new(),
            });
        }
        Err(e) => return Err(kerr("listing VerticalPodAutoscalers")(e)),
    };
    let candidates = if in_place_resize {
        vpas.iter().filter_map(candidate).collect()
    } else {
        Vec::new()
    };
    Ok(Report {
        in_place_resize,
        vpa_installed: true,
        candidates,
    })
}

/// Runs the command.
pub async fn run(args: DoctorArgs, lang: Lang) -> Result<()> {
    let client = args.kube.connect().await?.client;
    let r = report(&client, args.namespace.as_deref()).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
        return Ok(());
    }
    println!(
        "in-place pod resize (pods/resize): {}",
        if r.in_place_resize { "yes" } else { "no" }
    );
    if !r.vpa_installed {
        println!("VerticalPodAutoscaler API: not installed");
    }
    if r.candidates.is_empty() {
        println!("{}", Msg::NoCandidates.render(lang));
    }
    for c in &r.candidates {
        println!(
            "{}",
            Msg::InPlaceCandidate {
                vpa: c.vpa.clone(),
                target: c.target.clone()
            }
            .render(lang)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recreate_and_auto_are_candidates() {
        let vpa = |mode: Option<&str>| -> DynamicObject {
            let mut spec =
                serde_json::json!({ "targetRef": { "kind": "Deployment", "name": "web" } });
            if let Some(m) = mode {
                spec["updatePolicy"] = serde_json::json!({ "updateMode": m });
            }
            serde_json::from_value(serde_json::json!({
                "apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler",
                "metadata": { "name": "v", "namespace": "shop" }, "spec": spec
            }))
            .unwrap()
        };
        let table = [
            (Some("Recreate"), true),
            (Some("Auto"), true),
            (None, true),
            (Some("InPlaceOrRecreate"), false),
            (Some("Initial"), false),
            (Some("Off"), false),
        ];
        for (mode, want) in table {
            assert_eq!(candidate(&vpa(mode)).is_some(), want, "{mode:?}");
        }
        assert_eq!(
            candidate(&vpa(Some("Recreate"))).unwrap().target,
            "Deployment/web"
        );
    }
}

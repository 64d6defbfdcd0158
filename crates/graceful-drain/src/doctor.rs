//! `steward graceful-drain doctor`: the VerticalPodAutoscalers whose evictions
//! could be avoided altogether. When the API server has the `pods/resize`
//! subresource (in-place pod resize, beta and on by default since Kubernetes 1.33),
//! a VPA in `Recreate` (or its old alias `Auto`) mode can switch to
//! `InPlaceOrRecreate` and resize pods without evicting them.

use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use serde::Serialize;
use steward_kube::error::ok_if_not_found;
use steward_runtime::kube_client::KubeArgs;
use steward_runtime::{Context, Localized, Output};

use crate::core::vpa::{self, Candidate};
use crate::error::{Error, Result, kube as kerr};
use crate::inplace::in_place_resize;
use crate::messages::Msg;

/// `steward graceful-drain doctor`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  steward graceful-drain doctor                  # every namespace
  steward graceful-drain doctor -n shop -o json  # one namespace, for a script")]
pub struct DoctorArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Only the VerticalPodAutoscalers of this namespace (default: every namespace).
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: Option<String>,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: Output,
    /// Deprecated spelling of `-o json`, kept for one release.
    #[arg(long, hide = true)]
    pub json: bool,
}

impl DoctorArgs {
    /// The output format, `--json` counting as `-o json`.
    pub fn format(&self) -> Output {
        if self.json { Output::Json } else { self.output }
    }
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

/// Builds the report.
pub async fn report(client: &Client, namespace: Option<&str>) -> Result<Report> {
    let in_place_resize = in_place_resize(client).await?;
    let ar = vpa::api_resource();
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    // 404: the VPA API is not installed.
    let Some(vpas) = ok_if_not_found(api.list(&ListParams::default()).await)
        .map_err(kerr("listing VerticalPodAutoscalers"))?
    else {
        return Ok(Report {
            in_place_resize,
            vpa_installed: false,
            candidates: Vec::new(),
        });
    };
    let candidates = if in_place_resize {
        vpas.items.iter().filter_map(vpa::candidate).collect()
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
pub async fn run(args: DoctorArgs, ctx: Context) -> Result<()> {
    let lang = ctx.lang;
    let client = args.kube.connect().await?.client;
    let r = report(&client, args.namespace.as_deref()).await?;
    if let Some(text) = args.format().render(&r) {
        println!("{}", text.map_err(Error::Output)?.trim_end());
        return Ok(());
    }
    let served = r.in_place_resize;
    println!("{}", Msg::InPlaceResize { served }.render(lang));
    if !r.vpa_installed {
        println!("{}", Msg::NoVpaApi.render(lang));
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

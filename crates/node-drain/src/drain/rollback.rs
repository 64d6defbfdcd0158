//! The end of a run: nodes this run cordoned but never started draining are
//! uncordoned and unmarked, so an interrupted or failed run leaves only the nodes it
//! touched (those stay cordoned and marked for the next run to resume).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::Api;

use crate::core::report::to_roll_back;
use crate::engine::{FIELD_MANAGER, record_state};
use crate::error::{Result, kube as kerr};

/// Uncordons the nodes [`to_roll_back`] names; returns those it uncordoned (a
/// failure is logged: the node stays cordoned and a person must uncordon it).
pub(super) async fn roll_back(
    client: &Client,
    cordoned: &[String],
    started: &BTreeSet<String>,
    resumed: &[String],
) -> Vec<String> {
    let api: Api<Node> = Api::all(client.clone());
    let mut done = Vec::new();
    for name in to_roll_back(cordoned, started, resumed) {
        match uncordon(&api, name).await {
            Ok(()) => done.push(name.clone()),
            Err(e) => {
                tracing::error!(node = %name, error = %e, "rolling back the cordon failed; uncordon it by hand");
            }
        }
    }
    done
}

async fn uncordon(api: &Api<Node>, name: &str) -> Result<()> {
    steward_kube::node::set_unschedulable(api, name, false, FIELD_MANAGER)
        .await
        .map_err(kerr(format!("uncordoning node {name}")))?;
    record_state(api, name, None)
        .await
        .map_err(kerr(format!("annotating node {name}")))?;
    tracing::info!(node = %name, "uncordoned: its drain never started");
    Ok(())
}

//! Webhooks against real HTTP receivers on loopback: each run's end and a stage's
//! final failure arrive signed (checked here with the `hmac` crate, not steward's
//! code), and a receiver that fails twice gets its delivery once it answers.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::*;

const KEY: &str = "webhook-key-81c2";

#[derive(Debug, Clone)]
struct Got {
    status: u16,
    delivery: String,
    signature: String,
    body: serde_json::Value,
    raw: Vec<u8>,
}

/// A receiver on loopback answering 503 to its first `fail` requests; what it got.
async fn receiver(fail: usize) -> (String, Arc<Mutex<Vec<Got>>>) {
    let got: Arc<Mutex<Vec<Got>>> = Arc::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let mut g = seen.lock().unwrap();
                let status = if g.len() < fail { 503 } else { 200 };
                let header = |k: &str| {
                    headers
                        .get(k)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                g.push(Got {
                    status,
                    delivery: header("x-steward-delivery"),
                    signature: header("x-steward-signature-256"),
                    body: serde_json::from_slice(&body).unwrap_or_default(),
                    raw: body.to_vec(),
                });
                StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, got)
}

fn signed(g: &Got) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
    mac.update(&g.raw);
    g.signature == format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Waits until `got` holds an answered (200) delivery `id`.
async fn delivered(got: &Arc<Mutex<Vec<Got>>>, id: &str) -> Got {
    wait::until(T, &format!("delivery {id}"), || {
        let ok = got
            .lock()
            .unwrap()
            .iter()
            .any(|g| g.delivery == id && g.status == 200);
        async move { Ok(ok) }
    })
    .await
    .unwrap();
    got.lock()
        .unwrap()
        .iter()
        .find(|g| g.delivery == id && g.status == 200)
        .unwrap()
        .clone()
}

#[tokio::test]
async fn run_ends_and_stage_failures_reach_webhooks_signed_and_retried() {
    let (good_url, good) = receiver(0).await;
    let (flaky_url, flaky) = receiver(2).await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, format!("{KEY}\n")).unwrap();
    let (server, _cfg) = local_server(&[
        "--notify-url",
        &good_url,
        "--notify-url",
        &flaky_url,
        "--notify-secret-file",
        key.to_str().unwrap(),
    ])
    .await;
    let (mut otto, _) = server.clients().await;
    for (id, script) in [("hook-ok", "exit 0"), ("hook-bad", "echo broken; exit 3")] {
        let req = proto::PipelineRequest {
            pipeline_name: "hooks".into(),
            run_id: id.into(),
            stages: vec![sh("only", &[], script)],
            ..Default::default()
        };
        collect(otto.execute_pipeline(req).await.unwrap().into_inner()).await;
    }

    let ok = delivered(&good, "hook-ok.end").await;
    assert!(signed(&ok), "{ok:?}");
    assert_eq!(ok.body["type"], "run.ended");
    assert_eq!(
        (ok.body["run_id"].as_str(), ok.body["state"].as_str()),
        (Some("hook-ok"), Some("succeeded"))
    );
    assert_eq!(ok.body["pipeline"], "hooks");
    let bad = delivered(&good, "hook-bad.end").await;
    assert!(signed(&bad) && bad.body["state"] == "failed", "{bad:?}");
    let stage = delivered(&good, "hook-bad.only.1").await;
    assert!(signed(&stage), "{stage:?}");
    assert_eq!(stage.body["type"], "stage.failed");
    assert_eq!(
        (stage.body["stage"].as_str(), stage.body["attempt"].as_u64()),
        (Some("only"), Some(1))
    );
    assert!(
        stage.body["message"]
            .as_str()
            .unwrap()
            .contains("exit code 3"),
        "{stage:?}"
    );

    // The flaky receiver: its first two requests failed; every delivery still
    // arrives, each answered exactly once, and the retried one with the same id.
    for id in ["hook-ok.end", "hook-bad.end", "hook-bad.only.1"] {
        let g = delivered(&flaky, id).await;
        assert!(signed(&g), "{g:?}");
    }
    let all = flaky.lock().unwrap().clone();
    assert_eq!(all.iter().filter(|g| g.status == 503).count(), 2);
    for id in ["hook-ok.end", "hook-bad.end", "hook-bad.only.1"] {
        let answered = all
            .iter()
            .filter(|g| g.delivery == id && g.status == 200)
            .count();
        assert_eq!(answered, 1, "{id} delivered once: {all:#?}");
    }
    let failed: Vec<&str> = all
        .iter()
        .filter(|g| g.status == 503)
        .map(|g| g.delivery.as_str())
        .collect();
    for id in failed {
        assert!(
            all.iter().any(|g| g.delivery == id && g.status == 200),
            "{id} was retried"
        );
    }
}

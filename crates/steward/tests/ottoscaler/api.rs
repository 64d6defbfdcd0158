//! The gRPC edge as clients see it: bearer-token auth, health, reflection, and
//! malformed requests answered with the field they got wrong.

use super::*;

#[tokio::test]
async fn auth_health_reflection_and_malformed_requests() {
    let (env, server, _cfg) = kube_setup("otto-auth", &["--reflection"]).await;
    for token in ["", "wrong"] {
        let (mut otto, _) = server.client_args(token).connect().await.unwrap();
        let e = otto
            .get_worker_status(proto::WorkerStatusRequest::default())
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated, "token {token:?}");
        let e = otto
            .execute_pipeline(proto::PipelineRequest {
                stages: vec![stage("a", &[], &[])],
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
    }
    // Health needs no token.
    let ch = tonic::transport::Endpoint::from_shared(server.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut h = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    for svc in ["", "ottoscaler.v1.LogStreamingService"] {
        let r = h
            .check(tonic_health::pb::HealthCheckRequest {
                service: svc.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            r.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
    }
    // Reflection (enabled by the flag) lists the services.
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_request::MessageRequest,
        server_reflection_response::MessageResponse,
    };
    let mut refl = ServerReflectionClient::new(ch);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut resp = refl
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        resp.next().await.unwrap().unwrap().message_response
    else {
        panic!("no list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"ottoscaler.v1.OttoscalerService".to_string()),
        "{names:?}"
    );

    // Malformed pipelines are refused with the field named; nothing is created.
    let (mut otto, _) = server.clients().await;
    let cases = [
        (
            vec![stage("a", &["b"], &[]), stage("b", &["a"], &[])],
            "stages: dependency cycle: a -> b -> a",
        ),
        (
            vec![stage("a", &["ghost"], &[])],
            "stages[0].depends_on[0]: unknown stage \"ghost\"",
        ),
        (
            vec![stage("a", &[], &[]), stage("a", &[], &[])],
            "stages[1].name: duplicate stage name \"a\" (also stages[0])",
        ),
    ];
    for (stages, want) in cases {
        let e = otto
            .execute_pipeline(proto::PipelineRequest {
                run_id: "bad".into(),
                stages,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (tonic::Code::InvalidArgument, want)
        );
    }
    let e = otto
        .watch_pipeline(proto::WatchPipelineRequest {
            run_id: "bad".into(),
            from_seq: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    let cms = Api::<ConfigMap>::namespaced(env.client.clone(), &env.ns)
        .list(&ListParams::default().labels("steward.io/ottoscaler"))
        .await
        .unwrap();
    assert!(cms.items.is_empty());
    assert!(pods(&env, "steward.io/ottoscaler").await.is_empty());
    // Every call above is timed with its method and code.
    let metrics = server.metrics().await;
    let count = |method: &str, code: &str| {
        let prefix = format!(
            "steward_ottoscaler_grpc_request_duration_seconds_count{{method=\"{method}\",code=\"{code}\"}} "
        );
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let status = "/ottoscaler.v1.OttoscalerService/GetWorkerStatus";
    assert_eq!(count(status, "Unauthenticated"), 2, "{metrics}");
    assert_eq!(
        count(
            "/ottoscaler.v1.OttoscalerService/ExecutePipeline",
            "Unauthenticated"
        ),
        2,
        "{metrics}"
    );
    assert_eq!(
        count("/ottoscaler.v1.OttoscalerService/WatchPipeline", "NotFound"),
        1,
        "{metrics}"
    );
    assert!(
        count("/grpc.health.v1.Health/Check", "OK") >= 2,
        "{metrics}"
    );
}

//! The `steward ottoscaler` client commands against a running server: their
//! output, `-o json|yaml`, and their exit statuses.

use super::*;

#[tokio::test]
async fn local_backend_stage_timeout_and_run_listing_by_cli() {
    let (server, _cfg) = local_server(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(
        &file,
        "name: cli\nstages:\n  - name: slow\n    command: [sleep, \"30\"]\n    timeout: 1s\n    retry: { attempts: 2, backoff: 100ms, on: [timeout] }\n  - name: always\n    depends_on: [slow]\n    when: always\n    command: [echo, tidy]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_steward"))
        .args([
            "ottoscaler",
            "run",
            file.to_str().unwrap(),
            "--run-id",
            "cli-1",
            "--server",
            &server.url,
        ])
        .env("OTTOSCALER_TOKEN", TOKEN)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed run exits 1:\n{stdout}"
    );
    assert!(
        stdout.contains("stage slow (attempt 1) retrying: attempt 1 timed out after 1s"),
        "{stdout}"
    );
    assert!(
        stdout.contains("stage slow (attempt 2) failed: attempt 2 timed out after 1s"),
        "{stdout}"
    );
    assert!(stdout.contains("[always#1 stdout] tidy"), "{stdout}");
    assert!(stdout.contains("run cli-1 failed"), "{stdout}");
}

#[tokio::test]
async fn cli_client_subcommands_on_the_local_backend() {
    let (server, _cfg) = local_server(&[]).await;
    let (ok, out) = cli(
        &server,
        &[
            "scale-up",
            "--task",
            "cli",
            "--workers",
            "2",
            "--",
            "sleep",
            "30",
        ],
    )
    .await;
    assert!(ok && out.contains("task cli: created 2 workers"), "{out}");
    let (ok, out) = cli(&server, &["status", "--task", "cli"]).await;
    assert!(
        ok && out.contains("workers in use 2/100, queued 0"),
        "{out}"
    );
    assert_eq!(out.matches(" Running ").count(), 2, "{out}");
    // The same answer for scripts, as JSON and as YAML (read back by another YAML library).
    let (ok, json) = cli(&server, &["status", "--task", "cli", "-o", "json"]).await;
    assert!(ok, "{json}");
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let (ok, yaml) = cli(&server, &["status", "--task", "cli", "--output", "yaml"]).await;
    assert!(ok, "{yaml}");
    let yaml: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
    for doc in [&json, &yaml] {
        assert_eq!(
            (doc["capacity"].as_i64(), doc["in_use"].as_i64()),
            (Some(100), Some(2)),
            "{doc}"
        );
        let workers = doc["workers"].as_array().unwrap();
        assert_eq!(workers.len(), 2, "{doc}");
        assert!(
            workers
                .iter()
                .all(|w| w["task_id"] == "cli" && w["phase"] == "Running"),
            "{doc}"
        );
    }
    let names = |d: &serde_json::Value| -> Vec<String> {
        let mut n: Vec<String> = d["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["name"].as_str().unwrap().to_string())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&json), names(&yaml));
    let (ok, out) = cli(&server, &["--lang", "ko", "scale-down", "--task", "cli"]).await;
    assert!(ok && out.contains("태스크 cli: 워커 2개 삭제"), "{out}");

    let (mut otto, _) = server.clients().await;
    let req = proto::PipelineRequest {
        run_id: "cli-logs".into(),
        stages: vec![sh("say", &[], "echo hello from say")],
        ..Default::default()
    };
    collect(otto.execute_pipeline(req).await.unwrap().into_inner()).await;
    let (ok, out) = cli(&server, &["logs", "cli-logs"]).await;
    assert!(ok && out.contains("[say#1 stdout] hello from say"), "{out}");
    let (ok, out) = cli(&server, &["logs", "cli-logs-say-1"]).await;
    assert!(
        ok && out.contains("[cli-logs-say-1 stdout] hello from say"),
        "{out}"
    );
    let (ok, out) = cli(&server, &["cancel", "cli-logs"]).await;
    assert!(
        ok && out.contains("run cli-logs had already ended"),
        "{out}"
    );
    let (code, _, stderr) = cli_exit(&server.url, &["cancel", "no-such-run"]).await;
    assert_eq!(code, Some(1), "a refused request exits 1: {stderr}");
    assert!(
        stderr.contains("not found: run \"no-such-run\" not found"),
        "{stderr}"
    );
}

/// A one-stage pipeline file running `script` in `dir`; its path.
fn pipeline_file(dir: &tempfile::TempDir, name: &str, script: &str) -> String {
    let file = dir.path().join(format!("{name}.yaml"));
    let yaml =
        format!("name: {name}\nstages:\n  - name: work\n    command: [sh, -c, {script:?}]\n");
    std::fs::write(&file, yaml).unwrap();
    file.display().to_string()
}

/// `steward ottoscaler run FILE --run-id ID` following the run; returns once its
/// stage is running (the process and the rest of its stdout).
async fn run_until_running(url: &str, file: &str, id: &str) -> (Child, Vec<String>) {
    use tokio::io::AsyncBufReadExt;
    let mut child = Command::new(env!("CARGO_BIN_EXE_steward"))
        .args([
            "ottoscaler",
            "run",
            file,
            "--run-id",
            id,
            "--no-logs",
            "--server",
            url,
        ])
        .env("OTTOSCALER_TOKEN", TOKEN)
        // Longer than a restart here, short enough for the lost-server case.
        .env("OTTOSCALER_REATTACH_TIMEOUT", "10s")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let running = tokio::time::timeout(T, async {
        while let Some(l) = lines.next_line().await.unwrap() {
            let hit = l.contains("stage work (attempt 1) running: running on");
            seen.push(l);
            if hit {
                return true;
            }
        }
        false
    })
    .await;
    assert!(matches!(running, Ok(true)), "run {id} never ran: {seen:?}");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, seen)
}

/// The exit status and stderr of a finished child.
pub(super) async fn ended(mut child: Child) -> (Option<i32>, String) {
    use tokio::io::AsyncReadExt;
    let mut stderr = String::new();
    let mut pipe = child.stderr.take().unwrap();
    let status = tokio::time::timeout(T, async {
        pipe.read_to_string(&mut stderr).await.unwrap();
        child.wait().await.unwrap()
    })
    .await
    .expect("the client ends within the deadline");
    (status.code(), stderr)
}

/// The documented exit statuses of `ottoscaler run` and the other clients: 2 for a
/// request the server finds wrong, 3 for a cancelled run and for Ctrl-C (the run
/// goes on), 4 for a server that cannot be reached or goes away mid-run.
#[tokio::test]
async fn client_exit_statuses_say_what_happened() {
    let (server, _cfg) = local_server(&[]).await;
    let dir = tempfile::tempdir().unwrap();

    let closed = format!("http://127.0.0.1:{}", free_port());
    let (code, _, stderr) = cli_exit(&closed, &["status"]).await;
    assert_eq!(code, Some(4), "{stderr}");
    assert!(
        stderr.contains(&format!("connecting to {closed}")),
        "{stderr}"
    );

    let cyclic = dir.path().join("cycle.yaml");
    std::fs::write(
        &cyclic,
        "stages:\n  - name: a\n    depends_on: [b]\n    command: [true]\n  - name: b\n    depends_on: [a]\n    command: [true]\n",
    )
    .unwrap();
    let (code, _, stderr) = cli_exit(&server.url, &["run", cyclic.to_str().unwrap()]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("invalid request: stages: dependency cycle"),
        "{stderr}"
    );

    // Cancelled by someone else while the CLI follows it: 3.
    let file = pipeline_file(&dir, "long", "sleep 30");
    let (child, _) = run_until_running(&server.url, &file, "x-cancel").await;
    let (mut otto, _) = server.clients().await;
    let r = otto
        .cancel_pipeline(proto::CancelPipelineRequest {
            run_id: "x-cancel".into(),
            reason: "test".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.cancelled);
    let (code, stderr) = ended(child).await;
    assert_eq!(code, Some(3), "a cancelled run exits 3: {stderr}");

    // Ctrl-C stops the client at once with 3; the run goes on on the server.
    let (child, _) = run_until_running(&server.url, &file, "x-sigint").await;
    let pid = sigint(child.id().unwrap());
    let (code, stderr) = ended(child).await;
    assert_eq!(
        code,
        Some(3),
        "an interrupted client exits 3 (pid {pid}): {stderr}"
    );
    assert!(
        stderr.contains("interrupted; a pipeline run goes on on the server"),
        "{stderr}"
    );
    let (ok, out) = cli(&server, &["status", "--run", "x-sigint", "-o", "json"]).await;
    assert!(ok, "{out}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        status["workers"][0]["phase"], "Running",
        "the run went on: {status}"
    );
    let (ok, out) = cli(&server, &["cancel", "x-sigint"]).await;
    assert!(ok && out.contains("x-sigint"), "{out}");

    // The server goes away while the CLI follows a run: 4, after trying to re-attach.
    let (mut lone, _cfg2) = local_server(&[]).await;
    let (child, _) = run_until_running(&lone.url, &file, "x-lost").await;
    lone.child.kill().await.unwrap();
    let (code, stderr) = ended(child).await;
    assert_eq!(code, Some(4), "a server that went away is exit 4: {stderr}");
    assert!(stderr.contains("re-attaching"), "{stderr}");
}

/// The reproduction: the scaler killed (SIGKILL) while `ottoscaler run`
/// follows a run on the Kubernetes backend, and a new scaler on the same address. The
/// new scaler continues the run with the worker it finds; the client re-attaches,
/// follows it to its end and exits 0, as it would have without the restart.
#[tokio::test]
async fn a_client_following_a_run_through_a_restart_sees_it_end() {
    let (env, mut server, _cfg) = kube_setup("otto-cli-restart", &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keep.yaml");
    let yaml = "name: keep\nstages:\n  - name: work\n    image: registry.invalid/w:1\n    command: [sleep, '300']\n";
    std::fs::write(&file, yaml).unwrap();
    let (child, _) = run_until_running(&server.url, file.to_str().unwrap(), "keep-1").await;
    server.crash_and_restart().await;
    // The same worker goes on; its (simulated) container finishes after the restart.
    let pod = running_pod(&env, "steward.io/pipeline-run=keep-1").await;
    assert_eq!(pod, "keep-1-work-1");
    annotate(&env, &pod, EXIT, "0").await;
    let (code, stderr) = ended(child).await;
    assert!(stderr.contains("re-attaching"), "{stderr}");
    assert_eq!(code, Some(0), "the continued run succeeded: {stderr}");
}

/// Sends SIGINT to `pid` with the `kill` program (the test crate has no signal
/// bindings of its own); returns the pid for messages.
fn sigint(pid: u32) -> u32 {
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    pid
}

use super::*;

fn hash(t: &str) -> String {
    hex::encode(sha256(t))
}

fn file(entries: &str) -> String {
    format!("teams:\n{entries}")
}

#[test]
fn a_token_maps_to_its_team_and_nothing_else_does() {
    let text = file(&format!(
        "  web:\n    token_sha256: {}\n    quota: {{ workers: 3, cpu: \"1500m\", memory: 1Gi }}\n  platform:\n    token_sha256: {}\n    admin: true\n",
        hash("w-token"),
        hash("p-token")
    ));
    let teams = Teams::parse(&text).unwrap();
    let web = teams.caller("w-token").unwrap();
    assert_eq!((web.team.as_str(), web.admin), ("web", false));
    assert!(teams.caller("p-token").unwrap().admin);
    assert_eq!(teams.caller("w-token "), None);
    assert_eq!(teams.caller(""), None);
    assert_eq!(
        teams.quotas()["web"],
        Quota {
            workers: Some(3),
            cpu_milli: Some(1500),
            memory_bytes: Some(1 << 30),
        }
    );
    assert_eq!(teams.quotas()["platform"], Quota::default());
    // Who may act on what.
    assert!(web.may("web") && !web.may("data"));
    assert!(teams.caller("p-token").unwrap().may("web"));
}

#[test]
fn the_single_token_is_the_default_admin_team() {
    let t = Teams::single("s3cret");
    assert_eq!(
        t.caller("s3cret"),
        Some(Caller {
            team: DEFAULT_TEAM.into(),
            admin: true
        })
    );
    let both = Teams::parse(&file(&format!("  web:\n    token_sha256: {}\n", hash("w"))))
        .unwrap()
        .with_token("s3cret")
        .unwrap();
    assert_eq!(both.caller("w").unwrap().team, "web");
    assert_eq!(both.caller("s3cret").unwrap().team, DEFAULT_TEAM);
}

#[test]
fn bad_files_are_refused_naming_the_field() {
    let h = hash("x");
    let cases = [
        ("teams: {}\n".to_string(), "teams: no team"),
        (
            file("  Web:\n    token_sha256: 00\n"),
            "teams.Web: \"Web\" must be lowercase letters, digits and '-'",
        ),
        (
            file("  web:\n    token_sha256: abc\n"),
            "teams.web.token_sha256: 64 hex",
        ),
        (
            file(&format!(
                "  web:\n    token_sha256: {h}\n    quota: {{ cpu: lots }}\n"
            )),
            "teams.web.quota.cpu: \"lots\"",
        ),
        (
            file(&format!(
                "  web:\n    token_sha256: {h}\n    quota: {{ memory: \"-1Gi\" }}\n"
            )),
            "teams.web.quota.memory",
        ),
        (
            file(&format!(
                "  a:\n    token_sha256: {h}\n  b:\n    token_sha256: {h}\n"
            )),
            "teams.b.token_sha256: another team has the same token",
        ),
        (
            file(&format!(
                "  web:\n    token_sha256: {h}\n    quota: {{ gpus: 1 }}\n"
            )),
            "gpus",
        ),
    ];
    for (text, want) in cases {
        let err = Teams::parse(&text).unwrap_err();
        assert!(err.contains(want), "{text}: {err}");
    }
    let clash = Teams::parse(&file(&format!("  default:\n    token_sha256: {h}\n")))
        .unwrap()
        .with_token("y")
        .unwrap_err();
    assert!(clash.contains("teams.default"), "{clash}");
    let same = Teams::parse(&file(&format!("  web:\n    token_sha256: {h}\n")))
        .unwrap()
        .with_token("x")
        .unwrap_err();
    assert!(same.contains("--token"), "{same}");
}

#[test]
fn a_workers_cost_is_its_requests_rounded_up() {
    let r = |cpu: &str, mem: &str| {
        BTreeMap::from([
            ("cpu".to_string(), cpu.to_string()),
            ("memory".to_string(), mem.to_string()),
        ])
    };
    assert_eq!(
        Cost::of(&r("250m", "256Mi")),
        Cost {
            cpu_milli: 250,
            memory_bytes: 256 << 20
        }
    );
    assert_eq!(Cost::of(&r("1.0001", "1")).cpu_milli, 1001);
    assert_eq!(Cost::of(&BTreeMap::new()), Cost::default());
}

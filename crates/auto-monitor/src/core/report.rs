//! The `steward monitor status` table. Pure: it renders a MonitoringStack's status.

use steward_runtime::{Lang, Localized};

use crate::crd::MonitoringStack;
use crate::messages::Msg;

/// The stack line and one aligned row per node.
pub fn table(ms: &MonitoringStack, lang: Lang) -> String {
    let st = ms.status.clone().unwrap_or_default();
    let stack = format!(
        "{}/{}",
        ms.metadata.namespace.as_deref().unwrap_or_default(),
        ms.metadata.name.as_deref().unwrap_or_default()
    );
    let mut out = Msg::StackLine {
        stack: &stack,
        phase: st.phase.as_deref().unwrap_or("Pending"),
        profile: st.profile.as_deref().unwrap_or("-"),
        summary: st.summary.as_deref().unwrap_or("-"),
    }
    .render(lang);
    out.push('\n');
    for c in st.conditions.iter().filter(|c| c.status != "True") {
        out.push_str(&format!(
            "  {} {}: {} ({})\n",
            c.type_, c.status, c.message, c.reason
        ));
    }
    let header: Vec<String> = Msg::TableHeader
        .render(lang)
        .split('\t')
        .map(String::from)
        .collect();
    let mut rows = vec![header];
    for n in &st.nodes {
        let dash = || "-".to_string();
        rows.push(vec![
            n.node.clone(),
            match &n.late_cause {
                Some(c) => format!("{} ({c})", n.step),
                None => n.step.clone(),
            },
            n.exporter_pod.clone().unwrap_or_else(dash),
            if n.target_up {
                "yes".into()
            } else {
                "no".into()
            },
            n.first_sample_at.clone().unwrap_or_else(dash),
            n.onboarding_seconds
                .map_or_else(dash, |s| format!("{s:.1}s")),
            n.availability
                .map_or_else(dash, |a| format!("{:.1}%", a * 100.0)),
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{MonitoringStackSpec, MonitoringStackStatus, NodeOnboarding};

    #[test]
    fn one_row_per_node_aligned() {
        let mut ms = MonitoringStack::new("mon", MonitoringStackSpec::default());
        ms.metadata.namespace = Some("monitoring".into());
        ms.status = Some(MonitoringStackStatus {
            phase: Some("Installed".into()),
            profile: Some("kind".into()),
            summary: Some("1/2".into()),
            nodes: vec![
                NodeOnboarding {
                    node: "worker-1".into(),
                    exporter_pod: Some("mon-node-exporter-x".into()),
                    target_up: true,
                    first_sample_at: Some("2026-11-23T21:00:00Z".into()),
                    onboarding_seconds: Some(3.25),
                    availability: Some(0.995),
                    step: "Monitored".into(),
                    ..Default::default()
                },
                NodeOnboarding {
                    node: "w2".into(),
                    step: "WaitingForScrape".into(),
                    late_cause: Some("ScrapeFailing".into()),
                    ..Default::default()
                },
            ],
            ..Default::default()
        });
        let t = table(&ms, Lang::En);
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[0].contains("monitoring/mon") && lines[0].contains("1/2"),
            "{t}"
        );
        assert!(lines[1].starts_with("NODE"));
        assert!(
            lines[2].contains("worker-1")
                && lines[2].contains("yes")
                && lines[2].contains("3.2s")
                && lines[2].contains("99.5%"),
            "{t}"
        );
        assert!(lines[3].contains("WaitingForScrape (ScrapeFailing)"), "{t}");
        let col = lines[1].find("STEP");
        assert_eq!(col, lines[2].find("Monitored"), "{t}");
    }
}

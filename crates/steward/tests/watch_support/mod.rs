//! An invariant checked on every change of a watched set of objects, for the
//! whole length of a scenario. The watch itself is part of the proof: an error or
//! an end before [`Invariant::finish`] fails the test, as a violation does.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

#[derive(Default)]
struct State {
    synced: bool,
    changes: usize,
    violations: Vec<String>,
    failure: Option<String>,
}

/// A running invariant watch.
pub struct Invariant {
    what: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Invariant {
    /// Watches `api` with `cfg`; once the initial list is in, `check` sees the whole
    /// current set (by name) after every change and returns a violation, if any.
    pub async fn start<K>(
        what: &str,
        api: Api<K>,
        cfg: watcher::Config,
        check: impl Fn(&BTreeMap<String, K>) -> Option<String> + Send + 'static,
    ) -> Self
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let state: Arc<Mutex<State>> = Arc::default();
        let s = state.clone();
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(watcher::watcher(api, cfg));
            let mut now: BTreeMap<String, K> = BTreeMap::new();
            let mut init: BTreeMap<String, K> = BTreeMap::new();
            loop {
                let event = match stream.next().await {
                    Some(Ok(e)) => e,
                    Some(Err(e)) => {
                        s.lock().unwrap().failure = Some(format!("the watch failed: {e}"));
                        return;
                    }
                    None => {
                        s.lock().unwrap().failure = Some("the watch ended".into());
                        return;
                    }
                };
                match event {
                    Event::Init => init.clear(),
                    Event::InitApply(o) => {
                        init.insert(o.name_any(), o);
                    }
                    Event::InitDone => {
                        now = std::mem::take(&mut init);
                        s.lock().unwrap().synced = true;
                    }
                    Event::Apply(o) => {
                        now.insert(o.name_any(), o);
                    }
                    Event::Delete(o) => {
                        now.remove(&o.name_any());
                    }
                }
                let mut st = s.lock().unwrap();
                if st.synced {
                    st.changes += 1;
                    if let Some(v) = check(&now) {
                        st.violations.push(v);
                    }
                }
            }
        });
        let inv = Self {
            what: what.to_string(),
            state,
            task,
        };
        testkit::wait::until(
            Duration::from_secs(30),
            &format!("{what}: watch synced"),
            || {
                let synced = inv.state.lock().unwrap().synced;
                async move { Ok(synced) }
            },
        )
        .await
        .unwrap();
        inv
    }

    /// The violations so far.
    pub fn violations(&self) -> Vec<String> {
        self.state.lock().unwrap().violations.clone()
    }

    /// Stops the watch; panics on any violation, on a watch that failed or ended
    /// early, or on one that saw no change at all (it watched nothing).
    pub fn finish(self) {
        self.task.abort();
        let st = self.state.lock().unwrap();
        assert!(
            st.failure.is_none(),
            "{}: {}",
            self.what,
            st.failure.as_deref().unwrap_or_default()
        );
        assert!(st.changes > 0, "{}: the watch saw no change", self.what);
        assert!(
            st.violations.is_empty(),
            "{}: {} violations, first: {:?}",
            self.what,
            st.violations.len(),
            st.violations.first()
        );
    }
}

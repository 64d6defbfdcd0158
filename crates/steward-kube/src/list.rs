//! Listing large collections without holding the whole answer twice: pages of 100,
//! and `managedFields` dropped from each object as it arrives (steward never reads
//! them, and on pods they are often the largest part of the object).

use kube::Resource;
use kube::api::{Api, ListParams};

/// Every object matching `lp`, fetched page by page.
pub async fn list_all<K>(api: &Api<K>, lp: &ListParams) -> kube::Result<Vec<K>>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    list_all_map(api, lp, |o| o).await
}

/// Like [`list_all`], passing each object through `keep` as its page arrives, so a
/// caller that needs a few fields of thousands of objects never holds them whole.
pub async fn list_all_map<K, F>(api: &Api<K>, lp: &ListParams, mut keep: F) -> kube::Result<Vec<K>>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
    F: FnMut(K) -> K,
{
    let mut out = Vec::new();
    // Each page is held whole twice while it is decoded (body and objects); 100 pods
    // keep that near a megabyte, at one request per 100 objects.
    let mut lp = lp.clone().limit(100);
    loop {
        let page = api.list(&lp).await?;
        if let Some(rest) = page.metadata.remaining_item_count {
            // Exactly the room the whole list needs, instead of doubling (and for a
            // moment holding both the old and the new buffer).
            let rest = usize::try_from(rest).unwrap_or(0);
            out.reserve_exact(page.items.len() + rest);
        }
        out.extend(page.items.into_iter().map(|mut o| {
            o.meta_mut().managed_fields = None;
            keep(o)
        }));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp = lp.continue_token(&token),
            None => return Ok(out),
        }
    }
}

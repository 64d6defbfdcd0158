//! The wall clock, in the one unit the scaler records and reports: milliseconds
//! since the Unix epoch (progress, log lines, worker creation, record end times).
//! Ids that must not collide across restarts are made here too.

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `n` random characters that are valid in a Kubernetes name and hard to misread
/// (no vowels, so no words; no 0/1/3 beside o/l/e): run ids and worker names.
pub fn random_suffix(n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..n)
        .map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_are_name_safe() {
        for n in [0, 1, 8, 64] {
            let s = random_suffix(n);
            assert_eq!(s.len(), n);
            assert!(
                s.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
                "{s}"
            );
        }
        // 27^8 possibilities: two equal in a row means the generator is broken.
        assert_ne!(random_suffix(8), random_suffix(8));
        assert!(now_ms() > 1_700_000_000_000);
    }
}

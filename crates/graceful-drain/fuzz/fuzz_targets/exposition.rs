//! Gauge selectors and Prometheus text expositions: never a panic; a selector that
//! parses reads any body.
#![no_main]

#[path = "../../src/probe/gauge.rs"]
#[allow(dead_code)]
mod gauge;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // First line: a selector; the rest: an exposition.
    let (sel, body) = text.split_once('\n').unwrap_or((text, ""));
    if let Ok(s) = gauge::Selector::parse(sel) {
        if let Some(v) = gauge::sum(body, &s) {
            assert!(!v.is_nan() || body.to_ascii_lowercase().contains("inf"));
        }
    }
});

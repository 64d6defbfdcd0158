//! A CI worker stand-in: prints numbered lines, then exits with the chosen code.
//! `test-worker [--lines N (3)] [--interval-ms M (0)] [--text T (line)] [--exit-code C (0)] [--stamp]`
//! `--stamp` appends ` t=<ms since the epoch>` to each line (log latency benchmarks).

use std::io::Write;
use std::time::Duration;

fn main() -> std::process::ExitCode {
    match run() {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("test-worker: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run() -> Result<u8, String> {
    let f = test_images::flags(std::env::args().skip(1))?;
    test_images::only(&f, &["lines", "interval-ms", "text", "exit-code", "stamp"])?;
    let stamp: bool = test_images::get(&f, "stamp", false)?;
    let lines: u64 = test_images::get(&f, "lines", 3)?;
    let interval: u64 = test_images::get(&f, "interval-ms", 0)?;
    let text: String = test_images::get(&f, "text", "line".to_string())?;
    let code: u8 = test_images::get(&f, "exit-code", 0)?;
    let mut out = std::io::stdout().lock();
    for i in 1..=lines {
        if i > 1 && interval > 0 {
            std::thread::sleep(Duration::from_millis(interval));
        }
        let t = if stamp {
            let ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            format!(" t={ms}")
        } else {
            String::new()
        };
        writeln!(out, "{text} {i}{t}")
            .and_then(|()| out.flush())
            .map_err(|e| format!("writing to stdout: {e}"))?;
    }
    Ok(code)
}

//! Process lifetime: stopping on SIGTERM or Ctrl-C, and the intervals of
//! the `--every` loops.

use anyhow::Context;

/// A future that resolves on SIGTERM or Ctrl-C (SIGINT). The handlers are
/// installed when this is called, not when the future is first polled, so a
/// signal that arrives while the first run is still working is not lost
/// (nor does it kill the process).
pub fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// Reads `90s`, `30m`, `1h`, `1d`.
pub fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} has no unit: write e.g. 30m, 1h or 1d"))?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{text:?} does not start with a whole number"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    if secs == 0 {
        return Err("the interval must be more than zero".into());
    }
    Ok(std::time::Duration::from_secs(secs))
}

//! Turning SIGINT / SIGTERM into a stop flag for the synchronous (thread-based) subcommands.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Returns a flag that becomes `true` at the first SIGINT or SIGTERM. The handlers are
/// installed before this returns, so a signal arriving right after is never the default
/// (fatal) action; a small thread waits for them.
pub fn stop_flag(on_signal: &'static str) -> anyhow::Result<Arc<AtomicBool>> {
    use tokio::signal::unix::{signal, SignalKind};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut term, mut int) = runtime.block_on(async {
        Ok::<_, std::io::Error>((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        ))
    })?;
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            runtime.block_on(async {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            });
            tracing::info!("{on_signal}");
            set.store(true, Ordering::Relaxed);
        })?;
    Ok(flag)
}

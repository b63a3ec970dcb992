//! Gives memory back to the system after a burst.
//!
//! mimalloc (bitrouter's allocator, `proxy/src/main.rs`) returns freed pages to the OS 1 s
//! after they were freed (its `purge_delay`), but only checks for expired purges when it frees
//! a page, so a router that falls idle after a burst keeps its peak: measured with
//! `benches/load` (open streams: 1,000 SSE streams at once), 83 MB resident 10 s after the last
//! stream ended, against 15 MB idle before it. `MIMALLOC_PURGE_DELAY=0` returned it but purged
//! on every free (the issue measured ~38 % of large-body throughput).
//!
//! Instead, once a second this task allocates and frees one huge block (reserved, never
//! touched: no memory is used, no page is faulted in). Freeing a huge block frees its page at
//! once, and every page free runs mimalloc's expired purges (`_mi_arenas_collect` after
//! `_mi_page_free`), process-wide. Under load nothing changes (pages are freed all the time);
//! idle, the burst's memory goes back within ~2 s.

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::time::Duration;

/// Above mimalloc's largest "large" object (MiBs): a huge block, with its own page.
const HUGE: usize = 64 << 20;

/// How often: mimalloc's default purge delay.
const EVERY: Duration = Duration::from_secs(1);

/// One tick: a huge block allocated and freed (`black_box` keeps the optimiser from eliding
/// the pair).
fn tick() {
    let block: Vec<u8> = Vec::with_capacity(HUGE);
    drop(std::hint::black_box(block));
}

/// The background service that ticks until shutdown.
pub struct AllocTick;

#[async_trait]
impl BackgroundService for AllocTick {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                () = tokio::time::sleep(EVERY) => tick(),
            }
        }
    }
}

//! Broker counters.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct BrokerStats {
    puts: AtomicU64,
    gets: AtomicU64,
}

impl BrokerStats {
    pub fn record_put(&self, n: u64) {
        self.puts.fetch_add(n, Ordering::Relaxed);
    }
    pub fn record_get(&self, n: u64) {
        self.gets.fetch_add(n, Ordering::Relaxed);
    }
    pub fn puts(&self) -> u64 {
        self.puts.load(Ordering::Relaxed)
    }
    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::Relaxed)
    }
}

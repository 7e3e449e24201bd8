//! Disk-space guard: new messages are refused before the store's file system fills up, as
//! Apache refuses them past `diskSpaceWarningLevelRatio`, and accepted again by themselves
//! once space returns. Measuring is lazy: on sends, at most once a second or after every
//! few megabytes written, so an idle broker does no work for it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use tracing::{info, warn};

use crate::now_ms;

/// Bytes written between measurements at most (a measurement is one statvfs per path).
const MAX_RECHECK_BYTES: u64 = 16 << 20;
const RECHECK_MS: i64 = 1000;

pub struct DiskGuard {
    paths: Vec<PathBuf>,
    /// Used share of the file system, in percent, at or above which sends are refused.
    limit_percent: f64,
    full: AtomicBool,
    /// Last measured used share, in hundredths of a percent.
    used_basis_points: AtomicU64,
    written_since_check: AtomicU64,
    recheck_bytes: AtomicU64,
    last_check_ms: AtomicI64,
    checking: Mutex<()>,
}

impl DiskGuard {
    pub fn new(paths: Vec<PathBuf>, limit_percent: f64) -> Self {
        let guard = DiskGuard {
            paths,
            limit_percent,
            full: AtomicBool::new(false),
            used_basis_points: AtomicU64::new(0),
            written_since_check: AtomicU64::new(0),
            recheck_bytes: AtomicU64::new(MAX_RECHECK_BYTES),
            last_check_ms: AtomicI64::new(0),
            checking: Mutex::new(()),
        };
        guard.check();
        guard
    }

    /// True when sends must be refused; re-measures when the last measurement is stale.
    pub fn refuses(&self) -> bool {
        if now_ms() - self.last_check_ms.load(Ordering::Relaxed) >= RECHECK_MS {
            self.check();
        }
        self.full.load(Ordering::Acquire)
    }

    /// Counts bytes appended; re-measures once enough were written since the last check.
    pub fn wrote(&self, bytes: u64) {
        let since = self.written_since_check.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if since >= self.recheck_bytes.load(Ordering::Relaxed) {
            self.check();
        }
    }

    /// The file system reported no space left: refuse until a measurement says otherwise.
    pub fn mark_full(&self) {
        if !self.full.swap(true, Ordering::AcqRel) {
            warn!("the disk is full (no space left on device): refusing new messages until space returns");
        }
        self.last_check_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Why sends are refused, for the reply's remark.
    /// The share of the fullest store file system in use, 0.0-1.0, as last checked.
    pub fn used_ratio(&self) -> f64 {
        self.used_basis_points.load(Ordering::Relaxed) as f64 / 10_000.0
    }

    pub fn describe(&self) -> String {
        format!(
            "service not available now: the broker's disk is full ({:.1}% used; \
             sends are refused from diskSpaceWarningLevelRatio={}%) and are accepted again \
             once space is freed",
            self.used_basis_points.load(Ordering::Relaxed) as f64 / 100.0,
            self.limit_percent
        )
    }

    fn check(&self) {
        // One measurement at a time; others use the last result.
        let Ok(_one) = self.checking.try_lock() else {
            return;
        };
        self.written_since_check.store(0, Ordering::Relaxed);
        self.last_check_ms.store(now_ms(), Ordering::Relaxed);
        let mut worst = None::<(f64, u64)>;
        for path in &self.paths {
            let Ok(st) = rustix::fs::statvfs(path) else {
                continue;
            };
            let Some(used) = used_percent(st.f_blocks, st.f_bfree, st.f_bavail) else {
                continue;
            };
            let total = st.f_blocks.saturating_mul(st.f_frsize);
            if worst.is_none_or(|(w, _)| used > w) {
                worst = Some((used, total));
            }
        }
        let Some((used, total)) = worst else {
            return;
        };
        // Measure again after writing half a percent of the file system (so a burst cannot
        // run far past the limit between measurements), but at least every 16 MiB.
        self.recheck_bytes.store(
            (total / 200).clamp(64 << 10, MAX_RECHECK_BYTES),
            Ordering::Relaxed,
        );
        self.used_basis_points
            .store((used * 100.0) as u64, Ordering::Relaxed);
        let full = used >= self.limit_percent;
        let was = self.full.swap(full, Ordering::AcqRel);
        if full && !was {
            warn!(
                used = format!("{used:.1}%"),
                limit = format!("{}%", self.limit_percent),
                "the disk is almost full: refusing new messages until space returns"
            );
        } else if was && !full {
            info!(
                used = format!("{used:.1}%"),
                "disk space is available again: accepting new messages"
            );
        }
    }
}

/// Bytes in use on the file system holding `path` (total less free), as Apache's
/// `rocketmq_storage_size` reports them.
pub(crate) fn used_bytes(path: &std::path::Path) -> Option<u64> {
    let st = rustix::fs::statvfs(path).ok()?;
    Some(
        st.f_blocks
            .saturating_sub(st.f_bfree)
            .saturating_mul(st.f_frsize),
    )
}

/// The used share of a file system in percent, as `df` and Apache
/// (`UtilAll.getDiskPartitionSpaceUsedPercent`) count it: used blocks over used plus
/// available ones. Blocks reserved for root (or otherwise free but not available) are left
/// out; counting them as used would refuse sends long before `df` shows the disk near full.
fn used_percent(blocks: u64, free: u64, available: u64) -> Option<f64> {
    let used = blocks.saturating_sub(free);
    let entire = used.saturating_add(available);
    (entire > 0).then(|| 100.0 * used as f64 / entire as f64)
}

#[cfg(test)]
mod tests {
    use super::used_percent;

    #[test]
    fn used_share_leaves_reserved_blocks_out_as_df_does() {
        // 100 blocks, 40 free of which 10 are reserved: df shows 60 / (60 + 30).
        let used = used_percent(100, 40, 30).unwrap();
        assert!((used - 66.666).abs() < 0.01, "{used}");
        // Nothing reserved: the plain share.
        assert_eq!(used_percent(100, 25, 25), Some(75.0));
        // Full to the last available block, with reserved blocks left.
        assert_eq!(used_percent(100, 5, 0), Some(100.0));
        // An empty or unreadable report is skipped rather than taken as full.
        assert_eq!(used_percent(0, 0, 0), None);
    }
}

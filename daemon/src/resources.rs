//! What the process uses, read from `/proc` and the allocator, for the
//! resources section of `Stats`.

use std::path::Path;

use sshmcp_proto::{Resources, ThreadInfo};

use crate::memory::Memory;

/// A snapshot of the process's resources against its limits.
pub fn collect(memory: &Memory) -> Resources {
    let cap = memory.snapshot();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| status_field(&status, key).and_then(parse_kib).unwrap_or(0);
    let allocator = allocator_info();
    let rss = crate::memory::current_rss().unwrap_or_else(|| kib("VmRSS:"));
    Resources {
        rss_bytes: rss,
        // Read a moment apart: the peak is at least what is resident now.
        peak_rss_bytes: kib("VmHWM:").max(rss),
        memory_limit_bytes: cap.limit,
        memory_high_watermark_bytes: cap.high_watermark,
        memory_reserved_bytes: cap.reserved,
        memory_refusals: cap.refused,
        allocator_committed_bytes: allocator.commit,
        allocator_peak_committed_bytes: allocator.peak_commit,
        cpu_user_ms: allocator.user_ms,
        cpu_system_ms: allocator.system_ms,
        open_fds: std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64),
        max_fds: max_fds(),
        load_average_milli: load_average(),
        threads: threads(Path::new("/proc/self/task")),
    }
}

struct AllocatorInfo {
    commit: u64,
    peak_commit: u64,
    user_ms: u64,
    system_ms: u64,
}

fn allocator_info() -> AllocatorInfo {
    let (mut elapsed, mut user, mut system) = (0usize, 0usize, 0usize);
    let (mut rss, mut peak_rss, mut commit, mut peak_commit, mut faults) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    // SAFETY: every pointer is to a live local the call writes once.
    unsafe {
        libmimalloc_sys::mi_process_info(
            &mut elapsed,
            &mut user,
            &mut system,
            &mut rss,
            &mut peak_rss,
            &mut commit,
            &mut peak_commit,
            &mut faults,
        );
    }
    AllocatorInfo {
        commit: commit as u64,
        peak_commit: peak_commit as u64,
        user_ms: user as u64,
        system_ms: system as u64,
    }
}

fn max_fds() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is valid for getrlimit to write.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur
    } else {
        0
    }
}

fn load_average() -> [u64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut out = [0; 3];
    for (slot, field) in out.iter_mut().zip(text.split_whitespace()) {
        *slot = field
            .parse::<f64>()
            .map_or(0, |v| (v * 1000.0).round() as u64);
    }
    out
}

/// The value after `key` on its line of a `/proc/*/status` file.
fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .map(str::trim)
}

/// `"123456 kB"` → bytes.
fn parse_kib(value: &str) -> Option<u64> {
    value
        .split_whitespace()
        .next()?
        .parse::<u64>()
        .ok()
        .map(|k| k * 1024)
}

/// Every thread under `task_dir` (`/proc/self/task`), with the CPU it last
/// ran on and the CPUs it may run on.
fn threads(task_dir: &Path) -> Vec<ThreadInfo> {
    let Ok(entries) = std::fs::read_dir(task_dir) else {
        return Vec::new();
    };
    let mut threads: Vec<ThreadInfo> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let tid = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
            let (name, cpu) = parse_stat(&stat)?;
            Some(ThreadInfo {
                tid,
                name,
                cpu,
                allowed_cpus: status_field(&status, "Cpus_allowed_list:")
                    .unwrap_or("")
                    .to_string(),
            })
        })
        .collect();
    threads.sort_by_key(|t| t.tid);
    threads
}

/// The name (field 2) and last CPU (field 39) of a `/proc/*/stat` line.
/// The name is in parentheses and may itself hold spaces or parentheses,
/// so fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<(String, u32)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    // Field 3 is the first after the name; field 39 is 36 further on.
    let cpu = stat
        .get(close + 1..)?
        .split_whitespace()
        .nth(36)?
        .parse()
        .ok()?;
    Some((name, cpu))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_give_name_and_cpu_even_with_odd_names() {
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194368 1 0 0 0 0 0 0 0 20 0 9 0 \
                    100 2000000 300 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 \
                    3 0 0 0 0 0 0 0 0 0 0 0 0 0";
        assert_eq!(parse_stat(stat), Some(("a (b) c".to_string(), 3)));
    }

    #[test]
    fn this_process_reports_its_threads_and_limits() {
        let memory = Memory::new(1 << 30);
        let resources = collect(&memory);
        assert!(resources.rss_bytes > 0);
        assert!(resources.peak_rss_bytes >= resources.rss_bytes / 2);
        assert!(resources.open_fds > 0 && resources.max_fds >= resources.open_fds);
        assert!(!resources.threads.is_empty());
        assert!(resources.threads.iter().all(|t| !t.allowed_cpus.is_empty()));
    }
}

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
    let fds = FdUsage::now();
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
        open_fds: fds.open,
        max_fds: fds.limit,
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

/// Above this share of the soft `RLIMIT_NOFILE` (in percent) the daemon
/// reports itself degraded: past it, the next burst of connects fails.
const FD_DEGRADED_PERCENT: u64 = 90;

/// The process's open file descriptors against its soft limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdUsage {
    pub open: u64,
    pub limit: u64,
}

impl FdUsage {
    /// Counted from `/proc/self/fd`. Listing it takes a descriptor itself,
    /// which is not counted; when none is left to list it with, every one
    /// is in use, and that is what is reported (rather than 0).
    pub fn now() -> FdUsage {
        let limit = nofile_limit().map_or(0, |l| l.rlim_cur);
        let open = match std::fs::read_dir("/proc/self/fd") {
            Ok(entries) => (entries.count() as u64).saturating_sub(1),
            Err(e) if is_out_of_fds(&e) => limit,
            Err(_) => 0,
        };
        FdUsage { open, limit }
    }

    /// Why the daemon is degraded on descriptors' account, if it is.
    pub fn degraded_reason(&self) -> Option<String> {
        (self.limit > 0 && self.open * 100 > self.limit * FD_DEGRADED_PERCENT).then(|| {
            format!(
                "file descriptors at {}% ({} open, limit {}); new connections will fail soon: \
                 raise LimitNOFILE (or `ulimit -n`) for sshmcpd, or lower the pool",
                self.open * 100 / self.limit,
                self.open,
                self.limit
            )
        })
    }
}

/// Whether `error` says no descriptor was left: for the process (EMFILE)
/// or for the whole system (ENFILE).
pub fn is_out_of_fds(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// What to tell a caller whose work failed with `error`, when it failed
/// because descriptors ran out; `None` for any other error.
pub fn out_of_fds_advice(error: &std::io::Error) -> Option<String> {
    match error.raw_os_error() {
        Some(libc::EMFILE) => {
            let fds = FdUsage::now();
            Some(format!(
                "the daemon is out of file descriptors ({} open, limit {}); raise LimitNOFILE \
                 (or `ulimit -n`) for sshmcpd, or lower the pool ([pool] max_per_host, fewer \
                 hosts in [pool] warm), then retry",
                fds.open, fds.limit
            ))
        }
        Some(libc::ENFILE) => Some(
            "the system is out of file descriptors (sysctl fs.file-max); close some \
             programs or raise the limit, then retry"
                .to_string(),
        ),
        _ => None,
    }
}

/// The soft `RLIMIT_NOFILE` before and after [`raise_fd_limit`].
#[derive(Debug, Clone, Copy)]
pub struct FdLimitRaise {
    pub before: u64,
    pub after: u64,
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit. A daemon started
/// from a terminal gets a soft limit of 1024, which a few hundred warm
/// hosts (a socket each, plus files read while connecting) use up, while
/// the hard limit is usually far higher; systemd's `LimitNOFILE` sets
/// both. Asking for more than the hard limit would need privilege, so the
/// hard limit is where it stops.
pub fn raise_fd_limit() -> std::io::Result<FdLimitRaise> {
    let mut limit = nofile_limit()?;
    let before = limit.rlim_cur;
    // An unlimited hard limit is refused by the kernel as a soft limit
    // above fs.nr_open; that cap is the most that can be had.
    let target = if limit.rlim_max == libc::RLIM_INFINITY {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(before)
    } else {
        limit.rlim_max
    };
    if target > before {
        limit.rlim_cur = target;
        // SAFETY: `limit` is a valid rlimit for setrlimit to read.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(FdLimitRaise {
        before,
        after: nofile_limit()?.rlim_cur,
    })
}

fn nofile_limit() -> std::io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is valid for getrlimit to write.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        Ok(limit)
    } else {
        Err(std::io::Error::last_os_error())
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

    #[test]
    fn descriptors_above_nine_tenths_of_the_limit_are_degraded() {
        let at = |open| FdUsage { open, limit: 1000 }.degraded_reason();
        assert_eq!(at(900), None);
        let reason = at(901).expect("degraded above 90%");
        assert!(reason.contains("file descriptors"), "{reason}");
        assert!(reason.contains("901 open, limit 1000"), "{reason}");
        assert_eq!(FdUsage { open: 5, limit: 0 }.degraded_reason(), None);
    }

    #[test]
    fn only_emfile_and_enfile_count_as_running_out_of_descriptors() {
        let emfile = std::io::Error::from_raw_os_error(libc::EMFILE);
        let advice = out_of_fds_advice(&emfile).expect("EMFILE is running out");
        assert!(advice.contains("out of file descriptors"), "{advice}");
        assert!(advice.contains("LimitNOFILE"), "{advice}");
        let enfile = std::io::Error::from_raw_os_error(libc::ENFILE);
        assert!(is_out_of_fds(&enfile));
        let eacces = std::io::Error::from_raw_os_error(libc::EACCES);
        assert!(!is_out_of_fds(&eacces));
        assert_eq!(out_of_fds_advice(&eacces), None);
    }
}

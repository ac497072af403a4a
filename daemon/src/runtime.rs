//! The tokio runtime, with worker threads pinned one per CPU.
//!
//! Tokio starts its workers on blocking-pool threads and calls both
//! `thread_name_fn` (on the spawning thread, in spawn order) and
//! `on_thread_start` (on the new thread) for workers and blocking threads
//! alike. The workers are the first `workers` threads the runtime spawns,
//! all while it is built, so the name function numbers those `sshmcpd-wN`
//! (short enough for the kernel's 15-byte thread names, so `top -H` and
//! `sshmcpctl stats` show which worker is which) and every later thread
//! `sshmcpd-blocking`; the start
//! hook then pins only threads named as workers, worker N to the Nth chosen
//! CPU. Only CPUs in the process's affinity mask are ever chosen, so a mask
//! set from outside (taskset, systemd `CPUAffinity=`) is respected.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::Pin;

/// Worker N is named `sshmcpd-wN`.
const WORKER_PREFIX: &str = "sshmcpd-w";

/// Build the daemon's runtime for `[daemon] worker_threads` and `pin`.
pub fn build(worker_threads: usize, pin: &Pin) -> std::io::Result<tokio::runtime::Runtime> {
    let allowed = allowed_cpus();
    let cpus = choose_cpus(pin, &allowed, Path::new("/sys/devices/system/cpu"));
    let workers = match worker_threads {
        0 => cpus.as_ref().map_or(allowed.len(), Vec::len).max(1),
        n => n,
    };
    match &cpus {
        Some(cpus) => tracing::info!(workers, ?cpus, "worker threads pinned one per CPU"),
        None => tracing::info!(workers, "worker threads not pinned"),
    }
    let spawned = AtomicUsize::new(0);
    let cpus = Arc::new(cpus.unwrap_or_default());
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .worker_threads(workers)
        .enable_all()
        .thread_name_fn(move || {
            let n = spawned.fetch_add(1, Ordering::Relaxed);
            if n < workers {
                format!("{WORKER_PREFIX}{n}")
            } else {
                "sshmcpd-blocking".to_string()
            }
        });
    if !cpus.is_empty() {
        builder.on_thread_start(move || pin_if_worker(&cpus));
    }
    builder.build()
}

fn pin_if_worker(cpus: &[usize]) {
    let current = std::thread::current();
    let Some(n) = current
        .name()
        .and_then(|name| name.strip_prefix(WORKER_PREFIX))
        .and_then(|n| n.parse::<usize>().ok())
    else {
        return;
    };
    let cpu = cpus[n % cpus.len()];
    if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
        tracing::warn!(worker = n, cpu, "cannot pin worker thread to its CPU");
    }
}

/// The CPUs workers are pinned to, or `None` to leave them unpinned.
fn choose_cpus(pin: &Pin, allowed: &[usize], sysfs: &Path) -> Option<Vec<usize>> {
    let within = |wanted: &BTreeSet<usize>| -> Vec<usize> {
        allowed
            .iter()
            .copied()
            .filter(|c| wanted.contains(c))
            .collect()
    };
    let chosen = match pin {
        Pin::Off => return None,
        Pin::Auto => allowed.to_vec(),
        Pin::Cpus(list) => {
            let chosen = within(&list.iter().copied().collect());
            if chosen.len() < list.len() {
                tracing::warn!(
                    ?list,
                    ?allowed,
                    "[daemon] pin names CPUs this process may not run on; they are skipped"
                );
            }
            chosen
        }
        Pin::LargestL3 => match largest_l3(sysfs) {
            Some(group) => {
                let chosen = within(&group);
                if chosen.is_empty() {
                    tracing::warn!(
                        "none of the CPUs sharing the largest L3 may be used by this process; \
                         pinning to every allowed CPU"
                    );
                    allowed.to_vec()
                } else {
                    chosen
                }
            }
            None => {
                tracing::warn!(
                    "no L3 cache information under {}; pinning to every allowed CPU",
                    sysfs.display()
                );
                allowed.to_vec()
            }
        },
    };
    if chosen.is_empty() {
        tracing::warn!("no usable CPU to pin to; worker threads are not pinned");
        return None;
    }
    Some(chosen)
}

/// The CPUs this process may run on (its affinity mask).
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most
    // size_of::<cpu_set_t>() bytes into it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let ok =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if ok != 0 {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        return (0..n).collect();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

/// The CPUs sharing the largest L3 cache (the lowest-numbered group on a
/// tie), read from `<sysfs>/cpu*/cache/index*/{level,shared_cpu_list,size}`.
pub fn largest_l3(sysfs: &Path) -> Option<BTreeSet<usize>> {
    let mut best: Option<(u64, BTreeSet<usize>)> = None;
    let mut cpu_dirs: Vec<_> = std::fs::read_dir(sysfs)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("cpu"))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|e| e.path())
        .collect();
    cpu_dirs.sort();
    for cpu_dir in cpu_dirs {
        let Ok(indexes) = std::fs::read_dir(cpu_dir.join("cache")) else {
            continue;
        };
        for index in indexes.filter_map(Result::ok) {
            let read = |file: &str| std::fs::read_to_string(index.path().join(file)).ok();
            if read("level").as_deref().map(str::trim) != Some("3") {
                continue;
            }
            let (Some(size), Some(shared)) = (
                read("size").and_then(|s| parse_cache_size(&s)),
                read("shared_cpu_list").and_then(|s| parse_cpu_list(&s)),
            ) else {
                continue;
            };
            let better = match &best {
                None => true,
                Some((best_size, best_set)) => {
                    size > *best_size || (size == *best_size && shared.first() < best_set.first())
                }
            };
            if better {
                best = Some((size, shared));
            }
        }
    }
    best.map(|(_, set)| set)
}

/// `"98304K"` → bytes.
fn parse_cache_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, shift) = match text.as_bytes().last()? {
        b'K' => (&text[..text.len() - 1], 10),
        b'M' => (&text[..text.len() - 1], 20),
        b'G' => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    digits.parse::<u64>().ok().map(|n| n << shift)
}

/// A kernel CPU list such as `"0-7,16-23"`.
pub fn parse_cpu_list(text: &str) -> Option<BTreeSet<usize>> {
    let mut set = BTreeSet::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                if b < a || b - a > 4096 {
                    return None;
                }
                set.extend(a..=b);
            }
            None => {
                set.insert(part.parse().ok()?);
            }
        }
    }
    Some(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a sysfs-like tree: `l3` lists (shared_cpu_list, size) groups;
    /// every CPU also gets a private L2 that must be ignored.
    fn fake_sysfs(l3: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (list, size) in l3 {
            for cpu in parse_cpu_list(list).unwrap() {
                let cache = dir.path().join(format!("cpu{cpu}/cache"));
                for (index, level, shared, size) in [
                    ("index2", "2", cpu.to_string(), "1024K"),
                    ("index3", "3", list.to_string(), size),
                ] {
                    let index = cache.join(index);
                    std::fs::create_dir_all(&index).unwrap();
                    std::fs::write(index.join("level"), format!("{level}\n")).unwrap();
                    std::fs::write(index.join("shared_cpu_list"), format!("{shared}\n")).unwrap();
                    std::fs::write(index.join("size"), format!("{size}\n")).unwrap();
                }
            }
        }
        std::fs::create_dir_all(dir.path().join("cpufreq")).unwrap();
        dir
    }

    #[test]
    fn dual_ccd_x3d_picks_the_v_cache_ccd() {
        // 7950X3D: CCD0 (with V-Cache, 96 MiB) holds CPUs 0-7 and their SMT
        // siblings 16-23; CCD1 (32 MiB) holds 8-15 and 24-31.
        let sysfs = fake_sysfs(&[("0-7,16-23", "98304K"), ("8-15,24-31", "32768K")]);
        let group = largest_l3(sysfs.path()).unwrap();
        assert_eq!(
            group.into_iter().collect::<Vec<_>>(),
            (0..8).chain(16..24).collect::<Vec<_>>()
        );
    }

    #[test]
    fn single_ccd_x3d_picks_every_cpu() {
        // 7800X3D: one CCD, 8 cores, 16 threads, 96 MiB.
        let sysfs = fake_sysfs(&[("0-15", "98304K")]);
        assert_eq!(largest_l3(sysfs.path()).unwrap().len(), 16);
    }

    #[test]
    fn equal_l3_groups_pick_the_lowest_cpus() {
        let sysfs = fake_sysfs(&[("4-7", "16M"), ("0-3", "16M")]);
        assert_eq!(
            largest_l3(sysfs.path())
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
    }

    #[test]
    fn largest_l3_stays_within_the_allowed_cpus() {
        let sysfs = fake_sysfs(&[("0-7,16-23", "98304K"), ("8-15,24-31", "32768K")]);
        let allowed = [6, 7, 8, 9];
        assert_eq!(
            choose_cpus(&Pin::LargestL3, &allowed, sysfs.path()),
            Some(vec![6, 7])
        );
        // Allowed CPUs only on the smaller CCD: pin to those rather than none.
        assert_eq!(
            choose_cpus(&Pin::LargestL3, &[8, 9], sysfs.path()),
            Some(vec![8, 9])
        );
    }

    #[test]
    fn no_cache_information_falls_back_to_every_allowed_cpu() {
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(largest_l3(empty.path()), None);
        assert_eq!(
            choose_cpus(&Pin::LargestL3, &[0, 1], empty.path()),
            Some(vec![0, 1])
        );
    }

    #[test]
    fn explicit_lists_and_off() {
        let none = Path::new("/nonexistent");
        assert_eq!(choose_cpus(&Pin::Off, &[0, 1], none), None);
        assert_eq!(choose_cpus(&Pin::Auto, &[0, 1], none), Some(vec![0, 1]));
        assert_eq!(
            choose_cpus(&Pin::Cpus(vec![1, 5]), &[0, 1, 2], none),
            Some(vec![1])
        );
        assert_eq!(choose_cpus(&Pin::Cpus(vec![5]), &[0, 1], none), None);
    }

    #[test]
    fn cpu_lists_parse() {
        assert_eq!(
            parse_cpu_list("0-2,5\n")
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            vec![0, 1, 2, 5]
        );
        assert!(parse_cpu_list("3-1").is_none());
        assert_eq!(parse_cache_size("32768K"), Some(32 << 20));
    }

    #[test]
    fn this_process_may_run_somewhere() {
        assert!(!allowed_cpus().is_empty());
    }
}

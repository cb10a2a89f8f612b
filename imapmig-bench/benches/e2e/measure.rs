//! Measuring a contender: wall time, CPU seconds and peak RSS of the child process (from the
//! kernel's own accounting, `wait4`), the CPU the two Dovecot instances spent meanwhile (from
//! `/proc`), and the CPU the whole machine spent (to see how much of it was someone else).

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one child process cost.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// Seconds from spawn to exit.
    pub wall: f64,
    /// User CPU seconds of the child (and any children it waited for).
    pub user: f64,
    /// System CPU seconds.
    pub sys: f64,
    /// Peak resident set size, KiB (`ru_maxrss`).
    pub max_rss_kib: u64,
    /// Whether `max_rss_kib` is the program's own (GNU time) rather than an upper bound.
    pub rss_exact: bool,
    /// Exit code (-1 when killed by a signal).
    pub exit: i32,
}

impl Usage {
    pub fn cpu(&self) -> f64 {
        self.user + self.sys
    }
}

/// GNU time, which reports the peak RSS of the program it runs (see [`run`]).
const GNU_TIME: &str = "/usr/bin/time";

/// Runs `cmd` to completion and measures it. Its stdout and stderr go where `cmd` says;
/// `rss_file` is scratch space for GNU time's report.
///
/// Wall and CPU time come from our own clock and `wait4`. The peak RSS does not: a process
/// started with `posix_spawn`/`vfork` (as `std::process::Command` does) has the *parent's*
/// high-water mark folded into its `ru_maxrss` when it execs, and the parent here is this
/// benchmark, which holds large messages in memory at times. So the program runs under GNU
/// `time`, a small process that forks it: its `%M` is the program's own peak (plus GNU time's
/// ~1 MB floor). Without GNU time the `wait4` figure is used and marked as an upper bound.
pub fn run(cmd: Command, stdout: File, stderr: File, rss_file: &Path) -> Usage {
    let gnu_time = Path::new(GNU_TIME).exists();
    let mut cmd = if gnu_time {
        let _ = std::fs::remove_file(rss_file);
        let mut wrapped = Command::new(GNU_TIME);
        wrapped
            .arg("-f")
            .arg("%M")
            .arg("-o")
            .arg(rss_file)
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => wrapped.env(k, v),
                None => wrapped.env_remove(k),
            };
        }
        if let Some(d) = cmd.get_current_dir() {
            wrapped.current_dir(d);
        }
        wrapped
    } else {
        cmd
    };
    cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
    let started = Instant::now();
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", cmd.get_program()));
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain old data that wait4 fills in; a zeroed one is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our own child, not yet reaped (std's Child never waits on drop), and
        // both out-pointers point at live locals of the right types.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            panic!("wait4 on {pid}: {err}");
        }
    }
    let wall = started.elapsed().as_secs_f64();
    drop(child);
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let reported = if gnu_time {
        // GNU time writes "Command exited with non-zero status N" first when it did.
        std::fs::read_to_string(rss_file)
            .ok()
            .and_then(|s| s.lines().last()?.trim().parse::<u64>().ok())
    } else {
        None
    };
    Usage {
        wall,
        user: tv(ru.ru_utime),
        sys: tv(ru.ru_stime),
        max_rss_kib: reported.unwrap_or(ru.ru_maxrss.max(0) as u64),
        rss_exact: reported.is_some(),
        exit: if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -1
        },
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// `(ppid, utime + stime + cutime + cstime in ticks)` of a process, from `/proc/PID/stat`.
fn proc_stat(pid: i32) -> Option<(i32, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields count from after it.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): ppid is field 4, utime..cstime are fields 14..17.
    let ppid = f.get(1)?.parse().ok()?;
    let mut ticks = 0u64;
    for i in 11..15 {
        ticks += f.get(i)?.parse::<u64>().ok()?;
    }
    Some((ppid, ticks))
}

fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The CPU used by the processes of a set of Dovecot instances.
///
/// Dovecot's master forks a process per login and per session; when one exits, the master
/// reaps it and its CPU time moves into the master's `cutime`/`cstime`. So the CPU of the
/// whole instance, past and present, is the sum over its live processes of their own and
/// their reaped children's times, and a difference of two readings is what it spent between
/// them, whichever processes came and went.
pub struct ServerCpu {
    masters: Vec<i32>,
    ticks: f64,
}

impl ServerCpu {
    /// Finds the master process of each instance by its configuration file.
    pub fn find(configs: &[&Path]) -> ServerCpu {
        let mut masters = Vec::new();
        for config in configs {
            let needle = config.to_string_lossy().into_owned();
            let found = all_pids().into_iter().find(|pid| {
                let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                    return false;
                };
                let args: Vec<String> = cmd
                    .split(|b| *b == 0)
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                args.first().is_some_and(|a| a.ends_with("dovecot"))
                    && args.iter().any(|a| a == &needle)
            });
            match found {
                Some(pid) => masters.push(pid),
                None => eprintln!(
                    "bench: note: no Dovecot master found for {needle}; server CPU is not measured"
                ),
            }
        }
        ServerCpu {
            masters,
            ticks: clock_ticks(),
        }
    }

    /// CPU seconds of each instance so far (see the type's documentation).
    pub fn read(&self) -> Vec<f64> {
        let mut parent: HashMap<i32, i32> = HashMap::new();
        let mut cost: HashMap<i32, u64> = HashMap::new();
        for pid in all_pids() {
            if let Some((ppid, t)) = proc_stat(pid) {
                parent.insert(pid, ppid);
                cost.insert(pid, t);
            }
        }
        self.masters
            .iter()
            .map(|&m| {
                let mut sum = 0u64;
                for (&pid, &t) in &cost {
                    let mut p = pid;
                    // Walk up at most a few levels: Dovecot's tree is shallow.
                    for _ in 0..8 {
                        if p == m {
                            sum += t;
                            break;
                        }
                        match parent.get(&p) {
                            Some(&pp) if pp > 1 => p = pp,
                            _ => break,
                        }
                    }
                }
                sum as f64 / self.ticks
            })
            .collect()
    }

    /// Waits (up to a second) until no `imap` process of the instances is left, so that a
    /// reading taken next has every session of the last run accounted for.
    pub fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            let busy = all_pids().into_iter().any(|pid| {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                comm.trim() == "imap"
                    && proc_stat(pid).is_some_and(|(pp, _)| self.masters.contains(&pp))
            });
            if !busy {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Busy CPU seconds of the whole machine so far (all cores; idle and iowait left out).
pub fn machine_busy() -> f64 {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = s.lines().next() else {
        return 0.0;
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 5 {
        return 0.0;
    }
    // user nice system idle iowait irq softirq steal (guest is inside user).
    let total: u64 = v.iter().take(8).sum();
    (total - v[3] - v[4]) as f64 / clock_ticks()
}

/// The one-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

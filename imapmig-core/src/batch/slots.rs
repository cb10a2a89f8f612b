//! Who may start now: the concurrency limits, shared fairly between hosts, adapted to
//! throttling.
//!
//! Connections are counted per host and side: an account that runs with `n` connections holds
//! `n` of its source host's and `n` of its destination host's. It gets
//! `min(connections_per_account, free on its source host, free on its destination host)`, at
//! least one, so a host near its limit still makes progress with fewer connections per account.
//!
//! **Fairness.** Due accounts are grouped by source host; each free slot goes to the host that
//! has the fewest accounts running (ties to the one that started an account the longest time
//! ago), and within a host to the account that has waited longest. A host with ten thousand
//! accounts ahead in the queue therefore cannot starve one with ten.
//!
//! **Throttling.** When a server throttles (`NO [LIMIT]`, `[UNAVAILABLE]`, "too many
//! connections", Office 365's "Suggested Backoff Time"), its host's limit is halved (at least
//! one); at most once per cool-down, since one episode is reported by many connections at once.
//! Each pass that then ends without throttling, after a cool-down, gives one connection back
//! (additive increase), up to the configured limit.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::store::DueAccount;
use super::task::ConcurrencyLimits;
use crate::engine::Side;

/// One host's gate.
#[derive(Clone, Debug)]
struct Gate {
    configured: usize,
    limit: usize,
    in_use: usize,
    accounts: usize,
    last_start: u64,
    throttled_at: Option<Instant>,
    peak: usize,
    passes: u64,
    throttle_events: u64,
}

impl Gate {
    fn new(configured: usize) -> Gate {
        Gate {
            configured,
            limit: configured,
            in_use: 0,
            accounts: 0,
            last_start: 0,
            throttled_at: None,
            peak: 0,
            passes: 0,
            throttle_events: 0,
        }
    }

    fn free(&self) -> usize {
        self.limit.saturating_sub(self.in_use)
    }
}

/// How one host's connections were shared (for reports and the live summary).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostUsage {
    /// Which side the host serves.
    pub side: Side,
    /// The host.
    pub host: String,
    /// The configured connection limit.
    pub configured: usize,
    /// The limit now (lower while it throttles).
    pub limit: usize,
    /// Connections open now.
    pub in_use: usize,
    /// Accounts running now.
    pub accounts: usize,
    /// The most connections open at once.
    pub peak: usize,
    /// Passes started against it.
    pub passes: u64,
    /// How often it throttled (and had its limit cut).
    pub throttle_events: u64,
}

/// What a started account holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Grant {
    pub(crate) source_host: String,
    pub(crate) destination_host: String,
    pub(crate) connections: usize,
}

/// The scheduler's slot book.
#[derive(Debug)]
pub(crate) struct Slots {
    limits: ConcurrencyLimits,
    running: usize,
    peak_running: usize,
    source: HashMap<String, Gate>,
    destination: HashMap<String, Gate>,
    seq: u64,
    cooldown: Duration,
}

impl Slots {
    pub(crate) fn new(limits: ConcurrencyLimits, cooldown: Duration) -> Slots {
        Slots {
            limits,
            running: 0,
            peak_running: 0,
            source: HashMap::new(),
            destination: HashMap::new(),
            seq: 0,
            cooldown,
        }
    }

    /// Applies edited limits: a lowered limit holds at once for new starts; a throttled host
    /// keeps its reduction.
    pub(crate) fn configure(&mut self, limits: ConcurrencyLimits) {
        if limits == self.limits {
            return;
        }
        for (gates, conf) in [
            (&mut self.source, limits.per_source_host),
            (&mut self.destination, limits.per_destination_host),
        ] {
            for g in gates.values_mut() {
                let throttled = g.limit < g.configured;
                g.configured = conf;
                g.limit = if throttled { g.limit.min(conf) } else { conf };
            }
        }
        self.limits = limits;
    }

    /// Accounts that may still start.
    pub(crate) fn free(&self) -> usize {
        self.limits.accounts.saturating_sub(self.running)
    }

    pub(crate) fn peak_running(&self) -> usize {
        self.peak_running
    }

    fn gates(&mut self, side: Side) -> (&mut HashMap<String, Gate>, usize) {
        match side {
            Side::Source => (&mut self.source, self.limits.per_source_host),
            Side::Destination => (&mut self.destination, self.limits.per_destination_host),
        }
    }

    fn gate(&mut self, side: Side, host: &str) -> &mut Gate {
        let (gates, conf) = self.gates(side);
        gates
            .entry(host.to_string())
            .or_insert_with(|| Gate::new(conf))
    }

    /// Chooses which due accounts start now, fairly between source hosts, and reserves their
    /// connections. `due` is in waiting order.
    pub(crate) fn pick(&mut self, due: &[DueAccount]) -> Vec<(i64, Grant)> {
        let mut queues: Vec<(String, std::collections::VecDeque<&DueAccount>)> = Vec::new();
        for d in due {
            match queues.iter_mut().find(|(h, _)| *h == d.source_host) {
                Some((_, q)) => q.push_back(d),
                None => queues.push((d.source_host.clone(), [d].into())),
            }
        }
        let mut out = Vec::new();
        while self.free() > 0 {
            // The source host with the fewest running accounts, then the longest unserved.
            let mut best: Option<(usize, usize, u64)> = None;
            for (i, (host, q)) in queues.iter().enumerate() {
                if q.is_empty() {
                    continue;
                }
                let g = self.gate(Side::Source, host);
                if g.free() == 0 {
                    continue;
                }
                let key = (g.accounts, g.last_start);
                if best.is_none_or(|(_, a, s)| key < (a, s)) {
                    best = Some((i, key.0, key.1));
                }
            }
            let Some((i, _, _)) = best else { break };
            let src_host = queues[i].0.clone();
            let mut started = None;
            while let Some(d) = queues[i].1.pop_front() {
                if self.gate(Side::Destination, &d.destination_host).free() > 0 {
                    started = Some(d);
                    break;
                }
            }
            let Some(d) = started else { continue };
            let connections = self
                .limits
                .connections_per_account
                .min(self.gate(Side::Source, &src_host).free())
                .min(self.gate(Side::Destination, &d.destination_host).free())
                .max(1);
            self.seq += 1;
            let seq = self.seq;
            for (side, host) in [
                (Side::Source, &src_host),
                (Side::Destination, &d.destination_host),
            ] {
                let g = self.gate(side, host);
                g.in_use += connections;
                g.accounts += 1;
                g.last_start = seq;
                g.passes += 1;
                g.peak = g.peak.max(g.in_use);
            }
            self.running += 1;
            self.peak_running = self.peak_running.max(self.running);
            out.push((
                d.id,
                Grant {
                    source_host: src_host,
                    destination_host: d.destination_host.clone(),
                    connections,
                },
            ));
        }
        out
    }

    /// Gives a finished account's connections back.
    pub(crate) fn release(&mut self, grant: &Grant) {
        for (side, host) in [
            (Side::Source, &grant.source_host),
            (Side::Destination, &grant.destination_host),
        ] {
            let g = self.gate(side, host);
            g.in_use = g.in_use.saturating_sub(grant.connections);
            g.accounts = g.accounts.saturating_sub(1);
        }
        self.running = self.running.saturating_sub(1);
    }

    /// A host throttled: halves its limit unless it was cut within the cool-down. Returns the
    /// new limit when it changed.
    pub(crate) fn throttled(&mut self, side: Side, host: &str) -> Option<usize> {
        let cooldown = self.cooldown;
        let g = self.gate(side, host);
        if g.throttled_at.is_some_and(|t| t.elapsed() < cooldown) {
            return None;
        }
        g.throttled_at = Some(Instant::now());
        g.throttle_events += 1;
        let new = (g.limit / 2).max(1);
        let changed = new != g.limit;
        g.limit = new;
        changed.then_some(new)
    }

    /// A pass ended without throttling on this host: after the cool-down, one connection more.
    pub(crate) fn healthy(&mut self, side: Side, host: &str) {
        let cooldown = self.cooldown;
        let g = self.gate(side, host);
        if g.limit < g.configured && g.throttled_at.is_none_or(|t| t.elapsed() >= cooldown) {
            g.limit += 1;
        }
    }

    /// Every host's usage, sources first, by name.
    pub(crate) fn usage(&self) -> Vec<HostUsage> {
        let mut out = Vec::new();
        for (side, gates) in [
            (Side::Source, &self.source),
            (Side::Destination, &self.destination),
        ] {
            let mut hosts: Vec<(&String, &Gate)> = gates.iter().collect();
            hosts.sort_by(|a, b| a.0.cmp(b.0));
            for (host, g) in hosts {
                out.push(HostUsage {
                    side,
                    host: host.clone(),
                    configured: g.configured,
                    limit: g.limit,
                    in_use: g.in_use,
                    accounts: g.accounts,
                    peak: g.peak,
                    passes: g.passes,
                    throttle_events: g.throttle_events,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(id: i64, src: &str, dst: &str) -> DueAccount {
        DueAccount {
            id,
            source_host: src.into(),
            destination_host: dst.into(),
        }
    }

    fn limits(
        accounts: usize,
        per_src: usize,
        per_dst: usize,
        per_account: usize,
    ) -> ConcurrencyLimits {
        ConcurrencyLimits {
            accounts,
            per_source_host: per_src,
            per_destination_host: per_dst,
            connections_per_account: per_account,
        }
    }

    #[test]
    fn a_big_host_does_not_starve_a_small_one() {
        let mut s = Slots::new(limits(4, 10, 100, 2), Duration::ZERO);
        // A thousand accounts of host A wait before two of host B.
        let mut queue: Vec<DueAccount> = (0..1000).map(|i| due(i, "a", "d")).collect();
        queue.push(due(5000, "b", "d"));
        queue.push(due(5001, "b", "d"));
        let picked: Vec<i64> = s.pick(&queue).into_iter().map(|(id, _)| id).collect();
        assert_eq!(picked, vec![0, 5000, 1, 5001]);
        assert_eq!(s.free(), 0);
    }

    #[test]
    fn per_host_limits_hold_and_connections_shrink_to_fit() {
        let mut s = Slots::new(limits(10, 5, 100, 2), Duration::ZERO);
        let queue: Vec<DueAccount> = (0..10).map(|i| due(i, "a", "d")).collect();
        let grants = s.pick(&queue);
        // 5 connections on host a: 2 + 2 + 1.
        let conns: Vec<usize> = grants.iter().map(|(_, g)| g.connections).collect();
        assert_eq!(conns, vec![2, 2, 1]);
        assert!(s.pick(&queue[3..]).is_empty());
        s.release(&grants[0].1);
        let more = s.pick(&queue[3..]);
        assert_eq!(more.len(), 1);
        assert_eq!(more[0].1.connections, 2);
        let u = s.usage();
        assert_eq!(u[0].host, "a");
        assert_eq!(u[0].peak, 5);
    }

    #[test]
    fn a_destination_limit_is_respected_across_sources() {
        let mut s = Slots::new(limits(10, 10, 3, 1), Duration::ZERO);
        let queue = vec![
            due(1, "a", "d"),
            due(2, "b", "d"),
            due(3, "c", "d"),
            due(4, "c", "d"),
            due(5, "c", "e"),
        ];
        // Destination d holds three; 4 waits, but 5 (to e) need not wait behind it.
        let picked: Vec<i64> = s.pick(&queue).into_iter().map(|(id, _)| id).collect();
        assert_eq!(picked, vec![1, 2, 3, 5]);
        assert!(s.pick(&queue[3..4]).is_empty());
    }

    #[test]
    fn throttling_halves_and_health_restores() {
        let mut s = Slots::new(limits(10, 8, 100, 4), Duration::from_millis(50));
        assert_eq!(s.throttled(Side::Source, "a"), Some(4));
        // The same episode reported again within the cool-down changes nothing.
        assert_eq!(s.throttled(Side::Source, "a"), None);
        let queue: Vec<DueAccount> = (0..10).map(|i| due(i, "a", "d")).collect();
        let grants = s.pick(&queue);
        assert_eq!(grants.len(), 1, "4 connections, one account of 4");
        s.healthy(Side::Source, "a");
        assert_eq!(s.usage()[0].limit, 4, "no increase within the cool-down");
        std::thread::sleep(Duration::from_millis(60));
        s.healthy(Side::Source, "a");
        assert_eq!(s.usage()[0].limit, 5);
        assert_eq!(s.throttled(Side::Source, "a"), Some(2));
        assert_eq!(s.usage()[0].throttle_events, 2);
        for _ in 0..10 {
            std::thread::sleep(Duration::from_millis(55));
            s.healthy(Side::Source, "a");
        }
        assert_eq!(s.usage()[0].limit, 8, "never above the configured limit");
    }

    #[test]
    fn edited_limits_apply() {
        let mut s = Slots::new(limits(1, 8, 8, 2), Duration::ZERO);
        let queue: Vec<DueAccount> = (0..3).map(|i| due(i, "a", "d")).collect();
        assert_eq!(s.pick(&queue).len(), 1);
        s.configure(limits(3, 8, 8, 2));
        assert_eq!(s.pick(&queue[1..]).len(), 2);
    }
}

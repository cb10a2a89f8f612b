//! Tests for the folder diff: named examples of each decision, and properties over arbitrary
//! listings, sync states, date ranges, size limits and destination flag sets.

use std::collections::{BTreeMap, HashMap, HashSet};

use proptest::prelude::*;

use super::*;

// ---------------------------------------------------------------------------------------------
// Helpers

fn flags(line: &str) -> Flags {
    Flags::from_line(line)
}

fn meta(uid: u32, size: u64, f: &str) -> MessageMeta {
    MessageMeta {
        uid: Uid(uid),
        flags: flags(f),
        internal_date: None,
        size,
        modseq: None,
    }
}

fn record(uid: u32, dst_uid: Option<u32>, f: &str) -> CopiedRecord {
    CopiedRecord {
        src_uid: Uid(uid),
        dst_uid: dst_uid.map(Uid),
        fingerprint: [0; 32],
        flags: flags(f),
        size: 0,
    }
}

fn copied(records: Vec<CopiedRecord>) -> HashMap<Uid, CopiedRecord> {
    records.into_iter().map(|r| (r.src_uid, r)).collect()
}

/// A destination folder that stores every flag.
fn any_flags() -> OpenedTarget {
    OpenedTarget::default()
}

fn view<'a>(
    listed: &'a [MessageMeta],
    copied: &'a HashMap<Uid, CopiedRecord>,
    target: &'a OpenedTarget,
) -> FolderView<'a> {
    FolderView {
        listed,
        delta: false,
        in_dates: None,
        size_limit: None,
        copied,
        target,
    }
}

fn uids(metas: &[&MessageMeta]) -> Vec<u32> {
    metas.iter().map(|m| m.uid.0).collect()
}

// ---------------------------------------------------------------------------------------------
// Examples

#[test]
fn a_first_pass_copies_everything_in_listing_order() {
    let listed = [meta(3, 10, ""), meta(1, 10, "\\Seen"), meta(7, 10, "")];
    let copied = copied(vec![]);
    let target = any_flags();
    let plan = diff(&view(&listed, &copied, &target));
    assert_eq!(uids(&plan.to_copy), [3, 1, 7]);
    assert_eq!(plan.found(), 3);
    assert_eq!(plan.already_there_count(), 0);
    assert!(plan.flag_updates.is_empty());
}

#[test]
fn over_the_limit_is_reported_with_the_size_and_the_limit() {
    let listed = [meta(1, 2048, ""), meta(2, 1024, "")];
    let copied = copied(vec![]);
    let target = any_flags();
    let plan = diff(&FolderView {
        size_limit: Some(1024),
        ..view(&listed, &copied, &target)
    });
    assert_eq!(uids(&plan.to_copy), [2]);
    assert_eq!(
        plan.too_large,
        [SkippedMessage {
            uid: 1,
            size: 2048,
            reason: "2048 bytes, over the limit of 1024".into(),
            kind: None,
        }]
    );
    // Too large is still found: it is in the folder, inside the selection.
    assert_eq!(plan.found(), 2);
}

#[test]
fn a_copy_over_a_limit_set_later_is_still_there_not_too_large() {
    let listed = [meta(1, 5000, "")];
    let copied = copied(vec![record(1, Some(10), "")]);
    let target = any_flags();
    let plan = diff(&FolderView {
        size_limit: Some(100),
        ..view(&listed, &copied, &target)
    });
    assert_eq!(plan.already_there, [Uid(1)]);
    assert!(plan.too_large.is_empty());
}

#[test]
fn a_copied_message_outside_the_dates_is_skipped_by_filter_not_there() {
    let listed = [meta(1, 10, "\\Seen"), meta(2, 10, "")];
    let copied = copied(vec![record(1, Some(10), "")]);
    let in_dates: HashSet<Uid> = [Uid(2)].into();
    let target = any_flags();
    let plan = diff(&FolderView {
        in_dates: Some(&in_dates),
        ..view(&listed, &copied, &target)
    });
    assert_eq!(plan.outside_dates, [Uid(1)]);
    assert_eq!(uids(&plan.to_copy), [2]);
    assert!(plan.already_there.is_empty());
    // Its flags changed, but it is outside this pass's selection: left alone.
    assert!(plan.flag_updates.is_empty());
    assert_eq!(plan.found(), 1);
}

#[test]
fn copies_that_take_the_same_flags_share_one_store() {
    let listed = [
        meta(1, 10, "\\Seen"),
        meta(2, 10, "\\Flagged"),
        meta(3, 10, "\\Seen"),
        meta(4, 10, "\\Seen"),
    ];
    let copied = copied(vec![
        record(1, Some(11), ""),
        record(2, Some(12), ""),
        record(3, Some(13), ""),
        // Recorded as the source has it: nothing to do.
        record(4, Some(14), "\\Seen"),
    ]);
    let target = any_flags();
    let plan = diff(&view(&listed, &copied, &target));
    assert!(plan.to_copy.is_empty());
    assert_eq!(plan.already_there_count(), 4);
    assert_eq!(
        plan.flag_updates,
        [
            FlagUpdate {
                flags: flags("\\Flagged"),
                dst_uids: vec![Uid(12)],
                recorded: vec![(Uid(2), flags("\\Flagged"))],
            },
            FlagUpdate {
                flags: flags("\\Seen"),
                dst_uids: vec![Uid(11), Uid(13)],
                recorded: vec![(Uid(1), flags("\\Seen")), (Uid(3), flags("\\Seen"))],
            },
        ]
    );
}

#[test]
fn a_copy_without_a_destination_uid_is_there_but_gets_no_flag_update() {
    let listed = [meta(1, 10, "\\Seen")];
    let copied = copied(vec![record(1, None, "")]);
    let target = any_flags();
    let plan = diff(&view(&listed, &copied, &target));
    assert_eq!(plan.already_there, [Uid(1)]);
    assert!(plan.flag_updates.is_empty());
}

#[test]
fn keywords_the_destination_does_not_store_are_left_off_and_named() {
    let listed = [meta(1, 10, "\\Seen \\Flagged $Work bad(kw")];
    let copied = copied(vec![record(1, Some(5), "")]);
    let target = OpenedTarget {
        permanent_flags: Some(vec!["\\Seen".into(), "\\*".into()]),
        ..OpenedTarget::default()
    };
    let plan = diff(&view(&listed, &copied, &target));
    assert_eq!(plan.flag_updates.len(), 1);
    assert_eq!(plan.flag_updates[0].flags, flags("\\Seen $Work"));
    // What is recorded is the source's flags, so the next pass does not try again.
    assert_eq!(
        plan.flag_updates[0].recorded,
        [(Uid(1), flags("\\Seen \\Flagged $Work bad(kw"))]
    );
    assert_eq!(
        plan.dropped_keywords.iter().collect::<Vec<_>>(),
        ["\\Flagged", "bad(kw"]
    );
}

#[test]
fn a_delta_listing_counts_unlisted_copies_as_there() {
    // Copies of 1..=4; the delta lists 2 (re-flagged) and 9 (new).
    let listed = [meta(2, 10, "\\Seen"), meta(9, 10, "")];
    let copied = copied((1..=4).map(|u| record(u, Some(u + 100), "")).collect());
    let target = any_flags();
    let plan = diff(&FolderView {
        delta: true,
        ..view(&listed, &copied, &target)
    });
    assert_eq!(plan.unlisted_copies, 3);
    assert_eq!(plan.already_there_count(), 4);
    assert_eq!(plan.found(), 5);
    assert_eq!(uids(&plan.to_copy), [9]);
    assert_eq!(plan.flag_updates[0].dst_uids, [Uid(102)]);
}

#[test]
fn a_full_listing_counts_no_unlisted_copies() {
    let listed = [meta(9, 10, "")];
    let copied = copied((1..=4).map(|u| record(u, Some(u), "")).collect());
    let target = any_flags();
    let plan = diff(&view(&listed, &copied, &target));
    assert_eq!(plan.unlisted_copies, 0);
    assert_eq!(plan.found(), 1);
}

// ---------------------------------------------------------------------------------------------
// Properties

/// Flags from a small pool, so that recorded and listed sets often agree and often differ;
/// some keywords the destination cannot be sent.
fn flags_strategy() -> impl Strategy<Value = Flags> {
    const POOL: [&str; 9] = [
        "\\Seen",
        "\\Answered",
        "\\Flagged",
        "\\Deleted",
        "\\Draft",
        "$Forwarded",
        "Work",
        "bad(kw",
        "$Label1",
    ];
    prop::collection::vec(prop::sample::select(&POOL[..]), 0..4)
        .prop_map(|v| v.into_iter().collect::<Flags>())
}

/// UIDs from a small range, so that listings and the sync state overlap.
fn uid_strategy() -> impl Strategy<Value = u32> {
    1u32..48
}

fn target_strategy() -> impl Strategy<Value = OpenedTarget> {
    const STORED: [&str; 6] = [
        "\\Seen",
        "\\Flagged",
        "\\Answered",
        "\\Deleted",
        "\\*",
        "Work",
    ];
    prop::option::of(prop::collection::vec(
        prop::sample::select(&STORED[..]),
        0..5,
    ))
    .prop_map(|p| OpenedTarget {
        permanent_flags: p.map(|v| v.into_iter().map(String::from).collect()),
        ..OpenedTarget::default()
    })
}

/// Everything a pass decides on, with distinct listed UIDs (as every source lists them).
#[derive(Clone, Debug)]
struct Case {
    listed: Vec<MessageMeta>,
    delta: bool,
    in_dates: Option<HashSet<Uid>>,
    size_limit: Option<u64>,
    copied: HashMap<Uid, CopiedRecord>,
    target: OpenedTarget,
}

impl Case {
    fn view(&self) -> FolderView<'_> {
        FolderView {
            listed: &self.listed,
            delta: self.delta,
            in_dates: self.in_dates.as_ref(),
            size_limit: self.size_limit,
            copied: &self.copied,
            target: &self.target,
        }
    }

    fn selected(&self, uid: Uid) -> bool {
        self.in_dates.as_ref().is_none_or(|s| s.contains(&uid))
    }
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        prop::collection::btree_map(uid_strategy(), (0u64..4096, flags_strategy()), 0..24),
        any::<bool>(),
        prop::option::of(prop::collection::hash_set(uid_strategy(), 0..40)),
        prop::option::of(0u64..4096),
        prop::collection::btree_map(
            uid_strategy(),
            (prop::option::of(1u32..1000), flags_strategy()),
            0..24,
        ),
        target_strategy(),
        // The source does not list in UID order everywhere (Maildir, mbox): shuffle.
        any::<prop::sample::Index>(),
    )
        .prop_map(|(listed, delta, dates, limit, copied, target, rotate)| {
            let mut listed: Vec<MessageMeta> = listed
                .into_iter()
                .map(|(uid, (size, flags))| MessageMeta {
                    uid: Uid(uid),
                    flags,
                    internal_date: None,
                    size,
                    modseq: None,
                })
                .collect();
            if !listed.is_empty() {
                let n = rotate.index(listed.len());
                listed.rotate_left(n);
            }
            Case {
                listed,
                delta,
                in_dates: dates.map(|s| s.into_iter().map(Uid).collect()),
                size_limit: limit,
                copied: copied
                    .into_iter()
                    .map(|(uid, (dst, flags))| {
                        (
                            Uid(uid),
                            CopiedRecord {
                                src_uid: Uid(uid),
                                dst_uid: dst.map(Uid),
                                fingerprint: [0; 32],
                                flags,
                                size: 0,
                            },
                        )
                    })
                    .collect(),
                target,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_listed_message_lands_in_exactly_one_bucket(case in case_strategy()) {
        let plan = diff(&case.view());
        let mut buckets: BTreeMap<Uid, usize> = BTreeMap::new();
        let placed = plan
            .to_copy
            .iter()
            .map(|m| m.uid)
            .chain(plan.already_there.iter().copied())
            .chain(plan.outside_dates.iter().copied())
            .chain(plan.too_large.iter().map(|s| Uid(s.uid)));
        for uid in placed {
            *buckets.entry(uid).or_default() += 1;
        }
        let listed: BTreeMap<Uid, usize> = case.listed.iter().map(|m| (m.uid, 1)).collect();
        prop_assert_eq!(buckets, listed);
    }

    #[test]
    fn a_message_recorded_as_copied_is_never_copied_again(case in case_strategy()) {
        let plan = diff(&case.view());
        for m in &plan.to_copy {
            prop_assert!(!case.copied.contains_key(&m.uid), "UID {} copied twice", m.uid.0);
        }
        for uid in &plan.already_there {
            prop_assert!(case.copied.contains_key(uid));
        }
    }

    #[test]
    fn flags_are_updated_exactly_where_they_differ_on_a_known_copy(case in case_strategy()) {
        let plan = diff(&case.view());
        let expected: BTreeMap<Uid, (Uid, Flags)> = case
            .listed
            .iter()
            .filter(|m| case.selected(m.uid))
            .filter_map(|m| {
                let rec = case.copied.get(&m.uid)?;
                (rec.flags != m.flags).then_some(())?;
                Some((m.uid, (rec.dst_uid?, m.flags.clone())))
            })
            .collect();
        let mut got: BTreeMap<Uid, (Uid, Flags)> = BTreeMap::new();
        let mut lines = Vec::new();
        for u in &plan.flag_updates {
            prop_assert_eq!(u.dst_uids.len(), u.recorded.len());
            prop_assert!(!u.recorded.is_empty());
            lines.push(u.flags.to_line());
            for (dst_uid, (src_uid, src_flags)) in u.dst_uids.iter().zip(&u.recorded) {
                // What is stored is what the destination accepts of the source's flags.
                let mut dropped = BTreeSet::new();
                let accepted = flags_for_destination(src_flags, &case.target, &mut dropped);
                prop_assert_eq!(&u.flags, &accepted);
                prop_assert!(u.flags.iter().all(|f| src_flags.contains(f)));
                prop_assert!(dropped.iter().all(|k| plan.dropped_keywords.contains(k)));
                let again = got.insert(*src_uid, (*dst_uid, src_flags.clone()));
                prop_assert!(again.is_none(), "UID {} updated twice", src_uid.0);
            }
        }
        prop_assert_eq!(got, expected);
        // One STORE per flag set, in a stable order.
        prop_assert!(lines.windows(2).all(|w| w[0] < w[1]), "{:?}", lines);
        // Nothing is dropped that no update left off.
        for k in &plan.dropped_keywords {
            prop_assert!(plan
                .flag_updates
                .iter()
                .any(|u| u.recorded.iter().any(|(_, f)| f.contains(k)) && !u.flags.contains(k)));
        }
    }

    #[test]
    fn the_size_limit_and_the_date_range_are_respected(case in case_strategy()) {
        let plan = diff(&case.view());
        let limit = case.size_limit.unwrap_or(u64::MAX);
        for m in &plan.to_copy {
            prop_assert!(m.size <= limit);
            prop_assert!(case.selected(m.uid));
        }
        for s in &plan.too_large {
            prop_assert!(case.size_limit.is_some_and(|l| s.size > l));
            prop_assert!(case.selected(Uid(s.uid)));
            prop_assert!(!case.copied.contains_key(&Uid(s.uid)));
            prop_assert_eq!(
                &s.reason,
                &format!("{} bytes, over the limit of {}", s.size, limit)
            );
            prop_assert_eq!(s.kind, None);
        }
        for uid in &plan.already_there {
            prop_assert!(case.selected(*uid));
        }
        for uid in &plan.outside_dates {
            prop_assert!(!case.selected(*uid));
        }
    }

    #[test]
    fn counters_agree_with_the_buckets(case in case_strategy()) {
        let plan = diff(&case.view());
        let outside = plan.outside_dates.len() as u64;
        prop_assert_eq!(plan.found(), case.listed.len() as u64 - outside + plan.unlisted_copies);
        if case.delta {
            // Every copy is there, but those listed outside the dates.
            let copied_outside = plan
                .outside_dates
                .iter()
                .filter(|u| case.copied.contains_key(u))
                .count();
            prop_assert_eq!(
                plan.already_there_count() + copied_outside as u64,
                case.copied.len() as u64
            );
        } else {
            prop_assert_eq!(plan.unlisted_copies, 0);
            prop_assert_eq!(plan.already_there_count(), plan.already_there.len() as u64);
        }
    }

    #[test]
    fn the_plan_keeps_the_listing_order_and_is_deterministic(case in case_strategy()) {
        let plan = diff(&case.view());
        let order: HashMap<Uid, usize> =
            case.listed.iter().enumerate().map(|(i, m)| (m.uid, i)).collect();
        let pos = |u: &Uid| order[u];
        prop_assert!(plan.to_copy.windows(2).all(|w| pos(&w[0].uid) < pos(&w[1].uid)));
        prop_assert!(plan.already_there.windows(2).all(|w| pos(&w[0]) < pos(&w[1])));
        prop_assert!(plan.outside_dates.windows(2).all(|w| pos(&w[0]) < pos(&w[1])));
        prop_assert!(plan
            .too_large
            .windows(2)
            .all(|w| pos(&Uid(w[0].uid)) < pos(&Uid(w[1].uid))));
        for u in &plan.flag_updates {
            prop_assert!(u.recorded.windows(2).all(|w| pos(&w[0].0) < pos(&w[1].0)));
        }
        // The same facts, held in maps built in another order, give the same plan.
        let mut other = case.clone();
        let mut records: Vec<&CopiedRecord> = case.copied.values().collect();
        records.sort_by_key(|r| std::cmp::Reverse(r.src_uid));
        other.copied = records.into_iter().map(|r| (r.src_uid, r.clone())).collect();
        other.in_dates = case.in_dates.as_ref().map(|s| {
            let mut v: Vec<Uid> = s.iter().copied().collect();
            v.sort();
            v.into_iter().rev().collect()
        });
        prop_assert_eq!(diff(&other.view()), plan);
    }

    /// Whatever a source lists (repeated UIDs, sizes near the top of the range, any limit), the
    /// diff answers and places each listed entry once.
    #[test]
    fn never_panics_on_any_listing(
        listed in prop::collection::vec(
            (uid_strategy(), any::<u64>(), flags_strategy()), 0..32),
        copied in prop::collection::vec(
            (uid_strategy(), prop::option::of(any::<u32>()), flags_strategy()), 0..32),
        delta in any::<bool>(),
        limit in prop::option::of(any::<u64>()),
        target in target_strategy(),
    ) {
        let listed: Vec<MessageMeta> = listed
            .into_iter()
            .map(|(uid, size, flags)| MessageMeta {
                uid: Uid(uid),
                flags,
                internal_date: None,
                size,
                modseq: None,
            })
            .collect();
        let copied: HashMap<Uid, CopiedRecord> = copied
            .into_iter()
            .map(|(uid, dst, flags)| (Uid(uid), CopiedRecord {
                src_uid: Uid(uid),
                dst_uid: dst.map(Uid),
                fingerprint: [0; 32],
                flags,
                size: 0,
            }))
            .collect();
        let plan = diff(&FolderView {
            listed: &listed,
            delta,
            in_dates: None,
            size_limit: limit,
            copied: &copied,
            target: &target,
        });
        let placed = plan.to_copy.len()
            + plan.already_there.len()
            + plan.outside_dates.len()
            + plan.too_large.len();
        prop_assert_eq!(placed, listed.len());
    }
}

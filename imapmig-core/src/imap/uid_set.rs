//! UID sets in IMAP's compact syntax.

use crate::model::Uid;

/// A compact IMAP UID set (`1:3,5,9:10`) for these UIDs.
pub fn uid_set(uids: &[Uid]) -> String {
    let mut sorted: Vec<u32> = uids.iter().map(|u| u.0).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_compacted() {
        assert_eq!(
            uid_set(&[Uid(3), Uid(1), Uid(2), Uid(9), Uid(7), Uid(10)]),
            "1:3,7,9:10"
        );
        assert_eq!(uid_set(&[Uid(5), Uid(5)]), "5");
        assert_eq!(uid_set(&[]), "");
    }
}

//! UID sets in IMAP's compact syntax (`1:3,5,9:10`): written for commands, read from
//! APPENDUID and COPYUID answers.

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

/// The most UIDs an `APPENDUID` set may expand to. A MULTIAPPEND batch is far smaller; a bigger
/// set is treated as no set at all rather than as an allocation the server chose for us.
const MAX_APPENDUID_SET: u64 = 100_000;

/// Expands a UID set such as `5:7,9` (ranges in either order), refusing anything malformed or
/// larger than 100,000 UIDs (a bound against a hostile answer).
pub fn parse_uid_set(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let (a, b) = match part.split_once(':') {
            Some((a, b)) => (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?),
            None => {
                let n = part.parse::<u32>().ok()?;
                (n, n)
            }
        };
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        if lo == 0 || out.len() as u64 + u64::from(hi - lo) + 1 > MAX_APPENDUID_SET {
            return None;
        }
        out.extend(lo..=hi);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uids(v: &[u32]) -> Vec<Uid> {
        v.iter().map(|&x| Uid(x)).collect()
    }

    #[test]
    fn runs_are_compacted() {
        assert_eq!(uid_set(&uids(&[5, 1, 2, 3, 9, 10, 3])), "1:3,5,9:10");
        assert_eq!(uid_set(&uids(&[9, 1, 2, 3, 7, 10, 3])), "1:3,7,9:10");
        assert_eq!(uid_set(&uids(&[3, 1, 2, 9, 7, 10])), "1:3,7,9:10");
        assert_eq!(uid_set(&uids(&[7])), "7");
        assert_eq!(uid_set(&uids(&[5, 5])), "5");
        assert_eq!(uid_set(&[]), "");
    }
}

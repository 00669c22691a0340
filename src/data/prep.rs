//! Preprocessing: deduplicate by normalised question, filter by token count, shuffle from a
//! seed, split off a validation set; [`PrepReport`] counts what each stage removed.

use crate::sampling::SequenceRng;

/// Lower case, whitespace runs collapsed to one space, trimmed: the key duplicates share.
pub fn normalise_question(q: &str) -> String {
    q.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>().join(" ")
}

/// Keeps the first item of each normalised key, in order; returns how many were removed.
pub fn dedup_by_question<T>(items: Vec<T>, question: impl Fn(&T) -> &str) -> (Vec<T>, usize) {
    let mut seen = std::collections::HashSet::new();
    let before = items.len();
    let kept: Vec<T> = items.into_iter().filter(|it| seen.insert(normalise_question(question(it)))).collect();
    let removed = before - kept.len();
    (kept, removed)
}

/// Fisher–Yates from `seed`: the same seed always gives the same order, on every platform.
pub fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut rng = SequenceRng::new(seed, 0);
    for i in (1..items.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// The first `len - validation` items train, the last `validation` validate.
pub fn split<T>(mut items: Vec<T>, validation: usize) -> (Vec<T>, Vec<T>) {
    let at = items.len().saturating_sub(validation);
    let val = items.split_off(at);
    (items, val)
}

/// Keeps items whose token count is at most `max_tokens`; returns how many were dropped.
pub fn filter_by_tokens<T, E>(
    items: Vec<T>,
    max_tokens: usize,
    mut count: impl FnMut(&T) -> Result<usize, E>,
) -> Result<(Vec<T>, usize), E> {
    let before = items.len();
    let mut kept = Vec::with_capacity(before);
    for it in items {
        if count(&it)? <= max_tokens {
            kept.push(it);
        }
    }
    let dropped = before - kept.len();
    Ok((kept, dropped))
}

#[derive(Debug, Clone, PartialEq)]
pub struct PrepOptions {
    pub dedup: bool,
    /// None: no length filter.
    pub max_tokens: Option<usize>,
    /// None: keep the file order.
    pub shuffle_seed: Option<u64>,
    /// Fraction of the (deduplicated, filtered) items kept for validation, rounded down.
    pub validation_fraction: f64,
}

impl Default for PrepOptions {
    fn default() -> Self {
        PrepOptions { dedup: true, max_tokens: None, shuffle_seed: None, validation_fraction: 0.0 }
    }
}

/// What each stage did; `read = duplicates + too_long + train + validation`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrepReport {
    pub read: usize,
    pub duplicates: usize,
    pub too_long: usize,
    pub train: usize,
    pub validation: usize,
}

/// Dedup → length filter → shuffle → split. `question` gives the text deduplicated on, `count`
/// the token count filtered on (only called when `max_tokens` is set).
pub fn prepare<T, E>(
    items: Vec<T>,
    opts: &PrepOptions,
    question: impl Fn(&T) -> &str,
    count: impl FnMut(&T) -> Result<usize, E>,
) -> Result<(Vec<T>, Vec<T>, PrepReport), E> {
    let mut report = PrepReport { read: items.len(), ..PrepReport::default() };
    let mut items = items;
    if opts.dedup {
        (items, report.duplicates) = dedup_by_question(items, question);
    }
    if let Some(max) = opts.max_tokens {
        (items, report.too_long) = filter_by_tokens(items, max, count)?;
    }
    if let Some(seed) = opts.shuffle_seed {
        shuffle(&mut items, seed);
    }
    let fraction = opts.validation_fraction.clamp(0.0, 1.0);
    let validation = (items.len() as f64 * fraction).floor() as usize;
    let (train, val) = split(items, validation);
    report.train = train.len();
    report.validation = val.len();
    Ok((train, val, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_ignores_case_and_spacing() {
        assert_eq!(normalise_question("  What is\t2 +  2?\n"), "what is 2 + 2?");
        assert_ne!(normalise_question("2+2"), normalise_question("2 + 2"));
    }

    #[test]
    fn dedup_keeps_first_occurrence_in_order() {
        let qs = vec!["A b", "c", "a  B", "d", "C "];
        let (kept, removed) = dedup_by_question(qs, |q| q);
        assert_eq!(kept, vec!["A b", "c", "d"]);
        assert_eq!(removed, 2);
    }

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let base: Vec<u32> = (0..50).collect();
        let shuffled = |seed| {
            let mut v = base.clone();
            shuffle(&mut v, seed);
            v
        };
        assert_eq!(shuffled(7), shuffled(7));
        assert_ne!(shuffled(7), shuffled(8));
        assert_ne!(shuffled(7), base);
        let mut sorted = shuffled(7);
        sorted.sort();
        assert_eq!(sorted, base);
        // Every position is reachable: over many seeds, item 0 lands in many places.
        let spots: std::collections::HashSet<usize> = (0..200).map(|s| shuffled(s).iter().position(|&x| x == 0).unwrap()).collect();
        assert!(spots.len() > 40, "{}", spots.len());
    }

    #[test]
    fn split_takes_validation_from_the_end() {
        let (train, val) = split((0..10).collect::<Vec<_>>(), 3);
        assert_eq!(train, (0..7).collect::<Vec<_>>());
        assert_eq!(val, vec![7, 8, 9]);
        let (train, val) = split(vec![1, 2], 5);
        assert!(train.is_empty());
        assert_eq!(val, vec![1, 2]);
    }

    #[test]
    fn prepare_counts_every_item() {
        // 12 questions: "q0".."q9", two duplicates; lengths are the number in the text.
        let mut items: Vec<String> = (0..10).map(|i| format!("q{i}")).collect();
        items.push("Q3".into());
        items.push(" q7 ".into());
        let opts = PrepOptions { dedup: true, max_tokens: Some(7), shuffle_seed: Some(1), validation_fraction: 0.25 };
        let count = |s: &String| s.trim()[1..].parse::<usize>();
        let (train, val, report) = prepare(items.clone(), &opts, |s| s.as_str(), count).unwrap();
        // 10 unique, q8 and q9 too long → 8 left, floor(8 · 0.25) = 2 validate.
        assert_eq!(report, PrepReport { read: 12, duplicates: 2, too_long: 2, train: 6, validation: 2 });
        let again = prepare(items, &opts, |s| s.as_str(), count).unwrap();
        assert_eq!((train.clone(), val.clone()), (again.0, again.1));
        let mut all: Vec<String> = train.into_iter().chain(val).collect();
        all.sort();
        assert_eq!(all, (0..8).map(|i| format!("q{i}")).collect::<Vec<_>>());
        let bad = prepare(vec!["qx".to_string()], &opts, |s| s.as_str(), count);
        assert!(bad.is_err());
    }
}

//! Limits: every bound that keeps grading pure, panic-free and fast on adversarial completions.

/// Only the last 64 KiB of a completion is searched for an answer.
pub const MAX_SEARCH_BYTES: usize = 64 * 1024;

/// Answers longer than this are compared as normalised strings only (never parsed). The
/// longest gold answer in the shared data is about 250 bytes.
pub const MAX_ANSWER_BYTES: usize = 1024;

/// Deepest nesting the parsers follow (brackets, `\frac` in `\frac`, powers, unary signs).
/// Deeper input is "unparseable" rather than a stack overflow.
pub const MAX_DEPTH: usize = 200;

/// Deepest nesting of answer structure (sets of tuples of lists …); each level rescans its
/// tokens, so this is kept far below MAX_DEPTH.
pub const MAX_STRUCT_DEPTH: usize = 24;

/// Item comparisons allowed for one answer (a few milliseconds at most): a set of 64 tuples
/// of 32 items could otherwise ask for 10⁵. The largest real answers need about 10³.
pub const MAX_COMPARE_FUEL: usize = 10_000;

/// Lists, sets, tuples and matrices with more items than this are compared as strings only;
/// matching a list costs items² comparisons.
pub const MAX_ITEMS: usize = 64;

/// Most `!` in a row: `n!!!!` is a deep tree, and nobody's answer needs more.
pub const MAX_POSTFIX: usize = 3;

/// Numeric equality: |a − b| ≤ REL_TOL · max(|a|, |b|), or |a − b| ≤ ABS_TOL when one side is
/// exactly zero (a relative bound would demand that the other be zero too). Two integral
/// values below 2^53 must instead be exactly equal, so 109200000 ≠ 109200001.
pub const REL_TOL: f64 = 1e-6;
/// Against an exact zero: above the rounding noise of evaluating an answer that is zero
/// (`\sin\pi` is 1.2e-16), below 1e-10 so that 3.2e-10 is not 0. Anything smaller than this
/// is zero, Planck's constant included: a fixed bound cannot tell noise from a tiny value.
pub const ABS_TOL: f64 = 1e-11;

/// Seeded points at which expressions with free variables are compared.
pub const N_POINTS: usize = 8;

/// Fewest points at which both sides must be finite for a numeric verdict of "equal".
pub const MIN_COMPARABLE_POINTS: usize = 3;

/// `\boxed{` occurrences tried, from the last, when the last one is unbalanced (truncated).
pub const MAX_BOXED_TRIES: usize = 4;

/// Boxes (and, apart, `<answer>` tags) read from the end when checking that a completion
/// states one final answer; each is graded, so this bounds that check's cost.
pub const MAX_STATED_ANSWERS: usize = 8;

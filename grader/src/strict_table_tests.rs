//! Table tests of the stricter checks: small scientific values, intervals against
//! inequalities, named tuples and lists, chained equalities, completions that state two
//! answers, and unit marks. One row per case, verdicts decided by hand; every failing row is
//! reported.

use crate::table_tests::{completion_gold, report};
use crate::{answers_match, grade, Benchmark, Gold};

const T: bool = true;
const F: bool = false;

/// (prediction, verdict) pairs for one gold.
type Preds = &'static [(&'static str, bool)];

/// Relative tolerance: a digit swap or a factor of ten is wrong at any scale.
#[rustfmt::skip]
const SMALL_VALUES: &[(&str, Preds)] = &[
    ("3.2 \\times 10^{-10}", &[
        ("3.2e-10", T), ("0.00000000032", T), ("3.20 \\times 10^{-10}", T), ("32 \\times 10^{-11}", T),
        ("2.3e-10", F), ("2.3 \\times 10^{-10}", F), ("3.2 \\times 10^{-11}", F), ("3.2 \\cdot 10^{-9}", F),
        ("3.21 \\times 10^{-10}", F), ("0", F),
    ]),
    ("6.63 \\times 10^{-34}", &[("6.63e-34", T), ("6.36e-34", F), ("6.63e-33", F), ("6.63 \\times 10^{34}", F)]),
    ("1.6e-19", &[("1.6 \\times 10^{-19} \\text{ C}", T), ("1.6e-18", F), ("1.6e-20", F)]),
    ("x = 3.2 \\times 10^{-10}", &[
        ("x = 3.2e-10", T), ("3.2e-10", T), ("2x = 6.4e-10", T), ("x = 2.3 \\times 10^{-10}", F),
        ("x = 3.2e-11", F),
    ]),
    ("0", &[("10^{-12}", T), ("\\sin \\pi", T), ("0.000001", F), ("3.2e-10", F)]),
    ("\\frac{1}{3}", &[("0.333333333", T), ("0.333", F)]),
    ("4.5 \\times 10^{-5}", &[("0.000045", T), ("5.4 \\times 10^{-5}", F), ("4.5 \\times 10^{-6}", F)]),
];

/// Intervals against inequalities in one variable; open and closed ends differ.
#[rustfmt::skip]
const INTERVALS: &[(&str, Preds)] = &[
    ("x \\in [-2,7]", &[
        ("-2 \\le x \\le 7", T), ("7 \\ge x \\ge -2", T), ("-2 \\leq x \\leq 7", T), ("[-2, 7]", T),
        ("-2 < x \\le 7", F), ("-2 \\le x < 7", F), ("-7 \\le x \\le 2", F), ("x \\ge -2", F),
    ]),
    ("(-\\infty,-5)", &[
        ("k < -5", T), ("-5 > k", T), ("x \\in (-\\infty, -5)", T),
        ("k \\le -5", F), ("k > -5", F), ("k < 5", F),
    ]),
    ("[3, \\infty)", &[("x \\ge 3", T), ("3 \\le x", T), ("x \\geq 3", T), ("x > 3", F), ("x \\le 3", F)]),
    ("(3, \\infty)", &[("x > 3", T), ("x \\ge 3", F)]),
    ("(-\\infty, 0]", &[("x \\le 0", T), ("x < 0", F), ("x \\ge 0", F)]),
    ("k \\geqslant 2", &[("[2, \\infty)", T), ("[2, +\\infty)", T), ("(2, \\infty)", F)]),
    ("-2 < x < 3", &[("(-2, 3)", T), ("x \\in (-2, 3)", T), ("[-2, 3)", F), ("(-2, 3]", F)]),
    ("(-\\infty, -5) \\cup (3, \\infty)", &[
        ("x < -5 \\text{ or } x > 3", T), ("x > 3 \\text{ or } x < -5", T),
        ("x \\le -5 \\text{ or } x > 3", F), ("x < -5", F), ("x < -5 \\text{ or } x > 4", F),
    ]),
    ("(-\\infty, 3) \\cup (3, \\infty)", &[("x \\ne 3", T), ("x \\neq 4", F), ("x < 3", F)]),
    ("(2, 4)", &[("x + y > 2", F)]),
];

/// Named tuples and lists: names give the order; a wrong order is wrong.
#[rustfmt::skip]
const NAMED: &[(&str, Preds)] = &[
    ("(2,4)", &[
        ("(k, n) = (2, 4)", T), ("k = 2, n = 4", T), ("n = 4, k = 2", T),
        ("(k, n) = (4, 2)", F), ("k = 4, n = 2", F), ("(k, n) = [2, 4]", F),
    ]),
    ("(k, n) = (2, 4)", &[
        ("(2, 4)", T), ("k = 2, n = 4", T), ("n = 4, k = 2", T), ("(n, k) = (4, 2)", T),
        ("(4, 2)", F), ("k = 4, n = 2", F), ("(n, k) = (2, 4)", F),
    ]),
    ("1, 2", &[("a = 1, b = 2", T), ("b = 2, a = 1", T), ("a = 2, b = 1", F), ("a = 1", F)]),
    ("(3,-1)", &[("x = 3, y = -1", T), ("y = -1, x = 3", T), ("(x, y) = (3, -1)", T), ("x = -1, y = 3", F)]),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", &[("r = 3, \\theta = \\frac{\\pi}{2}", T), ("r = \\frac{\\pi}{2}, \\theta = 3", F)]),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", &[("x = 1, y = 2", T), ("x = 2, y = 1", F)]),
    // Roots have no order: names that share a letter are not coordinates.
    ("-2, 1", &[("x_1 = -2, x_2 = 1", T), ("x_1 = 1, x_2 = -2", T), ("x = 1, x = -2", T), ("x_1 = 1, x_2 = 2", F)]),
];

/// Chains of equalities state their last side; degree marks on any side are dropped.
#[rustfmt::skip]
const CHAINS: &[(&str, Preds)] = &[
    ("130", &[
        ("\\angle A = 180^\\circ - 50^\\circ = 130^\\circ", T), ("180 - 50 = 130", T), ("x = 180 - 50 = 130", T),
        ("\\angle A = 180^\\circ - 50^\\circ = 120^\\circ", F), ("180 - 50 = 120", F),
    ]),
    ("130^\\circ", &[("\\angle ABC = 130^{\\circ}", T), ("m\\angle A = 130", T), ("\\angle ABC = 50^{\\circ}", F)]),
    ("x = 5", &[("x = 2 + 3 = 5", T), ("x = 2 + 3 = 6", F)]),
    ("\\frac{1}{2}", &[("P = \\frac{3}{6} = \\frac{1}{2}", T), ("P = \\frac{1}{2} = 0.6", F)]),
    ("0", &[("x^2 - 1 = 0", F), ("x - 1 = 0", F)]),
    // A decimal that rounds the side before it states both.
    ("\\frac{5}{9}", &[("x = \\frac{5}{9} \\approx 0.56", T), ("\\frac{5}{9} \\approx 0.5556", T), ("x = \\frac{5}{9} \\approx 0.55", F)]),
    ("0.56", &[("x = \\frac{5}{9} \\approx 0.56", T), ("x = \\frac{5}{9}", F)]),
    ("2\\sqrt{2}", &[("d = \\sqrt{8} = 2\\sqrt{2} \\approx 2.83", T), ("d = 2\\sqrt{2} = 2.8", T), ("d = 3 = 2.83", F)]),
    ("130", &[("\\angle A = 100 + 26 = 130", T)]),
    ("126", &[("\\angle A = 100 + 26 = 130", F), ("\\angle A = 100 + 26 = 126.0", T)]),
];

/// Unit marks: arcminutes and arcseconds, degrees, lengths, ohms, microns, ångströms.
#[rustfmt::skip]
const MARKS: &[(&str, Preds)] = &[
    ("0.5", &[
        ("0.5''", T), ("0.5^{\\prime\\prime}", T), ("0.5^{\\prime \\prime}", T), ("0.5 \\text{ arcsec}", T),
        ("0.5\"", T), ("0.5 \\mathrm{arcsec}", T), ("0.5\u{2033}", T), ("0.5 \\mu\\text{m}", T), ("0.5 \\mu m", T), ("0.5 \\mu x", F),
        ("5''", F), ("0.05 \\text{ arcsec}", F),
    ]),
    ("30", &[("30'", T), ("30^{\\prime}", T), ("30^\\circ", T), ("3'", F)]),
    ("45", &[("45^{\\circ}", T), ("45\u{b0}", T), ("45 \\text{ degrees}", T), ("54^\\circ", F)]),
    ("12", &[("12 \\text{cm}", T), ("12\\,\\text{cm}^2", T), ("12 \\mathrm{~cm}", T), ("12 \\text{ cm}^3", T), ("21 \\text{cm}", F)]),
    ("5", &[("5 \\Omega", T), ("5\\,\\Omega", T), ("6 \\Omega", F)]),
    ("5000", &[("5000 \\AA", T), ("5000 \\text{\\AA}", T)]),
    // A bare unit letter after a number, against a gold without variables.
    ("1.2 \\times 10^{-10}", &[("1.2e-10 m", T), ("1.2 \\times 10^{-10} \\, m", T), ("2.1e-10 m", F), ("1.2e-11 m", F)]),
    ("5", &[("5 m", T), ("5m", T), ("5\\,s", T), ("5 m^2", T), ("\\frac{10}{2} N", T), ("5 x", F), ("6 m", F), ("5 \\cdots", F)]),
    ("5m", &[("5", F), ("5 m", T), ("5 s", F)]),
    ("y'", &[("y'", T), ("y", F)]),
    ("y_{1}'", &[("y_1'", T), ("y_1", F)]),
    ("2\\mu", &[("2 \\mu", T), ("2", F)]),
    ("2x", &[("f'(x) = 2x", T), ("f'(x) = 2", F)]),
];

/// Whole completions: (benchmark, completion, gold as in `completion_gold`, verdict). Two
/// different stated answers are wrong whichever the gold; one answer stated twice is fine.
#[rustfmt::skip]
const TWO_ANSWERS: &[(Benchmark, &str, &str, bool)] = &[
    (Benchmark::Math500, "so \\boxed{3}. Checking again, \\boxed{5}", "3", F),
    (Benchmark::Math500, "so \\boxed{3}. Checking again, \\boxed{5}", "5", F),
    (Benchmark::Math500, "so \\boxed{3}. Checking again, \\boxed{3}", "3", T),
    (Benchmark::Math500, "\\boxed{\\frac12}, that is \\boxed{0.5}", "\\frac{1}{2}", T),
    (Benchmark::Math500, "\\boxed{x = 3} hence \\boxed{3}", "3", T),
    (Benchmark::Math500, "<answer>3 or 5</answer>", "3", F),
    (Benchmark::Math500, "<answer>3</answer> <answer>5</answer>", "5", F),
    (Benchmark::Math500, "<answer>\\boxed{3} or \\boxed{5}</answer>", "3", F),
    (Benchmark::Math500, "<answer>3</answer> \\boxed{3}", "3", T),
    (Benchmark::Math500, "<answer>5</answer> \\boxed{3}", "3", F),
    (Benchmark::Math500, "<think>maybe \\boxed{5}</think><answer>\\boxed{3}</answer>", "3", T),
    (Benchmark::Math500, "<think>maybe 5</think><answer>5</answer><answer>3</answer>", "3", F),
    (Benchmark::Math500, "put it in \\boxed{} like so: \\boxed{3}", "3", T),
    (Benchmark::Math500, "\\boxed{3} and the truncated \\boxed{5", "3", T),
    (Benchmark::Gsm8k, "<answer>72</answer> <answer>She sold 72 clips in total</answer>", "#### 72", T),
    (Benchmark::Gsm8k, "\\boxed{72} so \\boxed{\\$72}", "#### 72", T),
    (Benchmark::Gsm8k, "\\boxed{70} then \\boxed{72}", "#### 72", F),
    (Benchmark::OlympiadBench, "\\boxed{2} and all of them: \\boxed{2, 3}", "2, 3", F),
    (Benchmark::OlympiadBench, "\\boxed{(k, n) = (2, 4)}", "(2,4)", T),
    (Benchmark::Minerva, "$\\theta = \\boxed{0.5^{\\prime\\prime}}$", "0.5", T),
    (Benchmark::Minerva, "so $\\boxed{3.2 \\times 10^{-10}}$ m", "2.3e-10", F),
];

#[test]
fn table_of_strict_verdicts() {
    let mut failures = Vec::new();
    let mut cases = 0;
    for (what, table) in [("small values", SMALL_VALUES), ("intervals", INTERVALS), ("named", NAMED), ("chains", CHAINS), ("marks", MARKS)]
    {
        for (gold_text, preds) in table {
            let gold = Gold::latex(gold_text).expect("latex gold parses");
            for (pred, expect) in preds.iter() {
                let got = answers_match(pred, &gold);
                report(&mut failures, what, pred, gold_text, *expect, got);
                cases += 1;
            }
        }
    }
    for (bench, completion, gold_text, expect) in TWO_ANSWERS {
        let gold = completion_gold(*bench, gold_text);
        let got = grade(*bench, completion, &gold).correct;
        report(&mut failures, "two answers", completion, gold_text, *expect, got);
        cases += 1;
    }
    assert!(failures.is_empty(), "{} of {cases} cases failed:\n{}", failures.len(), failures.join("\n"));
}

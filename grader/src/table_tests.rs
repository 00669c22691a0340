//! Table tests: (prediction or completion, gold, verdict decided by hand), one row per case.
//!
//! Golds marked "data" are copied verbatim from /work/shared/data; the rest exercise one
//! normalisation each. Every failing row is reported, not just the first.

use crate::{answers_match, grade, Benchmark, Gold};

const T: bool = true;
const F: bool = false;

/// GSM8K: (prediction, gold answer field, verdict).
#[rustfmt::skip]
const GSM8K: &[(&str, &str, bool)] = &[
    // data: train row 0, full answer field
    ("72", "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72", T),
    ("72.0", "#### 72", T),
    ("72.00", "#### 72", T),
    ("$72", "#### 72", T),
    ("\\$72.00", "#### 72", T),
    ("72 dollars", "#### 72", T),
    ("72 clips", "#### 72", T),
    ("72.", "#### 72", T),
    ("73", "#### 72", F),
    ("7.2", "#### 72", F),
    ("720", "#### 72", F),
    ("-72", "#### 72", F),
    ("72 or 73", "#### 72", F),
    // data: train row 1
    ("10", "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.\n#### 10", T),
    ("$10.00", "#### 10", T),
    ("0.2", "#### 10", F),
    // data: test rows 0-3
    ("18", "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\nShe makes 9 * 2 = $<<9*2=18>>18 every day at the farmer\u{2019}s market.\n#### 18", T),
    ("$18 per day", "#### 18", T),
    ("9", "#### 18", F),
    ("3", "It takes 2/2=<<2/2=1>>1 bolt of white fiber\nSo the total amount of fabric is 2+1=<<2+1=3>>3 bolts of fabric\n#### 3", T),
    ("3 bolts", "#### 3", T),
    ("70000", "So he made a profit of 200,000-130,000=$<<200000-130000=70000>>70,000\n#### 70000", T),
    ("70,000", "#### 70000", T),
    ("$70,000", "#### 70000", T),
    ("\\$70{,}000", "#### 70000", T),
    ("70000.5", "#### 70000", F),
    ("7000", "#### 70000", F),
    ("540", "He sprints 3*3=<<3*3=9>>9 times\nSo he runs 9*60=<<9*60=540>>540 meters\n#### 540", T),
    ("540 meters", "#### 540", T),
    ("54", "#### 540", F),
    // thousands separators in the gold itself (train has `#### 1,080`-style golds)
    ("1,080", "#### 1,080", T),
    ("1080", "#### 1,080", T),
    ("1,080.00", "#### 1,080", T),
    ("108", "#### 1,080", F),
    ("109200000", "#### 109,200,000", T),
    ("109200001", "#### 109,200,000", F),
    ("1,000,000", "#### 1000000", T),
    // negatives (train has `#### -10`)
    ("-10", "#### -10", T),
    ("\u{2212}10", "#### -10", T),
    ("10", "#### -10", F),
    ("-10.0", "#### -10", T),
    // percentages
    ("50%", "#### 50", T),
    ("50\\%", "#### 50", T),
    ("0.5", "#### 50", F),
    // fractions and decimals
    ("3/4", "#### 0.75", T),
    ("\\frac{3}{4}", "#### 0.75", T),
    ("\\frac34", "#### 0.75", T),
    ("4/3", "#### 0.75", F),
    // units glued or spaced
    ("10 cm", "#### 10", T),
    ("10cm", "#### 10", T),
    ("5 apples", "#### 5", T),
    ("There are 5 apples left.", "#### 5", T),
    ("5.0", "#### 5", T),
    ("five", "#### 5", F),
    ("", "#### 5", F),
    ("5 dollars and 50 cents", "#### 5", F),
    ("2^3", "#### 8", T),
    ("1e3", "#### 1000", T),
    ("999.9999999", "#### 1000", T), // within 1e-6 relative
    ("999.99", "#### 1000", F),
    ("2^5", "#### 5", F),
    ("5x", "#### 5", F),
    ("1, 5", "#### 5", F),
    ("6 or 5", "#### 5", F),
    ("x = 5", "#### 5", T),
    ("NaN", "#### 5", F),
    ("inf", "#### 5", F),
];

/// MATH500 golds (all from eval/math500.jsonl) with predictions: (gold, [(prediction, verdict)]).
#[rustfmt::skip]
const MATH500: &[(&str, &[(&str, bool)])] = &[
    ("\\left( 3, \\frac{\\pi}{2} \\right)", &[
        ("(3, \\frac{\\pi}{2})", T), ("(3,\\pi/2)", T), ("\\left(3,\\dfrac{\\pi}{2}\\right)", T),
        ("(3, 1.5707963267948966)", T), ("(3, 1.5708)", F), ("(\\frac{\\pi}{2}, 3)", F),
        ("[3, \\frac{\\pi}{2}]", F), ("3, \\frac{\\pi}{2}", F),
    ]),
    ("\\frac{14}{3}", &[
        ("14/3", T), ("\\dfrac{14}{3}", T), ("4.666666667", T), ("4.67", F), ("\\frac{3}{14}", F),
        ("4\\frac{2}{3}", T),
    ]),
    ("\\frac 34", &[("\\frac{3}{4}", T), ("0.75", T), ("3/4", T), ("\\frac{4}{3}", F)]),
    ("\\frac14", &[("0.25", T), ("\\frac{1}{4}", T), ("1/4", T), ("4", F)]),
    ("\\frac9{19}", &[("\\frac{9}{19}", T), ("9/19", T), ("\\frac{19}{9}", F)]),
    ("\\dfrac{17}{50}", &[("0.34", T), ("17/50", T), ("0.35", F)]),
    ("10,\\!080", &[("10080", T), ("10,080", T), ("1008", F)]),
    ("11,\\! 111,\\! 111,\\! 100", &[("11111111100", T), ("11,111,111,100", T), ("11111111000", F)]),
    ("\\$32,\\!348", &[("32348", T), ("\\$32,348", T), ("32,348 dollars", T), ("32,349", F)]),
    ("\\$18.90", &[("18.9", T), ("18.90", T), ("\\$18.9", T), ("18.09", F)]),
    ("5.4 \\text{ cents}", &[("5.4", T), ("5.4 cents", T), ("54", F)]),
    ("15\\mbox{ cm}^2", &[("15", T), ("15 \\text{cm}^2", T), ("15 cm^2", T), ("16", F)]),
    ("864 \\mbox{ inches}^2", &[("864", T), ("864 square inches", T), ("846", F)]),
    ("106^\\circ", &[("106", T), ("106^{\\circ}", T), ("106\u{b0}", T), ("106 degrees", T), ("74", F)]),
    ("\\frac{270}7\\text{ degrees}", &[
        ("\\frac{270}{7}", T), ("270/7^\\circ", T), ("38.57142857142857", T), ("38.57", F),
    ]),
    ("(-\\infty, 0]", &[("(-\\infty,0]", T), ("(-inf, 0]", T), ("(-\\infty, 0)", F), ("[0, \\infty)", F)]),
    ("(-\\infty, 2) \\cup (3, \\infty)", &[
        ("(3,\\infty) \\cup (-\\infty,2)", T), ("(-\\infty, 2) \\cup (3, +\\infty)", T),
        ("(-\\infty,2] \\cup (3,\\infty)", F), ("(-\\infty, 2)", F),
    ]),
    ("(3,4]", &[("(3, 4]", T), ("x \\in (3,4]", T), ("[3,4]", F), ("(3,4)", F)]),
    ("\\left(\\frac{3}{5},\\frac{8}{3}\\right]", &[
        ("(0.6, 8/3]", T), ("(\\frac35, \\frac83]", T), ("(\\frac{3}{5},\\frac{8}{3})", F),
    ]),
    ("\\left[ \\frac{\\pi^2}{8}, \\frac{5 \\pi^2}{4} \\right]", &[
        ("[\\pi^2/8, 5\\pi^2/4]", T), ("[\\frac{\\pi^2}{8}, \\frac{5\\pi^2}{4})", F),
    ]),
    ("x \\in [-2,7]", &[("[-2,7]", T), ("[-2, 7)", F), ("[-7, 2]", F)]),
    ("(2,4)", &[("(2, 4)", T), ("(4,2)", F)]),
    ("(1,-16,-4,43)", &[("(1, -16, -4, 43)", T), ("(1,-16,-4,42)", F), ("(1,-16,43,-4)", F)]),
    ("\\{1\\pm\\sqrt{5},-2\\}", &[
        ("\\{-2, 1+\\sqrt5, 1-\\sqrt5\\}", T), ("1+\\sqrt{5}, 1-\\sqrt{5}, -2", T),
        ("1 \\pm \\sqrt{5}, -2", T), ("1+\\sqrt{5}, -2", F),
    ]),
    ("3, 5, 7", &[("7, 5, 3", T), ("\\{3,5,7\\}", T), ("3, 5", F), ("(3, 5, 7)", F)]),
    ("-2,1", &[("1, -2", T), ("x = -2 \\text{ or } x = 1", T), ("-2", F)]),
    ("1,-2", &[("x=1, x=-2", T), ("1 and -2", T), ("1, 2", F)]),
    ("1 \\pm \\sqrt{19}", &[
        ("1+\\sqrt{19}, 1-\\sqrt{19}", T), ("1 - \\sqrt{19}, 1 + \\sqrt{19}", T), ("1 + \\sqrt{19}", F),
        ("\\sqrt{19} \\pm 1", F),
    ]),
    ("3 \\pm 2 \\sqrt{2}", &[
        ("3 + 2\\sqrt2, 3 - 2\\sqrt2", T), ("3\\pm\\sqrt{8}", T), ("3 + 2\\sqrt{2}", F),
    ]),
    ("\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}", &[
        ("\\begin{pmatrix}-1&0\\\\0&-1\\end{pmatrix}", T),
        ("\\begin{bmatrix} -1 & 0 \\\\ 0 & -1 \\end{bmatrix}", T),
        ("\\begin{pmatrix} 1 & 0 \\\\ 0 & -1 \\end{pmatrix}", F),
        ("\\begin{pmatrix} -1 & 0 & 0 & -1 \\end{pmatrix}", F),
    ]),
    ("\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}", &[
        ("\\begin{pmatrix} -\\frac{1}{3} \\\\ \\frac{2}{3} \\\\ \\frac{5}{3} \\end{pmatrix}", T),
        ("(-1/3, 2/3, 5/3)", T), ("(2/3, -1/3, 5/3)", F),
    ]),
    ("\\begin{pmatrix} 1/5 \\\\ -18/5 \\end{pmatrix}", &[
        ("\\begin{pmatrix} 0.2 \\\\ -3.6 \\end{pmatrix}", T),
        ("\\begin{pmatrix} 0.2 \\\\ 3.6 \\end{pmatrix}", F),
    ]),
    ("2\\sqrt{5}", &[
        ("\\sqrt{20}", T), ("2 \\sqrt 5", T), ("2\\sqrt5", T), ("4.47213595499958", T), ("4.47", F),
        ("\\sqrt{10}", F),
    ]),
    ("11\\sqrt2", &[("\\sqrt{242}", T), ("11 \\sqrt{2}", T), ("11\\sqrt3", F)]),
    ("6\\sqrt{2}", &[("\\sqrt{72}", T), ("6 \\cdot 2^{1/2}", T)]),
    ("\\frac{3\\sqrt{3}}{4}", &[
        ("\\frac{3}{4}\\sqrt{3}", T), ("3\\sqrt3/4", T), ("\\frac{\\sqrt{27}}{4}", T),
        ("\\frac{3\\sqrt{3}}{2}", F),
    ]),
    ("\\frac{\\sqrt{3}}{3}", &[("\\frac{1}{\\sqrt{3}}", T), ("\\frac{\\sqrt3}{2}", F)]),
    ("\\pi", &[("\\pi", T), ("3.141592653589793", T), ("3.14", F), ("\\frac{22}{7}", F)]),
    ("12\\pi", &[("12 \\pi", T), ("\\pi \\cdot 12", T), ("37.69911184307752", T), ("12", F)]),
    ("\\frac{20000}{\\pi}", &[("20000/\\pi", T), ("\\frac{\\pi}{20000}", F)]),
    ("18+2\\pi", &[("2\\pi+18", T), ("2(9+\\pi)", T), ("18 + \\pi", F)]),
    ("-\\frac{\\pi}{6}", &[("-\\pi/6", T), ("\\frac{-\\pi}{6}", T), ("\\frac{\\pi}{6}", F)]),
    ("x^3+3x-6", &[("3x + x^3 - 6", T), ("x^3+3x+6", F)]),
    ("x^5 - x^4 + x^3 - x^2 + x - 1", &[("(x-1)(x^4+x^2+1)", T), ("x^5 - x^4 + x^3 - x^2 + x + 1", F)]),
    ("x^8 + x^7 + x^6 + x^5 + x^4 + x^3 + x^2 + x + 1", &[
        ("\\frac{x^9-1}{x-1}", T), ("\\frac{x^8-1}{x-1}", F),
    ]),
    ("8n^2 + 4n + 1", &[("1+4n+8n^2", T), ("8n^2+4n", F)]),
    ("6r^2-4r-24", &[("2(3r^2-2r-12)", T), ("6r^2-4r+24", F)]),
    ("-13x+3", &[("3-13x", T), ("-13x-3", F)]),
    ("15x - 80", &[("5(3x-16)", T)]),
    ("(a+5)(b+2)", &[("ab+2a+5b+10", T), ("(a+2)(b+5)", F)]),
    ("y = -2x", &[("y=-2x", T), ("-2x", T), ("2x + y = 0", T), ("y = 2x", F)]),
    ("y = 2x + 3", &[("y=3+2x", T), ("2x+3", T), ("y = 2x - 3", F)]),
    ("5x - 7y + 11z + 4 = 0", &[
        ("-5x+7y-11z-4=0", T), ("10x - 14y + 22z + 8 = 0", T), ("5x - 7y + 11z - 4 = 0", F),
        ("5x - 7y + 11z + 4", F),
    ]),
    ("x=5", &[("5", T), ("x = 5", T), ("x=6", F)]),
    ("p - q", &[("-q+p", T), ("q - p", F)]),
    ("3R^2", &[("3 R^2", T), ("3R^{2}", T), ("3R", F)]),
    ("2k+2", &[("2(k+1)", T), ("2k", F)]),
    ("\\cot x", &[("\\frac{\\cos x}{\\sin x}", T), ("\\frac{1}{\\tan x}", T), ("\\tan x", F)]),
    ("\\text{(C)}", &[("C", T), ("(C)", T), ("\\text{C}", T), ("\\textbf{(C)}", T), ("(B)", F)]),
    ("\\text{Evelyn}", &[("Evelyn", T), ("evelyn", T), ("\\text{Navin}", F)]),
    ("\\text{east}", &[("east", T), ("west", F)]),
    ("\\text{even}", &[("even", T), ("\\text{odd}", F)]),
    ("\\text{ellipse}", &[("ellipse", T), ("parabola", F)]),
    ("204_5", &[("204_5", T), ("204_{5}", T), ("54", F)]),
    ("4210_{5}", &[("4210_5", T), ("4210", F)]),
    ("1+274i", &[("274i + 1", T), ("1-274i", F)]),
    ("-2 + 7i", &[("7i-2", T), ("-2-7i", F)]),
    ("137 \\frac{1}{2}", &[("137.5", T), ("\\frac{275}{2}", T), ("137", F)]),
    ("1\\frac{4}{5}", &[("1.8", T), ("9/5", T), ("\\frac{4}{5}", F)]),
    (".0000672", &[("0.0000672", T), ("6.72 \\times 10^{-5}", T), ("6.72e-5", T), ("0.000067", F)]),
    (".35625", &[("0.35625", T), ("\\frac{57}{160}", T)]),
    ("0.15", &[("15\\%", T), ("\\frac{3}{20}", T), ("0.16", F)]),
    ("3.21", &[("3.210", T), ("3.2", F)]),
    ("-\\frac{24}{25}", &[("-0.96", T), ("\\frac{24}{25}", F)]),
    ("\\frac{1}{2}", &[
        ("0.5", T), ("1/2", T), ("\\frac{2}{4}", T), ("\\tfrac12", T), ("\\frac{1}{2}.", T),
        ("$\\frac{1}{2}$", T), ("\\dfrac{1}{2}", T), ("2", F), ("\\frac{1}{3}", F),
    ]),
    ("\\frac{1}{3}", &[("0.333", F), ("0.3333333333", T), ("1/3", T), ("\\frac13", T)]),
    ("2", &[("\\frac{1}{2}", F), ("2.0", T), ("02", T), ("\\boxed{2}", T)]),
    ("10", &[("10.000001", T), ("10.0001", F)]),
    ("1000", &[("10^3", T), ("100", F)]),
    ("\\sqrt{51}", &[("\\sqrt{51}", T), ("51^{1/2}", T), ("\\sqrt51", F)]), // `\sqrt51` is √5·1 in LaTeX
    ("\\sqrt{5}", &[("\\sqrt5", T), ("\\sqrt{6}", F)]),
    ("5r^5", &[("5 r^{5}", T), ("5r^4", F)]),
    ("\\text{(B)}", &[("B", T), ("(C)", F)]),
    ("2000", &[("2,000", T), ("2{,}000", T), ("20", F)]),
];

/// One normalisation each, with self-made golds: (gold, [(prediction, verdict)]).
#[rustfmt::skip]
const GENERAL: &[(&str, &[(&str, bool)])] = &[
    ("3", &[("a = 3", T), ("x \\approx 3", T), ("3.0", T), ("3.00", T), ("\\sqrt[3]{27}", T)]),
    ("0.5", &[("\\frac12", T), ("50\\%", T), ("5\\%", F)]),
    ("x^{1/3}", &[("\\sqrt[3]{x}", T), ("\\sqrt{x}", F)]),
    ("1,2", &[("x=1 or x=2", T), ("1 \\text{ and } 2", T), ("1; 2", T), ("\\{1,2\\}", T), ("1", F)]),
    ("(1,2)", &[("\\left(1,2\\right)", T), ("(2,1)", F), ("[1,2]", F), ("1,2", F)]),
    ("\\{1,2\\}", &[("\\{2,1\\}", T), ("\\{1,2,3\\}", F)]),
    ("[1,2]", &[("[1,2)", F), ("\\left[1,2\\right]", T)]),
    ("\\frac{1}{3}", &[("0.333", F)]),
    ("\\sqrt{8}", &[("2\\sqrt{2}", T), ("2.8284271247461903", T)]),
    ("\\frac{1}{2}x + \\frac12", &[("\\frac{x+1}{2}", T), ("\\frac{x}{2}", F)]),
    ("(x+1)^2", &[("x^2+2x+1", T), ("x^2+1", F)]),
    ("2^{999999}", &[("2^{999999}", T), ("2^{999998}", F), ("\\infty", F)]),
    ("\\infty", &[("\\infty", T), ("\\frac{1}{0}", F)]),
    ("\\pm 3", &[("3, -3", T), ("-3, 3", T), ("3", F)]),
    ("\\frac{\\sqrt{2}}{2}", &[("\\frac{1}{\\sqrt{2}}", T), ("\\sqrt{0.5}", T), ("1.414", F)]),
    ("3\\ln 2", &[("\\ln 8", T), ("\\ln 6", F)]),
    ("3", &[("\\log_2 8", T), ("\\log_{2}(8)", T), ("\\sin^2 x + \\cos^2 x + 2", T)]),
    ("10", &[("\\binom{5}{2}", T), ("\\binom{5}{3}", T), ("\\binom{5}{1}", F)]),
    ("120", &[("5!", T), ("4!", F)]),
    ("\\binom{n+1}{2}", &[("\\frac{n(n+1)}{2}", T), ("\\frac{n(n-1)}{2}", F)]),
    ("2", &[("\\lfloor 2.5 \\rfloor", T), ("\\lceil 2.5 \\rceil", F), ("|-2|", T)]),
    ("|x|", &[("\\left| x \\right|", T)]),
    ("f(x) = 2x", &[("2x", T), ("f(x)=x+x", T), ("f(x) = 3x", F)]),
    ("10", &[("10 \\text{ km/h}", T), ("10 km/h", T), ("10 \\mathrm{~m} / \\mathrm{s}", T)]),
    ("0", &[("-0", T), ("0.0", T), ("10^{-12}", T), ("0.001", F)]),
    ("0.3", &[("0.1 + 0.2", T), ("0.31", F)]),
    ("2", &[("1/2", F), ("4/2", T)]),
    ("x", &[("y", F), ("x", T)]),
    ("x+y", &[("y+x", T), ("xy", F)]),
    ("xy", &[("yx", T), ("x \\cdot y", T), ("x y", T)]),
    ("x^2", &[("x^{2}", T), ("x \\cdot x", T), ("2x", F)]),
    ("1024", &[("2^10", T), ("2^{10}", T)]),
    ("\\frac{x}{2}", &[("\\frac{1}{2}x", T), ("0.5x", T), ("\\frac{2}{x}", F)]),
    ("\\sqrt{2}", &[("1.41421356", T), ("1.414", F), ("2^{0.5}", T)]),
    ("NaN", &[("NaN", F), ("nan", F), ("0", F)]),
    ("\\sqrt{-1}", &[("\\sqrt{-1}", T), ("1", F)]), // same tree; no value is ever computed
    ("e", &[("2.718281828459045", T), ("\\exp(1)", T), ("e^1", T), ("2.718", F)]),
    ("\\frac{\\pi}{3}", &[("\\frac{1}{3}\\pi", T), ("60^\\circ", F)]), // radians ≠ degrees (no conversion)
    ("25\\%", &[("0.25", T), ("25", T), ("\\frac{1}{4}", T), ("2.5", F)]),
    ("1 < x < 2", &[("2 > x > 1", T), ("1 \\le x < 2", F)]),
    ("7 \\text{ or } 8", &[("8 or 7", T), ("7", F)]),
];

/// OlympiadBench: (final_answer list from data, [(prediction, verdict)]).
/// (prediction, verdict) pairs for one gold.
type Preds = &'static [(&'static str, bool)];

#[rustfmt::skip]
const OLYMPIAD: &[(&[&str], Preds)] = &[
    (&["$69$,$84$"], &[("84, 69", T), ("69", F), ("69, 84, 100", F)]),
    (&["$(1,8,19), (2,7,13), (4,5,7)$"], &[
        ("(4,5,7), (1,8,19), (2,7,13)", T), ("(1,8,19), (2,7,13)", F), ("(8,1,19), (2,7,13), (4,5,7)", F),
    ]),
    (&["$2^{1009}$"], &[("2^{1009}", T), ("2^{1008}\\cdot 2", T), ("2^{1010}", F)]),
    (&["$\\frac{1}{2 n+2}$"], &[("\\frac{1}{2(n+1)}", T), ("\\frac{1}{2n}+2", F)]),
    (&["$2n-2$"], &[("2(n-1)", T), ("2n", F)]),
    (&["$\\binom{2n}{n}$"], &[("\\frac{(2n)!}{(n!)^2}", T), ("\\binom{2n}{n-1}", F)]),
    (&["$m n-\\lfloor m / 2\\rfloor$"], &[("mn - \\lfloor \\frac{m}{2} \\rfloor", T), ("mn - m/2", F)]),
    (&["$f(x)=2 x$"], &[("f(x) = 2x", T), ("2x", T), ("x+x", T), ("f(x)=x", F)]),
    (&["$k=1$"], &[("1", T), ("k = 1", T), ("2", F)]),
    (&["$(2,4)$"], &[("(2,4)", T), ("(4,2)", F)]),
    (&["$f(n)=n$, $g(n)=1$"], &[("f(n)=n, g(n)=1", T), ("g(n) = 1, f(n) = n", T), ("f(n)=n", F)]),
    (&["1,3,5"], &[("5,3,1", T), ("1,3", F), ("135", F)]),
    (&["$\\frac{25}{2}$"], &[("12.5", T), ("25", F)]),
    (&["$M=2^{N-2}+1$"], &[("2^{N-2}+1", T), ("M = 2^{N-2}+1", T), ("2^{N-1}+1", F)]),
    (&["$M=\\frac{9}{32} \\sqrt{2}$"], &[("\\frac{9\\sqrt2}{32}", T), ("\\frac{9}{32}", F)]),
    (&["$\\angle B E A_{1}=90$,$\\angle A E B_{1}=90$"], &[
        ("\\angle BEA_1 = 90, \\angle AEB_1 = 90", T), ("90, 90", T), ("90", F),
    ]),
    (&["$(0,2),(0,-2),(4,23),(4,-23)$"], &[("(4,23),(4,-23),(0,2),(0,-2)", T), ("(0,2),(0,-2),(4,23)", F)]),
    (&["$\\left\\lfloor\\log _{2} n\\right\\rfloor+1$"], &[
        ("\\lfloor \\log_2 n \\rfloor + 1", T), ("\\lceil \\log_2 (n+1) \\rceil", T),
        ("\\lceil \\log_2 n \\rceil", F),
    ]),
    (&["$-2,0,2$"], &[("0, \\pm 2", T), ("2, 0, -2", T), ("-2, 2", F)]),
    (&["$-(n-1) / 2$"], &[("\\frac{1-n}{2}", T), ("\\frac{n-1}{2}", F)]),
    (&["$\\frac{n(n+1)(2 n+1)}{6}$"], &[("\\frac{2n^3+3n^2+n}{6}", T), ("\\frac{n(n+1)}{2}", F)]),
    (&["$\\frac{100!}{2^{50}}$"], &[("\\frac{100!}{2^{50}}", T), ("100!/2^{49}", F)]),
    (&["$k \\geqslant 2$"], &[("k \\ge 2", T), ("k \\geq 2", T), ("2 \\le k", T), ("k > 2", F)]),
    (&["$(-\\infty, 0) \\cup\\{1\\}$."], &[("(-\\infty,0) \\cup \\{1\\}", T), ("(-\\infty,0]", F)]),
    (&["$90^{\\circ}$,$60^{\\circ}$"], &[("60^\\circ, 90^\\circ", T), ("60, 90", T), ("90", F)]),
    (&["62.5%"], &[("62.5\\%", T), ("0.625", T), ("62.5", T), ("6.25", F)]),
    (&["$8 \\%$"], &[("8%", T), ("0.08", T), ("8", T), ("0.8", F)]),
    (&["$a=2$, $a=-6-4 \\sqrt{2}$"], &[("a = 2, a = -6 - 4\\sqrt{2}", T), ("2, -6-4\\sqrt2", T), ("2", F)]),
    (&["$\\frac{1}{6} \\pi, \\frac{5}{6} \\pi, \\frac{1}{4} \\pi, \\frac{3}{4} \\pi$"], &[
        ("\\frac{\\pi}{6}, \\frac{\\pi}{4}, \\frac{3\\pi}{4}, \\frac{5\\pi}{6}", T),
        ("\\frac{\\pi}{6}, \\frac{5\\pi}{6}", F),
    ]),
    (&["$(-\\sqrt{11},-2)\\cup (\\sqrt{11},9)$"], &[
        ("(\\sqrt{11}, 9) \\cup (-\\sqrt{11}, -2)", T), ("(-\\sqrt{11}, 9)", F),
    ]),
    (&["$(10^{4}, 10^{3}, 10^{10}),(10^{2}, 10^{-1}, 10^{-2})$"], &[
        ("(10000, 1000, 10000000000), (100, 0.1, 0.01)", T), ("(10000, 1000, 10000000000)", F),
    ]),
    (&["$4 \\pi^{2}-1$"], &[("4\\pi^2 - 1", T), ("38.47841760435743", T), ("4\\pi^2", F)]),
    (&["$\\frac{41}{12}$"], &[("\\frac{41}{12} km", T), ("41/12 \\text{ km}", T), ("\\frac{12}{41}", F)]),
    (&["$\\frac{600}{7}$"], &[("\\frac{600}{7} \\mathrm{~km} / \\mathrm{h}", T), ("85.7", F)]),
    (&["$10^{100}$,$10^{1 / 100}$"], &[("10^{1/100}, 10^{100}", T), ("10^{100}", F)]),
    (&["$\\frac{\\log 2}{\\log 2-\\log 3}$"], &[
        ("\\frac{\\ln 2}{\\ln 2 - \\ln 3}", T), ("\\log_{2/3} 2", T), ("\\frac{\\log 3}{\\log 2-\\log 3}", F),
    ]),
    (&["$1.68,0.45$"], &[("0.45, 1.68", T), ("1.68", F)]),
    (&["$(-\\frac{1}{2}, \\frac{7}{2})$"], &[("(-0.5, 3.5)", T), ("(3.5, -0.5)", F)]),
    (&["$\\frac{1}{2},\\sqrt{x}$"], &[("\\sqrt x, 0.5", T), ("0.5", F)]),
    (&["$2,-\\log _{10} 250$"], &[("2, -\\log_{10}250", T), ("2, \\log_{10} 250", F)]),
    (&["$(4, \\log _{10} 2)$"], &[("(4, \\log 2)", T), ("(4, \\ln 2)", F)]),
    (&["$\\quad(2+\\sqrt{2}, 1+\\sqrt{2})$"], &[
        ("(2+\\sqrt2, 1+\\sqrt2)", T), ("(1+\\sqrt2, 2+\\sqrt2)", F),
    ]),
    (&["$5 \\sqrt[3]{4}$"], &[("5\\cdot 4^{1/3}", T), ("\\sqrt[3]{500}", T), ("5\\sqrt{4}", F)]),
    (&["$d=\\frac{1+\\sqrt{1+8 n}}{2}$"], &[
        ("\\frac{1+\\sqrt{8n+1}}{2}", T), ("\\frac{1-\\sqrt{8n+1}}{2}", F),
    ]),
    (&["$\\frac{d !}{2 k(d-k) !}$"], &[("\\frac{d!}{2k \\cdot (d-k)!}", T), ("\\frac{d!}{k(d-k)!}", F)]),
    (&["$2021 \\cdot 505 \\cdot 337$"], &[("343943885", T), ("343943886", F)]),
    (&["27,54,108,135,189,216,270,297,351,378"], &[
        ("378, 351, 297, 270, 216, 189, 135, 108, 54, 27", T), ("27, 54, 108", F),
    ]),
    (&["$41352,42351,51342$"], &[("51342, 42351, 41352", T), ("41352", F)]),
    (&["-2,-2"], &[("-2, -2", T), ("-2", F)]),
    (&["2400, 1350, 864"], &[("864, 1350, 2400", T), ("2400", F)]),
    (&["45"], &[("45 minutes", T), ("45 \\text{ min}", T), ("44", F)]),
    (&["$166$"], &[("166 \\mathrm{cm}^2", T), ("166", T)]),
    (&["$\\sqrt{2}$", "$1$"], &[("1, \\sqrt2", T), ("\\sqrt2", F)]),
];

/// AMC23: (answer from data, prediction, verdict).
#[rustfmt::skip]
const AMC23: &[(f64, &str, bool)] = &[
    (27.0, "27", T),
    (27.0, "27.0", T),
    (27.0, "27 miles", T),
    (27.0, "28", F),
    (3159.0, "3,159", T),
    (3159.0, "3159", T),
    (3159.0, "3195", F),
    (-1.0, "-1", T),
    (-1.0, "1", F),
    (1625.0, "1625", T),
    (144.0, "12^2", T),
    (144.0, "144", T),
    (36.0, "\\frac{72}{2}", T),
    (36.0, "36.5", F),
    (901.0, "(E) 901", F), // a choice letter is not stripped: (E)·901
    (901.0, "901", T),
];

/// Minerva: (solution holding the gold in its last \boxed{}, prediction, verdict).
#[rustfmt::skip]
const MINERVA: &[(&str, &str, bool)] = &[
    // data: row 0, full solution
    ("Start with:\n\\[\ns=\\alpha f \\text {, }\n\\]\nwhere $s$ is the diameter of the image, $f$ the focal length, and $\\alpha$ the angular diameter of the planet. For the values given in the problem:\n\\[\ns=\\frac{45}{3600} \\frac{\\pi}{180} 7200=\\boxed{1.6} \\mathrm{~cm}\n\\]", "1.6", T),
    ("=\\boxed{1.6} \\mathrm{~cm}", "1.6 cm", T),
    ("=\\boxed{1.6} \\mathrm{~cm}", "1.60", T),
    ("=\\boxed{1.6} \\mathrm{~cm}", "16", F),
    ("L \\simeq \\boxed{4.5e33} \\mathrm{ergs}", "4.5 \\times 10^{33}", T),
    ("L \\simeq \\boxed{4.5e33} \\mathrm{ergs}", "4.5e33", T),
    ("L \\simeq \\boxed{4.5e33} \\mathrm{ergs}", "4.5 \\cdot 10^{33} \\mathrm{ergs} \\mathrm{s}^{-1}", T),
    ("L \\simeq \\boxed{4.5e33} \\mathrm{ergs}", "4.5e32", F),
    ("L \\simeq \\boxed{4.5e33} \\mathrm{ergs}", "4.6e33", F),
    ("\\boxed{3.83e35}", "3.83\\times10^{35}", T),
    ("\\boxed{\\frac{2 \\pi c^{2} R^{2}}{\\lambda^{5}\\left[e^{h c /(\\lambda k T)}-1\\right] d^{2}}}", "\\frac{2\\pi c^2 R^2}{\\lambda^5 d^2 (e^{hc/(\\lambda k T)} - 1)}", T),
    ("\\boxed{\\frac{2 \\pi c^{2} R^{2}}{\\lambda^{5}\\left[e^{h c /(\\lambda k T)}-1\\right] d^{2}}}", "\\frac{2\\pi c^2 R^2}{\\lambda^5 d^2 e^{hc/(\\lambda k T)}}", F),
    ("\\boxed{\\frac{a M^{1 / 3}}{G M^{2 / 3}+b}}", "\\frac{aM^{1/3}}{b + GM^{2/3}}", T),
    ("\\boxed{\\frac{a M^{1 / 3}}{G M^{2 / 3}+b}}", "\\frac{aM^{1/3}}{GM^{2/3}}", F),
    ("\\boxed{-1./3}", "-\\frac{1}{3}", T),
    ("\\boxed{-1./3}", "-0.33", F),
    ("\\boxed{\\ln 2 + i\\pi / 3}", "\\ln2 + \\frac{i\\pi}{3}", T),
    ("\\boxed{2 \\cos (\\pi t+\\pi / 3)}", "2\\cos(\\pi t + \\frac{\\pi}{3})", T),
    ("\\boxed{2 \\cos (\\pi t+\\pi / 3)}", "2\\sin(\\pi t + \\pi/3)", F),
    ("\\boxed{\\frac{e^{t}} {3}+c e^{-2 t}}", "\\frac{1}{3}e^t + ce^{-2t}", T),
    ("\\boxed{1+\\sqrt{3} i}", "1 + i\\sqrt{3}", T),
    ("\\boxed{MR=SRMC}", "MR = SRMC", T),
    ("\\boxed{X_{d}=125-1.25 P}", "X_d = 125 - 1.25P", T),
    ("\\boxed{X_{d}=125-1.25 P}", "125-1.25P", T),
    ("\\boxed{\\frac{1}{s+a}}", "1/(s+a)", T),
    ("\\boxed{\\frac{1}{s+a}}", "\\frac{1}{s-a}", F),
    ("\\boxed{-0.875}", "-\\frac{7}{8}", T),
    ("\\boxed{2.2 \\tau}", "2.2\\tau", T),
    ("\\boxed{\\frac{37}{4} m}", "9.25 m", T),
    ("\\boxed{0.5613}", "0.5613", T),
    ("\\boxed{0.5613}", "0.56", F),
    ("\\boxed{\\frac{1}{4-\\omega^{2}}}", "-\\frac{1}{\\omega^2-4}", T),
    ("\\boxed{y^{\\prime}+r y-r x(t)=0}", "y' + ry - rx(t) = 0", T),
    ("\\boxed{y^{\\prime}+r y-r x(t)=0}", "y' + ry + rx(t) = 0", F),
];

/// Whole completions graded per benchmark: (benchmark, completion, gold, verdict). The gold
/// is a GSM8K field for Gsm8k, a number for Amc23, LaTeX otherwise.
#[rustfmt::skip]
const COMPLETIONS: &[(Benchmark, &str, &str, bool)] = &[
    (Benchmark::Gsm8k, "<think>\n48/2 = 24, 48+24 = 72\n</think>\n<answer>\n72\n</answer>", "#### 72", T),
    (Benchmark::Gsm8k, "<think>...</think><answer>The answer is 72.</answer>", "#### 72", T),
    (Benchmark::Gsm8k, "<think>...</think><answer>$72</answer>", "#### 72", T),
    (Benchmark::Gsm8k, "Natalia sold 72 clips.\n#### 72", "#### 72", T),
    (Benchmark::Gsm8k, "so the answer is \\boxed{72}.", "#### 72", T),
    (Benchmark::Gsm8k, "The answer is 71. Wait, no: 72", "#### 72", F),
    (Benchmark::Gsm8k, "<answer>72</answer> <answer>73</answer>", "#### 72", F),
    (Benchmark::Gsm8k, "<answer>73</answer> ... \\boxed{72}", "#### 72", F),
    (Benchmark::Gsm8k, "I think 70 or so", "#### 72", F),
    (Benchmark::Gsm8k, "<answer></answer> so 72", "#### 72", T),
    (Benchmark::Gsm8k, "She makes 9 * 2 = $18 every day.", "#### 18", T),
    (Benchmark::Gsm8k, "", "#### 18", F),
    (Benchmark::Math500, "<think>\nwork\n</think>\n<answer>\n\\boxed{\\frac{14}{3}}\n</answer>", "\\frac{14}{3}", T),
    (Benchmark::Math500, "Thus the answer is $\\boxed{\\dfrac{14}{3}}$.", "\\frac{14}{3}", T),
    (Benchmark::Math500, "so \\boxed{14/3}", "\\frac{14}{3}", T),
    (Benchmark::Math500, "\\boxed{\\frac{14}{3}} hmm, actually \\boxed{\\frac{3}{14}}", "\\frac{14}{3}", F),
    (Benchmark::Math500, "\\fbox{5}", "5", T),
    (Benchmark::Math500, "so $\\boxed 5$", "5", T),
    (Benchmark::Math500, "\\boxed{\\text{(C)}}", "\\text{(C)}", T),
    (Benchmark::Math500, "The final answer is $\\left( 3, \\frac{\\pi}{2} \\right)$.", "\\left( 3, \\frac{\\pi}{2} \\right)", T),
    (Benchmark::Math500, "<answer>x = 5</answer>", "x=5", T),
    (Benchmark::Math500, "<answer>(3, 4]</answer>", "(3,4]", T),
    (Benchmark::Math500, "<answer>[3, 4]</answer>", "(3,4]", F),
    (Benchmark::OlympiadBench, "\\boxed{69, 84}", "$69$,$84$", T),
    (Benchmark::OlympiadBench, "\\boxed{69} and \\boxed{84}", "$69$,$84$", F), // two boxes, two different answers
    (Benchmark::Minerva, "so $L = \\boxed{4.5 \\times 10^{33}}$ ergs/s", "4.5e33", T),
    (Benchmark::Amc23, "\\boxed{27}", "27", T),
    (Benchmark::Amc23, "\\boxed{\\textbf{(B) }27}", "27", T),
    (Benchmark::Amc23, "\\boxed{26}", "27", F),
];

/// The gold of a completion row: a GSM8K field for Gsm8k, a number for Amc23, else LaTeX.
pub(super) fn completion_gold(bench: Benchmark, text: &str) -> Gold {
    match bench {
        Benchmark::Gsm8k => Gold::gsm8k(text),
        Benchmark::Amc23 => Gold::number(text.parse().unwrap_or(f64::NAN)),
        _ => Gold::latex(text),
    }
    .expect("completion gold parses")
}

pub(super) fn report(failures: &mut Vec<String>, what: &str, pred: &str, gold: &str, expect: bool, got: bool) {
    if expect != got {
        failures.push(format!("{what}: pred {pred:?} vs gold {gold:?}: expected {expect}, got {got}"));
    }
}

#[test]
fn table_of_verdicts() {
    let mut failures = Vec::new();
    let mut cases = 0;
    for (pred, field, expect) in GSM8K {
        let gold = Gold::gsm8k(field).expect("gsm8k gold parses");
        report(&mut failures, "gsm8k", pred, field, *expect, answers_match(pred, &gold));
        cases += 1;
    }
    for (what, table) in [("math500", MATH500), ("general", GENERAL)] {
        for (gold_text, preds) in table {
            let gold = Gold::latex(gold_text).expect("latex gold parses");
            for (pred, expect) in preds.iter() {
                report(&mut failures, what, pred, gold_text, *expect, answers_match(pred, &gold));
                cases += 1;
            }
        }
    }
    for (parts, preds) in OLYMPIAD {
        let gold = Gold::list(parts).expect("olympiad gold parses");
        for (pred, expect) in preds.iter() {
            report(&mut failures, "olympiad", pred, &parts.join(" | "), *expect, answers_match(pred, &gold));
            cases += 1;
        }
    }
    for (value, pred, expect) in AMC23 {
        let gold = Gold::number(*value).expect("amc gold parses");
        report(&mut failures, "amc23", pred, &value.to_string(), *expect, answers_match(pred, &gold));
        cases += 1;
    }
    for (solution, pred, expect) in MINERVA {
        let gold = Gold::minerva(solution).expect("minerva gold parses");
        report(&mut failures, "minerva", pred, &gold.raw, *expect, answers_match(pred, &gold));
        cases += 1;
    }
    for (bench, completion, gold_text, expect) in COMPLETIONS {
        let gold = completion_gold(*bench, gold_text);
        let got = grade(*bench, completion, &gold).correct;
        report(&mut failures, bench.name(), completion, gold_text, *expect, got);
        cases += 1;
    }
    assert!(cases >= 250, "only {cases} table cases");
    assert!(failures.is_empty(), "{} of {cases} cases failed:\n{}", failures.len(), failures.join("\n"));
    eprintln!("{cases} table cases passed");
}

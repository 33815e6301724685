#!/usr/bin/python3
"""tests/ref/gen_lsa.py: writes tests/ref/lsa_fixture.txt, scipy's answers to
a few small linear sum assignment problems, for tests/test_eval.c.

Run by hand (Debian: apt-get install python3-scipy), never in CI; the output
is committed. Each case is float32 values, written with 9 significant digits
so C's strtof reads back the same float32 that scipy saw (as float64).

Format, after '#' comment lines:
    <number of cases>
    per case:
        <n> <m> <unique>        unique = 1: the optimum is unique (continuous
                                values), so the assignments must match too
        n lines of m values
        <min total> <max total> (%.17g)
        <n column indices of the minimising assignment>
        <n column indices of the maximising assignment>
"""
import sys

import numpy as np
import scipy
from scipy.optimize import linear_sum_assignment


def case(a, unique):
    a = a.astype(np.float32)
    n, m = a.shape
    lines = [f"{n} {m} {unique}"]
    lines += [" ".join(f"{v:.9g}" for v in row) for row in a]
    a64 = a.astype(np.float64)
    r_min, c_min = linear_sum_assignment(a64)
    r_max, c_max = linear_sum_assignment(a64, maximize=True)
    assert list(r_min) == list(range(n)) and list(r_max) == list(range(n))
    lines.append(f"{a64[r_min, c_min].sum():.17g} {a64[r_max, c_max].sum():.17g}")
    lines.append(" ".join(str(c) for c in c_min))
    lines.append(" ".join(str(c) for c in c_max))
    return lines


def main():
    rng = np.random.default_rng(20240611)
    cases = [
        case(rng.standard_normal((20, 30)), 1),           # continuous: one optimum
        case(rng.integers(0, 4, (20, 30)).astype(float), 0),  # four levels: many ties
        case(np.abs(rng.standard_normal((12, 12))), 1),   # square
    ]
    out = [f"# tests/ref/lsa_fixture.txt: written by tests/ref/gen_lsa.py, scipy {scipy.__version__},",
           "# numpy " + np.__version__ + ". Do not edit; re-run the script.", str(len(cases))]
    for c in cases:
        out += c
    path = sys.argv[1] if len(sys.argv) > 1 else "tests/ref/lsa_fixture.txt"
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()

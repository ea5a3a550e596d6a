#!/usr/bin/python3
"""scikit-learn references for tests/test_metrics.c: writes OUT/metrics.h5.

The MIA attack of the reference (sfr-on.md 3.1; evaluation/mia.py) is
    LogisticRegression(class_weight="balanced", solver="lbfgs", multi_class="multinomial").fit(X_r, Y_r).predict(X_f)
on the 1-D softmax-entropy feature, members (retain, label 1) against non-members (test, label 0). Each case below
has features shaped like real entropies (members: confident, small entropies; non-members: larger, overlapping) in
different proportions, and is fitted by sklearn in both variants:
  multinomial   multi_class="multinomial" (the reference)
  binary        multi_class="ovr" (sklearn's default for two classes)
each twice: with sklearn's defaults (what the reference runs: tol 1e-4, max_iter 100) for the predictions, and
converged tightly (tol 1e-12, max_iter 100000) for the coefficients, which the C Newton solver reaches exactly.

Datasets per case <c> (case0, case1, case2):
  <c>/x          [n] float32   training features (members first, then non-members)
  <c>/y          [n] int64     1 = member, 0 = non-member
  <c>/target     [m] float32   the features to classify (the forget set's)
  <c>/<variant>/coef, intercept   [1] float64   tight fit: sklearn's coef_[0, 0], intercept_[0]
  <c>/<variant>/pred             [m] int64     default-settings predictions on target
  <c>/<variant>/member_pct       [1] float64   100 * mean(pred), the MIA number
A case is rejected (the script fails) if the default and the tight fits disagree on any target prediction, so that
the C test's exact comparison of predictions is meaningful.
"""
import argparse
import os
import sys
import warnings

import h5py
import numpy as np
from sklearn.linear_model import LogisticRegression

# (n_member, n_nonmember, n_target, member scale, nonmember scale, target scale, C)
CASES = [
    (3000, 1000, 500, 0.05, 0.45, 0.20, 1.0),
    (250, 1800, 700, 0.30, 0.60, 0.45, 1.0),
    (1200, 1200, 300, 0.02, 0.08, 0.05, 1.0),
]


def features(rng, n, scale):
    """Entropy-like nonnegative features: a gamma-distributed bulk plus a few near log(10)."""
    x = rng.gamma(shape=0.8, scale=scale, size=n)
    hi = rng.random(n) < 0.03
    x[hi] = rng.uniform(1.0, np.log(10.0), size=hi.sum())
    return np.minimum(x, np.log(10.0)).astype(np.float32)


def fit(x, y, multi, tight, C):
    kw = dict(class_weight="balanced", solver="lbfgs", multi_class=multi, C=C)
    if tight:
        kw.update(tol=1e-12, max_iter=100000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LogisticRegression(**kw).fit(x.reshape(-1, 1).astype(np.float64), y)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(20240917)
    path = os.path.join(args.out, "metrics.h5")
    with h5py.File(path + ".tmp", "w") as f:
        for k, (nm, nn, nt, sm, sn, st, C) in enumerate(CASES):
            x = np.concatenate([features(rng, nm, sm), features(rng, nn, sn)])
            y = np.concatenate([np.ones(nm, np.int64), np.zeros(nn, np.int64)])
            t = features(rng, nt, st)
            g = f.create_group(f"case{k}")
            g["x"], g["y"], g["target"] = x, y, t
            g["C"] = np.array([C])
            for variant, multi in (("multinomial", "multinomial"), ("binary", "ovr")):
                tight = fit(x, y, multi, True, C)
                default = fit(x, y, multi, False, C)
                td = tight.predict(t.reshape(-1, 1).astype(np.float64))
                pd = default.predict(t.reshape(-1, 1).astype(np.float64))
                if not np.array_equal(td, pd):
                    sys.exit(f"fixtures_metrics: case {k} {variant}: default and tight fits disagree on "
                             f"{int((td != pd).sum())} target predictions; pick other data")
                h = g.create_group(variant)
                h["coef"] = np.array([tight.coef_[0, 0]])
                h["intercept"] = np.array([tight.intercept_[0]])
                h["pred"] = pd.astype(np.int64)
                h["member_pct"] = np.array([100.0 * pd.mean()])
                print(f"case{k} {variant}: coef {tight.coef_[0, 0]:.6f} intercept {tight.intercept_[0]:.6f} "
                      f"member {100.0 * pd.mean():.2f}%")
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()

"""Funnel plots: control limits that are exact for small counts, checked by hand, and a region at
the national rate that stays inside them."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402

from evaluation.national.funnel import funnel_figure, funnel_frame, funnel_limits, region_counts  # noqa: E402


def _hand_interpolated(p: float, mean: float) -> float:
    """Spiegelhalter (2005), appendix: the p-quantile of the count, minus the interpolation."""
    y = stats.poisson.ppf(p, mean)
    f_y, f_below = stats.poisson.cdf(y, mean), stats.poisson.cdf(y - 1, mean)
    return y - (f_y - p) / (f_y - f_below)


@pytest.mark.parametrize("size", [120.0, 2_500.0, 60_000.0])
def test_poisson_limits_against_hand_computation(size):
    rate = 8.0  # per 100 pupils
    lim = funnel_limits(rate, [size], per=100).set_index("level")
    mean = rate / 100 * size
    for level in (0.95, 0.998):
        lo, hi = (1 - level) / 2, (1 + level) / 2
        assert lim.loc[level, "expected"] == pytest.approx(mean)
        assert lim.loc[level, "lower"] == pytest.approx(100 * _hand_interpolated(lo, mean) / size)
        assert lim.loc[level, "upper"] == pytest.approx(100 * _hand_interpolated(hi, mean) / size)
    # For 120 pupils (9.6 expected reports) by hand: 95% upper = 16 - (F(16) - .975)/(F(16) - F(15))
    if size == 120.0:
        f16, f15 = stats.poisson.cdf(16, 9.6), stats.poisson.cdf(15, 9.6)
        assert lim.loc[0.95, "upper_count"] == pytest.approx(16 - (f16 - 0.975) / (f16 - f15))


@pytest.mark.parametrize("size", [150.0, 4_000.0])
def test_exact_chi_square_limits(size):
    """The continuous limits of the public-health funnel tools: chi-square around E."""
    mean = 0.05 * size
    lim = funnel_limits(0.05, [size], method="exact").set_index("level")
    for level in (0.95, 0.998):
        a = 1 - level
        assert lim.loc[level, "lower_count"] == pytest.approx(stats.chi2.ppf(a / 2, 2 * mean) / 2)
        assert lim.loc[level, "upper_count"] == pytest.approx(
            stats.chi2.ppf(1 - a / 2, 2 * (mean + 1)) / 2)
    # Wider than the interpolated quantiles above, never narrower below the line.
    interp = funnel_limits(0.05, [size]).set_index("level")
    assert (lim["upper"] >= interp["upper"] - 1e-12).all()


def test_binomial_limits_against_hand_computation():
    n, p = 300, 0.25
    lim = funnel_limits(p, [n], levels=(0.998,), kind="binomial").iloc[0]
    y = stats.binom.ppf(0.999, n, p)
    f_y, f_below = stats.binom.cdf(y, n, p), stats.binom.cdf(y - 1, n, p)
    assert lim["upper_count"] == pytest.approx(y - (f_y - 0.999) / (f_y - f_below))
    assert lim["lower"] < p < lim["upper"] <= 1
    with pytest.raises(ValueError):
        funnel_limits(1.5, [n], kind="binomial")


def test_limits_narrow_with_size():
    lim = funnel_limits(8.0, [100, 1_000, 10_000, 100_000], per=100)
    for level, rows in lim.groupby("level"):
        width = (rows["upper"] - rows["lower"]).to_numpy()
        assert (np.diff(width) < 0).all(), level
    wide, narrow = (lim[lim["level"] == lv] for lv in (0.998, 0.95))
    assert (wide["upper"].to_numpy() > narrow["upper"].to_numpy()).all()


@pytest.mark.parametrize("size", [300, 8_000])
def test_region_at_national_rate_stays_inside_998_limits(size):
    """Chance alone seldom takes a region outside the 99.8% limits: small regions are not
    flagged for being small."""
    rng = np.random.default_rng(size)
    rate = 8.0
    counts = rng.poisson(rate / 100 * size, 4_000)
    lim = funnel_limits(rate, [size], per=100).set_index("level")
    observed = 100 * counts / size
    outside_998 = np.mean((observed > lim.loc[0.998, "upper"])
                          | (observed < lim.loc[0.998, "lower"]))
    outside_95 = np.mean((observed > lim.loc[0.95, "upper"]) | (observed < lim.loc[0.95, "lower"]))
    assert outside_998 <= 0.006, outside_998
    assert 0.02 <= outside_95 <= 0.07, outside_95


def test_funnel_frame_flags_only_the_outlier():
    sizes = np.array([400, 900, 2_000, 5_000, 12_000, 30_000, 70_000], dtype=float)
    counts = np.round(0.08 * sizes)
    counts[3] = 0.14 * sizes[3]  # 14 per 100 in a region of 5,000: far outside
    labels = [f"Regio {i}" for i in range(7)]
    frame = funnel_frame(counts, sizes, labels, national_rate=8.0)
    assert frame.loc[3, "flag"] == "high_998"
    assert frame.loc[3, "flag_nl"] == "boven 99,8%-grens"
    assert (frame.drop(index=3)["flag"] == "inside").all()
    pooled = funnel_frame(counts, sizes, labels)  # default: the pooled rate of all regions
    assert pooled.attrs["national_rate"] == pytest.approx(100 * counts.sum() / sizes.sum())
    assert {"lower_0.95", "upper_0.998"} <= set(frame.columns)


def test_region_counts_and_figure():
    frame = pd.DataFrame({
        "school_id": ["A", "B", "C", "A", "B"],
        "school_year": ["2016-2017"] * 3 + ["2015-2016"] * 2,
        "count": [10, 30, 5, 99, 99], "exposure": [100, 400, 60, 100, 400]})
    counts = region_counts(frame, {"A": "Noord", "B": "Noord", "C": "Zuid"})
    assert counts.set_index("region").loc["Noord", ["count", "size"]].tolist() == [40, 500]
    data = funnel_frame(counts["count"], counts["size"], counts["region"])
    fig = funnel_figure(data, title="Zorgmeldingen per regio", highlight=["Zuid"])
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Aantal leerlingen"
    assert ax.get_ylabel() == "Per 100 leerlingen"
    assert ax.get_xscale() == "log"
    assert "," in ax.yaxis.get_major_formatter()(7.5, 0)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "99,8%-grenzen" in legend and any(t.startswith("Landelijk: ") for t in legend)
    plt.close(fig)


def test_overdispersion_widens_the_limits_by_sqrt_phi():
    lim = funnel_limits(8.0, [5_000], levels=(0.998,), per=100, phi=4.0).iloc[0]
    half = stats.norm.ppf(0.999) * np.sqrt(4.0 * 0.08 / 5_000)
    assert lim["upper"] == pytest.approx(100 * (0.08 + half))
    assert lim["lower"] == pytest.approx(100 * (0.08 - half))


def test_overdispersion_factor_from_the_regions():
    """Regions whose true rates differ (like their schools do) give phi well above 1 and fewer
    flags once corrected; regions at one rate give phi close to 1 and unchanged limits."""
    rng = np.random.default_rng(3)
    sizes = rng.integers(5_000, 80_000, 42).astype(float)
    same = rng.poisson(0.08 * sizes)
    plain = funnel_frame(same, sizes, [str(i) for i in range(42)], overdispersion=True)
    assert 1.0 <= plain.attrs["phi"] < 1.6
    true_rates = 0.08 * np.exp(rng.normal(0, 0.08, 42))
    spread = rng.poisson(true_rates * sizes)
    raw = funnel_frame(spread, sizes, [str(i) for i in range(42)])
    fixed = funnel_frame(spread, sizes, [str(i) for i in range(42)], overdispersion=True)
    assert fixed.attrs["phi"] > 2
    assert (fixed["flag"] != "inside").sum() < (raw["flag"] != "inside").sum()


def test_binomial_limit_lines_are_drawn_on_whole_numbers_of_records():
    frame = funnel_frame([30, 55, 80], [100.5, 240, 399], ["a", "b", "c"], kind="binomial")
    fig = funnel_figure(frame)
    limit_lines = [ln for ln in fig.axes[0].lines if ln.get_color() == "0.35"]
    assert limit_lines
    for line in limit_lines:
        sizes = np.asarray(line.get_xdata(), dtype=float)
        assert np.array_equal(sizes, np.round(sizes))

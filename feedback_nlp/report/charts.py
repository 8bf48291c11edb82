"""The report's charts, drawn with matplotlib (no pyplot): theme shares, segments, trend and impact."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from .analysis import Analysis, Segments, Trend
from .tagged import Tag

MAX_CHART_SEGMENTS = 7  # one Okabe-Ito colour each

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision
# deficiency. Praise and complaint get the blue/vermillion pair; yellow is left out (too pale).
COMPLAINT, PRAISE, MENTION = "#D55E00", "#0072B2", "#999999"
PALETTE = ["#E69F00", "#56B4E9", "#009E73", "#CC79A7", "#000000", "#0072B2", "#D55E00"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]
POLARITY_COLOUR = {"negative": COMPLAINT, "positive": PRAISE, None: MENTION}


@dataclass
class Chart:
    slug: str  # file name stem for --format png
    title: str
    figure: object  # matplotlib Figure
    note: str = ""


def _mpl(text: str, limit: int = 40) -> str:
    """A label for matplotlib: shortened, with '$' kept literal (it would start mathtext)."""
    text = str(text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("$", r"\$")


def _style():
    import matplotlib

    return matplotlib.rc_context({
        "font.family": "sans-serif",
        "font.sans-serif": ["DejaVu Sans"],
        "font.size": 10,
        "axes.titlesize": 11,
        "axes.titleweight": "bold",
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.edgecolor": "#555555",
        "axes.labelcolor": "#222222",
        "xtick.color": "#333333",
        "ytick.color": "#333333",
        "svg.fonttype": "none",  # text stays text: searchable, selectable, smaller
        "svg.hashsalt": "feedback-nlp",  # stable ids, so the same data gives the same file
    })


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # no pyplot: no global state, safe in threads

    return Figure(figsize=(width, height), layout="constrained")


def percent_formatter(absolute: bool = False):
    """Tick labels in percent with as many decimals as the tick step needs (0.5% steps read
    0.5%, 1.0%, ..., not 0% 0% 1% 2%)."""
    from matplotlib.ticker import Formatter

    class Percent(Formatter):
        ticks: list[float] = []

        def set_locs(self, locs):  # matplotlib passes the tick values before formatting them
            self.ticks = list(locs)

        def __call__(self, value, pos=None):
            locs = sorted(self.ticks) if len(self.ticks) > 1 else [0, 1]
            step = min((b - a for a, b in zip(locs, locs[1:]) if b > a), default=1)
            decimals = 0 if step >= 1 - 1e-9 else 1 if step >= 0.1 - 1e-9 else 2
            return f"{abs(value) if absolute else value:.{decimals}f}%"

    return Percent()


def _pct(ax, axis="x", absolute=False):
    (ax.xaxis if axis == "x" else ax.yaxis).set_major_formatter(percent_formatter(absolute))


def chart_shares(a: Analysis) -> Chart:
    themes = [t for t in a.data.theme_ids]
    n = a.n or 1

    def share(theme, polarity):
        tag = Tag(theme, polarity)
        return 100 * a.count(tag) / n if tag in a.present else 0.0

    neg = [share(t, "negative") for t in themes]
    pos = [share(t, "positive") for t in themes]
    other = [share(t, None) for t in themes]
    fig = _figure(8, 0.45 * len(themes) + 1.6)
    ax = fig.add_subplot()
    y = np.arange(len(themes))[::-1]
    ax.barh(y, [-v for v in neg], color=COMPLAINT, label="complaint")
    ax.barh(y, pos, color=PRAISE, label="praise")
    if any(other):
        ax.barh(y, other, left=pos, color=MENTION, hatch="//", label="mentioned")
    ax.set_yticks(y, [_mpl(a.data.name_of(t)) for t in themes])
    ax.axvline(0, color="#333333", linewidth=0.8)
    top = max([*neg, *(p + o for p, o in zip(pos, other)), 1.0])
    ax.set_xlim(-top * 1.25, top * 1.25)
    for yi, v in zip(y, neg):
        if v:
            ax.text(-v - top * 0.02, yi, f"{v:.0f}%", va="center", ha="right", fontsize=9)
    for yi, p, o in zip(y, pos, other):
        if p + o:
            ax.text(p + o + top * 0.02, yi, f"{p + o:.0f}%", va="center", ha="left", fontsize=9)
    _pct(ax, absolute=True)
    ax.set_xlabel(f"% of {a.n:,} comments  (complaints left, praise right)")
    ax.legend(loc="lower right", frameon=False, fontsize=9)
    ax.set_title("Theme shares: praise vs complaint")
    return Chart("themes", "Theme shares: praise vs complaint", fig)


def chart_segments(a: Analysis, seg: Segments) -> Chart:
    shown = seg.segments[:MAX_CHART_SEGMENTS]
    groups = [p for p in ("negative", "positive", None) if any(t.polarity == p for t in a.tags)]
    height = max(2.6, 0.22 * len(shown) * max([sum(t.polarity == p for t in a.tags) for p in groups] or [1]) + 1.8)
    fig = _figure(11 if len(groups) > 1 else 7.5, height)
    axes = fig.subplots(1, max(1, len(groups)), squeeze=False)[0]
    for ax, polarity in zip(axes, groups or [None]):
        tags = [t for t in a.tags if t.polarity == polarity]
        y = np.arange(len(tags))[::-1]
        width = 0.8 / len(shown)
        top = 1.0
        for k, segment in enumerate(shown):
            values = [100 * seg.cells[(segment, t)].share for t in tags]
            offsets = y + 0.4 - width * (k + 0.5)
            ax.barh(offsets, values, height=width * 0.92, color=PALETTE[k % len(PALETTE)],
                    label=f"{_mpl(segment, 28)} (n={seg.sizes[segment]:,})")
            for off, value, t in zip(offsets, values, tags):
                if seg.cells[(segment, t)].significant:
                    ax.text(value, off, " *", va="center", ha="left", fontsize=10, fontweight="bold")
            top = max([top, *values])
        ax.set_yticks(y, [_mpl(a.data.name_of(t.theme)) for t in tags])
        ax.set_xlim(0, top * 1.15)
        _pct(ax)
        ax.set_xlabel("% of the segment's comments")
        ax.set_title({"negative": "Complaints", "positive": "Praise", None: "Mentioned"}[polarity])
    fig.suptitle(f"Themes by {_mpl(seg.column)}", fontweight="bold")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(shown)), frameon=False, fontsize=9,
               title=f"{_mpl(seg.column)}   (* significant difference from the rest)", title_fontsize=9)
    note = "" if len(seg.segments) <= MAX_CHART_SEGMENTS else f"The chart shows the {MAX_CHART_SEGMENTS} largest segments; the table has all."
    return Chart(f"segments-{_slug(seg.column)}", f"Themes by {seg.column}", fig, note)


def chart_trend(a: Analysis, tr: Trend, limit: int = 6) -> Chart:
    groups = [p for p in ("negative", "positive", None) if any(t.polarity == p for t in a.tags)]
    fig = _figure(10, 2.2 + 2.6 * max(1, len(groups)))
    axes = fig.subplots(1 + max(1, len(groups)), 1, sharex=True, squeeze=False,
                        gridspec_kw={"height_ratios": [0.6] + [1.0] * max(1, len(groups))})[:, 0]
    x = np.arange(len(tr.periods))
    axes[0].bar(x, tr.sizes, color=MENTION)
    axes[0].set_ylabel("comments")
    axes[0].yaxis.get_major_locator().set_params(integer=True)
    axes[0].set_title(f"Per {tr.granularity} of {_mpl(tr.column)}")
    colour = {t: PALETTE[i % len(PALETTE)] for i, t in enumerate(a.data.theme_ids)}
    marker = {t: MARKERS[i % len(MARKERS)] for i, t in enumerate(a.data.theme_ids)}
    for ax, polarity in zip(axes[1:], groups or [None]):
        tags = sorted((t for t in a.tags if t.polarity == polarity), key=lambda t: -a.count(t))[:limit]
        for tag in tags:
            share = [100 * c / s if s else np.nan for c, s in zip(tr.counts[tag], tr.sizes)]
            ax.plot(x, share, color=colour[tag.theme], marker=marker[tag.theme], markersize=4, linewidth=1.6,
                    label=_mpl(a.data.name_of(tag.theme)))
        ax.set_ylim(bottom=0)
        _pct(ax, "y")
        ax.set_ylabel("% of comments")
        ax.set_title({"negative": "Complaints", "positive": "Praise", None: "Mentioned"}[polarity], loc="left")
        if tags:
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=9)
    step = max(1, math.ceil(len(x) / 16))
    axes[-1].set_xticks(x[::step], [tr.periods[i] for i in range(0, len(x), step)], rotation=45, ha="right")
    axes[-1].set_xlabel("week starting" if tr.granularity == "week" else "month")
    return Chart(f"trend-{_slug(tr.column)}", f"Trend per {tr.granularity} of {tr.column}", fig)


def chart_impact(a: Analysis) -> Chart:
    items = a.impacts
    fig = _figure(8.5, 0.42 * len(items) + 1.6)
    ax = fig.add_subplot()
    y = np.arange(len(items))[::-1]
    values = [i.impact for i in items]
    ax.barh(y, values, color=[POLARITY_COLOUR[i.tag.polarity] for i in items])
    ax.axvline(0, color="#333333", linewidth=0.8)
    ax.set_yticks(y, [_mpl(a.data.label(i.tag), 36) for i in items])
    span = max([abs(v) for v in values] + [1e-9])
    ax.set_xlim(min(0, min(values, default=0)) - span * 0.45, max(0, max(values, default=0)) + span * 0.45)
    for yi, item in zip(y, items):
        ax.text(item.impact + (span * 0.02 if item.impact >= 0 else -span * 0.02), yi,
                f"{item.difference:+.2f} × {item.count:,}".replace("-", "−"), va="center", ha="left" if item.impact >= 0 else "right", fontsize=9)
    ax.set_xlabel(f"impact on {_mpl(a.score_column)}: (mean with - mean without) × comments")
    ax.set_title(f"Impact ranking on {_mpl(a.score_column)} (mean {a.mean_score:.2f})")
    return Chart(f"impact-{_slug(a.score_column)}", f"Impact ranking on {a.score_column}", fig)


def charts(a: Analysis) -> list[Chart]:
    out = [chart_shares(a)]
    out += [chart_segments(a, seg) for seg in a.segments if a.tags]
    if a.trend and a.tags:
        out.append(chart_trend(a, a.trend))
    if a.impacts:
        out.append(chart_impact(a))
    return out


def _slug(text) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "column"

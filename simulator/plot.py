"""A PNG timeline a commune officer can read: one line per day, allowed windows shaded, programmes as bars
coloured by level with their gain written on them, refused or missed items marked in red."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

LEVEL_COLOURS = {"normal": "#2b6cb0", "priority": "#dd6b20", "alert": "#c53030"}


def _hours(t: datetime, day: date, tz) -> float:
    return (t - datetime.combine(day, time(), tzinfo=tz)).total_seconds() / 3600


def plot_timeline(rows, policy, tz, first: date, days: int, path: str, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: a station or CI machine has no display
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    fig, ax = plt.subplots(figsize=(14, 1.0 + 0.55 * days), dpi=110)
    for i in range(days):
        d = first + timedelta(days=i)
        y = days - 1 - i
        for _idx, ws, we in policy.windows_on(d, tz):
            ax.broken_barh([(_hours(ws, d, tz), (we - ws).total_seconds() / 3600)], (y - 0.45, 0.9),
                           facecolors="#c6f6d5", edgecolors="none", zorder=0)
        last_label: tuple[float, str] | None = None
        for r in sorted(rows, key=lambda r: r.start):
            if r.start.date() != d:
                continue
            x = _hours(r.start, d, tz)
            if r.end is None or r.end <= r.start:
                if r.result in ("refused", "missed"):
                    ax.plot([x], [y], marker="x", color="#e53e3e", markersize=8, zorder=3)
                continue
            w = (r.end - r.start).total_seconds() / 3600
            colour = LEVEL_COLOURS.get(r.level, LEVEL_COLOURS["alert"] if r.kind == "alert" else "#4a5568")
            ax.broken_barh([(x, max(w, 0.02))], (y - 0.3, 0.6), facecolors=colour, zorder=2)
            label = f"{r.gain_db:+.0f} dB" if r.gain_db is not None else None
            # one label per run of same-gain items: neighbours in one session would print over each other
            if label and not (last_label and last_label[1] == label and x - last_label[0] < 0.6):
                ax.text(x + max(w, 0.02) / 2, y + 0.33, label, ha="center", va="bottom",
                        fontsize=6.5, color="#1a202c", zorder=4)
                last_label = (x, label)
    ax.set_ylim(-0.7, days - 0.3)
    ax.set_yticks(range(days))
    ax.set_yticklabels([(first + timedelta(days=days - 1 - k)).strftime("%a %d/%m") for k in range(days)])
    ax.set_xlim(0, 24)
    ax.set_xticks(range(0, 25, 2))
    ax.set_xticklabels([f"{h:02d}:00" for h in range(0, 25, 2)])
    ax.grid(axis="x", color="#e2e8f0", zorder=-1)
    ax.set_xlabel("giờ (local time)")
    ax.legend(
        handles=[
            Patch(facecolor="#c6f6d5", label="khung giờ cho phép (allowed window)"),
            Patch(facecolor=LEVEL_COLOURS["normal"], label="thường (normal)"),
            Patch(facecolor=LEVEL_COLOURS["priority"], label="ưu tiên (priority)"),
            Patch(facecolor=LEVEL_COLOURS["alert"], label="khẩn cấp (emergency)"),
            plt.Line2D([], [], marker="x", color="#e53e3e", linestyle="none", label="bị từ chối / lỡ (refused/missed)"),
        ],
        loc="upper center", bbox_to_anchor=(0.5, -0.35 if days < 4 else -0.12), ncol=5, fontsize=8, frameon=False,
    )
    ax.set_title(title or "loa: lịch phát (timeline)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

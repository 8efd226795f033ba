"""Draw the documentation's figures (PNG, with matplotlib).

    python docs/figures.py --output docs/_static/figures

Two diagrams (pancake and pencil chunks; keys and their offsets), a map and a
time series computed by xarray_beam from a small synthetic ERA5-like store
(written to a temporary directory and removed afterwards), and a rechunk
plan for the full ERA5 surface grid. The output is deterministic: the data
depend only on the synthetic generator's seed. Takes about 10 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Polygon, Rectangle  # noqa: E402

import xarray_beam as xbeam  # noqa: E402
from xarray_beam import synthetic  # noqa: E402
from xarray_beam.model import planning

DEFAULT_OUTPUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "_static", "figures"
)
DPI = 100
BY = ("month", "hour")
VARIABLE = "2m_temperature"
POINT = {"latitude": 50.0, "longitude": 260.0}  # central North America
ERA5_SIZES = {"time": 350640, "latitude": 721, "longitude": 1440}
PENCILS = {"time": -1, "latitude": 23, "longitude": 45}
HIGHLIGHT = "#d95f02"
PLAIN = "#9ecae1"
GiB = 2**30
TiB = 2**40


def save(figure: Figure, output: str, name: str) -> str:
    """Write ``figure`` as ``output/name`` and close it."""
    path = os.path.join(output, name)
    figure.savefig(path, dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(figure)
    return path


# --- diagrams ----------------------------------------------------------------------

# Oblique projection of (time, longitude, latitude) boxes: time runs to the
# right, latitude up, longitude into the page.
_DEPTH = np.array([0.55, 0.4])


def _project(t: float, lon: float, lat: float) -> tuple[float, float]:
    x, y = np.array([t, lat]) + lon * _DEPTH
    return float(x), float(y)


def _draw_box(
    axes: Axes, low: Sequence[float], high: Sequence[float], color: str
) -> None:
    """The three visible faces (front, top, right) of a (time, lon, lat) box."""
    (t0, x0, y0), (t1, x1, y1) = low, high
    faces = (
        ([(t0, x0, y0), (t1, x0, y0), (t1, x0, y1), (t0, x0, y1)], 1.0),  # front
        ([(t0, x0, y1), (t1, x0, y1), (t1, x1, y1), (t0, x1, y1)], 0.85),  # top
        ([(t1, x0, y0), (t1, x1, y0), (t1, x1, y1), (t1, x0, y1)], 0.7),  # right
    )
    rgb = np.array(matplotlib.colors.to_rgb(color))
    for corners, shade in faces:
        points = [_project(*corner) for corner in corners]
        axes.add_patch(
            Polygon(points, closed=True, facecolor=rgb * shade, edgecolor="0.2", lw=0.6)
        )


def _draw_boxes(
    axes: Axes, boxes: list[tuple[tuple[float, ...], tuple[float, ...], str]]
) -> None:
    """Boxes of a grid, far ones first so near ones hide them."""
    for low, high, color in sorted(boxes, key=lambda b: (-b[0][1], b[0][2], b[0][0])):
        _draw_box(axes, low, high, color)


def _label_cube_axes(axes: Axes, length: float, width: float, height: float) -> None:
    arrow = {"arrowstyle": "->", "color": "0.3"}
    below = -1.2
    axes.annotate(
        "", _project(length, 0, below), _project(0, 0, below), arrowprops=arrow
    )
    axes.text(*_project(length / 2, 0, below - 1.1), "time", ha="center", va="top")
    axes.annotate("", _project(-1, 0, height), _project(-1, 0, 0), arrowprops=arrow)
    axes.text(
        *_project(-1.4, 0, height / 2), "latitude", ha="right", va="center", rotation=90
    )
    axes.annotate(
        "",
        _project(length + 0.8, width, 0),
        _project(length + 0.8, 0, 0),
        arrowprops=arrow,
    )
    axes.text(*_project(length + 1.4, width / 2, 0), "longitude", ha="left", va="top")


def pancakes_and_pencils(output: str) -> str:
    """Pancake and pencil chunkings of one (time, latitude, longitude) cube."""
    length, width, height, gap = 16.0, 8.0, 6.0, 0.18
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.1))
    days = 6
    day = length / days
    pancakes = [
        (
            (i * day + gap / 2, 0.0, 0.0),
            ((i + 1) * day - gap / 2, width, height),
            HIGHLIGHT if i == 2 else PLAIN,
        )
        for i in range(days)
    ]
    _draw_boxes(left, pancakes)
    left.set_title("Pancakes: 24 hours x the whole globe", fontsize=13)
    left.text(
        *_project(length / 2, 0, -3.6),
        "one chunk (24, 721, 1440): 100 MB of float32\n"
        "a map at one time reads 1 chunk;\n"
        "a time series at one point reads every chunk",
        ha="center",
        va="top",
        fontsize=10.5,
    )
    rows, columns = 3, 4
    tile_lat, tile_lon = height / rows, width / columns
    pencils = [
        (
            (0.0, j * tile_lon + gap / 2, i * tile_lat + gap / 2),
            (length, (j + 1) * tile_lon - gap / 2, (i + 1) * tile_lat - gap / 2),
            HIGHLIGHT if (i, j) == (rows - 1, 0) else PLAIN,
        )
        for i in range(rows)
        for j in range(columns)
    ]
    _draw_boxes(right, pencils)
    right.set_title("Pencils: all hours x a small tile", fontsize=13)
    right.text(
        *_project(length / 2, 0, -3.6),
        "one chunk (350640, 23, 45): 1.45 GB, every hour of 1,035 points\n"
        "a time series at one point reads 1 chunk;\n"
        "a map at one time reads every chunk",
        ha="center",
        va="top",
        fontsize=10.5,
    )
    for axes in (left, right):
        _label_cube_axes(axes, length, width, height)
        axes.set_aspect("equal")
        axes.set_xlim(-3, length + width * _DEPTH[0] + 4)
        axes.set_ylim(-7.5, height + width * _DEPTH[1] + 0.5)
        axes.axis("off")
    figure.suptitle(
        "One (time, latitude, longitude) array, two chunkings (highlighted: one chunk)",
        fontsize=14,
    )
    return save(figure, output, "pancakes_and_pencils.png")


def _key_text(time: int, longitude: int) -> str:
    return f"Key(offsets={{\n  'time': {time},\n  'longitude': {longitude}}})"


def keys_and_offsets(output: str) -> str:
    """A (time, longitude) grid of chunks labelled with their keys' offsets."""
    time_chunk, lon_chunk, n_time, n_lon = 24, 480, 96, 1440
    labelled = {(24, 0), (0, 960), (48, 480)}
    split = (72, 960)
    figure, axes = plt.subplots(figsize=(11, 5.5))
    for t in range(0, n_time, time_chunk):
        for lon in range(0, n_lon, lon_chunk):
            if (t, lon) == split:
                for piece in (t, t + time_chunk // 2):
                    axes.add_patch(
                        Rectangle(
                            (piece, lon),
                            time_chunk // 2,
                            lon_chunk,
                            facecolor="#fdd0a2",
                            edgecolor="0.2",
                        )
                    )
                    axes.text(
                        piece + time_chunk / 4,
                        lon + lon_chunk / 2,
                        f"({piece}, {lon})",
                        ha="center",
                        va="center",
                        fontsize=8.5,
                        family="monospace",
                    )
                continue
            highlighted = (t, lon) in labelled
            axes.add_patch(
                Rectangle(
                    (t, lon),
                    time_chunk,
                    lon_chunk,
                    facecolor=HIGHLIGHT if highlighted else PLAIN,
                    alpha=0.75 if highlighted else 0.5,
                    edgecolor="0.2",
                )
            )
            axes.text(
                t + time_chunk / 2,
                lon + lon_chunk / 2,
                _key_text(t, lon) if highlighted else f"({t}, {lon})",
                ha="center",
                va="center",
                fontsize=9.5 if highlighted else 10,
                family="monospace",
                multialignment="left",
            )
    axes.annotate(
        "SplitChunks({'time': 12}):\npieces at offsets 72 and 84",
        xy=(84, n_lon - 40),
        xytext=(n_time + 3, n_lon - 120),
        va="top",
        fontsize=10,
        arrowprops={"arrowstyle": "->", "color": "0.3"},
    )
    axes.text(
        n_time + 3,
        n_lon * 0.55,
        "Offsets count elements\nfrom the origin, not\nchunks: the second\n"
        "chunk along both\ndimensions has offsets\n(24, 480), not (1, 1).\n\n"
        "Other chunks show\ntheir offsets as\n(time, longitude).",
        va="top",
        fontsize=10,
    )
    axes.set_xlim(0, n_time)
    axes.set_ylim(0, n_lon)
    axes.set_xticks(range(0, n_time + 1, time_chunk))
    axes.set_yticks(range(0, n_lon + 1, lon_chunk))
    axes.set_xlabel("time (element index: hours)")
    axes.set_ylabel("longitude (element index)")
    axes.set_title(
        "Chunks of 24 hours x 480 longitudes and their keys (latitude whole, offset 0)"
    )
    return save(figure, output, "keys_and_offsets.png")


# --- computed figures ----------------------------------------------------------------


def monthly_hourly_climatology(store: str) -> xarray.Dataset:
    """The month x hour mean climatology of ``store``, computed by xarray_beam."""
    return xbeam.Dataset.from_zarr(store).climatology(BY).collect_with_direct_runner()


def climatology_map(climatology: xarray.Dataset, output: str) -> str:
    """A map of the January 12 UTC mean 2 m temperature."""
    field = climatology[VARIABLE].sel(month=1, hour=12)
    field = field.sortby("latitude")  # stored 90 to -90; plotted south to north
    figure, axes = plt.subplots(figsize=(11, 5.2))
    image = axes.pcolormesh(
        field.longitude,
        field.latitude,
        field.transpose("latitude", "longitude"),
        cmap="RdYlBu_r",
        shading="nearest",
    )
    units = field.attrs.get("units", "")
    figure.colorbar(image, ax=axes, label=f"2 m temperature ({units})", pad=0.02)
    axes.set_aspect("equal")
    axes.set_xticks(range(0, 361, 60))
    axes.set_yticks(range(-90, 91, 30))
    axes.set_xlabel("longitude (degrees east)")
    axes.set_ylabel("latitude (degrees north)")
    axes.set_title(
        "Mean 2 m temperature, January at 12 UTC\n"
        "(month x hour climatology of synthetic ERA5-like data, 2.5° grid)"
    )
    return save(figure, output, "climatology_map.png")


def anomaly_series(store: str, climatology: xarray.Dataset, output: str) -> str:
    """Raw and anomaly 2 m temperature at one grid point, hour by hour."""
    point = {
        dim: slice(value, value) for dim, value in POINT.items()
    }  # one-element slices keep the dimensions (and so the keys' offsets)
    raw = xbeam.Dataset.from_zarr(store)[[VARIABLE]].sel(point)
    # Keys count offsets within the selection: give Anomaly the matching region.
    subtract = xbeam.Anomaly(climatology[[VARIABLE]].sel(point), BY)
    anomalies = xbeam.Dataset.from_ptransform(
        raw.ptransform | subtract, raw.template, raw.chunks
    )
    raw_series = raw.collect_with_direct_runner()[VARIABLE].squeeze()
    anomaly = anomalies.collect_with_direct_runner()[VARIABLE].squeeze()
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True)
    top.plot(raw_series.time, raw_series, lw=0.8, color="0.3", label="data")
    top.plot(
        raw_series.time,
        raw_series - anomaly,
        lw=0.8,
        color=HIGHLIGHT,
        label="month x hour climatology",
    )
    top.set_ylabel("2 m temperature (K)")
    low, high = float(raw_series.min()), float(raw_series.max())
    top.set_ylim(low - 1, high + 0.3 * (high - low))  # room for the legend
    top.legend(loc="upper left", ncols=2, framealpha=0.95)
    top.set_title(
        f"Synthetic 2 m temperature at {POINT['latitude']:.0f}°N, "
        f"{360 - POINT['longitude']:.0f}°W, hourly"
    )
    bottom.axhline(0, color="0.5", lw=0.6)
    bottom.plot(anomaly.time, anomaly, lw=0.8, color="#1b9e77")
    bottom.set_ylabel("anomaly (K)")
    bottom.set_title("Anomaly: data minus its month x hour climatology (xbeam.Anomaly)")
    bottom.set_xlabel("time (2020)")
    figure.autofmt_xdate()
    figure.tight_layout()
    return save(figure, output, "anomaly_series.png")


def rechunk_plan(output: str, max_mems: Sequence[int] = (4, 8, 16, 32)) -> str:
    """Per-pass bytes, memory and objects of pancake-to-pencil plans."""
    plans = [
        xbeam.plan_rechunk(
            ERA5_SIZES,
            {"time": 24},
            PENCILS,
            itemsize=4,
            max_mem=gib * GiB,
            method="storage",
        )
        for gib in max_mems
    ]
    passes = max(len(plan.stages) for plan in plans)
    positions = np.arange(len(plans))
    width = 0.8 / passes
    colors = ("#1b9e77", HIGHLIGHT, "#7570b3", "#e7298a", "#66a61e")
    panels: tuple[tuple[str, Callable[[planning.Stage], float]], ...] = (
        (
            "bytes read + written (TiB)",
            lambda s: (s.bytes_read + s.bytes_written) / TiB,
        ),
        ("projected peak memory of a task (GiB)", lambda s: s.peak_memory / GiB),
        ("objects written (log scale)", lambda s: s.objects),
    )
    figure, all_axes = plt.subplots(1, len(panels), figsize=(12, 4.8))
    for axes, (title, value) in zip(all_axes, panels, strict=True):
        for p in range(passes):
            heights = [
                value(plan.stages[p]) if p < len(plan.stages) else 0 for plan in plans
            ]
            stage = plans[0].stages[min(p, len(plans[0].stages) - 1)]
            axes.bar(
                positions + (p - (passes - 1) / 2) * width,
                heights,
                width,
                color=colors[p],
                label=f"pass {p + 1}: {stage.reads} -> {stage.writes}",
            )
        axes.set_xticks(positions, [f"{gib} GiB" for gib in max_mems])
        axes.set_xlabel("max_mem")
        axes.set_title(title, fontsize=11)
    moved, memory, objects = all_axes
    moved.set_ylim(0, 4)
    moved.text(
        0.5,
        0.95,
        f"each pass reads and writes the whole\n"
        f"array ({plans[0].total_bytes / TiB:.2f} TiB) once, whatever max_mem",
        transform=moved.transAxes,
        ha="center",
        va="top",
        fontsize=9.5,
    )
    budget = memory.scatter(
        positions, max_mems, marker="_", s=900, color="0.1", zorder=3, label="max_mem"
    )
    for position, plan in zip(positions, plans, strict=True):
        if plan.warnings:
            memory.annotate(
                "over budget:\nthe plan warns",
                (position, plan.peak_memory / GiB),
                xytext=(0, 18),
                textcoords="offset points",
                ha="center",
                fontsize=9,
            )
    memory.legend(handles=[budget], loc="upper left", fontsize=9)
    objects.set_yscale("log")
    handles, labels = moved.get_legend_handles_labels()
    figure.legend(
        handles, labels, loc="lower center", ncols=passes, bbox_to_anchor=(0.5, -0.02)
    )
    figure.suptitle(
        "Storage rechunk plans for one ERA5 surface variable, float32 "
        "(350640, 721, 1440):\npancakes (24, 721, 1440) -> pencils (350640, 23, 45), "
        "by max_mem",
        fontsize=12,
    )
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    return save(figure, output, "rechunk_plan.png")


# --- the architecture -------------------------------------------------------------

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAYERS = (
    ("programs/", "what users run", ("programs",)),
    (
        "the high-level API",
        "Dataset",
        ("dataset.py", "dataset_steps.py", "synthetic.py"),
    ),
    ("beam/", "Beam transforms", ("beam",)),
    ("io/", "storage, no Beam", ("io", "io/_direct")),
    ("model/", "no Beam, no I/O", ("model",)),
)
SEAMS = {"chunk_writer", "routes"}


def _modules(parts: Sequence[str]) -> list[str]:
    """The modules of the package's folders (or the files) named by ``parts``."""
    names = []
    root = os.path.join(PACKAGE, "xarray_beam")
    for part in parts:
        path = os.path.join(root, part)
        if part.endswith(".py"):
            names.append(part[:-3])
            continue
        prefix = "_direct/" if part.endswith("_direct") else ""
        names += [
            prefix + name[:-3]
            for name in sorted(os.listdir(path))
            if name.endswith(".py") and name != "__init__.py"
        ]
    return names


def architecture(output: str) -> str:
    """The package's layers, each importing only the ones below it."""
    gap, per_row, line = 0.45, 5, 0.24
    layers = [(t, r, _modules(p)) for t, r, p in LAYERS]
    heights = [max(1.0, 0.5 + line * -(-len(m) // per_row)) for _, _, m in layers]
    top = sum(heights) + gap * len(layers)
    figure, axes = plt.subplots(figsize=(11, 1.1 * top))
    y = top
    for number, ((title, role, modules), height) in enumerate(
        zip(layers, heights, strict=True)
    ):
        if number:
            axes.annotate(
                "",
                xy=(5, y - gap),
                xytext=(5, y),
                arrowprops={"arrowstyle": "->", "color": "black"},
            )
        y -= height + gap
        axes.add_patch(
            Rectangle((0, y), 10, height, facecolor=PLAIN, edgecolor="black")
        )
        axes.text(0.15, y + height - 0.2, title, fontsize=12, weight="bold", va="top")
        axes.text(0.15, y + 0.15, role, fontsize=9, style="italic")
        for i, name in enumerate(modules):
            row, column = divmod(i, per_row)
            seam = name.split("/")[-1] in SEAMS
            axes.text(
                2.4 + column * 1.5,
                y + height - 0.22 - row * line,
                name,
                fontsize=8.5,
                va="top",
                color=HIGHLIGHT if seam else "black",
                weight="bold" if seam else "normal",
            )
    axes.text(
        0,
        y - 0.15,
        "Each layer imports only the layers below it (arrows: imports). "
        "In orange: io/chunk_writer, where every chunk is "
        "written,\nand model/routes, where a rechunk's route is chosen.",
        fontsize=9,
        va="top",
    )
    axes.set_xlim(-0.1, 10.1)
    axes.set_ylim(y - 0.8, top)
    axes.set_axis_off()
    axes.set_title("xarray_beam: sub-packages by layer", fontsize=13)
    return save(figure, output, "architecture.png")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--output", default=DEFAULT_OUTPUT, help="directory for the PNG files"
    )
    args = parser.parse_args()
    os.makedirs(args.output, exist_ok=True)
    written = [
        architecture(args.output),
        pancakes_and_pencils(args.output),
        keys_and_offsets(args.output),
    ]
    with tempfile.TemporaryDirectory(prefix="xarray_beam_figures_") as workdir:
        store = os.path.join(workdir, "era5_like.zarr")
        synthetic.write_era5_like(
            store, hours=24 * 62, resolution=2.5, variables=(VARIABLE,)
        )
        climatology = monthly_hourly_climatology(store)
        written.append(climatology_map(climatology, args.output))
        written.append(anomaly_series(store, climatology, args.output))
    written.append(rechunk_plan(args.output))
    for path in written:
        print(path)


if __name__ == "__main__":
    main()

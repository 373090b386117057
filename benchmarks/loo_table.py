"""results/scale/loo.md: generalisation to a camera never seen in training, leave one dataset out, two approaches.

(a) One scale-normalised model trained on the other two datasets (`m2unet train --dataset A,B`), evaluated on the
    held-out dataset's test split with `m2unet evaluate` (threshold stored with the weights: chosen on held-out
    training images of A and B): results/ours/loo/<held-out>/metrics.json.
(b) Today's approach: `--model auto` among the per-dataset models of the other two datasets (run at their training
    FOV diameter, shrinking only), from benchmarks/scale_cross.py's results/scale/cross.json; the rule picks the model
    whose training FOV diameter is closest in ratio to the photograph's.
Beside them: bob.ip.binseg's published leave-one-out F1 for M2U-Net and U-Net (Idiap; DRIVE 0.771 / 0.775,
CHASE_DB1 0.776 / 0.779, HRF 0.735 / 0.746) and the issue's target (≥ 0.785 on each).

    python benchmarks/loo_table.py
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

from m2unet.data.datasets import FOV_DIAMETER
from m2unet.data.scale import describe_scale, model_scale
from m2unet.evaluation import metrics as M
from m2unet.evaluation.evaluate import TTA_RECORD

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "results" / "scale" / "loo.md"
DATASETS = ("drive", "chase_db1", "hrf")
# what each recipe variant changed (results/ours/loo/<held-out>-<variant>/)
VARIANTS = {"lowres": "a lower-resolution camera augmentation (area down by 1–3×, bilinear back up; p 0.4): does an enlarged "
                      "small photograph look like nothing the training crops showed? (removed again after this result)",
            "w6": "one vessel width instead of one FOV diameter (`--vessel-width 6`: each dataset at the FOV diameter where its labels' "
                  "mean vessel width is 6 px), run by the width rule (m2unet.data.scale.WidthRule; docs/training.md)",
            "contrast": "no new training: the first run's weights with contrast restoration (m2unet.data.contrast; the floor measured on "
                        "its two training datasets by scripts/add_contrast_floor.py)",
            "w6-contrast": "no new training: the w6 run's weights with contrast restoration (as above)",
            "cam2": "harsher camera ranges, as the `universal` models since 723e923 (`--augment jpeg_quality_min=15 --augment blur_sigma_max=3`: "
                    "JPEG down to quality 15, blur up to σ 3 px)",
            "search": "no new training: the first run's weights run with `--search-diameter` (each photograph's FOV diameter searched "
                      "for the most self-consistent map within the run's stored range, and above it up to the photograph's own FOV "
                      "diameter; m2unet.data.scale.DiameterSearch; DRIVE's and CHASE_DB1's photographs, 540 and about 920 px across, "
                      "are below these runs' upper ends, so the search before it went above the range gave the same)",
            "rerun": "the first recipe trained again on a 2-core AMD EPYC (the first run's weights were not kept): how far a "
                     "second run of the same recipe moves the held-out F1",
            "rerun-search": "no new training: the rerun's weights run with `--search-diameter` (as in variant search)",
            "run3": "the first recipe trained a third time (the rerun's weights were not kept either), to measure the diameter "
                    "search of 4783feb on held-out HRF; started at 115e018, resumed after epoch 19 at 675f7eb, the training code "
                    "the same",
            "run3-search": "no new training: the third run's weights run with `--search-diameter` as it is since 4783feb "
                           "(central-square scoring, 1.25× steps above the range)",
            "ema": "the first recipe with a moving average of the weights (`--ema-half-life 5`: validated, kept and saved "
                   "instead of the last step's weights; each step's weight halves in 5 epochs)",
            "ema-search": "no new training: the ema run's weights run with `--search-diameter` (as in variant run3-search)",
            "ema300": "the recipe of the `universal` model shipped until zoom15's: harsher camera ranges (as cam2), a moving average of the weights (as "
                      "ema) and the paper's 300 epochs (`--epochs 300`)",
            "ema300-search": "no new training: the ema300 run's weights run with `--search-diameter` (as in variant run3-search)",
            "zoom15": "ema300's recipe with zooms up to 1.5× instead of 1.2×, on 70 % of the crops instead of 50 % "
                      "(`--augment scale_high=1.5 --augment scale_p=0.7`): a 30° camera such as CHASE_DB1's draws vessels 1.5× as "
                      "wide as the 45° cameras of DRIVE and HRF at the same FOV diameter (the CHASE_DB1 run trained at 576520c with the "
                      "`scale_high` setting that 0f8c3ab commits)",
            "zoom15-search": "no new training: the zoom15 run's weights run with `--search-diameter` (as in variant run3-search)",
            "pool": "zoom15 with DRIVE's labels compared as 2×2 max-pooled blocks (`--pool-coarse-labels`; docs/training.md): the model "
                    "may draw a vessel inside an enlarged DRIVE label as thin as it is (no change without DRIVE: held-out DRIVE's "
                    "run would be zoom15's)",
            "pool-search": "no new training: the pool run's weights run with `--search-diameter` (as in variant run3-search)",
            **{f"zoom15-s{seed}": f"zoom15's recipe with `--seed {seed}` instead of 42 (trained on one NVIDIA H200, "
                                  "scripts/gpu_session.sh zoom15): how far the seed alone moves a held-out F1" for seed in (1, 2)},
            **{f"zoom20-s{seed}": f"zoom15's recipe with zooms up to 2.0× (`--augment scale_high=2.0`), seed {seed}, trained on this "
                                  "project's 2-core AMD EPYC (fp32; zoom15-s1 and -s2 trained on the H200 in bf16): do zooms past a 30° "
                                  "camera's 1.5× lift held-out CHASE_DB1 further? `scripts/gpu_session.sh variant` measures it on all three"
               for seed in (1, 2)},
            "pool-s1": "pool's recipe with `--seed 1`, trained on this project's 2-core AMD EPYC (fp32): held-out CHASE_DB1's maps "
                       "draw more vessel than its labels at the training cameras' threshold; do maps that draw enlarged DRIVE labels at "
                       "their own width draw less? (compare zoom15-s1)",
            "poolz20-s1": "pool-s1's recipe with zooms up to 2.0× (`--augment scale_high=2.0 --pool-coarse-labels`, seed 1, on a 2-core "
                          "CPU: its summary.json names it): zoom20-s1's maps ranked CHASE_DB1's pixels best but drew still more vessel at "
                          "the training cameras' threshold, pool-s1's drew less; do the two together keep both? (CHASE_DB1: compare "
                          "zoom20-s1 and pool-s1, same seed; DRIVE: without DRIVE the pooling changes nothing, so this is zoom20's recipe, "
                          "compare zoom15-s1; HRF: compare pool and zoom15-s1)",
            "poolz20cc-s2": "poolz20-s1's recipe with `--seed 2` and the threshold chosen under simulated camera changes "
                            "(`--threshold-rule camera-changes`; results/scale/threshold_camera_changes.md), on a 2-core CPU, with the rule "
                            "stored: the shipped recipe's second seed (CHASE_DB1 left out first, where seed 1's gain rested "
                            "mostly on the rule)",
            "poolz20cc-s3": "the shipped recipe (poolz20cc-s2's) with `--seed 3`, CHASE_DB1 left out, on this project's 2-core "
                            "Xeon (bf16): seed 1's weights without CHASE_DB1 were not kept, so a third seed gives the searched-with-"
                            "flips column a second run evaluated as `segment --tta` runs it now",
            **{f"{run}-search": f"no new training: the {run} run's weights run with `--search-diameter`"
               for run in ("zoom15-s1", "zoom15-s2", "zoom20-s1", "zoom20-s2", "pool-s1", "poolz20-s1", "poolz20cc-s2", "poolz20cc-s3")},
            **{f"{run}-search-tta": f"no new training: the {run} run's weights run with `--search-diameter --tta`"
               for run in ("ema300", "zoom15", "zoom15-s1", "zoom15-s2", "zoom20-s1", "zoom20-s2", "pool-s1", "poolz20-s1",
                           "poolz20cc-s2", "poolz20cc-s3")}}
CALIBRATED_RUNS = ("zoom15-s1", "zoom15-s2")  # held-out runs calibrated to the held-out camera (zoom15's recipe)
CALIBRATED = ("-calibrated", "-calibrated-tta")  # a held-out run's weights calibrated on the held-out dataset's training split
VARIANTS.update({f"{run}{way}": f"no new training: the {run} run's weights calibrated to the held-out camera on its dataset's training split "
                                f"(`m2unet calibrate HELD-OUT --weights ...{' --tta' if way.endswith('tta') else ''}`; section \"Calibrated to the "
                                f"held-out camera\"){', evaluated with --tta' if way.endswith('tta') else ''}"
                 for run in CALIBRATED_RUNS for way in CALIBRATED})
VARIANTS["poolz20cc"] = ("zoom15's recipe with zooms up to 2.0× instead of 1.5× and DRIVE's labels compared as 2×2 max-pooled blocks "
                         "(`--augment scale_high=2.0 --pool-coarse-labels`: variant poolz20-s1), and the threshold chosen under simulated "
                         "camera changes (`--threshold-rule camera-changes`; results/scale/threshold_camera_changes.md)")
# recipes trained with several seeds: {recipe: {run (results/ours/loo/<held-out>-<run>): its --seed}}
RECIPES = {"zoom15": {"zoom15": 42, "zoom15-s1": 1, "zoom15-s2": 2},
           "poolz20cc": {"poolz20-s1": 1, "poolz20cc-s2": 2, "poolz20cc-s3": 3}}
# how each recipe's seeds were trained and chosen (a seed that chose the recipe on these test splits is not a fresh draw)
RECIPE_NOTES = {
    "zoom15": ("seed 42: the runs of variant zoom15; 1 and 2 trained on one NVIDIA H200 by `scripts/gpu_session.sh zoom15`, bf16 mixed "
               "precision as on the CPUs; held-out CHASE_DB1's searched rows of seeds 1 and 2 evaluated there too, `--device cuda`, as "
               "each metrics.json records. Seed 42's runs chose the recipe among the variants on these test splits, seeds 1 and 2 "
               "carry none of that choice"),
    "poolz20cc": ("seed 1: the runs of variant poolz20-s1, trained before `--threshold-rule` existed. The rule changes only the "
                  "stored threshold, never the weights (m2unet.training.engine), so their evaluations are read at the threshold it "
                  "chose for them (results/scale/threshold_camera_changes.json) from the pooled counts at every threshold that each "
                  "metrics.json keeps; seed 2: poolz20cc-s2, trained with the rule, as stored; seed 3 (CHASE_DB1 left out; a row once trained and evaluated): poolz20cc-s3, "
                  "the same. All on 2-core CPUs. Seed 1's runs chose the recipe and the rule among the variants on these test "
                  "splits, seeds 2 and 3 carry none of that choice. The flip TTA column counts only evaluations whose flips are "
                  "of the view the search keeps, as `segment --tta` runs them now (flips_kept_view); seed 1's "
                  "weights without CHASE_DB1 were not kept, so its row there, flipped at every diameter tried, is among the "
                  "variants only"),
}
SHIPPED = "poolz20cc"  # the recipe of the shipped universal model
RULE_READ = {"poolz20-s1"}  # runs of a camera-changes recipe trained before the rule: read at the rule's threshold
RULE_THRESHOLDS = REPO / "results" / "scale" / "threshold_camera_changes.json"  # benchmarks/threshold_camera_changes.py
# variants that evaluate another run's weights another way (contrast restoration, the diameter search): no run of their own
EVALUATED_ONLY = ("-tta", "-calibrated", "-contrast", "-search")  # in this order: "-search-tta" names the run without both
RUN_ORDER = ("ema300", "run3", "rerun", "first run")  # newest first: the latest run of a held-out dataset reflects the current search
TARGET = 0.785  # the held-out F1 target on each dataset
BOB = {"drive": (0.771, 0.775), "chase_db1": (0.776, 0.779), "hrf": (0.735, 0.746)}


def closest(held_out: str) -> str:
    """The other dataset's model whose training FOV diameter is closest in ratio to the held-out dataset's."""
    others = [d for d in DATASETS if d != held_out]
    return min(others, key=lambda d: abs(math.log(FOV_DIAMETER[d] / FOV_DIAMETER[held_out])))


def flips_note(variant: str, metrics: dict) -> str:
    """How a search-and-flips evaluation flipped (:func:`flips_kept_view`), in words after its variant's description."""
    if not variant.endswith("-search-tta"):
        return ""
    if flips_kept_view(metrics):
        return (" (the search scores whole FOVs on plain maps and central squares flip-averaged, then the view it keeps is "
                "averaged with its 3 flips, as `segment --tta` runs it)")
    if metrics.get("test_time_augmentation") == TTA_RECORD_PLAIN_TRIES:
        return " (every try of the search scored on its plain map, then the kept view averaged with its 3 flips, as at 5a38bd9)"
    return (" (each diameter the search tried run as the mean over the scaled view and its 3 flips, as `segment --tta` ran it "
            "before the flips were of the kept view only)")


def variant_rows() -> list[str]:
    """A table of recipe variants (results/ours/loo/<held-out>-<variant>/, e.g. ``drive-lowres``) beside the first run."""
    rows = []
    for path in sorted((REPO / "results" / "ours" / "loo").glob("*-*/metrics.json")):
        held_out, variant = path.parent.name.split("-", 1)
        first = REPO / "results" / "ours" / "loo" / held_out / "metrics.json"
        if held_out not in DATASETS or not first.is_file():
            continue
        cells, variant_metrics = [], json.loads(path.read_text())
        for metrics in (json.loads(first.read_text()), variant_metrics):
            fov = metrics["pooled"]["fov"]
            cells.append(f"{fov['a_priori']['f1']:.4f} at {fov['a_priori']['threshold']:.3f} (best {fov['best']['f1']:.4f} at {fov['best']['threshold']:.3f})")
        trained = f"loo-{held_out}-{variant}"  # the run whose weights were evaluated
        for suffix in EVALUATED_ONLY:
            trained = trained.removesuffix(suffix)
        summary = REPO / "results" / "train" / trained / "summary.json"
        commit = json.loads(summary.read_text()).get("git_commit", "?") if summary.is_file() else "?"
        rows.append(f"| {held_out} | {variant}: {VARIANTS.get(variant, '')}{flips_note(variant, variant_metrics)} (results/train/{trained}/, "
                    f"commit {commit}) | {cells[0]} | {cells[1]} |")
    if not rows:
        return []
    return ["", "## Recipe variants", "",
            "The same protocol with one change to the training recipe: `m2unet train --dataset A,B` at the commit named in the",
            "variant's summary.json (its config.json records the recipe), then `m2unet evaluate` as recorded in its metrics.json.",
            "F1 inside the FOV at the a-priori threshold (and the optimistic best).", "",
            "| held out | variant | first run | variant |", "|---|---|---|---|", *rows]


@functools.cache
def loo_metrics(name: str) -> dict | None:
    """results/ours/loo/<name>/metrics.json, read once (None: not evaluated); the tables ask for most several times."""
    path = REPO / "results" / "ours" / "loo" / name / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def pooled(name: str) -> dict | None:
    """results/ours/loo/<name>/metrics.json's pooled counts inside the FOV (None: not evaluated)."""
    metrics = loo_metrics(name)
    return metrics["pooled"]["fov"] if metrics else None


def a_priori_f1(name: str) -> float | None:
    """Pooled F1 inside the FOV at the a-priori threshold of results/ours/loo/<name>/ (None: not evaluated)."""
    fov = pooled(name)
    return fov["a_priori"]["f1"] if fov else None


def search_rows() -> list[str]:
    """Each held-out run evaluated with and without the diameter search (``<run>-search`` beside ``<run>``): the
    evidence for `--model auto` = the universal model with its diameter searched (m2unet.weights.auto_run)."""
    pairs = {}  # (held-out, run) → (without, with)
    for path in sorted((REPO / "results" / "ours" / "loo").glob("*-search/metrics.json")):
        run = path.parent.name.removesuffix("-search")
        held_out, _, variant = run.partition("-")
        plain = a_priori_f1(run)
        if held_out in DATASETS and plain is not None:
            pairs[held_out, variant or "first run"] = (plain, a_priori_f1(path.parent.name))
    if not pairs:
        return []
    rows = [f"| {held_out} | {run} | {plain:.4f} | {searched:.4f} |" for (held_out, run), (plain, searched) in sorted(pairs.items())]
    lines = ["", "## With the diameter search: what `--model auto` runs before its flips", "",
             "Each held-out run's weights evaluated again with `m2unet evaluate --search-diameter` (m2unet.data.scale.DiameterSearch;",
             "its metrics.json records the command and commit); F1 a priori inside the FOV. These were searched as the search was at",
             "their commit: every 256 px, each on the whole FOV. Since 62de4bc a photograph wider than the run's range is scored",
             "on the FOV's central square at 1.25× steps, and only the chosen diameter runs whole; on HRF's own test split the",
             "universal model scores 0.8067 so against 0.8072 (results/ours/universal-search/hrf). The run3 row (held-out HRF,",
             "trained a third time since the rerun's weights were not kept) was searched as it is since 4783feb.", "",
             "| held out | run | as stored (clamped into its range) | diameter searched |", "|---|---|---:|---:|", *rows]
    for run in sorted({run for _, run in pairs}):
        values = [pairs.get((d, run)) for d in DATASETS]
        if all(values):
            lines += ["", f"Mean over the three held-out datasets, run {run}: {sum(v[0] for v in values) / 3:.4f} as stored, "
                      f"{sum(v[1] for v in values) / 3:.4f} with the search."]
    latest = [next((pairs[d, run] for run in RUN_ORDER if (d, run) in pairs), None) for d in DATASETS]  # each one's newest run
    if all(latest):
        lines += ["", f"Mean over the three held-out datasets, each its latest run ({' > '.join(RUN_ORDER)}): "
                  f"{sum(v[0] for v in latest) / 3:.4f} as stored, {sum(v[1] for v in latest) / 3:.4f} with the search."]
    return lines


WAYS = ("", "-search", "-search-tta")  # each held-out run as stored, searched, searched with flip TTA (folder suffixes)


@functools.cache
def rule_thresholds() -> dict:
    """results/scale/threshold_camera_changes.json, read once: {run folder: {stored, as they are, changed}}."""
    return json.loads(RULE_THRESHOLDS.read_text())


def rule_threshold(held_out: str, run: str) -> float | None:
    """The threshold the camera-changes rule chose for a run of :data:`RULE_READ` (None: the run is read as stored)."""
    return rule_thresholds()[f"loo-{held_out}-{run}"]["changed"] if run in RULE_READ else None


# evaluate's --tta record at 5a38bd9 (until 8f0417e): every try of the search plain, the kept view flipped
TTA_RECORD_PLAIN_TRIES = "flips (mean of 4 views of the view kept; a diameter search scores plain maps)"


def flips_kept_view(metrics: dict) -> bool:
    """Whether an evaluation with --tta ran as segment --tta runs now (evaluate's TTA_RECORD): the kept view flipped,
    whole-FOV tries plain, central-square tries flipped. Records of 5a38bd9 (every try plain) count for photographs
    within the stored range, where the two are the same code path: DRIVE's and CHASE_DB1's (FOV ≤ 1792 px); older
    ones flipped every diameter the search tried."""
    record = metrics.get("test_time_augmentation")
    return record == TTA_RECORD or (record == TTA_RECORD_PLAIN_TRIES and metrics["dataset"] != "hrf")


def recipe_f1(held_out: str, run: str, way: str, key: str = "a_priori", older_flips: bool = False) -> float | None:
    """F1 inside the FOV of a recipe's held-out ``run`` evaluated ``way``, at its a-priori threshold (for a run of
    :data:`RULE_READ` the rule's, read off the pooled counts) or its best (``key`` "best"); None: not evaluated, or
    with flips the way segment no longer runs them (:func:`flips_kept_view`) unless ``older_flips`` (a former recipe's
    table, read as it was)."""
    metrics = loo_metrics(f"{held_out}-{run}{way}")
    if metrics is None or (way.endswith("-tta") and not older_flips and not flips_kept_view(metrics)):
        return None
    threshold = rule_threshold(held_out, run) if key == "a_priori" else None
    if threshold is None:
        return metrics["pooled"]["fov"][key]["f1"]
    return M.f1_at(metrics["curves"]["fov"], threshold)  # the pooled counts at every threshold


def seed_values(held_out: str, way: str, key: str = "a_priori", recipe: str = SHIPPED) -> list[float]:
    """F1 at the a-priori or the best threshold of each run of ``recipe`` (:data:`RECIPES`) evaluated ``way`` on
    ``held_out``, those that were."""
    return [f1 for run in RECIPES[recipe] if (f1 := recipe_f1(held_out, run, way, key)) is not None]


def seed_rows(recipe: str) -> list[str]:
    """A recipe trained with several seeds: each held-out run as stored, searched and searched with flip TTA, and the
    mean over the seeds run (a result one seed happened to reach is not the recipe's)."""
    rows, seeds = [], RECIPES[recipe]
    for held_out in DATASETS:
        every = {run: [recipe_f1(held_out, run, way, older_flips=recipe != SHIPPED) for way in WAYS] for run in seeds}
        runs = {run: values for run, values in every.items() if values[0] is not None or values[1] is not None}
        for run, values in runs.items():
            rows.append(f"| {held_out} | {seeds[run]} | " + " | ".join("–" if v is None else marked(v) for v in values) + " |")
        if len(runs) > 1:  # the mean of each way over the seeds evaluated so (seed_values, from the values read above)
            columns = [[values[i] for values in every.values() if values[i] is not None] for i in range(len(WAYS))]
            rows.append(f"| {held_out} | mean | " + " | ".join(
                f"{sum(c) / len(c):.4f} (range {max(c) - min(c):.4f}, {len(c)} seeds)" if len(c) > 1 else "–" for c in columns) + " |")
    if len(rows) < 2:
        return []
    flips = "" if recipe == SHIPPED else (" Its flip TTA column flipped every diameter the search tried, as `segment --tta` ran "
                                          "it until the flips were of the kept view only.")
    return ["", f"## {recipe}'s recipe over seeds", "",
            f"The same recipe and data, `--seed` alone changed ({RECIPE_NOTES[recipe]}). F1 inside the FOV at the a-priori threshold.{flips}", "",
            "| held out | seed | as stored | diameter searched | searched, flip TTA |", "|---|---|---:|---:|---:|", *rows]


def calibrated_rows() -> list[str]:
    """Each held-out run of zoom15's recipe calibrated to the held-out camera (`m2unet calibrate`) beside the same
    run searched, and the mean over the seeds calibrated."""
    rows = []
    for held_out in DATASETS:
        runs = [run for run in CALIBRATED_RUNS if loo_metrics(f"{held_out}-{run}-calibrated")]
        for run in runs:
            metrics = loo_metrics(f"{held_out}-{run}-calibrated")
            record = metrics["weights"]["metadata"]["camera_calibration"]
            chosen = record["candidates"][record["chosen"]]
            where = "stored range" if chosen["stored"] else f"{chosen['run_fov_diameter'][0]} px"
            flipped = a_priori_f1(f"{held_out}-{run}-calibrated-tta")
            rows.append(f"| {held_out} | {RECIPES['zoom15'][run]} | {record['photographs']} | {where}, {metrics['threshold']['a_priori']:.3f} | "
                        f"{a_priori_f1(f'{held_out}-{run}-search'):.4f} | {marked(a_priori_f1(f'{held_out}-{run}-calibrated'))} | "
                        f"{'–' if flipped is None else marked(flipped)} |")
        if len(runs) > 1:  # over the seeds calibrated, the searched column too: like with like
            means = [[v for run in runs if (v := a_priori_f1(f"{held_out}-{run}{way}")) is not None] for way in ("-search", "-calibrated", "-calibrated-tta")]
            rows.append(f"| {held_out} | mean | | | " + " | ".join(f"{marked(sum(m) / len(m))} ({len(m)} seeds)" if m else "–" for m in means) + " |")
    if not rows:
        return []
    return ["", "## Calibrated to the held-out camera", "",
            "Not the leave-one-out protocol: the held-out runs of zoom15's recipe (no new training) with their run diameter",
            "and threshold chosen on labelled photographs of the held-out camera, its dataset's training split, by `m2unet",
            "calibrate HELD-OUT --weights runs/loo-HELD-OUT-RUN/best.safetensors -o FILE` (m2unet.evaluation.calibrate: the",
            "stored scale and fixed diameters of 0.625–1.75 × 1024 px, and 2–3 × up to the photographs' widest FOV, each at its",
            "best pooled threshold; within 0.002 of the best the stored scale, then the diameter nearest 1024 px wins), then",
            "`m2unet evaluate --dataset HELD-OUT --weights FILE` on the test split, which the calibration never saw. What a",
            "user with a few labelled photographs of their own camera gets. F1 inside the FOV at the calibrated threshold.", "",
            "| held out | seed | photographs calibrated on | chosen diameter, threshold | searched (uncalibrated) | calibrated | calibrated with --tta, run with --tta |",
            "|---|---|---:|---|---:|---:|---:|", *rows]


def marked(f1: float) -> str:
    """``f1`` to four places, in bold where it reaches the issue's target."""
    return f"**{f1:.4f}**" if f1 >= TARGET else f"{f1:.4f}"


def seed_mean(held_out: str, way: str, key: str = "a_priori") -> tuple[float, int] | None:
    """(mean of :func:`seed_values`, seeds); None when no run was evaluated so."""
    values = seed_values(held_out, way, key)
    return (sum(values) / len(values), len(values)) if values else None


def observer_f1(held_out: str) -> float | None:
    """Pooled F1 inside the FOV of the second human observer against the first on ``held_out``'s test split, as its
    evaluations of a recipe's runs record it (None: the dataset has no second observer, as HRF)."""
    for run in (run for seeds in RECIPES.values() for run in seeds):
        if observer := (loo_metrics(f"{held_out}-{run}") or {}).get("second_observer"):
            return observer["pooled"]["fov"]["f1"]
    return None


def shipped_rows(cross: dict) -> list[str]:
    """The table for the shipped recipe (variant :data:`SHIPPED`): each cell the mean over the seeds it was run with
    (one seed's result is not the recipe's), as stored, searched and searched with flip TTA, once all three have run."""
    runs = {d: [seed_mean(d, way) for way in WAYS] + [seed_mean(d, "-search", "best")] for d in DATASETS}
    if not all(cells[0] and cells[1] for cells in runs.values()):
        return []

    def cell(value: tuple[float, int] | None) -> str:
        return "–" if value is None else f"{marked(value[0])} ({value[1]} seed{'s' if value[1] > 1 else ''})"

    rows, means = [], []
    for held_out, (plain, searched, flipped, best) in runs.items():
        model = closest(held_out)
        former = cross[f"{model} on {held_out}, shrink"]
        means.append([v and v[0] for v in (plain, searched, flipped)] + [former])
        observer = observer_f1(held_out)
        rows.append("| " + " | ".join([held_out, cell(plain), cell(searched), cell(flipped), f"{best[0]:.4f}", f"{former:.4f} (`{model}`)",
                                       f"{BOB[held_out][0]:.3f} / {BOB[held_out][1]:.3f}", "–" if observer is None else f"{observer:.4f}",
                                       str(TARGET)]) + " |")
    mean = ["–" if None in values else f"{sum(values) / 3:.4f}" for values in zip(*means, strict=True)]
    bob = [sum(values) / 3 for values in zip(*BOB.values(), strict=True)]
    header = ["held out", "(a) one model trained on the other two, as stored", "(a) diameter searched (`auto --no-tta`)",
              "(a) searched, then the kept view's flips averaged (what `auto` runs: `--search-diameter --tta`)",
              "(a) searched, at the held-out set's best threshold (optimistic)", "(b) `auto` among the other two per-dataset models, rescaled",
              "bob.ip.binseg M2U-Net / U-Net", "second human observer against the first", "target"]
    mean_row = ["mean", *mean[:-1], "", mean[-1], f"{bob[0]:.3f} / {bob[1]:.3f}", "", ""]
    return ["## The shipped recipe", "",
            f"`m2unet train --dataset A,B` with the shipped `universal` model's recipe, {SHIPPED}: {VARIANTS[SHIPPED]};",
            "evaluated as stored (`m2unet evaluate`), with each photograph's diameter searched (`--search-diameter`) and with",
            "the kept view's flips averaged on top (`--tta`: what `--model auto` runs since 496e909; whole-FOV tries scored on",
            "plain maps since 5a38bd9, central squares flip-averaged since 8f0417e). Each cell is the mean over the seeds the",
            "recipe was trained with on",
            f"that split (section \"{SHIPPED}'s recipe over seeds\": {RECIPE_NOTES[SHIPPED]}).",
            "The second human observer's labels (DRIVE's and CHASE_DB1's",
            "test splits; HRF has none) scored against the first like a model's binary map: how far two people who drew the",
            "same photographs agree: a reference for a model that never saw how a dataset's first observer draws, not a bound",
            "(held-out DRIVE's runs pass theirs).", "",
            "| " + " | ".join(header) + " |", "|" + "---|" * len(header), *rows, "| " + " | ".join(mean_row) + " |", "",
            "## The first recipe", "", "The preset's camera ranges, 150 epochs, no weight average (the first run of each).", ""]


def main() -> int:
    cross = json.loads((REPO / "results" / "scale" / "cross.json").read_text())
    lines = ["# Leave one dataset out: F1 on a camera never seen in training", "",
             "Generated by `python benchmarks/loo_table.py`. Pooled F1 inside the FOV on the held-out dataset's test split at the",
             "a-priori threshold (never chosen on the held-out dataset). Since commit 99a5dcd a photograph enlarged to run at least",
             "1.5× more than the model's training photographs were has its map brought back by the maximum over each of its pixels",
             "(m2unet.data.scale.back_max_from; results/scale/back_resize_loo_drive.md): held-out DRIVE's, 1.9× against CHASE_DB1's",
             "1.11×. Each evaluation's metrics.json records its commit; the held-out DRIVE rows evaluated before it (the first",
             "recipe, the runs and variants other than ema300 and zoom15) used the area mean.",
             "", *shipped_rows(cross),
             "| held out | (a) one model trained on the other two at FOV 1024 px, run at the diameters chosen on its held-out images | (a) at the held-out set's best threshold (optimistic) | (b) `auto` among the other two per-dataset models, rescaled | bob.ip.binseg M2U-Net / U-Net | target |",
             "|---|---|---|---|---|---|"]
    for held_out in DATASETS:
        metrics_path = REPO / "results" / "ours" / "loo" / held_out / "metrics.json"
        trained_on = ",".join(d for d in DATASETS if d != held_out)
        if metrics_path.is_file():
            metrics = json.loads(metrics_path.read_text())
            f1 = metrics["pooled"]["fov"]["a_priori"]["f1"]
            best = metrics["pooled"]["fov"]["best"]
            a_best = f"{best['f1']:.4f} (threshold {best['threshold']:.3f}; a priori {metrics['threshold']['a_priori']:.3f})"
            a = marked(f1)
            meta = metrics["weights"]["metadata"]
            if meta.get("run_at_fov_diameter"):
                a += f" (runs photographs {describe_scale(model_scale(meta))})"
            if meta.get("epochs_trained", meta.get("epochs")) != meta.get("epochs"):  # a run stopped early: say so
                a += f" (a lower bound: {meta['epochs_trained']} of {meta['epochs']} epochs; training continues with --resume)"
        else:
            a = f"pending: `m2unet train --dataset {trained_on} --out runs/loo-{held_out}` (see the issue tracker)"
            a_best = "–"
        model = closest(held_out)
        value = cross.get(f"{model} on {held_out}, shrink")
        b = f"{value:.4f} (`{model}`)" if value is not None else "–"
        lines.append(f"| {held_out} | {a} | {a_best} | {b} | {BOB[held_out][0]:.3f} / {BOB[held_out][1]:.3f} | {TARGET} |")
    a_values = [f1 for f1 in map(a_priori_f1, DATASETS) if f1 is not None]
    b_values = [cross[f"{closest(d)} on {d}, shrink"] for d in DATASETS if f"{closest(d)} on {d}, shrink" in cross]
    if len(a_values) == len(b_values) == len(DATASETS):  # the approach --model auto should follow (issue #16)
        lines += ["", f"Mean over the three held-out datasets: (a) {sum(a_values) / 3:.4f}, (b) {sum(b_values) / 3:.4f}."]
    lines += ["", "bob.ip.binseg's held-out models train on the four other datasets among DRIVE, STARE, CHASE_DB1, IOSTAR and HRF (its",
              "`covd-*` configurations); ours on the two other datasets of the three this project has."]
    lines += ["", "Runs: `scripts/train_loo.sh` (trains what is missing, evaluates, regenerates this table); training curves and",
              "configs in results/train/loo-<held-out>/, evaluations in results/ours/loo/<held-out>/. Run diameters: each run's",
              "own held-out training images chose them (results/scale/run_diameter.md); the run trained without HRF saw no",
              "photograph wider than 1024 px there, so it runs HRF at 1024 px."]
    lines += search_rows()
    lines += [line for recipe in sorted(RECIPES, key=lambda recipe: recipe != SHIPPED) for line in seed_rows(recipe)]
    lines += calibrated_rows()
    lines += variant_rows()
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

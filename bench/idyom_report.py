"""bench/idyom.py's run: every architecture, setting and set cross-validated (idyom_cv.py), the
folds and figures written to bench/results/idyom.json and idyom.md after each set is done, so a
run cut short keeps what it finished."""

import datetime
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import idyom_cv
import idyom_stm
import torch

import config
from melody import artefacts
from melody.artefacts import UserError

# Pearce (2005), PhD thesis, Table 6.7: the best long-term + short-term model, pitch given onset,
# 10-fold cross-validation, bits per note
IDYOM = {"kinder": 2.106}


def run(options):
    """Cross-validate and write the results; options: bench/idyom.py's flags."""
    started = time.perf_counter()
    root, work = Path(options.deutschl), Path(options.work)
    folders = [root / name for name in options.sets] + smoke_outside(options, root)
    data = idyom_cv.prepare([str(f) for f in folders] if options.smoke else [str(root)], work)
    members = {name: [i for i, s in enumerate(data.sets) if s == name] for name in options.sets}
    empty = [name for name, songs in members.items() if not songs]
    if empty:
        raise UserError(
            f"no songs of {', '.join(empty)} under {root}: pass --deutschl, the folder that "
            "holds the Essen deutschl sets (kinder, fink, ...)"
        )
    if options.smoke:
        members = {name: songs[: options.smoke] for name, songs in members.items()}
    folds = {n: idyom_cv.make_folds(s, options.folds, options.seed) for n, s in members.items()}
    outside = [i for i, s in enumerate(data.sets) if s not in options.sets]
    out = Path(options.out)
    named = {n: [[data.names[i] for i in fold] for fold in f] for n, f in folds.items()}
    artefacts.write_json(out / f"{options.name}.folds.json", kept(out, options, ".folds") | named)
    stms = short_term_models(options)
    mine = {}
    for arch in options.arch:
        pretrained = None
        for setting in options.settings:
            if setting == "with_deutschl" and pretrained is None:
                pretrained = fold_model(
                    work / arch / "pretrain", data, outside, options, arch, options.pretrain_epochs
                )
            for name in options.sets:
                tuned = pretrained if setting == "with_deutschl" else None
                records = cross_validate(data, folds[name], outside, options, arch, tuned, stms)
                figures = idyom_cv.summarise(records, options.bootstrap, options.seed, list(stms))
                figures["folds"] = len(folds[name])
                place = mine.setdefault(name, {}).setdefault(setting, {})
                seconds = round(time.perf_counter() - started)
                figures["run"] = describe(options, seconds, stms)
                place.setdefault("architectures", {})[arch] = figures
                write(out, options.name, {"sets": merged(kept(out, options), mine)})


def short_term_models(options):
    """The short-term models to score, by block: `ltm+stm` the one the --stm-* flags set, then
    `ltm+stm:NAME` for each --stm-variants NAME (config.IDYOM_STM_VARIANTS)."""
    flags = idyom_stm.STM(
        escape=options.stm_escape,
        viewpoints=tuple(options.stm_viewpoints),
        combine=options.stm_combine,
        viewpoint_bias=options.viewpoint_bias,
        ltm_stm_bias=options.ltm_stm_bias,
    )
    variants = {f"ltm+stm:{name}": idyom_stm.STM.named(name) for name in options.stm_variants}
    return {"ltm+stm": flags} | variants


def kept(out, options, suffix=""):
    """With --merge, what the results file holds already (the other sets and settings)."""
    path = out / f"{options.name}{suffix}.json"
    return json.loads(path.read_text()) if options.merge and path.is_file() else {}


def merged(kept_results, mine):
    """This run's figures (per set, setting, architecture) over those of the results file, read
    when writing: runs beside this one may have added theirs."""
    results = kept_results.get("sets", {})
    for set_name, settings in mine.items():
        for setting, figures in settings.items():
            place = results.setdefault(set_name, {}).setdefault(setting, {"architectures": {}})
            place["architectures"].update(figures["architectures"])
    return results


def smoke_outside(options, root):
    """The smallest other folder of deutschl, for a smoke run's pretraining; none in a real run."""
    if not options.smoke:
        return []
    others = [f for f in root.iterdir() if f.is_dir() and f.name not in options.sets]
    return [min(others, key=lambda f: len(list(f.iterdir())))]


def cross_validate(data, folds, outside, options, arch, pretrained, stms):
    """Per song records of every test fold: `within` trains a model on the other folds;
    with a pretrained model, `with_deutschl` fine-tunes it on them (--reuse: a fold's model
    that --work holds is scored as it is); stms: the short-term models, by block."""
    records = []
    for k, test in enumerate(folds):
        train = [i for j, fold in enumerate(folds) if j != k for i in fold]
        folder = Path(options.work) / arch / data.sets[test[0]]
        if pretrained is None:
            checkpoint = fold_model(folder / f"fold{k}", data, train, options, arch, options.epochs)
        else:
            tuned = folder / "tuned" / f"fold{k}"
            checkpoint = tuned_model(tuned, data, train, options, arch, pretrained)
            train = outside + train
        records += idyom_cv.score_fold(checkpoint, data, test, train, stms)
        print(f"{arch} {data.sets[test[0]]} fold {k + 1}/{len(folds)}: {len(records)} songs")
    return records


def fold_model(folder, data, train, options, arch, epochs):
    """The checkpoint of a model trained on the songs at train in folder, or with --reuse the
    one folder holds already."""
    settings = idyom_cv.trainer_settings(options, arch, epochs)
    reused = idyom_cv.reusable(folder, data, train, settings) if options.reuse else None
    if reused is not None:
        print(f"{folder}: reused")
        return reused
    return idyom_cv.train_model(folder, data, train, options, arch, epochs)


def tuned_model(folder, data, train, options, arch, pretrained):
    """The pretrained checkpoint fine-tuned on the songs at train, saved in folder; or with
    --reuse the one folder holds already."""
    pretrain_folder = Path(options.work) / arch / "pretrain"
    settings = idyom_cv.tuning_settings(options, pretrain_folder)
    reused = idyom_cv.reusable(folder, data, train, settings) if options.reuse else None
    if reused is not None:
        print(f"{folder}: reused")
        return reused
    checkpoint = idyom_cv.fine_tune(pretrained, data, train, options)
    idyom_cv.save_tuned(folder, data, train, checkpoint, settings)
    return checkpoint


def describe(options, seconds, stms):
    """How the figures were made: the command, the machine, the settings (the short-term models':
    `stm` for `ltm+stm`, `stm_variants` by name), the seconds since the run began."""
    return {
        "command": shlex.join(["python", *sys.argv]),
        "seconds": seconds,
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "torch": torch.__version__,
        "units": options.units,
        "dropout": options.dropout,
        "lr": options.lr,
        "window": options.window,
        "batch_size": options.batch_size,
        "epochs": options.epochs,
        "pretrain_epochs": options.pretrain_epochs,
        "finetune_epochs": options.finetune_epochs,
        "folds": options.folds,
        "seed": options.seed,
        "keys_charged": config.IDYOM_KEYS,
        "stm": stms["ltm+stm"].settings(),
        "stm_variants": {
            block.split(":", 1)[1]: stm.settings() for block, stm in stms.items() if ":" in block
        },
        "reuse": options.reuse,
    }


def write(out, name, results):
    """idyom.json (per set and setting: the first architecture's figures, then each one's) and
    idyom.md."""
    for settings in results["sets"].values():
        for setting, figures in settings.items():
            architectures = figures["architectures"]
            first = next(iter(architectures.values()))
            settings[setting] = {"architectures": architectures} | first
    artefacts.write_json(out / f"{name}.json", results)
    artefacts.write_text(out / f"{name}.md", "\n".join(markdown(results, name)) + "\n")


def rows(results):
    """(set, setting, architecture, figures) of every result."""
    for set_name, settings in results["sets"].items():
        for setting, figures in settings.items():
            for arch, f in figures["architectures"].items():
                yield set_name, setting, arch, f


def markdown(results, name):
    """The table beside IDyOM's figures, the short-term models compared, and the rules of the
    comparison."""
    runs = [f["run"] for *_, f in rows(results)]
    commands = list(dict.fromkeys(r["command"] for r in runs))
    lines = ["# Bits per note beside IDyOM (Pearce 2005, Table 6.7)", "", "Reproduce with:", ""]
    lines += [f"    {c}" for c in commands]
    if any(r.get("reuse") for r in runs):
        lines += [
            "",
            "`--reuse` scores the models that `--work` holds: docs/evaluation.md has the "
            "commands that trained them.",
        ]
    lines += [
        "",
        f"{runs[-1]['date']}, {runs[-1]['machine']}, torch {runs[-1]['torch']}; each run's "
        f"settings and seconds are in `{name}.json`. Folds (seed {runs[-1]['seed']}): "
        f"`{name}.folds.json`. 95% intervals: bootstrap over songs.",
        "",
        "| set | setting | model | pitch bits/note, ltm | 95% | ltm+stm | 95% | "
        "ltm+stm, IDyOM's default STM | IDyOM | key not charged: ltm, ltm+stm | all bits/note | "
        "nats/step | songs | notes |",
        "|---|---|---|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for set_name, setting, arch, f in rows(results):
        both, default = f.get("ltm+stm", {}), f.get("ltm+stm:idyom-default", {})
        cells = [set_name, setting, arch, three(f["pitch_bits"]), span(f["pitch_bits_95"])]
        cells += [three(both.get("pitch_bits")), span(both.get("pitch_bits_95"))]
        cells += [three(default.get("pitch_bits")), IDYOM.get(set_name, "-")]
        cells += [f"{three(f['pitch_bits_uncharged'])}, {three(both.get('pitch_bits_uncharged'))}"]
        cells += [three(f["all_bits"]), three(f["nats_per_step"]), f["songs"], f["notes"]]
        lines.append(row(cells))
    return lines + [""] + short_term_table(results) + RULES


def short_term_table(results):
    """Each result's short-term models side by side, where its run scored variants
    (--stm-variants): `ltm+stm` (the --stm-* flags') first."""
    lines = [
        "## Short-term models compared",
        "",
        "Pitch bits/note (key charged) of the models alone (`ltm`) and combined with each "
        "short-term model the run scored (`ltm+stm`: the `--stm-*` flags'; `ltm+stm:NAME`: "
        "`--stm-variants NAME`, config.IDYOM_STM_VARIANTS).",
        "",
        "| set | setting | model | block | short-term model | pitch bits/note | 95% |",
        "|---|---|---|---|---|---:|---|",
    ]
    for set_name, setting, arch, f in rows(results):
        variants = f["run"].get("stm_variants", {})
        if not variants:
            continue
        cells = [set_name, setting, arch]
        lines.append(row(cells + ["ltm", "none", three(f["pitch_bits"]), span(f["pitch_bits_95"])]))
        stms = {"ltm+stm": f["run"]["stm"]} | {f"ltm+stm:{n}": v for n, v in variants.items()}
        for block, settings in stms.items():
            figures = [three(f[block]["pitch_bits"]), span(f[block]["pitch_bits_95"])]
            lines.append(row(cells + [f"`{block}`", stm_text(settings)] + figures))
    return lines + [""]


def stm_text(settings):
    """A short-term model's settings in words."""
    text = f"{' + '.join(settings['viewpoints'])}, escape {settings['escape'].upper()}"
    if len(settings["viewpoints"]) > 1 and settings["combine"] == "at-once":
        text += ", each viewpoint combined with the ltm at once"
    elif len(settings["viewpoints"]) > 1:
        text += f", viewpoints combined first (bias {settings['viewpoint_bias']:g})"
    return f"{text}, ltm-stm bias {settings['ltm_stm_bias']:g}"


def row(cells):
    """A markdown table row."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def three(x):
    """x to 3 decimals; `-` for a figure that was not measured."""
    return "-" if x is None else f"{x:.3f}"


def span(interval):
    """A 95% interval as low-high; `-` for one that was not measured."""
    return "-" if interval is None else f"{interval[0]:.3f}-{interval[1]:.3f}"


RULES = [
    "## The rules of the comparison",
    "",
    "- Songs: the set's folder of the Essen deutschl collection, preprocessed as the project does "
    "(melody.dataset): a song with a note or rest of a duration outside ACCEPTABLE_DURATIONS is "
    "dropped (kinder keeps 207 of IDyOM's 213), every song is moved to C major / A minor by its "
    "written key.",
    "- 10 folds over the songs, dealt after a seeded shuffle; each song scored once, by a model "
    "that never saw it. `within`: a model trained (melody.training.train, which keeps 10% of the "
    "nine folds to pick its best epoch) on the other nine folds only, as IDyOM's long-term model. "
    "`with_deutschl`: one model pretrained on every deutschl song outside the sets under test, "
    "then fine-tuned on the nine folds for a fixed number of epochs at a third of the learning "
    "rate (no validation: the epochs are fixed beforehand).",
    "- Pitch bits per note: at each note's onset, -log2 of the model's probability of its pitch "
    "among the pitch symbols alone, renormalised (the onset given, as IDyOM predicts pitch), "
    "summed over all notes of all songs and divided by the notes. All bits per note: every step "
    "of each song (onsets, holds, rests, the closing `/`) in bits, over its notes.",
    "- What the model is told: each song's meter and pickup (position in the bar), as IDyOM is "
    "told the time signature; never its mode, length in bars, final note or collection (blanked "
    "in the song tables it trains and is scored on). The key is given away by the transposition: "
    "both figures are charged log2(24) bits per song (12 tonics x 2 modes), spread over its notes. "
    "All bits per note is also charged the meter and pickup at their cost under the training "
    "songs' plans (melody.evaluation.prediction.plan_nats). nats/step is the model's own, "
    "uncharged.",
    "- ltm+stm: at each note, the model's pitch distribution above (the long-term model) "
    "combined with IDyOM's short-term model (bench/idyom_stm.py): PPM* models learnt from the "
    "song's earlier notes alone, with IDyOM's short-term defaults (unbounded order, "
    "interpolated, update exclusion) but for the escape method, and IDyOM's entropy-weighted "
    "geometric mean with IDyOM's default biases, fixed beforehand. By default (config's "
    "IDYOM_STM_* constants, the `--stm-*` flags): "
    f"{stm_text(idyom_stm.STM().settings())}; the pitch model predicts among the model's pitch "
    "symbols, the interval model (IDyOM's cpint) gives each pitch the probability of its "
    "interval from the note before; each run's own is in the JSON (`run.stm`) and in the table "
    "of short-term models above. The escape method and the interval model were chosen on fink "
    "`within` (LSTM) among the six short-term models of that table (escape X or C; pitch, "
    "interval or both), then applied to kinder, which was scored with no other short-term model "
    "but IDyOM's default (`idyom-default`: pitch alone, X): fink's ltm+stm figures are not held "
    "out from that choice. The key is charged as above; all bits/note and nats/step are the "
    "model's alone.",
    "- IDyOM: Pearce (2005), PhD thesis, Table 6.7, the best long-term + short-term model, which "
    "also learns from the song so far; no published figure on fink in that table.",
]

"""Section 4 of bench/run.py: sampling speed per architecture, untrained at config's size, through
MelodyGenerator as a user samples, and the cost of one model step early and late in a melody."""

import os
import random
import time

import torch
from generation import NO_STOP_BIAS
from timing import timed

import config
from melody import artefacts, checkpoints, controls
from melody import models as model
from melody.encoding import DELIMITER
from melody.generation import MelodyGenerator


def sampling_checkpoint(arch, mapping, data_dir):
    """An untrained model of `arch` at config's size, reading data_dir's control fields, with the
    delimiter's logit lowered so that every melody runs its full length."""
    torch.manual_seed(config.SEED)
    rows = artefacts.load_metadata(data_dir / config.SONG_METADATA)
    space = controls.ControlSpace.from_songs([controls.Plan.from_row(r) for r in rows])
    net = model.build(arch, len(mapping), space.sizes(), model.default_settings(arch))
    with torch.no_grad():
        net.head.bias[mapping[DELIMITER]] -= NO_STOP_BIAS
    return {
        "format": checkpoints.MODEL_FORMAT,
        "arch": arch,
        "hyperparameters": net.hyperparameters(),
        "model_state": net.state_dict(),
        "vocabulary": sorted(mapping, key=mapping.get),
        "time_step": config.TIME_STEP,
        "controls": space.as_dict(),
    }


@torch.inference_mode()
def step_seconds(generator, position, steps=20, repeats=30):
    """Median seconds of one model step of one melody at `position` (after reading that many
    symbols), the steps alone (no sampling)."""
    net, n = generator.model, len(generator.vocabulary)
    x = torch.randint(1, n, (1, position), generator=torch.Generator().manual_seed(0))
    fields = None
    if generator.controls:
        plan = generator.controls.choose(random.Random(0))
        fields = torch.from_numpy(generator.controls.fields(plan, 0, position + steps + 1))[None]
    times = []
    with model.sampling_threads(1, "cpu"):
        for _ in range(repeats):
            logits, state = net.read(x, None if fields is None else fields[:, :position])
            symbol = x[:, -1]
            started = time.perf_counter()
            for t in range(position, position + steps):
                logits, state = net.step(symbol, None if fields is None else fields[:, t], state)
            times.append((time.perf_counter() - started) / steps)
    return sorted(times)[len(times) // 2]


def bench_sampling(mapping, data_dir, work, quick):
    single_steps, batch_melodies, batch_steps = (100, 8, 50) if quick else (1000, 64, 500)
    late = 100 if quick else 1000
    result = {"single_steps": single_steps, "batch_melodies": batch_melodies}
    result["batch_steps"], result["late_step"] = batch_steps, late
    for arch in model.ARCHITECTURES:
        path = work / f"sampling-{arch}.pth"
        torch.save(sampling_checkpoint(arch, mapping, data_dir), path)
        result[arch] = sample(path, result, repeats=3 if quick else 30)
        print_sampling(arch, result)
    result["load_average_after"] = os.getloadavg()
    return result


def sample(path, sizes, repeats):
    """The figures of one checkpoint: steps/s of one melody and of a batch, and a step's cost."""
    single_steps, batch_melodies = sizes["single_steps"], sizes["batch_melodies"]
    batch_steps = sizes["batch_steps"]
    generator = MelodyGenerator(path, mapping_path=None)
    generator.generate_melody("", 10, rng=0)  # first calls pay one-off costs: not timed
    # the model's speed: one candidate per melody (as sampled, no choice among several)
    single, single_seconds = timed(
        lambda: generator.generate_melody("", single_steps, rng=0, bars=single_steps, candidates=1)
    )
    batch, batch_seconds = timed(
        lambda: generator.generate_melodies(
            "", batch_melodies, batch_steps, rng=0, bars=batch_steps, candidates=1
        )
    )
    # and what a user waits for: one melody, the best of END_CANDIDATES (data whose song
    # table has finals; older tables give plans with nothing to choose by)
    chosen = None
    if "final" in generator.controls.shapes:
        melody, seconds = timed(
            lambda: generator.generate_melody("", single_steps, rng=0, bars=single_steps)
        )
        chosen = len(melody) / seconds
    early, late_cost = (
        step_seconds(generator, t, repeats=repeats) for t in (10, sizes["late_step"])
    )
    return {
        "hyperparameters": generator.model.hyperparameters(),
        "single": len(single) / single_seconds,
        "batch": sum(map(len, batch)) / batch_seconds,
        **({"single_chosen": chosen} if chosen else {}),
        "step_10_seconds": early,
        "step_late_seconds": late_cost,
        "late_step_ratio": late_cost / early,
    }


def print_sampling(arch, result):
    figures = result[arch]
    chosen = figures.get("single_chosen")
    print(
        f"sampling, {arch}: 1 melody {figures['single']:,.0f} steps/s"
        + (f" ({chosen:,.0f} as the best of {config.END_CANDIDATES} candidates)" if chosen else "")
        + f", {result['batch_melodies']} melodies {figures['batch']:,.0f} steps/s, "
        "a step at 10 "
        f"{figures['step_10_seconds'] * 1e6:.0f} us, at {result['late_step']} "
        f"{figures['step_late_seconds'] * 1e6:.0f} us",
        flush=True,
    )

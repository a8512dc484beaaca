"""Section 3 of bench/run.py: generation speed of the two models, one melody and a batch, each
bounded to the tutorial's window, with the delimiter lowered so that every melody runs its full
length."""

import reference
import torch
from timing import show, timed

import config
from melody import artefacts, checkpoints, controls
from melody import models as model
from melody.encoding import DELIMITER
from melody.generation import MelodyGenerator

NO_STOP_BIAS = 50.0  # subtracted from the delimiter's logit: e^-50 never gets sampled


def untrained_models(mapping, data_dir):
    """Both models with fresh weights, the trained ones' size (the project's reading the control
    fields of the songs in data_dir): generation speed does not depend on weights.
    """
    torch.manual_seed(config.SEED)
    rows = artefacts.load_metadata(data_dir / config.SONG_METADATA)
    space = controls.ControlSpace.from_songs([controls.Plan.from_row(r) for r in rows])
    lstm = model.build("lstm", len(mapping), space.sizes(), model.default_settings("lstm"))
    checkpoint = {
        "format": checkpoints.MODEL_FORMAT,
        "hyperparameters": lstm.hyperparameters(),
        "model_state": lstm.state_dict(),
        "vocabulary": sorted(mapping, key=mapping.get),
        "training_window": config.SEQUENCE_LENGTH,
        "time_step": config.TIME_STEP,
        "controls": space.as_dict(),
    }
    return {
        "project": checkpoint,
        "reference": reference.ReferenceLSTM(len(mapping)).state_dict(),
        "trained": False,
    }


def no_stop_copies(project_checkpoint, reference_state, mapping, work):
    """The two models with the delimiter's logit lowered, so that every melody runs its full
    length (the project's melodies are also asked for more bars than they have steps).
    """
    delimiter = mapping[DELIMITER]
    checkpoint = dict(project_checkpoint)
    checkpoint["model_state"] = dict(checkpoint["model_state"])
    checkpoint["model_state"]["head.bias"] = checkpoint["model_state"]["head.bias"].clone()
    checkpoint["model_state"]["head.bias"][delimiter] -= NO_STOP_BIAS
    path = work / "generation-model.pth"
    torch.save(checkpoint, path)
    ref_model = reference.ReferenceLSTM(len(mapping))
    ref_model.load_state_dict(reference_state)
    with torch.no_grad():
        ref_model.head.bias[delimiter] -= NO_STOP_BIAS
    return path, ref_model.eval()


def bench_generate(models, mapping, work, quick):
    single_steps, batch_melodies, batch_steps = (100, 8, 50) if quick else (1000, 64, 500)
    model_path, ref_model = no_stop_copies(models["project"], models["reference"], mapping, work)
    generator = MelodyGenerator(model_path, mapping_path=None)
    seed = config.SEED_MELODY if all(s in mapping for s in config.SEED_MELODY.split()) else ""
    window, temperature = config.SEQUENCE_LENGTH, config.TEMPERATURE
    print(
        f"generation: seed {seed!r}, temperature {temperature}, torch threads "
        f"{torch.get_num_threads()}",
        flush=True,
    )
    generator.generate_melody(
        seed, 10, window, temperature, rng=0
    )  # first calls pay one-off costs: not timed
    reference.generate_melody(ref_model, mapping, seed, 10, window, temperature, rng=0)
    result = {
        "seed": seed,
        "temperature": temperature,
        "max_sequence_length": window,
        "trained_models": models["trained"],
        "single_steps": single_steps,
        "batch_melodies": batch_melodies,
        "batch_steps": batch_steps,
    }
    runs = generation_runs(generator, ref_model, mapping, result)
    for name, (project_run, reference_run) in runs.items():
        result[name] = time_both(name, project_run, reference_run, result)
    # The project's recommended call: no window, the state carries the whole melody.
    melodies, seconds = timed(
        lambda: [
            generator.generate_melody(
                seed, single_steps, None, temperature, rng=0, bars=single_steps, candidates=1
            )
        ]
    )
    result["single"]["project_unbounded_steps_per_second"] = steps_per_second(
        melodies, seconds, seed
    )
    return result


def generation_runs(generator, ref_model, mapping, setting):
    """name -> (the project's call, the reference's call), each returning its melodies."""
    seed, window = setting["seed"], setting["max_sequence_length"]
    temperature, single_steps = setting["temperature"], setting["single_steps"]
    batch_melodies, batch_steps = setting["batch_melodies"], setting["batch_steps"]
    return {
        "single": (
            lambda: [
                generator.generate_melody(
                    seed, single_steps, window, temperature, rng=0, bars=single_steps, candidates=1
                )
            ],
            lambda: [
                reference.generate_melody(
                    ref_model, mapping, seed, single_steps, window, temperature, rng=0
                )
            ],
        ),
        "batch": (
            lambda: generator.generate_melodies(
                seed,
                batch_melodies,
                batch_steps,
                window,
                temperature,
                rng=0,
                bars=batch_steps,
                candidates=1,
            ),
            lambda: reference.generate_melodies(
                ref_model, mapping, seed, batch_melodies, batch_steps, window, temperature, rng=0
            ),
        ),
    }


def steps_per_second(melodies, seconds, seed):
    return sum(len(m) - len(seed.split()) for m in melodies) / seconds


def time_both(name, project_run, reference_run, setting):
    """Time the project's run, then the reference's; their steps/s and the project's advantage."""
    seed = setting["seed"]
    project_melodies, project_seconds = timed(project_run)
    reference_melodies, reference_seconds = timed(reference_run)
    p, r = (
        steps_per_second(project_melodies, project_seconds, seed),
        steps_per_second(reference_melodies, reference_seconds, seed),
    )
    label = (
        f"1 melody of {setting['single_steps']} steps"
        if name == "single"
        else f"{setting['batch_melodies']} melodies of {setting['batch_steps']} steps"
    )
    return {
        "project_steps_per_second": p,
        "reference_steps_per_second": r,
        "project_seconds": project_seconds,
        "reference_seconds": reference_seconds,
        "speedup": show(f"{label} (steps/s)", p, r, "steps/s", better="higher"),
    }

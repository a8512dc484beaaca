"""Every architecture of model.py through the same scripts: train, resume, generate, save, score;
the Transformer's cache against its forward pass; old LSTM checkpoints unchanged; torchrun."""

import json
import os
import subprocess
import sys

import mido
import pytest
import torch
from conftest import FIXTURES, ROOT, TINY_SONGS

import train
from melody import artefacts, controls
from melody import models as model
from melody.artefacts import UserError
from melody.encoding import DELIMITER
from melody.generation import MelodyGenerator

# Tiny settings per architecture: enough to overfit three songs in a few seconds.
TINY = {
    "lstm": {"units": [32], "dropout": 0.0, "seq_len": 16},
    "transformer": {
        "layers": 2,
        "width": 32,
        "heads": 2,
        "context": 32,
        "dropout": 0.0,
        "warmup": 0,
    },
}
RUN = {"lr": 0.01, "min_lr": 0.01, "batch_size": 1, "seed": 3, "device": "cpu"}


def files(folder):
    return {
        "model_path": folder / "model.pth",
        "state_path": folder / "train_state.pth",
        "log_path": folder / "log.csv",
        "plot_path": folder / "curve.png",
    }


def run(artefacts_dir, folder, arch, **kwargs):
    data = {"dataset": artefacts_dir / "file_dataset", "mapping": artefacts_dir / "mapping.json"}
    settings = {**RUN, **TINY[arch], "arch": arch, **kwargs}
    return train.train(**data, **files(folder), **settings)


def weights(path):
    return artefacts.load_torch(path)["model_state"]


@pytest.fixture(scope="module", params=list(model.ARCHITECTURES))
def trained(request, tmp_path_factory):
    """(arch, artefacts folder, model.pth) of a model trained 60 epochs on TINY_SONGS."""
    folder = tmp_path_factory.mktemp(request.param)
    (folder / "data").mkdir()
    from conftest import write_metadata

    text = " ".join(" ".join([song] + [DELIMITER] * 4) for song in TINY_SONGS)
    vocabulary = sorted(set(text.split()))
    (folder / "data" / "file_dataset").write_text(text)
    (folder / "data" / "mapping.json").write_text(
        json.dumps({s: i for i, s in enumerate(vocabulary)})
    )
    write_metadata(
        folder / "data" / "song_metadata.csv", TINY_SONGS, "2/4", modes=["major", "major", "minor"]
    )
    run(folder / "data", folder, request.param, epochs=60)
    return request.param, folder / "data", folder / "model.pth"


def test_it_overfits_tiny_data_and_records_its_architecture(trained):
    arch, data, model_path = trained
    checkpoint = artefacts.load_torch(model_path)
    assert checkpoint["arch"] == arch
    assert type(model.load(checkpoint)).arch == arch
    songs, index = artefacts.load_songs(data / "file_dataset", data / "mapping.json")
    train_songs = [songs[i] for i in range(len(songs)) if i not in checkpoint["val_songs"]]
    rows = artefacts.load_metadata(data / "song_metadata.csv")
    plans = [controls.Plan.from_row(rows[i]) for i in range(len(songs))]
    fields = controls.checkpoint_fields(
        checkpoint,
        [p for i, p in enumerate(plans) if i not in checkpoint["val_songs"]],
        train_songs,
    )
    # the last epoch's weights (model.pth holds the best on the held-out song)
    last = artefacts.load_torch(model_path.parent / "train_state.pth")["model_state"]
    net = model.load({**checkpoint, "model_state": last})
    result = model.score(
        model.song_log_probs(net, train_songs, index[DELIMITER], controls=fields),
        train_songs,
        index[DELIMITER],
    )
    assert result["nll"] < 0.25 and result["accuracy"] > 0.9  # it learnt its training songs


def test_generates_and_saves_the_same_melody_for_the_same_seed(trained, tmp_path):
    _, _, model_path = trained
    mg = MelodyGenerator(model_path, mapping_path=None)
    melody = mg.generate_melody("", 200, meter="2/4", bars=3, rng=4)
    assert melody == mg.generate_melody("", 200, meter="2/4", bars=3, rng=4)
    assert len(melody) == 3 * 8  # ends on its planned barline
    batch = mg.generate_melodies("60 _", 4, 40, rng=1, temperature=1.5)
    assert len(batch) == 4 and all(m[:2] == ["60", "_"] for m in batch)
    mg.save_melody(melody, file_name=tmp_path / "m.mid")
    notes = [m for m in mido.MidiFile(tmp_path / "m.mid") if m.type == "note_on" and m.velocity]
    assert len(notes) == sum(s not in ("_", "r") for s in melody)


def test_resume_and_the_same_seed_give_the_same_model(trained, tmp_path):
    arch, data, _ = trained
    run(data, tmp_path / "a", arch, epochs=3)
    run(data, tmp_path / "b", arch, epochs=2)
    run(data, tmp_path / "b", arch, epochs=3, resume=True)
    run(data, tmp_path / "c", arch, epochs=3)
    a, b, c = (weights(tmp_path / x / "train_state.pth") for x in "abc")
    for name in a:
        assert torch.equal(a[name], b[name]) and torch.equal(a[name], c[name]), name


def test_a_transformer_run_from_before_kv_heads_resumes_with_a_kv_head_per_head(
    tiny_artefacts, tmp_path
):
    heads = TINY["transformer"]["heads"]
    run(tiny_artefacts, tmp_path, "transformer", epochs=1, kv_heads=heads)
    state_path = tmp_path / "train_state.pth"
    state = artefacts.load_torch(state_path)
    del state["settings"]["kv_heads"]  # as saved before the setting existed
    artefacts.save_torch(state_path, state)
    run(tiny_artefacts, tmp_path, "transformer", epochs=2, resume=True)
    assert artefacts.load_torch(state_path)["settings"]["kv_heads"] == heads


def test_key_value_heads_must_divide_the_query_heads(tiny_artefacts, tmp_path):
    with pytest.raises(UserError, match=r"^--kv-heads 3: must be a divisor of --heads \(2\)$"):
        run(tiny_artefacts, tmp_path, "transformer", kv_heads=3)
    with pytest.raises(ValueError, match=r"kv_heads 0 must be a divisor of heads \(2\)"):
        model.MelodyTransformer(9, heads=2, width=16, kv_heads=0)
    with pytest.raises(UserError, match=r"^--heads 0: must be 1 or more$"):
        run(tiny_artefacts, tmp_path, "transformer", heads=0)


def test_another_architectures_setting_is_refused_in_one_line(tiny_artefacts, tmp_path):
    with pytest.raises(UserError, match="--units is a setting of --arch lstm, not of transformer"):
        run(tiny_artefacts, tmp_path, "transformer", units=[8])
    with pytest.raises(UserError, match="--context is a setting of --arch transformer, not of"):
        run(tiny_artefacts, tmp_path, "lstm", context=8)
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "--arch", "transformer", "--units", "8"],
        cwd=tiny_artefacts,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "--units is a setting of --arch lstm" in result.stderr
    assert not (tiny_artefacts / "model.pth").exists()


@pytest.mark.parametrize("golden_file", ["lstm-golden.json", "transformer-golden.json"])
def test_old_checkpoints_generate_exactly_as_before(golden_file):
    """Checkpoints and melodies made by older code: LSTMs from before the registry, with and
    without control fields (fixtures/make_lstm_golden.py), and a Transformer from before key-value
    heads (fixtures/make_transformer_golden.py), whose melodies outrun its context."""
    golden = json.loads((FIXTURES / golden_file).read_text())
    for name, expected in golden.items():
        mg = MelodyGenerator(FIXTURES / f"{name}.pth", mapping_path=None)
        before = {"pitch_temperature": 1.0}  # the model's own pitches, as sampling was then
        assert mg.generate_melody("60 _", 40, rng=3, **before) == expected["one"]
        window = mg.generate_melody("60 _ 62", 40, 5, temperature=1.3, rng=4, **before)
        assert window == expected["window"]
        batch = mg.generate_melodies("", 3, 30, rng=5, top_p=0.9, **before)
        assert [list(m) for m in batch] == expected["batch"]


@pytest.mark.parametrize(
    "control_sizes, kv_heads", [((), 4), ((3, 2, 13, 34), 4), ((), 1), ((5,), 2)]
)
def test_transformer_cache_steps_give_the_forward_pass_past_its_context(control_sizes, kv_heads):
    """read() then step() gives forward()'s logits, also where the window slides (context 7),
    with a key-value head per query head or shared by several."""
    torch.manual_seed(0)
    net = model.MelodyTransformer(
        9, 2, 4, 16, context=7, dropout=0.0, control_sizes=control_sizes, kv_heads=kv_heads
    )
    with torch.no_grad():  # trained norms: step() folds their scale and shift into its products
        for norm in [net.norm] + [n for b in net.blocks for n in (b.norm1, b.norm2)]:
            norm.weight.uniform_(0.5, 1.5), norm.bias.normal_(0, 0.3)
    net.eval()
    x = torch.randint(0, 9, (3, 30))
    c = torch.stack([torch.randint(0, s, (3, 30)) for s in control_sizes or [1]], -1)
    fields = (lambda t: c[:, t]) if control_sizes else (lambda t: None)
    with torch.no_grad():
        full = net(x, c if control_sizes else None)
        for start in (4, 20):  # a read inside and past the context
            logits, state = net.read(x[:, :start], c[:, :start] if control_sizes else None)
            keys, values = state["rings"][0][:2]  # cached once per key-value head, not query head
            assert keys.shape == (3, kv_heads, 4, 7) and values.shape == (3, kv_heads, 7, 4)
            steps = [logits]
            for t in range(start, 30):
                logits, state = net.step(x[:, t], fields(t), state)
                steps.append(logits)
            torch.testing.assert_close(torch.stack(steps, 1), full[:, start - 1 :])
        # the band: each of 2 layers looks 6 steps back, so step 29 depends on steps 17..29 only
        y = x.clone()
        y[:, :17] = (y[:, :17] + 1) % 9
        torch.testing.assert_close(net(y, c if control_sizes else None)[:, 29], full[:, 29])


def test_sampling_uses_one_thread_for_small_cpu_batches_and_restores_it():
    torch.set_num_threads(2)
    with model.sampling_threads(1, "cpu"):
        assert torch.get_num_threads() == 1
        with model.sampling_threads(1, "cpu"):  # nested (another thread of the web app)
            pass
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with model.sampling_threads(64, "cpu"):
        assert torch.get_num_threads() == 2


# Each architecture as small as it goes; batches of 3 items over 2 processes: shares of 2 and 1,
# and (the LSTM's 8-step windows) a last batch of 1 that leaves one process none.
DDP = {
    "lstm": {"units": [8], "seq_len": 8},
    "transformer": {"layers": 1, "width": 16, "heads": 2, "context": 8, "warmup": 2},
}


@pytest.mark.parametrize("arch", list(model.ARCHITECTURES))
def test_torchrun_two_processes_train_the_weights_of_one(arch, tiny_artefacts, tmp_path):
    """2 gloo processes, each reading its share of every batch, end with the weights of one process
    reading whole batches (the same global batch), to float tolerance."""
    settings = {**DDP[arch], "dropout": 0.0, "epochs": 2, "batch_size": 3, "seed": 3}
    flags = [f"--arch={arch}", "--device=cpu"]
    for name, value in settings.items():
        flags += [train.flag(name), *map(str, value if isinstance(value, list) else [value])]
    ddp = tmp_path / "ddp"
    flags += [f"--out-dir={ddp}"]  # (torchrun takes --log for an abbreviation of its --log-dir)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    result = subprocess.run(
        [*command, str(ROOT / "train.py"), *flags],
        cwd=tiny_artefacts,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("epoch   2/2") == 1 and "x 2 processes" in result.stdout  # rank 0
    data = {"dataset": tiny_artefacts / "file_dataset", "mapping": tiny_artefacts / "mapping.json"}
    train.train(**data, **files(tmp_path / "one"), arch=arch, device="cpu", **settings)
    two, one = (artefacts.load_torch(p / "train_state.pth") for p in (ddp, tmp_path / "one"))
    for name, tensor in one["model_state"].items():
        torch.testing.assert_close(two["model_state"][name], tensor, rtol=1e-5, atol=1e-6)
    val_losses = [[row["val_loss"] for row in run["history"]] for run in (two, one)]
    assert val_losses[0] == pytest.approx(val_losses[1])

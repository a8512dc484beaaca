"""The web app against an attacker and a clumsy user (issue 21): every field within the page's
limits, every refusal a JSON 4xx naming the field, memory bounded in bytes, keys with standard
signatures, bad checkpoints listed not fatal, security headers and a Host check, and a fuzz of
1,000 malformed bodies."""

import io
import json
import random
import re
import shutil
import time
import zipfile

import mido
import pytest
from fastapi.testclient import TestClient
from music21 import converter, key

import config
from melody import generation, webapp, webapp_models, webapp_work

LOCAL = "http://127.0.0.1"


@pytest.fixture(scope="module")
def model(structured):
    return structured[0] / "model.pth"


def make_client(model, **settings):
    app = webapp.create_app(model, root=model.parent, **settings)
    return TestClient(app, base_url=LOCAL, raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(model):
    with make_client(model) as client:
        yield client


def post(client, **controls):
    return client.post("/api/generate", json=controls)


def refusal(response):
    """The refusal's sentence, after checking it is a JSON 4xx."""
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()["error"]


@pytest.mark.parametrize(
    "controls, field",
    [
        ({"bpm": 0.25}, "bpm"),  # item 1: a 677 MB WAV
        ({"bpm": 1e-9}, "bpm"),  # item 5
        ({"bpm": 10_000}, "bpm"),
        ({"bars": 1e29}, "bars"),  # item 5
        ({"bars": 65}, "bars"),
        ({"bars": 0}, "bars"),
        ({"ambitus": 49}, "ambitus"),
        ({"key": "Cbb"}, "key"),
        ({"key": "C####"}, "key"),  # item 3
        ({"steps": 0}, "steps"),  # item 13
        ({"temperature": 1e308}, "temperature"),  # item 13
        ({"temperature": 0}, "temperature"),
        ({"random_seed": 2**63}, "random_seed"),  # item 13: no overflow message
        ({"random_seed": -1}, "random_seed"),
        ({"num_melodies": 0}, "num_melodies"),
        ({"top_k": 0}, "top_k"),
        ({"top_p": 1.5}, "top_p"),
        ({"final": 0}, "final"),
        ({"pickup": -1}, "pickup"),
        ({"seed": "60 " * 1025}, "seed"),  # item 6: a seed past WEB_MAX_SEED_SYMBOLS
        ({"seed": ["60"] * 1025}, "seed"),
        ({"seed": "x" * 60_000}, "seed"),
        ({"meter": "3/4" * 100}, "meter"),
        ({"form": "A1B2"}, "form"),
        ({"score_width": 10}, "score_width"),
        ({"surprisal": "true"}, "surprisal"),  # issue 23 item 5: a bool, nothing else
        ({"surprisal": 1}, "surprisal"),
        ({"surprisal": None}, "surprisal"),
    ],
)
def test_each_field_is_refused_past_the_pages_limits_naming_it(client, controls, field):
    started = time.monotonic()
    assert f"{field}:" in refusal(post(client, **controls))
    assert time.monotonic() - started < 1


def test_a_slow_tempo_that_would_make_a_huge_wav_is_refused(client):
    """At the slowest tempo, the most steps would last past WEB_MAX_SOUND_SECONDS."""
    words = refusal(post(client, bpm=config.WEB_MIN_BPM, steps=config.WEB_MAX_STEPS))
    assert words.startswith("bpm: 20 makes 4,096 steps last")


@pytest.mark.parametrize(
    "body, words",
    [
        (b"[" * 20_000, "nests deeper than"),  # item 5: RecursionError
        (b'{"seed": ' + b"[" * 50 + b"]" * 50 + b"}", "nests deeper than"),
        (b'{"steps": 1' + b"0" * 5000 + b"}", "not valid JSON"),  # Python's int digit limit
        (b'{"steps": 12,', "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b'"just a string"', "Input should be a valid dictionary"),
        (b'{"bpm": NaN}', "bpm:"),
        (b'{"temperature": Infinity}', "temperature:"),
    ],
)
def test_malformed_bodies_are_json_refusals(client, body, words):
    response = client.post(
        "/api/generate", content=body, headers={"content-type": "application/json"}
    )
    assert words in refusal(response)


def test_the_seed_refusal_is_one_short_sentence(client):
    """Item 13: not the whole vocabulary in red."""
    words = refusal(post(client, seed="60 999 " + " ".join(f"x{i}" for i in range(50))))
    assert words.startswith("seed: symbols not in the model's vocabulary: 999 x0")
    assert len(words) < 200 and "it knows MIDI notes" in words


@pytest.mark.parametrize(
    "tonic, mode, signature, sharps",
    [("Db", "minor", "C# minor", 4), ("Gb", "minor", "F# minor", 3), ("Cb", "minor", "B minor", 2),
     ("Cb", "major", "Cb major", -7), ("Db", "major", "Db major", -5)],
)  # fmt: skip
def test_keys_take_one_of_the_15_standard_signatures(client, tonic, mode, signature, sharps):
    """Item 3: Db minor is written as C# minor (4 sharps), not 8 flats; mido reads the MIDI."""
    body = post(client, key=tonic, mode=mode, bars=2, meter="2/4", random_seed=1).json()
    melody = body["melodies"][0]
    assert melody["key"] == signature
    midi = mido.MidiFile(file=io.BytesIO(client.get(melody["midi"]).content))
    signatures = [m.key for track in midi.tracks for m in track if m.type == "key_signature"]
    assert signatures == [signature.replace(" minor", "m").replace(" major", "")]
    score = converter.parseData(client.get(melody["musicxml"]).content, format="musicxml")
    assert score.recurse().getElementsByClass(key.KeySignature).first().sharps == sharps


@pytest.mark.parametrize("bars, meter", [(5, "3/4"), (16, "6/8"), (9, None)])
def test_a_melody_asked_for_in_bars_is_as_long_as_its_bars(client, bars, meter):
    """Item 4: steps 16 would cut them; the steps the bars need are given instead."""
    controls = {"meter": meter} if meter else {}
    body = post(client, bars=bars, steps=16, random_seed=3, **controls).json()
    melody = body["melodies"][0]
    bar = {"2/4": 8, "3/4": 12, "6/8": 12}[melody["meter"]]
    assert (melody["bars"], melody["complete"], len(melody["symbols"])) == (bars, True, bars * bar)


def test_a_melody_cut_by_its_steps_says_so(client):
    """Item 4: drawn bars and too few steps -> complete False, which the page's title says."""
    melodies = post(client, steps=8, num_melodies=4, random_seed=2).json()["melodies"]
    assert all(len(m["symbols"]) <= 8 and not m["complete"] for m in melodies if m["bars"])


def test_a_bad_checkpoint_is_listed_as_unusable_not_fatal(model, tmp_path):
    """Item 7: an unreadable runs/x/model.pth: /api/models and generate still answer."""
    good = tmp_path / "runs" / "good"
    shutil.copytree(model.parent, good)
    (tmp_path / "runs" / "broken").mkdir()
    (tmp_path / "runs" / "broken" / "model.pth").write_bytes(b"not a checkpoint")
    app = webapp.create_app(root=tmp_path)
    with TestClient(app, base_url=LOCAL) as client:
        listed = {m["id"]: m for m in client.get("/api/models").json()["models"]}
        assert listed["good"]["usable"] and not listed["broken"]["usable"]
        assert listed["broken"]["error"].startswith("cannot be loaded")
        assert post(client, steps=4, random_seed=1).json()["model"] == "good"
        assert "model 'broken' cannot be loaded" in refusal(post(client, model="broken"))


def test_models_are_loaded_once_not_every_call(model, monkeypatch):
    """Item 10: GET /api/models answers from the cache."""
    loads = []
    original = webapp_models.MelodyGenerator

    def counted(*args, **kwargs):
        loads.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(webapp_models, "MelodyGenerator", counted)
    with make_client(model) as client:
        for _ in range(5):
            assert client.get("/api/models").status_code == 200
        post(client, steps=4)
    assert len(loads) == 1


def test_models_are_found_from_the_apps_folder_whatever_the_cwd(tmp_path, monkeypatch):
    """Item 12: started from another folder, the bundled models are still offered, by name."""
    monkeypatch.chdir(tmp_path)
    found = webapp_models.find_models()
    assert "deutschl-lstm" in found and found["deutschl-lstm"].is_absolute()


def test_names_taken_twice_are_told_apart(model, tmp_path):
    for folder in ("runs/tune", "pretrained/tune"):
        shutil.copytree(model.parent, tmp_path / folder)
    assert list(webapp_models.find_models(tmp_path)) == ["tune", "pretrained/tune"]


def test_responses_carry_the_security_headers(client):
    """Item 11: a CSP, nosniff and frame protection on the page, the API and its refusals."""
    for response in (client.get("/"), client.get("/api/models"), post(client, steps=0)):
        headers = response.headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize(
    "headers",
    [{"host": "evil.example"}, {"host": "evil.example:8000"}, {"origin": "http://evil.example"}],
)
def test_another_host_or_origin_is_refused(client, headers):
    """Item 11: DNS rebinding or another site's page cannot drive the app."""
    response = client.get("/api/models", headers=headers)
    assert response.status_code == 403 and "is not this app's" in response.json()["error"]


@pytest.mark.parametrize("host", ["localhost:8000", "127.0.0.1", "[::1]:8000"])
def test_loopback_names_are_served(client, host):
    assert client.get("/api/models", headers={"host": host}).status_code == 200


def test_an_app_listening_beyond_loopback_takes_any_host(model):
    with TestClient(webapp.create_app(model, root=model.parent, hosts=None)) as client:
        assert client.get("/api/models").status_code == 200  # Host: testserver


@pytest.mark.parametrize(
    "path, content_type",
    [
        ("/api/generate", "text/plain"),
        ("/api/generate", "application/x-www-form-urlencoded"),
        ("/api/generate", None),
        ("/api/primer?name=a.mid", "text/plain"),
        ("/api/primer?name=a.mid", "multipart/form-data"),
    ],
)
def test_bodies_another_site_could_send_unasked_are_refused(client, path, content_type):
    """Item 11: only the types a cross-site page cannot send without a preflight are read."""
    headers = {"content-type": content_type} if content_type else {}
    response = client.post(path, content=b'{"steps": 4}', headers=headers)
    assert response.status_code == 415 and "must be sent as" in response.json()["error"]


def test_wavs_are_written_when_asked_and_the_store_is_bounded_in_bytes(model, monkeypatch):
    """Items 1 and 10: 200 generations that download nothing keep the store under its byte
    limit, and hold no file; a kept melody's WAV is still written when asked for. (Scores are
    left out of the answers here: drawing them is not what is tested, and takes seconds.)"""
    limit = 40_000
    store = webapp_work.Store(limit)
    monkeypatch.setattr(webapp_work, "melody_json", lambda melody_id, *_: {"id": melody_id})
    with make_client(model, store=store) as client:
        for i in range(200):
            body = post(client, steps=32, random_seed=i).json()
            assert store.bytes <= limit
        kept = store.items.values()
        fields = {"melody", "key", "bpm", "time_step", "model"}
        assert 10 < len(kept) < 200 and all(vars(e).keys() == fields for e in kept)
        assert store.bytes == sum(e.size() for e in kept)
        wav = client.get(f"/api/melodies/{body['melodies'][0]['id']}.wav")
        assert wav.status_code == 200 and wav.content[:4] == b"RIFF"


def mxl(score, size):
    """An .mxl whose score unzips to `size` bytes (a MusicXML opening and spaces)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "META-INF/container.xml",
            '<container><rootfiles><rootfile full-path="score.xml"/></rootfiles></container>',
        )
        archive.writestr("score.xml", score + b" " * (size - len(score)))
    return buffer.getvalue()


def test_an_mxl_bomb_upload_is_refused_fast(client):
    """Item 2: the upload limit counts the .mxl's unzipped size (the reader's bound)."""
    data = mxl(b'<?xml version="1.0"?><score-partwise version="4.0">', 64 * 2**20)
    assert len(data) < config.WEB_MAX_UPLOAD_BYTES
    started = time.monotonic()
    response = client.post(
        "/api/primer?name=bomb.mxl", content=data,
        headers={"content-type": "application/octet-stream"},
    )  # fmt: skip
    assert "bomb.mxl" in refusal(response) and time.monotonic() - started < 2


def test_a_60000_note_midi_upload_is_refused_fast(client):
    """Items 10 and 15: such a primer held a worker 73 s; the reader counts the notes in the
    file's bytes before mido or music21 read it."""
    track = mido.MidiTrack()
    for i in range(60_000):
        track += [mido.Message("note_on", note=60 + i % 12, velocity=64, time=0),
                  mido.Message("note_off", note=60 + i % 12, velocity=0, time=120)]  # fmt: skip
    buffer = io.BytesIO()
    mido.MidiFile(tracks=[track]).save(file=buffer)
    started = time.monotonic()
    response = client.post(
        "/api/primer?name=long.mid", content=buffer.getvalue(),
        headers={"content-type": "application/octet-stream"},
    )  # fmt: skip
    words = refusal(response)
    assert time.monotonic() - started < 1
    assert f"more than {config.MAX_SONG_NOTES} notes (60000)" in words and "long.mid" in words


def test_an_abc_primer_in_a_meter_of_a_huge_bar_is_refused_fast(client):
    """music21 took gigabytes over it; the reader bounds the meter first."""
    started = time.monotonic()
    response = client.post(
        "/api/primer?name=wide.abc", content=b"X:1\nM:9999999/4\nL:1/8\nK:G\nGABc|]\n",
        headers={"content-type": "application/octet-stream"},
    )  # fmt: skip
    assert "a bar longer than" in refusal(response) and time.monotonic() - started < 1


def test_the_score_has_a_final_barline(client):
    melody = post(client, steps=16, random_seed=4).json()["melodies"][0]
    assert b"<bar-style>light-heavy</bar-style>" in client.get(melody["musicxml"]).content


def test_the_score_is_drawn_to_the_width_asked(client):
    """Item 8: on a phone the score wraps to the page's width instead of shrinking."""
    for width in (360, 1200):
        svg = post(client, bars=16, meter="2/4", random_seed=1, score_width=width).json()
        assert f'<svg width="{width}px"' in svg["melodies"][0]["svg"]


def test_each_drawn_note_has_its_time_even_a_note_drawn_as_two(client):
    """Item 13: a 5-16th note is drawn as a quarter tied to a 16th; both pieces are timed, so the
    page's highlighting follows it."""
    controls = {"seed": "60 _ _ _ _ 62 _ _", "meter": "2/4", "pickup": 0, "bars": 2}
    melody = post(client, random_seed=1, **controls).json()["melodies"][0]
    drawn = re.findall(r'<g id="([^"]+)" class="note"', melody["svg"])
    assert sorted(drawn) == sorted(melody["note_times"])
    times = [melody["note_times"][i] for i in drawn]
    assert times[:3] == [[0, 1], [1, 1.25], [1.25, 2]]


def test_every_control_has_help(client):
    for spec in client.get("/api/models").json()["models"][0]["controls"]:
        assert len(spec["help"]) > 10, spec["name"]
    assert "bpm" in {c["name"] for c in client.get("/api/models").json()["models"][0]["controls"]}


def test_the_primer_says_its_tonic_and_mode(client):
    from test_app import primer_file

    response = client.post(
        "/api/primer?name=tune.mid", content=primer_file(".mid"),
        headers={"content-type": "application/octet-stream"},
    )  # fmt: skip
    body = response.json()
    assert (body["tonic"], body["mode"], body["meter"]) == ("G", "major", "2/4")


def test_form_and_pitch_temperature_are_passed_to_the_generator(client, monkeypatch):
    given = []
    original = generation.MelodyGenerator.generate_melodies

    def spy(self, *args, **kwargs):
        given.append((kwargs["form"], kwargs["pitch_temperature"]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(generation.MelodyGenerator, "generate_melodies", spy)
    asked = post(client, form="AA'BA~/1", bars=4, meter="2/4", random_seed=1).json()
    assert asked["melodies"][0]["form"] == "AA'BA~/1"
    assert post(client, form="AA^", bars=2, meter="2/4", random_seed=1).status_code == 200
    assert post(client, form="-", random_seed=1).json()["melodies"][0]["form"] is None
    post(client, form="", pitch_temperature=0.5, random_seed=1)
    assert given == [  # empty: the form comes with the plan drawn
        ("AA'BA~/1", config.PITCH_TEMPERATURE),
        ("AA^", config.PITCH_TEMPERATURE),
        ("-", config.PITCH_TEMPERATURE),
        (None, 0.5),
    ]
    assert "form" in {c["name"] for c in client.get("/api/models").json()["models"][0]["controls"]}


# ---------------------------------------------------------------------------------------------
# A fuzz: 1,000 random and malformed requests to every endpoint


def random_value(draw, depth=0):
    kinds = ["int", "big", "float", "str", "none", "bool", "list", "dict"][: 8 if depth < 3 else 6]
    kind = draw.choice(kinds)
    return {
        "int": lambda: draw.randint(-10, 300),
        "big": lambda: draw.choice([2**63, -(2**70), 10**30, 1e308, -1e-9, 0.25]),
        "float": lambda: draw.uniform(-5, 500),
        "str": lambda: draw.choice(["", "C", "Db", "3/4", "minor", "60 _ r", "/", "\0", "é" * 9]),
        "none": lambda: None,
        "bool": lambda: draw.random() < 0.5,
        "list": lambda: [random_value(draw, depth + 1) for _ in range(draw.randint(0, 3))],
        "dict": lambda: {"k": random_value(draw, depth + 1)},
    }[kind]()


FIELDS = list(webapp.GenerateRequest.model_fields) + ["colour"]
EDIT_FIELDS = list(webapp.RegenerateRequest.model_fields) + ["colour"]


def random_edit(draw, kept_id):
    """POST /api/regenerate's body: random fields, often for the kept melody and near-valid."""
    body = {f: random_value(draw) for f in draw.sample(EDIT_FIELDS, draw.randint(0, 4))}
    if draw.random() < 0.6:
        body["melody_id"] = draw.choice([kept_id, kept_id, "feedc0de"])  # or one not kept
        if draw.random() < 0.5:
            body["bars"] = [draw.randint(-1, 4) for _ in range(draw.randint(0, 3))]
    return "POST", "/api/regenerate", json.dumps(body).encode(), "application/json"


def random_request(draw, kept_id):
    """(method, path, body bytes, content type): mostly JSON controls and edits, some garbage."""
    roll = draw.random()
    if roll < 0.45:
        controls = {f: random_value(draw) for f in draw.sample(FIELDS, draw.randint(0, 5))}
        if draw.random() < 0.5:  # near-valid: small and quick when the rest is valid
            controls |= {"steps": draw.randint(1, 8), "num_melodies": 1}
        return "POST", "/api/generate", json.dumps(controls).encode(), "application/json"
    if roll < 0.55:
        return random_edit(draw, kept_id)
    if roll < 0.7:
        body = bytes(draw.getrandbits(8) for _ in range(draw.randint(0, 64)))
        body = draw.choice([body, b"[" * draw.randint(1, 5000), b'{"seed": "' + body + b'"}'])
        path = draw.choice(["/api/generate", "/api/regenerate"])
        return "POST", path, body, draw.choice(["application/json", "text/plain"])
    if roll < 0.85:
        name = draw.choice(["a.mid", "a.xml", "a.mxl", "a.krn", "a.abc", "a.txt", "..%2F.mid"])
        head = draw.choice([b"", b"MThd", b"PK\x03\x04", b"<score-partwise>", b"X:1\nK:C\n"])
        body = head + bytes(draw.getrandbits(8) for _ in range(draw.randint(0, 200)))
        return "POST", f"/api/primer?name={name}", body, "application/octet-stream"
    path = draw.choice(
        ["/api/models", "/api/melodies/abc.wav", "/api/melodies/x.exe", "/api/nothing",
         "/static/../config.py", "/", "/api/melodies/%00.mid", "/api/regenerate",
         f"/api/melodies/{kept_id}.abc", f"/api/melodies/{kept_id}.krn"]
    )  # fmt: skip
    return draw.choice(["GET", "POST", "DELETE"]), path, b"", "application/json"


def test_a_fuzz_of_1000_requests_gets_no_server_error(model):
    """Done when: 0 plain 500s, the server alive. Each answer is JSON (a refusal or a result),
    or the page and its assets."""
    draw = random.Random(21)
    with make_client(model, limits={"steps": 64, "melodies": 2}) as client:
        kept_id = post(client, steps=16, random_seed=1).json()["melodies"][0]["id"]
        statuses, edits = [], set()
        for _ in range(1000):
            method, path, body, content_type = random_request(draw, kept_id)
            response = client.request(
                method, path, content=body, headers={"content-type": content_type}
            )
            statuses.append(response.status_code)
            if path == "/api/regenerate" and method == "POST":
                edits.add(response.status_code)
            assert response.status_code < 500, (path, body[:200], response.text)
            download = "/melodies/" in path and response.status_code == 200  # a kept melody's
            if path.startswith("/api/") and not download:
                assert response.headers["content-type"] == "application/json", path
        assert client.get("/api/models").status_code == 200
    assert statuses.count(200) > 20 and len(set(statuses)) > 4
    assert {200, 404, 422} <= edits  # edits made, and edits refused

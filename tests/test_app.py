"""The web app (app.py, melody/webapp.py): the JSON API (FastAPI's TestClient), a real uvicorn
server under 20 concurrent requests and a 50 MB upload, and the page driven by headless Chromium."""

import io
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mido
import numpy as np
import pytest
from conftest import ROOT
from fastapi.testclient import TestClient
from music21 import converter, key, meter, note, stream

import config
from melody import artefacts, controls, editing, readers, render, webapp, writers
from melody.evaluation import surprisal
from melody.generation import MelodyGenerator
from melody.models import song_log_probs

TIMEOUT = 60  # seconds any one request or wait may take, on a busy 2-core machine


@pytest.fixture(scope="module")
def model(structured):
    """A tiny model that knows 2/4, 3/4 and 6/8, major and minor (conftest's songs)."""
    return structured[0] / "model.pth"


@pytest.fixture(scope="module")
def client(model):
    # root: the model's folder, so that a model.pth lying in the worktree is not offered
    app = webapp.create_app(model, root=model.parent)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client


def post(client, **controls):
    return client.post("/api/generate", json=controls)


def test_models_list_the_controls_the_checkpoint_takes(client, model):
    models = client.get("/api/models").json()["models"]
    assert [(m["id"], m["usable"]) for m in models] == [("model", True)]  # a name, no path
    controls = {c["name"]: c for c in models[0]["controls"]}
    assert controls["meter"]["options"] == ["2/4", "3/4", "6/8"]
    assert controls["mode"]["options"] == ["major", "minor"]
    assert {"steps", "num_melodies", "temperature", "pitch_temperature", "top_p", "key"} <= set(
        controls
    )
    assert {"bars", "pickup"} <= set(controls)
    assert (controls["final"]["min"], controls["final"]["max"]) == (1, 7)  # a scale degree
    assert controls["ambitus"]["none"] == "drawn"


def test_the_page_accepts_the_primer_files_the_server_reads(client):
    """The file input's accept comes from GET /api/models, which lists the readers' suffixes."""
    assert client.get("/api/models").json()["primer_suffixes"] == list(readers.READERS)
    assert "accept=" not in client.get("/").text
    assert "primer_suffixes" in client.get("/static/app.js").text


def test_page_and_its_assets_are_served_by_the_app(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="generate"' in page.text
    for asset in ("/static/app.js", "/static/app.css"):
        assert client.get(asset).status_code == 200
    assert "http" not in page.text.replace("http-equiv", "")  # nothing from elsewhere


def test_generate_returns_scores_and_files_that_read_back(client):
    response = post(
        client,
        seed="60 _ 62 _",
        steps=200,
        num_melodies=2,
        meter="3/4",
        mode="major",
        bars=4,
        key="G",
        random_seed=5,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["random_seed"] == 5 and len(body["melodies"]) == 2
    for melody in body["melodies"]:
        symbols = melody["symbols"]
        assert symbols[:4] == ["60", "_", "62", "_"] and len(symbols) == 48  # 4 bars of 3/4
        assert (melody["meter"], melody["mode"], melody["bars"], melody["key"]) == (
            "3/4",
            "major",
            4,
            "G major",
        )
        assert melody["svg"].startswith("<svg") and 'class="note"' in melody["svg"]
        midi = mido.MidiFile(file=io.BytesIO(client.get(melody["midi"]).content))
        onsets = [m.note for m in midi.tracks[-1] if m.type == "note_on" and m.velocity]
        notes = [int(s) for s in symbols if s.isdigit()]
        assert onsets[:2] == [67, 69] and len(onsets) <= len(notes)  # moved to G; ties joined
        score = converter.parseData(client.get(melody["musicxml"]).content, format="musicxml")
        assert score.recurse().getElementsByClass(meter.TimeSignature).first().ratioString == "3/4"
        assert score.recurse().getElementsByClass(key.KeySignature).first().sharps == 1
        sound = client.get(melody["wav"])
        assert sound.headers["content-type"] == "audio/wav"
        with wave.open(io.BytesIO(sound.content)) as wav:
            seconds = wav.getnframes() / wav.getframerate()
        assert seconds == pytest.approx(48 * melody["seconds_per_step"] + render.RELEASE_SECONDS)
    again = post(client, seed="60 _ 62 _", steps=200, num_melodies=2, meter="3/4", mode="major",
                 bars=4, key="G", random_seed=5).json()  # fmt: skip
    assert [m["symbols"] for m in again["melodies"]] == [m["symbols"] for m in body["melodies"]]


@pytest.mark.parametrize(
    "controls, status, words",
    [
        ({"steps": 10**9}, 422, "steps must be at most 4096"),
        ({"num_melodies": 1000}, 422, "num_melodies must be at most 8"),
        ({"temperature": -1}, 422, "temperature: Input should be greater than 0"),
        ({"pitch_temperature": 0}, 422, "pitch_temperature: Input should be greater than 0"),
        ({"seed": "60 _ 999 x"}, 422, "seed: symbols not in the model's vocabulary: 999 x"),
        ({"meter": "5/4"}, 422, "meter '5/4': this model never saw it"),
        ({"final": 9}, 422, "final: Input should be less than or equal to 7"),
        ({"mode": "major", "final": 3}, 422, "final 3: no major training song ends on that"),
        ({"key": "H"}, 422, "key: String should match pattern"),
        ({"bpm": 0}, 422, "bpm: Input should be greater than or equal to 20"),
        ({"steps": "many"}, 422, "steps: Input should be a valid integer"),
        ({"colour": "blue"}, 422, "colour: Extra inputs are not permitted"),
        ({"model": "../secret.pth"}, 404, "model '../secret.pth' not found"),
    ],
)
def test_bad_controls_are_refused_with_a_sentence(client, controls, status, words):
    response = post(client, **controls)
    assert response.status_code == status and words in response.json()["error"]


def edit(client, **body):
    return client.post("/api/regenerate", json=body)


def bar_steps(melody):
    """{bar number: the steps of that bar} of a melody as the API returns it."""
    bar = {"2/4": 8, "3/4": 12, "6/8": 12}[melody["meter"]]
    spans = editing.bar_spans(len(melody["symbols"]), bar, melody["pickup"])
    return {n: range(*span) for n, span in spans.items()}


@pytest.fixture(scope="module")
def kept(client):
    """A melody of 6 bars of 3/4 after a pickup of a quarter, kept by the app."""
    body = post(client, meter="3/4", bars=6, pickup=4, mode="major", key="D", random_seed=7)
    return body.json()["melodies"][0]


def test_regenerate_samples_the_bars_asked_and_keeps_the_others_exactly(client, kept):
    """Issue 22 item 4: bars 2 and 3 are new, every other step is the kept melody's, and the
    answer is a melody as /api/generate gives one (a new id; the old one still downloadable)."""
    steps = bar_steps(kept)
    assert kept["bar_numbers"] == list(steps) == [0, 1, 2, 3, 4, 5, 6]
    assert kept["svg"].count('class="measure"') == len(kept["bar_numbers"])
    gap = set(steps[2]) | set(steps[3])
    changed = False
    for random_seed in range(3):
        response = edit(client, melody_id=kept["id"], bars=[3, 2], random_seed=random_seed)
        assert response.status_code == 200, response.text
        new = response.json()["melody"]
        assert new.keys() == kept.keys() and new["id"] != kept["id"]
        assert (new["meter"], new["pickup"], new["key"]) == ("3/4", 4, "D major")
        old, symbols = kept["symbols"], new["symbols"]
        assert len(symbols) == len(old)
        assert [s for i, s in enumerate(symbols) if i not in gap] == [
            s for i, s in enumerate(old) if i not in gap
        ]
        changed |= [symbols[i] for i in sorted(gap)] != [old[i] for i in sorted(gap)]
        assert new["svg"].startswith("<svg") and new["bar_numbers"] == kept["bar_numbers"]
    assert changed
    again = edit(client, melody_id=kept["id"], bars=[3, 2], random_seed=2).json()["melody"]
    assert again["symbols"] == symbols  # the same seed, the same edit
    hotter = edit(client, melody_id=kept["id"], bars=[3, 2], random_seed=2, pitch_temperature=2)
    assert hotter.json()["melody"]["symbols"] != symbols  # sampled at the page's temperature
    too_hot = edit(client, melody_id=kept["id"], bars=[2], temperature=99)
    assert too_hot.status_code == 422 and "temperature" in too_hot.json()["error"]
    assert client.get(kept["midi"]).status_code == 200  # undo goes back to it


def test_new_pitches_over_the_same_rhythm(client, kept):
    """keep "rhythm" with no bars: every bar gets new pitches over the same onsets, holds, rests."""
    kept_rhythm = rhythm(kept["symbols"])
    differs = False
    for random_seed in range(3):
        response = edit(client, melody_id=kept["id"], keep="rhythm", random_seed=random_seed)
        assert response.status_code == 200, response.text
        symbols = response.json()["melody"]["symbols"]
        assert rhythm(symbols) == kept_rhythm
        differs |= symbols != kept["symbols"]
    assert differs


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({"bars": [9]}, 422, "bars: bar 9 is not in this melody: it has bars 0-6 (bar 0 is its"),
        ({"bars": []}, 422, "bars: bars must be a list of bar numbers"),
        ({"bars": [-1]}, 422, "bars: Input should be greater than or equal to 0"),
        ({"bars": "3-4"}, 422, "bars: Input should be a valid list"),
        ({"bars": list(range(5000))}, 422, "bars: List should have at most 4096 items"),
        ({"keep": "pitches"}, 422, "keep: Input should be 'rhythm'"),
        ({"colour": "blue"}, 422, "colour: Extra inputs are not permitted"),
        ({"melody_id": "0123456789abcdef"}, 404, "melody '0123456789abcdef' is not kept"),
        ({"melody_id": None}, 422, "melody_id: Input should be a valid string"),
        ({"surprisal": "yes"}, 422, "surprisal: Input should be a valid boolean"),
    ],
)
def test_bad_edits_are_refused_with_a_sentence(client, kept, body, status, words):
    response = edit(client, **{"melody_id": kept["id"], **body})
    assert response.status_code == status and words in response.json()["error"], response.text
    assert response.headers["content-type"] == "application/json"


def test_abc_and_kern_are_downloads_that_read_back(client, kept, tmp_path):
    """Issue 22 item 5: the page's ABC and kern links give files the project's readers read."""
    assert set(kept["files"]) == {"mid", "musicxml", "wav", "abc", "krn"}
    for kind, start in (("abc", b"X:"), ("krn", b"!!!")):
        response = client.get(kept["files"][kind])
        assert response.status_code == 200 and response.content.startswith(start)
        assert f'filename="melody-{kept["id"]}.{kind}"' in response.headers["content-disposition"]
        path = tmp_path / f"tune.{kind}"
        path.write_bytes(response.content)
        song = editing.read_melody(path)
        assert (song.meter, song.pickup, song.key) == ("3/4", 4, "D major")
        assert song == writers.written_symbols(kept["symbols"], config.TIME_STEP, "3/4", 4)


def test_surprisal_is_each_notes_bits_as_the_report_counts_them(client, model):
    """Issue 23 item 5: asked, each melody carries its notes' bits, in order, as evaluate.py's
    surprisal section computes them (the model told the melody's plan); not asked, none."""
    asked = {"meter": "3/4", "bars": 4, "mode": "minor", "num_melodies": 2, "random_seed": 9}
    assert all(m["surprisal"] is None for m in post(client, **asked).json()["melodies"])
    response = post(client, surprisal=True, **asked)
    assert response.status_code == 200, response.text
    generator = MelodyGenerator(model)
    melodies = generator.generate_melodies("", 2, config.WEB_STEPS, rng=9, meter="3/4", bars=4,
                                           mode="minor")  # fmt: skip
    for melody, shown in zip(melodies, response.json()["melodies"]):
        assert list(melody) == shown["symbols"]
        bits = shown["surprisal"]
        onsets = [i for i, s in enumerate(melody) if s.isdigit()]
        assert bits["onsets"] == onsets and len(bits["pitch_bits"]) == len(onsets) > 0
        pitch, step = np.array(bits["pitch_bits"]), np.array(bits["step_bits"])
        assert np.isfinite(pitch).all() and (pitch >= 0).all() and (step >= pitch - 1e-3).all()
        assert bits["mean_pitch_bits"] == pytest.approx(pitch.mean(), abs=1e-3)
        assert bits["mean_step_bits"] == pytest.approx(step.mean(), abs=1e-3)
        song = [generator.index[s] for s in melody]
        delimiter = generator.index["/"]
        fields = controls.checkpoint_fields(artefacts.load_torch(model), [melody.plan], [song])
        log_probs = song_log_probs(generator.model, [song], delimiter, controls=fields)
        report = surprisal.songs_bits(log_probs, [song], generator.vocabulary, delimiter)[0]
        np.testing.assert_allclose(pitch, report["pitch_bits"], atol=1e-4)
        assert bits["all_bits_per_note"] == pytest.approx(
            report["step_nats"] / len(onsets) / math.log(2)
        )
        for note_id, onset in zip(bits["drawn"], onsets):  # each note's first drawn note
            assert f'id="{note_id}"' in shown["svg"]
            assert shown["note_times"][note_id][0] == pytest.approx(onset * config.TIME_STEP)
    kept = response.json()["melodies"][0]
    edited = edit(client, melody_id=kept["id"], bars=[2], surprisal=True).json()["melody"]
    assert len(edited["surprisal"]["pitch_bits"]) == sum(s.isdigit() for s in edited["symbols"])
    assert edit(client, melody_id=kept["id"], bars=[2]).json()["melody"]["surprisal"] is None


def test_malformed_json_is_refused(client):
    response = client.post(
        "/api/generate", content=b'{"steps": 12,', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("the request is not valid JSON")
    assert client.get("/api/models").status_code == 200  # still serving


def upload(client, name, data):
    return client.post(
        f"/api/primer?name={name}",
        content=data,
        headers={"content-type": "application/octet-stream"},
    )


def primer_file(suffix):
    """G A B C D C in 2/4, G major, as MIDI or MusicXML bytes."""
    song = stream.Stream(
        [meter.TimeSignature("2/4"), key.Key("G")]
        + [note.Note(m, quarterLength=1) for m in (67, 69, 71, 72, 74, 72)]
    )
    return Path(song.write({".mid": "midi", ".musicxml": "musicxml"}[suffix])).read_bytes()


@pytest.mark.parametrize("suffix", [".mid", ".musicxml"])
def test_primer_upload_becomes_seed_symbols_in_c(client, suffix):
    response = upload(client, f"tune{suffix}", primer_file(suffix))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["seed"] == "60 _ _ _ 62 _ _ _ 64 _ _ _ 65 _ _ _"  # its first 2 bars, G -> C
    assert (body["meter"], body["pickup"], body["key"]) == ("2/4", 0, "G major")
    generated = post(client, seed=body["seed"], steps=16, random_seed=1).json()
    assert generated["melodies"][0]["symbols"][:16] == body["seed"].split()


@pytest.mark.parametrize(
    "name, data, status, words",
    [
        ("picture.mid", b"\x89PNG\r\n\x1a\n" + bytes(100), 400, "is not a MIDI file"),
        ("notes.txt", b"C D E", 415, "upload a MIDI"),
        ("broken.musicxml", b"<score-partwise><part", 400, "broken.musicxml: cannot use it"),
        ("big.mid", b"MThd" + bytes(3 * 2**20), 413, "the limit is 2,097,152"),
    ],
    ids=["not-midi", "not-music", "broken-xml", "too-big"],
)
def test_bad_uploads_are_refused(client, name, data, status, words):
    response = upload(client, name, data)
    assert response.status_code == status and words in response.json()["error"]


def test_only_loopback_goes_unwarned():
    assert "not loopback" in webapp.exposed_warning("0.0.0.0")
    assert {"127.0.0.1", "localhost", "::1"} == webapp.LOOPBACK


# ---------------------------------------------------------------------------------------------
# A real server: `python app.py` on a free loopback port


@pytest.fixture(scope="module")
def server():
    """`python app.py` in the repository with the default pretrained model, as a user starts it
    (the model the screenshot shows)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    model = config.PRETRAINED_MODEL
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--model", model],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            urllib.request.urlopen(url + "/api/models", timeout=TIMEOUT)
            break
        except (urllib.error.URLError, ConnectionError):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"app.py did not start: {process.communicate()[0]}")
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(TIMEOUT)


def generate_over_http(url, controls):
    request = urllib.request.Request(
        url + "/api/generate",
        json.dumps(controls).encode(),
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        return response.status, json.load(response)


def test_twenty_concurrent_generations_all_succeed(server):
    controls = [{"steps": 256, "random_seed": i} for i in range(20)]
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda c: generate_over_http(server, c), controls))
    assert [status for status, _ in results] == [200] * 20
    assert all(body["melodies"][0]["svg"].startswith("<svg") for _, body in results)
    assert urllib.request.urlopen(server + "/api/models", timeout=TIMEOUT).status == 200


def test_a_50_mb_upload_is_refused_before_it_is_read(server):
    """The 413 comes back after the first megabyte: the server never takes the other 49."""
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as connection:
        connection.sendall(
            b"POST /api/primer?name=big.mid HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % (50 * 2**20) + b"MThd" + bytes(2**20)
        )
        reply = b""
        while b"the limit is" not in reply and (chunk := connection.recv(4096)):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413") and b"the limit is" in reply
    assert urllib.request.urlopen(server + "/api/models", timeout=TIMEOUT).status == 200


# ---------------------------------------------------------------------------------------------
# The page in headless Chromium (Debian's chromium and chromium-driver; .ci/run installs them)


BROWSER_FLAGS = [
    "--headless=new",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
    "--autoplay-policy=no-user-gesture-required",
]


def browser_paths():
    found = [
        next(filter(None, map(shutil.which, names)), None)
        for names in (("chromium", "chromium-browser", "google-chrome"), ("chromedriver",))
    ]
    if not all(found):
        pytest.skip(
            "no Chromium and chromedriver here: apt-get install chromium chromium-driver "
            "(.ci/run does so where apt-get works)"
        )
    return found


def open_browser(download_folder, width):
    """Headless Chromium (selenium) `width` CSS pixels wide: a phone's (touch, 3x pixels) below
    500."""
    from selenium import webdriver

    binary, driver_path = browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in BROWSER_FLAGS:
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(download_folder), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(options, webdriver.ChromeService(driver_path))
    if width < 500:
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": 844, "deviceScaleFactor": 3, "mobile": True},
        )
    return driver


def generate_on_page(driver, wait, controls):
    """Set the page's controls (name -> value), press Generate, wait for the scores."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    for name, value in controls.items():
        field = driver.find_element(By.NAME, name)
        if field.tag_name == "select":
            Select(field).select_by_value(value)
        else:
            field.clear()
            field.send_keys(value)
    driver.find_element(By.ID, "generate").click()
    return wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".melody .score svg"))


def test_page_generates_shows_plays_and_downloads_in_chromium(server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = open_browser(tmp_path, 1280)
    try:
        wait = WebDriverWait(driver, TIMEOUT)
        driver.get(server)
        wait.until(lambda d: d.find_element(By.ID, "message").text == "ready")
        listed = json.load(urllib.request.urlopen(server + "/api/models", timeout=TIMEOUT))
        accept = driver.find_element(By.ID, "primer").get_attribute("accept")
        assert accept.split(",") == listed["primer_suffixes"]
        options = driver.find_elements(By.CSS_SELECTOR, "#model option")
        assert "/" not in options[0].text and ".pth" not in options[0].text  # a name
        assert all(h.text for h in driver.find_elements(By.CSS_SELECTOR, "#control-fields .help"))
        driver.find_element(By.CSS_SELECTOR, "#keyboard [data-midi='60']").click()
        assert driver.find_element(By.ID, "seed").get_attribute("value") == "60 _ _ _"
        score = generate_on_page(driver, wait, {"meter": "3/4", "bars": "8", "bpm": "90"})[0]
        assert score.find_elements(By.CSS_SELECTOR, "g.note")
        title = driver.find_element(By.CSS_SELECTOR, ".melody h3").text
        assert "3/4" in title and "8 bars" in title
        audio = driver.find_element(By.CSS_SELECTOR, ".melody audio")
        wait.until(lambda d: d.execute_script("return arguments[0].readyState >= 2", audio))
        assert driver.execute_script("return arguments[0].duration", audio) > 1
        played = driver.execute_async_script(
            "const [audio, done] = arguments;"
            "audio.play().then(() => done(true), (e) => done(String(e)));",
            audio,
        )
        assert played is True
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".score g.note.playing"))
        assert len(driver.find_elements(By.CSS_SELECTOR, "#history li")) == 1
        screenshot = os.environ.get("WEBAPP_SCREENSHOT")  # docs/webapp.png: see docs/webapp.md
        driver.execute_script("arguments[0].pause(); arguments[0].currentTime = 0", audio)
        driver.execute_script("scrollTo(0, 0)")  # the click on Generate scrolled down to it
        driver.save_screenshot(screenshot or str(tmp_path / "webapp.png"))
        driver.find_element(By.LINK_TEXT, "MIDI").click()
        wait.until(lambda d: list(tmp_path.glob("*.mid")))
        midi = mido.MidiFile(next(tmp_path.glob("*.mid")))
        assert any(m.type == "note_on" for m in midi.tracks[-1])
        check_the_link_makes_the_melody_again(driver, wait)
        check_a_primer_carries_its_key_and_meter(driver, wait, tmp_path)
    finally:
        driver.quit()


def check_the_link_makes_the_melody_again(driver, wait):
    """The link under the result holds the settings and random seed: opened, the same melody."""
    from selenium.webdriver.common.by import By

    symbols = driver.find_element(By.CSS_SELECTOR, ".melody .symbols").get_attribute("textContent")
    link = driver.find_element(By.ID, "again").get_attribute("href")
    assert "random_seed=" in link and "bpm=90" in link
    driver.get(link)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".melody .score svg"))
    again = driver.find_element(By.CSS_SELECTOR, ".melody .symbols").get_attribute("textContent")
    assert again == symbols
    assert driver.find_element(By.NAME, "bpm").get_attribute("value") == "90"


def check_a_primer_carries_its_key_and_meter(driver, wait, tmp_path):
    """A G major primer in 2/4 sets the key control to G (and the meter, where the model has it)."""
    from selenium.webdriver.common.by import By

    path = tmp_path / "tune.mid"
    path.write_bytes(primer_file(".mid"))
    driver.find_element(By.ID, "primer").send_keys(str(path))
    wait.until(lambda d: "moved from" in d.find_element(By.ID, "message").text)
    assert driver.find_element(By.NAME, "key").get_attribute("value") == "G"
    meter_choices = driver.find_elements(By.CSS_SELECTOR, "select[name=meter] option[value='2/4']")
    if meter_choices:
        assert driver.find_element(By.NAME, "meter").get_attribute("value") == "2/4"


def test_page_regenerates_chosen_bars_and_undoes_in_chromium(server, tmp_path):
    """Issue 22 item 4: two bars clicked in the score are marked, "regenerate selected" changes
    them alone (the marks stay), and undo brings the melody back."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = open_browser(tmp_path, 1280)
    try:
        wait = WebDriverWait(driver, TIMEOUT)
        driver.get(server)
        wait.until(lambda d: d.find_element(By.ID, "message").text == "ready")
        generate_on_page(driver, wait, {"meter": "3/4", "bars": "8", "random_seed": "11"})
        card = driver.find_element(By.CSS_SELECTOR, ".melody")
        original = shown(driver, card)
        measures = card.find_elements(By.CSS_SELECTOR, ".score g.measure")
        assert len(measures) == len(original["bar_numbers"])
        for measure in measures[2:4]:
            ActionChains(driver).move_to_element(measure).click().perform()
        chosen = [original["bar_numbers"][i] for i in (2, 3)]
        assert marked(card) == [2, 3]
        assert len(card.find_elements(By.CSS_SELECTOR, ".bar-selection")) == 2  # the shading
        assert not card.find_element(By.CSS_SELECTOR, ".undo-edit").is_enabled()
        for _ in range(3):  # a regenerated bar may, rarely, come out as it was
            card.find_element(By.CSS_SELECTOR, ".regenerate").click()
            wait.until(lambda d: "regenerated" in d.find_element(By.ID, "message").text)
            edited = shown(driver, card)
            if edited["symbols"] != original["symbols"]:
                break
            driver.execute_script("document.getElementById('message').textContent = ''")
        assert edited["symbols"] != original["symbols"] and edited["id"] != original["id"]
        steps = bar_steps(original)
        gap = set(steps[chosen[0]]) | set(steps[chosen[1]])
        assert all(a == b for i, (a, b) in enumerate(zip(edited["symbols"], original["symbols"]))
                   if i not in gap)  # fmt: skip
        text = card.find_element(By.CSS_SELECTOR, ".symbols").get_attribute("textContent")
        assert text == " ".join(edited["symbols"])
        assert marked(card) == [2, 3] and "edited" in card.find_element(By.TAG_NAME, "h3").text
        screenshot = os.environ.get("WEBAPP_EDIT_SCREENSHOT")  # docs/webapp-edit.png
        driver.execute_script("scrollTo(0, 0)")
        driver.save_screenshot(screenshot or str(tmp_path / "webapp-edit.png"))
        card.find_element(By.CSS_SELECTOR, ".undo-edit").click()
        assert shown(driver, card)["symbols"] == original["symbols"]
        text = card.find_element(By.CSS_SELECTOR, ".symbols").get_attribute("textContent")
        assert text == " ".join(original["symbols"]) and marked(card) == [2, 3]
        assert not card.find_element(By.CSS_SELECTOR, ".undo-edit").is_enabled()
        card.find_element(By.CSS_SELECTOR, ".same-rhythm").click()
        wait.until(lambda d: "same rhythm in bars" in d.find_element(By.ID, "message").text)
        new = shown(driver, card)
        assert rhythm(new["symbols"]) == rhythm(original["symbols"]) and new != original
        assert card.find_element(By.CSS_SELECTOR, ".undo-edit").is_enabled()
    finally:
        driver.quit()


def shown(driver, card):
    """The melody a card shows: its latest version, as the API gave it."""
    return driver.execute_script("return arguments[0].versions.at(-1)", card)


def rhythm(symbols):
    """A melody's onsets, holds and rests, whatever its pitches."""
    return ["note" if s.isdigit() else s for s in symbols]


def marked(card):
    """The positions in the score of the bars marked as chosen."""
    from selenium.webdriver.common.by import By

    measures = card.find_elements(By.CSS_SELECTOR, ".score g.measure")
    return [i for i, m in enumerate(measures) if "selected" in m.get_attribute("class").split()]


def test_page_on_a_390_px_phone_wraps_the_score_and_scrolls_to_it(server, tmp_path):
    """Item 8: the score is drawn to the phone's width (staff lines as far apart as on a desktop),
    nothing runs off the side, and the result is scrolled into view."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = open_browser(tmp_path, 390)
    try:
        wait = WebDriverWait(driver, TIMEOUT)
        driver.get(server)
        wait.until(lambda d: d.find_element(By.ID, "message").text == "ready")
        assert driver.execute_script("return innerWidth") == 390
        score = generate_on_page(driver, wait, {"meter": "2/4", "bars": "8", "random_seed": "7"})
        drawn = driver.execute_script(
            "const box = arguments[0].getBoundingClientRect();"
            "return [box.width, box.height, arguments[0].width.baseVal.value];",
            score[0],
        )
        assert 250 < drawn[0] <= 390 and drawn[0] == pytest.approx(drawn[2], rel=0.02)  # 1:1
        assert drawn[1] > 150  # 8 bars of 2/4 wrap to several systems, not a 49 px strip
        width = driver.execute_script("return document.documentElement.scrollWidth")
        assert width <= 390
        time.sleep(1)  # the smooth scroll
        top = driver.execute_script(
            "return document.querySelector('#results').getBoundingClientRect().top"
        )
        assert -1 < top < driver.execute_script("return innerHeight / 2")  # -1: subpixel scrolls
        screenshot = os.environ.get("WEBAPP_PHONE_SCREENSHOT")  # docs/webapp-phone.png
        driver.save_screenshot(screenshot or str(tmp_path / "webapp-phone.png"))
    finally:
        driver.quit()


@pytest.mark.parametrize("width", [1280, 390])
def test_page_charts_each_notes_surprisal_under_its_score_in_chromium(server, tmp_path, width):
    """Issue 23 item 5: with the surprisal box ticked, a chart under the score: a row per line of
    the score, a dot under each note, the mean in words, a label for screen readers, nothing
    wider than the screen; pointing at a dot colours its note."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = open_browser(tmp_path, width)
    try:
        wait = WebDriverWait(driver, TIMEOUT)
        driver.get(server)
        wait.until(lambda d: d.find_element(By.ID, "message").text == "ready")
        box = driver.find_element(By.NAME, "surprisal")
        assert box.get_attribute("type") == "checkbox" and not box.is_selected()
        assert driver.find_element(By.ID, "help-surprisal").text
        box.click()
        generate_on_page(driver, wait, {"meter": "3/4", "bars": "8", "random_seed": "3"})
        card = driver.find_element(By.CSS_SELECTOR, ".melody")
        chart = card.find_element(By.CSS_SELECTOR, ".surprisal svg")
        melody = shown(driver, card)
        dots = chart.find_elements(By.TAG_NAME, "circle")
        assert len(dots) == sum(s.isdigit() for s in melody["symbols"]) > 0
        mean = melody["surprisal"]["mean_pitch_bits"]
        caption = card.find_element(By.CSS_SELECTOR, ".surprisal figcaption").text
        assert f"{mean:.1f} bits per note on average" in caption
        assert chart.get_attribute("aria-label").startswith("Surprisal per note, in bits")
        lines = len(card.find_elements(By.CSS_SELECTOR, ".score g.system"))
        assert int(chart.get_attribute("height")) == 48 * lines and (width > 500 or lines > 1)
        # each dot under its note: its centre within 2 px of the notehead's, below the score
        misses = driver.execute_script(
            "const [card, dots] = arguments; const melody = card.versions.at(-1);"
            "const score = card.querySelector('.score svg').getBoundingClientRect();"
            "return dots.map((dot, k) => {"
            "  const note = card.querySelector(`[id='${melody.surprisal.drawn[k]}'] .notehead`);"
            "  const [a, b] = [dot, note].map((e) => e.getBoundingClientRect());"
            "  return [Math.abs(a.x + a.width / 2 - b.x - b.width / 2), a.top - score.bottom];"
            "});",
            card,
            dots,
        )
        assert max(x for x, _ in misses) < 2 and min(below for _, below in misses) > 0
        assert driver.execute_script("return document.documentElement.scrollWidth") <= width
        if width > 500:
            driver.set_window_size(1280, 2000)  # the whole card in the screenshot
            ActionChains(driver).move_to_element(dots[0]).perform()
            assert card.find_elements(By.CSS_SELECTOR, ".score g.note.surprised")
            screenshot = os.environ.get("WEBAPP_SURPRISAL_SCREENSHOT")  # docs/webapp-surprisal.png
            card.screenshot(screenshot or str(tmp_path / "webapp-surprisal.png"))
    finally:
        driver.quit()

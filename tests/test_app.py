"""The web app (app.py, melody/webapp.py): the JSON API (FastAPI's TestClient), a real uvicorn
server under 20 concurrent requests and a 50 MB upload, and the page driven by headless Chromium."""

import io
import json
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
import pytest
from conftest import ROOT
from fastapi.testclient import TestClient
from music21 import converter, key, meter, note, stream

import config
from melody import readers, render, webapp

TIMEOUT = 60  # seconds any one request or wait may take, on a busy 2-core machine


@pytest.fixture(scope="module")
def model(structured):
    """A tiny model that knows 2/4, 3/4 and 6/8, major and minor (conftest's songs)."""
    return structured[0] / "model.pth"


@pytest.fixture(scope="module")
def client(model):
    # root: the model's folder, so that a model.pth lying in the worktree is not offered
    with TestClient(webapp.create_app(model, root=model.parent)) as client:
        yield client


def post(client, **controls):
    return client.post("/api/generate", json=controls)


def test_models_list_the_controls_the_checkpoint_takes(client, model):
    models = client.get("/api/models").json()["models"]
    assert [m["id"] for m in models] == [model.as_posix()]
    controls = {c["name"]: c for c in models[0]["controls"]}
    assert controls["meter"]["options"] == ["2/4", "3/4", "6/8"]
    assert controls["mode"]["options"] == ["major", "minor"]
    assert {"steps", "num_melodies", "temperature", "top_p", "key", "bars", "pickup"} <= set(
        controls
    )
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
        ({"temperature": -1}, 422, "temperature must be a positive number"),
        ({"seed": "60 _ 999 x"}, 422, "not in the model's vocabulary: 999 x"),
        ({"meter": "5/4"}, 422, "meter '5/4': this model never saw it"),
        ({"final": 9}, 422, "final must be a scale degree from 1 (the tonic) to 7"),
        ({"mode": "major", "final": 3}, 422, "final 3: no major training song ends on that"),
        ({"key": "H"}, 422, "key must be a tonic"),
        ({"bpm": 0}, 422, "bpm must be a positive number"),
        ({"steps": "many"}, 422, "steps: Input should be a valid integer"),
        ({"colour": "blue"}, 422, "colour: Extra inputs are not permitted"),
        ({"model": "../secret.pth"}, 404, "model '../secret.pth' not found"),
    ],
)
def test_bad_controls_are_refused_with_a_sentence(client, controls, status, words):
    response = post(client, **controls)
    assert response.status_code == status and words in response.json()["error"]


def test_malformed_json_is_refused(client):
    response = client.post(
        "/api/generate", content=b'{"steps": 12,', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("the request is not valid JSON")
    assert client.get("/api/models").status_code == 200  # still serving


def primer_file(suffix):
    """G A B C D C in 2/4, G major, as MIDI or MusicXML bytes."""
    song = stream.Stream(
        [meter.TimeSignature("2/4"), key.Key("G")]
        + [note.Note(m, quarterLength=1) for m in (67, 69, 71, 72, 74, 72)]
    )
    return Path(song.write({".mid": "midi", ".musicxml": "musicxml"}[suffix])).read_bytes()


@pytest.mark.parametrize("suffix", [".mid", ".musicxml"])
def test_primer_upload_becomes_seed_symbols_in_c(client, suffix):
    response = client.post(f"/api/primer?name=tune{suffix}", content=primer_file(suffix))
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
    response = client.post(f"/api/primer?name={name}", content=data)
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
            b"POST /api/primer?name=big.mid HTTP/1.1\r\nHost: x\r\n"
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


def test_page_generates_shows_plays_and_downloads_in_chromium(server, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    binary, driver_path = browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in BROWSER_FLAGS:
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(tmp_path), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(options, webdriver.ChromeService(driver_path))
    try:
        wait = WebDriverWait(driver, TIMEOUT)
        driver.get(server)
        wait.until(lambda d: d.find_element(By.ID, "message").text == "ready")
        listed = json.load(urllib.request.urlopen(server + "/api/models", timeout=TIMEOUT))
        accept = driver.find_element(By.ID, "primer").get_attribute("accept")
        assert accept.split(",") == listed["primer_suffixes"]
        driver.find_element(By.CSS_SELECTOR, "#keyboard [data-midi='60']").click()
        assert driver.find_element(By.ID, "seed").get_attribute("value") == "60 _ _ _"
        driver.find_element(By.NAME, "meter").send_keys("3/4")
        driver.find_element(By.NAME, "bars").send_keys("8")
        driver.find_element(By.ID, "generate").click()
        score = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".melody .score svg"))[0]
        assert score.find_elements(By.CSS_SELECTOR, "g.note")
        audio = driver.find_element(By.CSS_SELECTOR, ".melody audio")
        wait.until(lambda d: d.execute_script("return arguments[0].readyState >= 2", audio))
        assert driver.execute_script("return arguments[0].duration", audio) > 1
        played = driver.execute_async_script(
            "const [audio, done] = arguments;"
            "audio.play().then(() => done(true), (e) => done(String(e)));",
            audio,
        )
        assert played is True
        assert len(driver.find_elements(By.CSS_SELECTOR, "#history li")) == 1
        screenshot = os.environ.get("WEBAPP_SCREENSHOT")  # docs/webapp.png: see the README
        driver.execute_script("arguments[0].pause(); arguments[0].currentTime = 0", audio)
        driver.save_screenshot(screenshot or str(tmp_path / "webapp.png"))
        driver.find_element(By.LINK_TEXT, "MIDI").click()
        wait.until(lambda d: list(tmp_path.glob("*.mid")))
        midi = mido.MidiFile(next(tmp_path.glob("*.mid")))
        assert any(m.type == "note_on" for m in midi.tracks[-1])
    finally:
        driver.quit()

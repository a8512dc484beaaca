"""A local web app: pick a model, give a seed, generate, see each melody's score and hear it.

    python app.py                       # http://127.0.0.1:8000
    python app.py --port 8080 --model runs/big/model.pth

The page (web/index.html, app.js, app.css: no CDN, no build step) talks to a small JSON API,
documented in the README: GET /api/models, POST /api/generate, POST /api/primer, and the files of
each melody under /api/melodies/. The app is melody/webapp.py; generation and rendering run in
worker threads (WEB_WORKERS at once), never on the event loop; models are loaded once and kept.
"""

import argparse

import config
from melody import artefacts, webapp


def main():
    parser = argparse.ArgumentParser(
        description="Serve the melody generator's web page and JSON API.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default=config.WEB_HOST, help="address to listen on")
    parser.add_argument("--port", type=int, default=config.WEB_PORT, help="port to listen on")
    parser.add_argument(
        "--model",
        default=None,
        help="a checkpoint to offer first, beside those found "
        f"({', '.join(config.WEB_MODEL_GLOBS)})",
    )
    parser.add_argument("--max-steps", type=int, default=config.WEB_MAX_STEPS)
    parser.add_argument("--max-melodies", type=int, default=config.WEB_MAX_MELODIES)
    parser.add_argument("--max-upload-bytes", type=int, default=config.WEB_MAX_UPLOAD_BYTES)
    args = parser.parse_args()
    webapp.serve(
        args.host,
        args.port,
        args.model,
        {"steps": args.max_steps, "melodies": args.max_melodies, "upload": args.max_upload_bytes},
    )


if __name__ == "__main__":
    artefacts.run_script(main)

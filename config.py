"""Shared settings. Every script reads its defaults from here; its command-line flags override
them.
"""

# Data
DATASET_PATH = "deutschl/erk"  # folder searched recursively for .krn files
DATASET_ROOT = "deutschl"  # where `preprocess.py --download` unpacks the collection
ESSEN_URL = "https://kern.humdrum.org/data?f=zip&l=/essen/"  # + a region's path: its zip
DOWNLOAD_URL = ESSEN_URL + "europa/deutschl"
ESSEN_ROOT = "essen"  # where `--download REGION` unpacks a region other than deutschl
# The Essen Folksong Collection's regions on the Humdrum site: `preprocess.py --download REGION`
ESSEN_REGIONS = {
    **{
        name: f"europa/{name}"
        for name in (
            "deutschl czech danmark elsass england france italia jugoslav lothring luxembrg magyar "
            "nederlan oesterrh polska romania rossiya schweiz sverige tirol ukraina"
        ).split()
    },
    **{name: f"asia/china/{name}" for name in ("han", "natmin", "shanxi", "xinhua")},
    "africa": "africa",
    "mexico": "america/mexico",
    "usa": "america/usa",
}
DATA_DIR = "data"  # `preprocess.py --name NAME` writes data/NAME/; `train.py --data NAME` reads it
FALLBACK_CORPUS = "essenFolksong/erk*.abc"  # shipped with music21; used when DATASET_PATH is absent
ACCEPTABLE_DURATIONS = [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0]  # in quarter lengths
TIME_STEP = 0.25  # quarter lengths per encoded step (a 16th note)

# Artefacts written by preprocess.py: in the repo root (the tutorial's names, the default flow) or,
# with `--name NAME`, in DATA_DIR/NAME/ under the same names
SAVE_DIR = "music_dataset"
SINGLE_FILE_DATASET = "file_dataset"
MAPPING_PATH = "mapping.json"
SONG_METADATA = "song_metadata.csv"  # per song of file_dataset: meter, pickup, mode, key, source
CACHE_DIR = ".cache"
PARSE_TIMEOUT = 20  # seconds a song may take to read (music21 can take minutes on a damaged file)
# Bounds on one song before music21 sees it (folk songs are a few kB and a few hundred notes):
# a file past them is skipped with its reason, so no file can fill the memory
MAX_SONG_BYTES = 4 * 1024 * 1024  # a song's bytes, an .mxl's score counted unzipped
MAX_FILE_BYTES = 64 * 1024 * 1024  # a file's (an ABC file may hold thousands of tunes)
MAX_SONG_NOTES = 20_000  # notes and rests in a song
MAX_MIDI_EVENTS = 100_000  # events of a MIDI file (pitch bends and the like count: mido is slow)
MAX_SONG_QUARTERS = 16_384  # quarter notes from its start to its end (1,024 bars of 4/4)
MAX_BAR_QUARTERS = 64  # a meter's bar (16/4): music21 fills memory for a meter like 9999999/4
MAX_HELD_BARS = 8  # a longer note or silence in a MIDI file marks a damaged file, not a song
# Address space a song's read may take beyond what its process maps: a primer's child process,
# each song in a preprocessing worker (preprocess.py --parse-memory)
PARSE_MEMORY_BYTES = 2 * 1024**3
STALE_TEMP_SECONDS = 3600  # a temporary file this old beside an artefact is an interrupted run's

# Model and training
SEQUENCE_LENGTH = 64  # `/` symbols between songs in file_dataset (the tutorial's window)
MAX_BARS_LEFT = 32  # the model is told the bars still to come up to this many ("32 or more")
ARCH = "lstm"  # train.py --arch: "lstm" or "transformer" (melody.models.ARCHITECTURES)
# LSTM (train.py --units, --dropout)
NUM_UNITS = [256]  # one LSTM layer per entry
DROPOUT = 0.3  # less overfits erk (docs/training.md)
# Transformer (train.py --layers, --heads, --kv-heads, --width, --context, --dropout,
# --weight-decay, --warmup): sized for a CPU (docs/training.md says how these were chosen); a GPU
# recipe is in bench/gpu_deutschl.sh.
TRANSFORMER_LAYERS = 2
TRANSFORMER_HEADS = 8
TRANSFORMER_KV_HEADS = 1  # each shared by TRANSFORMER_HEADS // TRANSFORMER_KV_HEADS query heads
TRANSFORMER_WIDTH = 128
TRANSFORMER_CONTEXT = 256  # steps each step attends to; the window slides past it
TRANSFORMER_DROPOUT = 0.1
TRANSFORMER_LEARNING_RATE = 0.002  # the Transformer's LEARNING_RATE, after its warm-up
TRANSFORMER_MIN_LEARNING_RATE = 0.0002  # and its MIN_LEARNING_RATE
WEIGHT_DECAY = 0.1  # AdamW's, on the Transformer's weight matrices
WARMUP_STEPS = 100  # batches over which the Transformer's learning rate rises linearly
LEARNING_RATE = 0.001  # at the first epoch
MIN_LEARNING_RATE = 0.001  # at the last epoch, along a cosine; = LEARNING_RATE: constant
TRAINING_WINDOW = 256  # steps per training window (train.py --seq-len)
BATCH_SIZE = 16  # training windows per batch
EPOCHS = 50
VALIDATION_SPLIT = 0.1  # share of songs held out, split by song
# share of training songs whose form the model is not told: so that it also writes without one
# (form "-"), and so that evaluate.py can score held-out songs told nothing of their form
FORM_UNTOLD = 0.2
PATIENCE = 0  # stop after this many epochs without a better validation loss; 0 = never
# LSTM gradients spike now and then: clipping keeps one spike from undoing an epoch
GRAD_CLIP_NORM = 1.0
SEED = 42
MODEL_PATH = "model.pth"  # best epoch: everything sampling needs
TRAIN_STATE_PATH = "train_state.pth"  # last epoch, with optimizer state, for --resume
TRAINING_LOG = "training_log.csv"
TRAINING_PLOT = "training_curve.png"
RUNS_DIR = "runs"  # `train.py --data NAME` writes the four files above in RUNS_DIR/NAME/
# melodygenerator.py's model when there is no MODEL_PATH: one that ships with the repo
PRETRAINED_MODEL = "pretrained/deutschl-transformer/model.pth"

# Generation and evaluation
OUTPUT_PATH = "generated.mid"
SEED_MELODY = (
    "55 _ _ _ 60 _ _ _ 55 _ _ _ 55 _"  # the tutorial's seed (G C G G); "" starts from nothing
)
PRIMER_BARS = 2  # bars of a primer file (melodygenerator.py --primer) the melody continues
GENERATION_STEPS = 500  # most symbols generated per melody; a melody may end sooner, at `/`
TEMPERATURE = 1.0  # 1 samples the model's own distribution; lower is safer, higher is wilder
# Each note's pitch, apart from when notes start: below 1 the model's likelier pitches more
# often (docs/controls.md, 'Sampling', says why this default)
PITCH_TEMPERATURE = 0.85
SMALL_BATCH = 8  # sampling up to this many melodies on a CPU uses one torch thread (model.py)
TOP_P = None  # sample among the likeliest symbols up to this mass; None: all of them
# Melodies sampled per melody returned; the one that best fits its plan's final and ambitus is
# kept (melodygenerator.generate_melody's candidates)
END_CANDIDATES = 8
# ... and nearest its number of notes: this many notes off it weigh as a semitone off its ambitus
NOTES_PER_SEMITONE = 2
# Samples of a gap in a melody that regenerate weighs by how well the bars after it follow
EDIT_CANDIDATES = 64
BPM = 120
TIME_SIGNATURE = "4/4"  # the meter of a melody that has none (a plain list, or an old model)
EVALUATION_DIR = "evaluation"
NUM_EVAL_MELODIES = 200  # melodies evaluate.py samples per model to compare with the held-out songs
EVAL_METERS = ["2/4", "3/4", "4/4", "6/8"]  # evaluate.py asks for each of these meters
MAX_NGRAM_ORDER = 10  # evaluate.py tries n-gram baselines of orders 1..this
# evaluate.py's classifier two-sample test (twosample.py) and listening-test kit
CV_FOLDS = 5  # stratified cross-validation folds
BOOTSTRAP_RESAMPLES = 1000  # resamples of the melodies for the AUC's 95% interval
PERMUTATION_REPEATS = 5  # permutations per feature family for its importance
TOP_FEATURES = 5  # feature families and single features the report names per comparison
LISTENING_MIN_STEPS = 16  # shorter generated melodies (a bar of 4/4) are too short to judge by ear
SURPRISAL_SONGS = 3  # held-out songs evaluate.py draws with each note's bits under the score
# bench/idyom.py: bits per note beside IDyOM's (Pearce 2005), 10-fold cross-validation on Essen
# sets; small models and few epochs, sized for a few hundred songs on a CPU
IDYOM_DEUTSCHL = "../shared/deutschl"  # the Essen deutschl folders (kinder, fink, ...)
IDYOM_SETS = ["kinder", "fink"]
IDYOM_FOLDS = 10
IDYOM_WORK = "runs/idyom"  # preprocessed songs, each fold's data and model
IDYOM_UNITS = [128]  # the LSTM's: small, for a few hundred training songs
IDYOM_DROPOUT = 0.3
IDYOM_BATCH_SIZE = 8  # small batches of short windows: enough updates from a few hundred songs
IDYOM_WINDOW = 64
IDYOM_LEARNING_RATE = 0.003  # the LSTM's, along a cosine to a tenth of it
IDYOM_EPOCHS = 25
IDYOM_PRETRAIN_EPOCHS = 5  # on deutschl outside the sets, before each fold's fine-tuning
IDYOM_FINETUNE_EPOCHS = 5  # at a third of IDYOM_LEARNING_RATE
IDYOM_KEYS = 24  # the written keys a song is moved from: 12 tonics x major/minor
IDYOM_LTM_STM_BIAS = 7  # IDyOM's default *ltm-stm-bias*: the short-term model's entropy weights
IDYOM_VIEWPOINT_BIAS = 2  # IDyOM's default *viewpoint-bias*: the STM's pitch and interval models
# bench/idyom.py's short-term model (bench/idyom_stm.py; its flags' defaults). The escape method
# (IDyOM's a, b, c, d or x): IDyOM's STM default is "x" (bench/results/idyom.md)
IDYOM_STM_ESCAPE = "c"
IDYOM_STM_VIEWPOINTS = ["pitch", "interval"]  # IDyOM's cpitch and cpint
IDYOM_STM_COMBINE = "viewpoints-first"  # as IDyOM: the STM's viewpoints first, then LTM and STM
# other short-term models that --stm-variants scores beside it: their changes to the above
IDYOM_STM_VARIANTS = {
    "idyom-default": {"escape": "x", "viewpoints": ["pitch"]},
    "pitch-c": {"viewpoints": ["pitch"]},
    "interval-x": {"escape": "x", "viewpoints": ["interval"]},
    "pitch-interval-x": {"escape": "x"},
    "pitch-interval-x-at-once": {"escape": "x", "combine": "at-once"},
}

# Web app (app.py): loopback by default; each limit is refused with a 4xx and a sentence
WEB_HOST = "127.0.0.1"
WEB_PORT = 8000
WEB_MODEL_GLOBS = ["model.pth", "runs/*/model.pth", "pretrained/*/model.pth"]
WEB_STEPS = 256  # the page's default number of steps
WEB_MAX_STEPS = 4096  # most steps per melody a request may ask for
WEB_MAX_MELODIES = 8  # most melodies per request (each sampled END_CANDIDATES times)
WEB_MAX_AMBITUS = 48  # the widest ambitus the page offers, in semitones
WEB_MAX_UPLOAD_BYTES = 2 * 1024 * 1024  # a primer file (folk-song MIDI files are a few kB)
WEB_MAX_JSON_BYTES = 64 * 1024  # a request's controls
WEB_PRIMER_BARS = 2  # bars of an uploaded primer that become the seed
WEB_WORKERS = 2  # generations at once (threads): more only queue for the same CPU cores
WEB_STORE_BYTES = 8 * 1024 * 1024  # melodies kept downloadable, by size (oldest forgotten first)
WEB_MIN_BPM = 20  # the tempo control's range, quarter notes per minute
WEB_MAX_BPM = 400
WEB_MAX_BARS = 64  # most bars a request may ask for (their steps must fit under WEB_MAX_STEPS)
WEB_MAX_TEMPERATURE = 5.0  # hotter samples only noise
WEB_MAX_SEED_SYMBOLS = 1024  # every symbol of a seed is run through the model, holding a worker
WEB_MAX_SOUND_SECONDS = 600  # longest WAV a melody may make (its samples are held in memory)
WEB_MAX_NESTING = 8  # JSON nested deeper is refused before it is parsed
WEB_SCORE_WIDTH = 945  # the score's width in CSS pixels unless the page says its own
WEB_PARSE_TIMEOUT = 2  # seconds an uploaded primer may take to read (a folk song is quick)

"""Main job (``./run.sh``): segment and track a video into a FiftyOne dataset.

    python -m samtrack_ops.cli [--video PATH] [--mode automatic|interactive|fusion] [--box X0,Y0,X1,Y1]
                               [--text "person. car"] [--dataset NAME] [checkpoint options]

Default prompt: automatic mode (SAM "segment everything" on key frames, new objects found by comparing
mask results), so the demo needs no clicks. ``--box`` (pixels on frame 1) or ``--text`` (Grounding-DINO
classes on frame 1) switch to prompted tracking. Without ``--video`` the first clip of FiftyOne's
``quickstart-video`` zoo dataset is used (downloaded on first use).

Checkpoints come from the cache (``SAMTRACK_CACHE_DIR``, downloaded on first use) or the explicit
``--*-checkpoint`` options. When one is missing and cannot be downloaded, the job stops before any work
and prints which files to fetch, from where, and where to put them. ``--random-weights`` (developers
only) writes random-weight checkpoints to a temporary folder and runs the same path with them.

Exit status: 0 done, 2 missing or bad input (checkpoints, video, arguments).
"""

import argparse
import sys
import tempfile
from pathlib import Path

from samtrack_ops import models
from samtrack_ops.prompts import Box, PromptError, Text

EXIT_BAD_INPUT = 2
DEMO_ZOO_DATASET = "quickstart-video"
LOCAL_DEMO_HINT = "../shared/data/blackswan.mp4"


class InputError(Exception):
    """A problem with what the user supplied (or failed to supply); the message says what to do."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="run.sh", description="Segment and track a video into a FiftyOne dataset.",
        epilog="Without --box/--text the objects are found automatically (SAM segment-everything).")
    parser.add_argument("--video", type=Path, help=f"video file (default: FiftyOne's {DEMO_ZOO_DATASET} zoo clip)")
    parser.add_argument("--dataset", help="FiftyOne dataset to write into (default: samtrack-<video name>)")
    parser.add_argument("--label-field", default="samtrack", help="frame field for the tracks (default: samtrack)")
    parser.add_argument("--mode", choices=("automatic", "interactive", "fusion"),
                        help="default: interactive with --box/--text, else automatic")
    parser.add_argument("--box", type=_parse_box, help="object box on the first frame, pixels: X0,Y0,X1,Y1")
    parser.add_argument("--text", help="object classes for Grounding-DINO on the first frame, e.g. 'person. car'")
    parser.add_argument("--sam-model", default="vit_b", choices=("vit_b", "vit_l", "vit_h"))
    parser.add_argument("--tracker-model", default="r50_deaotl",
                        choices=[name for name, entry in models.CHECKPOINTS.items() if entry.family == "deaot"])
    parser.add_argument("--detector-model", default="groundingdino_swint_ogc",
                        choices=[name for name, entry in models.CHECKPOINTS.items() if entry.family == "groundingdino"])
    parser.add_argument("--sam-checkpoint", type=Path, help="existing SAM checkpoint file")
    parser.add_argument("--tracker-checkpoint", type=Path, help="existing DeAOT checkpoint file")
    parser.add_argument("--detector-checkpoint", type=Path, help="existing Grounding-DINO checkpoint file")
    parser.add_argument("--text-encoder", type=Path,
                        help=f"local BERT folder for Grounding-DINO (env {models.TEXT_ENCODER_ENV})")
    parser.add_argument("--cache-dir", type=Path, help=f"checkpoint cache (env {models.CACHE_DIR_ENV})")
    parser.add_argument("--no-download", action="store_true", help="never download checkpoints")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--seed-exact", action="store_true",
                        help="automatic mode: reproduce the Segment-and-Track-Anything seed's segment-everything "
                             "label maps exactly (BGR input, generator paint order, reused highest ID)")
    parser.add_argument("--random-weights", action="store_true",
                        help="DEVELOPERS ONLY: run with random-weight checkpoints (meaningless output)")
    args = parser.parse_args(argv)
    explicit = [args.sam_checkpoint, args.tracker_checkpoint, args.detector_checkpoint, args.text_encoder]
    if args.random_weights and any(explicit):
        parser.error("--random-weights writes its own checkpoints; leave out the --*-checkpoint/--text-encoder options")
    args.mode = args.mode or ("interactive" if args.box is not None or args.text else "automatic")
    return args


def _parse_box(text):
    try:
        values = [float(value) for value in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"--box wants four numbers X0,Y0,X1,Y1 in pixels, got {text!r}")
    return values


# --- checkpoints -------------------------------------------------------------------------------------


def needed_checkpoints(args):
    """{option name: (registry name, explicit path or None)} of the models this run loads."""
    needed = {
        "sam_checkpoint": (f"sam_{args.sam_model}", args.sam_checkpoint),
        "tracker_checkpoint": (args.tracker_model, args.tracker_checkpoint),
    }
    if args.text:
        needed["detector_checkpoint"] = (args.detector_model, args.detector_checkpoint)
    return needed


def resolve_model_files(args):
    """Model-file options for track_samples; InputError listing every missing or bad file at once."""
    files, problems = {}, []
    for option, (name, path) in needed_checkpoints(args).items():
        try:
            files[option] = models.resolve_checkpoint(name, path=path, cache=args.cache_dir,
                                                      download=not args.no_download)
        except models.CheckpointError as error:
            problems.append(str(error))
    if args.text:
        try:
            files["text_encoder_path"] = models.resolve_text_encoder(args.text_encoder)
        except models.CheckpointError as error:
            problems.append(str(error))
    if problems:
        raise InputError("Cannot start: model files are missing or unusable.\n\n" + "\n\n".join(problems))
    return files


def random_model_files(args, folder):
    """Writes random-weight checkpoints for this run into ``folder``; same options as above."""
    _warn_loudly(f"--random-weights: RANDOM model weights (written to {folder}). The masks and tracks are "
                 f"MEANINGLESS; this only checks that the pipeline runs. Never use them as results.")
    names = {option: name for option, (name, _) in needed_checkpoints(args).items()}
    from samtrack_ops.random_checkpoints import write_random_checkpoints

    written = write_random_checkpoints(folder, names.values())
    files = {option: written[name] for option, name in names.items()}
    if args.text:
        files["text_encoder_path"] = str(written["text_encoder"])
    return files


def _warn_loudly(message):
    bar = "!" * 100
    print(f"\n{bar}\n!!! WARNING: {message}\n{bar}\n", file=sys.stderr, flush=True)


# --- video and dataset -------------------------------------------------------------------------------


def open_samples(args):
    """The sample collection to track: the given video in a dataset, or the zoo demo clip."""
    import fiftyone as fo
    from fiftyone import ViewField as F

    if args.video is None:
        return _demo_samples()
    video = args.video.expanduser().resolve()
    if not video.is_file():
        raise InputError(f"--video {args.video}: no such file. Give the path of a video file.")
    name = args.dataset or f"samtrack-{video.stem}"
    dataset = fo.load_dataset(name) if fo.dataset_exists(name) else fo.Dataset(name, persistent=True)
    if not len(dataset.match(F("filepath") == str(video))):
        dataset.add_sample(fo.Sample(filepath=str(video)))
    samples = dataset.match(F("filepath") == str(video))
    samples.compute_metadata()
    if samples.first().metadata is None or not samples.first().metadata.total_frame_count:
        raise InputError(f"--video {args.video}: FiftyOne cannot read it as a video (no frames found).")
    return samples


def _demo_samples():
    import fiftyone.zoo as foz

    try:
        dataset = foz.load_zoo_dataset(DEMO_ZOO_DATASET, persistent=True)
    except Exception as error:  # any download/parse failure means: no demo video here
        raise InputError(
            f"No --video given and FiftyOne's {DEMO_ZOO_DATASET!r} zoo dataset is not available "
            f"({type(error).__name__}: {error}). Pass a local video with --video PATH "
            f"(e.g. --video {LOCAL_DEMO_HINT}).") from error
    return dataset.limit(1)


def build_prompts(args):
    """Prompts on the first frame (0-based index 0) from --box / --text; none in automatic mode."""
    prompts = []
    if args.box is not None:
        prompts.append(Box(frame=0, box_xyxy=args.box, label="object"))
    if args.text:
        prompts.append(Text(frame=0, text=args.text))
    return prompts


def _summary(samples, label_field):
    frames = sum(sample.metadata.total_frame_count or 0 for sample in samples)
    labelled = samples.count(f"frames.{label_field}")
    track_ids = samples.distinct(f"frames.{label_field}.detections.index")
    dataset = samples.dataset_name
    return (f"Tracked {len(samples)} video(s), {frames} frames: {labelled} frames with labels, "
            f"{len(track_ids)} track IDs, in dataset {dataset!r}, field frames.{label_field}.\n"
            f"View it: python -c \"import fiftyone as fo; fo.launch_app(fo.load_dataset('{dataset}')).wait()\"")


def run(args):
    prompts = build_prompts(args)
    model_files = {} if args.random_weights else resolve_model_files(args)  # fails fast, before any work
    samples = open_samples(args)
    from samtrack_ops.fiftyone import track_samples

    options = {"sam_model": args.sam_model, "tracker_model": args.tracker_model, "device": args.device}
    if args.text:
        options["detector_model"] = args.detector_model
    if args.seed_exact:
        options["seed_exact"] = True
    with tempfile.TemporaryDirectory(prefix="samtrack-random-weights-") as scratch:
        if args.random_weights:
            model_files = random_model_files(args, Path(scratch))
        track_samples(samples, prompts, args.label_field, mode=args.mode, progress=_print_progress,
                      **options, **model_files)
    print(file=sys.stderr)
    print(_summary(samples, args.label_field))


def _print_progress(fraction, message):
    print(f"\r[{fraction:6.1%}] {message:<70.70}", end="", file=sys.stderr, flush=True)


def main(argv=None):
    args = parse_args(argv)
    try:
        run(args)
    except (InputError, PromptError, models.CheckpointError) as error:
        print(f"samtrack: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())

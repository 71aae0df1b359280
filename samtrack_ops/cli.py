"""Main job (``./run.sh``): segment and track a video into a FiftyOne dataset.

    python -m samtrack_ops.cli [--video PATH] [--mode automatic|interactive|fusion]
                               [--label NAME] [--click X,Y[,+|-] ...] [--box X0,Y0,X1,Y1 ...] [--text "person. car"]
                               [--frames FIRST:LAST] [--max-frames N] [--dataset NAME] [--app] [model options]

Default prompt: automatic mode (SAM "segment everything" on key frames, new objects found by comparing
mask results), so the demo needs no clicks. ``--click``/``--box`` (pixels) or ``--text`` (Grounding-DINO
classes) on the first tracked frame switch to prompted tracking; ``--label NAME`` names the object of
the clicks and boxes after it. Without ``--video`` the first clip of FiftyOne's ``quickstart-video`` zoo
dataset is used (downloaded on first use).

Checkpoints come from the cache (``SAMTRACK_CACHE_DIR``, downloaded on first use) or the explicit
``--*-checkpoint`` options. When one is missing and cannot be downloaded, the job stops before any work
and prints which files to fetch, from where, and where to put them. ``--random-weights`` (developers
only) writes random-weight checkpoints to a temporary folder and runs the same path with them.

Output: stdout holds only the closing summary; stages, progress bars and FiftyOne's own messages go to
stderr. Every argument is checked before a model loads or the dataset is touched; a run that fails
removes what it added (a new dataset, or the sample it added to an existing one).

Exit status: 0 done, 2 missing or bad input (checkpoints, video, arguments).
"""

import argparse
import contextlib
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path

from samtrack_ops import models
from samtrack_ops.prompts import Box, Click, PromptError, Text

EXIT_BAD_INPUT = 2
DEMO_ZOO_DATASET = "quickstart-video"
LOCAL_DEMO_HINT = "../shared/data/blackswan.mp4"
SAM_MODELS, TRACKER_MODELS, DETECTOR_MODELS = models.SAM_MODELS, models.TRACKER_MODELS, models.DETECTOR_MODELS
DEVICE_TYPES = ("cpu", "cuda")


class InputError(Exception):
    """A problem with what the user supplied (or failed to supply); the message says what to do."""


# --- arguments ---------------------------------------------------------------------------------------


class _InOrder(argparse.Action):
    """Appends (option kind, parsed value) to ``args.objects``, keeping the command line's order."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, "objects", None) is None:
            namespace.objects = []
        namespace.objects.append((self.dest, values))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="run.sh", description="Segment and track a video into a FiftyOne dataset.",
        epilog="Without --click/--box/--text the objects are found automatically (SAM segment-everything). "
               "Objects: the --click options form one object; every --box is one object; --label NAME names "
               "the object(s) of the --click/--box options after it and starts a new click object. Example: "
               "--label swan --click 430,250 --click 600,100,- --label rock --box 10,300,120,420")
    parser.add_argument("--video", type=Path, help=f"video file (default: FiftyOne's {DEMO_ZOO_DATASET} zoo clip)")
    parser.add_argument("--dataset", help="FiftyOne dataset to write into (default: samtrack-<video name>)")
    parser.add_argument("--label-field", default="samtrack",
                        help="frame field for the tracks, letters/digits/_ (default: samtrack)")
    parser.add_argument("--mode", choices=("automatic", "interactive", "fusion"),
                        help="default: interactive with --click/--box/--text, else automatic; automatic takes no "
                             "clicks or boxes, and there --text names the classes to find")
    parser.add_argument("--click", dest="click", action=_InOrder, type=_parse_click, metavar="X,Y[,+|-]",
                        help="a click in pixels on the first tracked frame, + positive (default) or - negative; "
                             "repeat for more points on the same object")
    parser.add_argument("--box", dest="box", action=_InOrder, type=_parse_box, metavar="X0,Y0,X1,Y1",
                        help="a box around one object in pixels on the first tracked frame (repeatable)")
    parser.add_argument("--label", dest="label", action=_InOrder, metavar="NAME",
                        help="name of the object given by the --click/--box options that follow (default: object)")
    parser.add_argument("--text", help="object classes for Grounding-DINO, e.g. 'person. car' (on the first tracked "
                                       "frame; with --mode automatic: the classes to look for every --sam-gap frames)")
    parser.add_argument("--frames", type=_parse_frames, metavar="FIRST:LAST",
                        help="track only these frame numbers (1-based as in the App, LAST included; '10:' or ':20' "
                             "leave one end open); prompts are on FIRST")
    parser.add_argument("--max-frames", type=_positive_int, metavar="N", help="track at most N frames (from FIRST)")
    parser.add_argument("--sam-gap", type=_positive_int, metavar="N",
                        help="automatic/fusion: look for new objects every N frames (default: 10)")
    parser.add_argument("--sam-model", default="vit_b", choices=SAM_MODELS,
                        help="SAM size, small to large: %(choices)s (default: %(default)s)")
    parser.add_argument("--tracker-model", default="r50_deaotl", choices=TRACKER_MODELS,
                        help="DeAOT tracker variant: %(choices)s (default: %(default)s)")
    parser.add_argument("--detector-model", default="groundingdino_swint_ogc", choices=DETECTOR_MODELS,
                        help="Grounding-DINO for --text: %(choices)s (default: %(default)s)")
    parser.add_argument("--sam-checkpoint", type=Path, help="existing SAM checkpoint file")
    parser.add_argument("--tracker-checkpoint", type=Path, help="existing DeAOT checkpoint file")
    parser.add_argument("--detector-checkpoint", type=Path, help="existing Grounding-DINO checkpoint file")
    parser.add_argument("--text-encoder", type=Path,
                        help=f"local BERT folder for Grounding-DINO (env {models.TEXT_ENCODER_ENV})")
    parser.add_argument("--cache-dir", type=Path, help=f"checkpoint cache (env {models.CACHE_DIR_ENV})")
    parser.add_argument("--no-download", action="store_true", help="never download checkpoints")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--app", action="store_true",
                        help="open the dataset in the FiftyOne App when done (until Ctrl-C)")
    parser.add_argument("--seed-exact", action="store_true",
                        help="automatic mode: reproduce the Segment-and-Track-Anything seed's segment-everything "
                             "label maps exactly (BGR input, generator paint order, reused highest ID)")
    parser.add_argument("--random-weights", action="store_true",
                        help="DEVELOPERS ONLY: run with random-weight checkpoints (meaningless output)")
    parser.set_defaults(objects=None)
    args = parser.parse_args(argv)
    args.objects = args.objects or []
    explicit = [args.sam_checkpoint, args.tracker_checkpoint, args.detector_checkpoint, args.text_encoder]
    if args.random_weights and any(explicit):
        parser.error("--random-weights writes its own checkpoints; leave out the --*-checkpoint/--text-encoder options")
    prompted = any(kind != "label" for kind, _ in args.objects) or args.text
    args.mode = args.mode or ("interactive" if prompted else "automatic")
    return args


def _numbers(text, count, option, form):
    try:
        values = [float(value) for value in text.split(",")]
    except ValueError:
        values = []
    if len(values) != count:
        raise argparse.ArgumentTypeError(f"{option} wants {form} in pixels, got {text!r}")
    return values


def _parse_box(text):
    return _numbers(text, 4, "--box", "four numbers X0,Y0,X1,Y1")


def _parse_click(text):
    """'X,Y' or 'X,Y,+' -> (x, y, 1); 'X,Y,-' -> (x, y, 0)."""
    parts = text.split(",")
    sign = parts.pop().strip() if len(parts) == 3 else "+"
    if sign not in ("+", "-"):
        raise argparse.ArgumentTypeError(f"--click wants X,Y or X,Y,+ (positive) or X,Y,- (negative), got {text!r}")
    x, y = _numbers(",".join(parts), 2, "--click", "X,Y[,+|-]")
    return x, y, 1 if sign == "+" else 0


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"wants a whole number of at least 1, got {text!r}")
    return value


def _parse_frames(text):
    """'FIRST:LAST' (1-based, LAST included, either end may be empty) -> (first, last or None)."""
    first, separator, last = text.partition(":")
    try:
        bounds = (int(first) if first.strip() else 1, int(last) if last.strip() else None)
    except ValueError:
        bounds = None
    if not separator or bounds is None or bounds[0] < 1 or (bounds[1] is not None and bounds[1] < bounds[0]):
        raise argparse.ArgumentTypeError(
            f"--frames wants FIRST:LAST frame numbers, 1-based with FIRST <= LAST (e.g. 1:50, 10: or :20), got {text!r}")
    return bounds


def frame_range(args):
    """The pipeline's 0-based ``frame_range`` (start, stop) of --frames/--max-frames, or None for all frames."""
    first, last = args.frames or (1, None)
    stop = last
    if args.max_frames is not None:
        stop = first - 1 + args.max_frames if stop is None else min(stop, first - 1 + args.max_frames)
    return None if (first, stop) == (1, None) else (first - 1, stop)


def check_args(args):
    """Checks that need no model, video or database: InputError saying what to change."""
    from samtrack_ops.fiftyone.runs import check_label_field

    try:
        check_label_field(args.label_field)
    except ValueError as error:
        raise InputError(f"--label-field: {error}") from None
    object_options = sorted({f"--{kind}" for kind, _ in args.objects if kind != "label"})
    if args.mode == "automatic" and object_options:
        raise InputError(f"--mode automatic finds objects by itself and takes no {'/'.join(object_options)}; use "
                         f"--mode fusion to track your objects and find new ones too, or leave out --mode")
    if args.mode == "interactive" and not (object_options or args.text):
        raise InputError("--mode interactive needs prompts: give --click, --box or --text, or use --mode automatic")
    if args.objects and args.objects[-1][0] == "label":
        raise InputError(f"--label {args.objects[-1][1]!r} names no object: put the object's --click or --box "
                         f"options after it")
    check_device(args.device)


def check_device(device):
    """InputError unless ``device`` is None, cpu, or a CUDA device this machine has."""
    if device is None:
        return
    import torch

    hint = "use --device cpu, --device cuda (cuda:N for the N-th GPU), or leave it out to pick cuda when available"
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise InputError(f"--device {device!r} is not a device name: {hint}") from None
    if parsed.type not in DEVICE_TYPES:
        raise InputError(f"--device {device!r}: samtrack runs on {' or '.join(DEVICE_TYPES)}; {hint}")
    if parsed.type == "cuda":
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (parsed.index or 0) >= available:
            raise InputError(f"--device {device!r}, but PyTorch sees {available} CUDA GPU(s) here: {hint}")


# --- checkpoints -------------------------------------------------------------------------------------


def _uses_detector(args):
    return bool(args.text)


def needed_checkpoints(args):
    """{option name: (registry name, explicit path or None)} of the models this run loads."""
    needed = {
        "sam_checkpoint": (f"sam_{args.sam_model}", args.sam_checkpoint),
        "tracker_checkpoint": (args.tracker_model, args.tracker_checkpoint),
    }
    if _uses_detector(args):
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
    if _uses_detector(args):
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
    if _uses_detector(args):
        files["text_encoder_path"] = str(written["text_encoder"])
    return files


def _warn_loudly(message):
    bar = "!" * 100
    print(f"\n{bar}\n!!! WARNING: {message}\n{bar}\n", file=sys.stderr, flush=True)


# --- video and dataset -------------------------------------------------------------------------------


def check_video(args):
    """InputError unless --video (when given) is a file OpenCV decodes at least one frame of."""
    if args.video is None:
        return
    from samtrack_ops.video import VideoError, open_frames

    video = args.video.expanduser()
    if not video.is_file():
        raise InputError(f"--video {args.video}: no such file. Give the path of a video file.")
    try:
        next(iter(open_frames(video)))
    except VideoError as error:
        raise InputError(f"--video {args.video}: not a video samtrack can read ({error}).") from None


@contextlib.contextmanager
def opened_samples(args):
    """The sample collection to track (the given video in a dataset, or the zoo demo clip).

    If the block raises, what this call added is removed again: the dataset it created, or the sample it
    added to an existing dataset (samples and datasets that were there before are never touched).
    """
    if args.video is None:
        yield _demo_samples()
        return
    import fiftyone as fo
    from fiftyone import ViewField as F

    video = str(args.video.expanduser().resolve())
    name = args.dataset or f"samtrack-{Path(video).stem}"
    created = not fo.dataset_exists(name)
    dataset = fo.Dataset(name, persistent=True) if created else fo.load_dataset(name)
    added = None
    try:
        if not len(dataset.match(F("filepath") == video)):
            added = dataset.add_sample(fo.Sample(filepath=video))
        samples = dataset.match(F("filepath") == video)
        samples.compute_metadata(progress=False)
        if samples.first().metadata is None or not samples.first().metadata.total_frame_count:
            raise InputError(f"--video {args.video}: FiftyOne cannot read it as a video (no frames found).")
        yield samples
    except BaseException:
        if created:
            dataset.delete()
        elif added is not None:
            dataset.delete_samples([added])
        raise


def _demo_samples():
    import fiftyone.zoo as foz

    try:
        dataset = foz.load_zoo_dataset(DEMO_ZOO_DATASET, persistent=True)
    except Exception as error:  # any download/parse failure means: no demo video here
        raise InputError(
            f"No --video given and FiftyOne's {DEMO_ZOO_DATASET!r} zoo dataset is not available "
            f"({type(error).__name__}: {error}). Pass a local video with --video PATH "
            f"(e.g. --video {LOCAL_DEMO_HINT}).") from error
    samples = dataset.limit(1)
    samples.compute_metadata(progress=False)
    return samples


def check_prompts_fit(samples, frames, prompts):
    """InputError (PromptError) when --frames starts after the video's last frame or a prompt lies outside it."""
    from samtrack_ops.fiftyone.prompts import frame_size

    sample = samples.first()
    count = sample.metadata.total_frame_count
    if frames is not None and frames[0] >= count:
        raise InputError(f"--frames starts at frame {frames[0] + 1}, but {sample.filepath} has {count} frames "
                         f"(1..{count})")
    for prompt in prompts:
        prompt.validate(frame_size(sample))


def build_prompts(args, frame):
    """The prompts on 0-based ``frame`` from --label/--click/--box (in order) and --text (not in automatic mode)."""
    prompts, label, clicks = [], None, []

    def close_click_object():
        if clicks:
            prompts.append(Click(frame=frame, points=[c[:2] for c in clicks], labels=[c[2] for c in clicks],
                                 label=label or "object"))
            clicks.clear()

    for kind, value in args.objects:
        if kind == "label":
            close_click_object()
            label = value
        elif kind == "click":
            clicks.append(value)
        else:
            prompts.append(Box(frame=frame, box_xyxy=value, label=label or "object"))
    close_click_object()
    if args.text and args.mode != "automatic":
        prompts.append(Text(frame=frame, text=args.text))
    return prompts


def pipeline_options(args, frames):
    options = {"sam_model": args.sam_model, "tracker_model": args.tracker_model, "device": args.device}
    if _uses_detector(args):
        options["detector_model"] = args.detector_model
    if args.text and args.mode == "automatic":
        options["auto_text"] = args.text
    if frames is not None:
        options["frame_range"] = frames
    if args.sam_gap is not None:
        options["sam_gap"] = args.sam_gap
    if args.seed_exact:
        options["seed_exact"] = True
    return options


# --- progress and summary ----------------------------------------------------------------------------


class StderrProgress:
    """A ``track_samples`` progress callback: each new stage as a line, frames as a tqdm bar (all on stderr)."""

    def __init__(self):
        self.bar = None
        self.stage = None

    def __call__(self, progress):
        from tqdm import tqdm

        if progress.stage != self.stage:
            self.stage = progress.stage
            (self.bar.write if self.bar else print)(f"samtrack: {progress.stage}", file=sys.stderr)
        if self.bar is None and progress.iteration:  # from the first frame on: the rate is the tracking rate
            self.bar = tqdm(total=progress.total, initial=progress.iteration - 1, unit="frame", file=sys.stderr,
                            dynamic_ncols=True)
        if self.bar is not None:
            self.bar.update(progress.iteration - self.bar.n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def stage(message):
    print(f"samtrack: {message}", file=sys.stderr, flush=True)


def summary(samples, label_field, frames):
    total = sum(count or 0 for count in samples.values("metadata.total_frame_count"))
    labelled = samples.count(f"frames.{label_field}")
    track_ids = samples.distinct(f"frames.{label_field}.detections.index")
    dataset = samples.dataset_name
    tracked = ""
    if frames is not None:
        tracked = f" (frames {frames[0] + 1}..{min(total, frames[1] or total)} tracked)"
    view = f"import fiftyone as fo; fo.launch_app(fo.load_dataset({json.dumps(dataset)})).wait()"
    return (f"Tracked {len(samples)} video(s), {total} frames{tracked}: {labelled} frames with labels, "
            f"{len(track_ids)} track IDs, in dataset {dataset!r}, field frames.{label_field}.\n"
            f"View it: {shlex.quote(sys.executable)} -c {shlex.quote(view)}   (or run again with --app)")


def open_app(samples):
    import fiftyone as fo

    session = fo.launch_app(fo.load_dataset(samples.dataset_name))
    stage(f"the App shows dataset {samples.dataset_name!r} at {session.url}; press Ctrl-C to quit")
    try:
        session.wait()
    except KeyboardInterrupt:
        pass


# --- the job -----------------------------------------------------------------------------------------


def run(args, out):
    """Checks everything, tracks, writes the summary to ``out``; progress and messages go to stderr."""
    check_args(args)
    check_video(args)
    frames = frame_range(args)
    prompts = build_prompts(args, frames[0] if frames else 0)
    if not args.random_weights:
        stage("finding the checkpoints")
        model_files = resolve_model_files(args)  # fails fast, before any work
    stage("opening the video in FiftyOne")
    with opened_samples(args) as samples, tempfile.TemporaryDirectory(prefix="samtrack-random-weights-") as scratch:
        check_prompts_fit(samples, frames, prompts)
        from samtrack_ops.fiftyone import track_samples

        if args.random_weights:
            model_files = random_model_files(args, Path(scratch))
        progress = StderrProgress()
        try:
            track_samples(samples, prompts, args.label_field, mode=args.mode, progress=progress,
                          **pipeline_options(args, frames), **model_files)
        finally:
            progress.close()
    print(summary(samples, args.label_field, frames), file=out, flush=True)
    if args.app:
        open_app(samples)


@contextlib.contextmanager
def stdout_for_summary_only():
    """Points file descriptor 1 at stderr for the block (FiftyOne's logs and bars, its database process);
    yields a stream on the original stdout for the summary, and restores fd 1 afterwards."""
    sys.stdout.flush()
    original = os.dup(1)
    os.dup2(2, 1)
    try:
        with os.fdopen(os.dup(original), "w") as out:
            yield out
    finally:
        sys.stdout.flush()
        os.dup2(original, 1)
        os.close(original)


def main(argv=None):
    args = parse_args(argv)
    from samtrack_ops.video import VideoError

    try:
        with stdout_for_summary_only() as out:
            run(args, out)
    except (InputError, PromptError, VideoError, models.CheckpointError) as error:
        print(f"samtrack: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())

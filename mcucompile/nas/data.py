"""Datasets for search, training and calibration. Nothing is ever downloaded.

A data spec is one of:
  digits        scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes)
  synthetic     procedurally drawn shapes with noise (32x32, 6 classes), generated here
  DIR/          an image folder: one sub-folder per class (DIR/cat/*.png, ...); a folder
                of images without sub-folders is unlabeled (fine for calibration)
  FILE.npz      arrays x (N,H,W) or (N,H,W,C) and optionally y (N,) integer labels,
                optionally class_names

Images become float32 NHWC. uint8 pixels (and every image file) are scaled to
[0, 1]; float arrays are used as given. The models search and train build take
[0, 1] inputs.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import McuCompileError, MissingDependencyError

BUILTIN = ("digits", "synthetic")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
SYNTHETIC_SEED = 1234        # the built-in synthetic set is the same for every --seed


class DataError(McuCompileError):
    """A dataset that is missing, empty or malformed."""


@dataclass(frozen=True, eq=False)
class Dataset:
    name: str
    x: np.ndarray                  # float32 [N, H, W, C]
    y: np.ndarray | None           # int64 [N], labels 0..num_classes-1, or None
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return int(self.x.shape[3])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.x.shape[1]), int(self.x.shape[2])

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, idx: np.ndarray, name: str | None = None) -> "Dataset":
        return Dataset(name or self.name, self.x[idx], None if self.y is None else self.y[idx],
                       self.class_names)

    def describe(self) -> dict:
        h, w = self.image_size
        return {"name": self.name, "samples": len(self), "height": h, "width": w,
                "channels": self.channels, "classes": list(self.class_names)}


@dataclass(frozen=True, eq=False)
class Splits:
    train: Dataset
    val: Dataset       # scores candidates during the search
    test: Dataset      # touched only to report the final model


def load(spec: str | Path, labels: bool = True) -> Dataset:
    """Read a data spec (see the module doc). labels=True: labels are required."""
    text = str(spec)
    if text == "digits":
        ds = _digits()
    elif text == "synthetic":
        ds = synthetic()
    else:
        path = Path(spec)
        if path.is_dir():
            ds = _image_folder(path)
        elif path.suffix == ".npz":
            ds = _npz(path)
        elif not path.exists():
            raise DataError(f"data {text!r}: no such file or directory (the built-in data sets are "
                            f"{', '.join(BUILTIN)}; or give an image folder or a .npz)")
        else:
            raise DataError(f"data {text!r}: expected an image folder (one sub-folder per class) "
                            "or a .npz file with arrays x and y")
    if len(ds) == 0:
        raise DataError(f"data {ds.name!r} is empty")
    if labels:
        check_labeled(ds)
    return ds


def check_labeled(ds: Dataset, min_per_class: int = 3) -> None:
    """Training needs labels, two classes or more, and a few samples of each."""
    if ds.y is None:
        raise DataError(f"data {ds.name!r} has no labels: give a .npz with y, or an image folder "
                        "with one sub-folder per class")
    counts = np.bincount(ds.y, minlength=ds.num_classes)
    if ds.num_classes < 2:
        raise DataError(f"data {ds.name!r} has a single class ({ds.class_names[0]!r}): "
                        "a classifier needs two or more")
    few = [f"{ds.class_names[c]!r} ({counts[c]})" for c in range(ds.num_classes) if counts[c] < min_per_class]
    if few:
        raise DataError(f"data {ds.name!r}: classes {', '.join(few)} have fewer than "
                        f"{min_per_class} samples; each class needs {min_per_class} to be split "
                        "into training, validation and test sets")


def split(ds: Dataset, seed: int, fractions: tuple[float, float] = (0.6, 0.2)) -> Splits:
    """Stratified train / validation / test split (the test set gets the rest)."""
    check_labeled(ds)
    rng = np.random.default_rng(seed)
    parts: tuple[list, list, list] = ([], [], [])
    for c in range(ds.num_classes):
        idx = rng.permutation(np.flatnonzero(ds.y == c))
        n_train = max(1, int(round(fractions[0] * len(idx))))
        n_val = max(1, int(round(fractions[1] * len(idx))))
        n_train = min(n_train, len(idx) - 2)
        parts[0].append(idx[:n_train])
        parts[1].append(idx[n_train:n_train + n_val])
        parts[2].append(idx[n_train + n_val:])
    train, val, test = (rng.permutation(np.concatenate(p)) for p in parts)
    return Splits(ds.subset(train, f"{ds.name}/train"), ds.subset(val, f"{ds.name}/val"),
                  ds.subset(test, f"{ds.name}/test"))


def resize(x: np.ndarray, size: int, channels: int | None = None) -> np.ndarray:
    """Images to size x size (bilinear; antialiased when shrinking), float32."""
    from ._tf import tf
    if channels is not None and channels != x.shape[3]:
        if x.shape[3] == 1:
            x = np.repeat(x, channels, axis=3)
        elif channels == 1 and x.shape[3] == 3:
            x = x.mean(axis=3, keepdims=True)
        else:
            raise DataError(f"the model takes {channels}-channel images, the data has {x.shape[3]} channels")
    if x.shape[1:3] == (size, size):
        return np.ascontiguousarray(x, dtype=np.float32)
    t = tf()
    out = [t.image.resize(x[i:i + 512], (size, size), method="bilinear", antialias=True).numpy()
           for i in range(0, len(x), 512)]
    return np.concatenate(out).astype(np.float32)


# --- built-in data -------------------------------------------------------------

def _digits() -> Dataset:
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise MissingDependencyError("the digits data set comes with scikit-learn, which is "
                                     "unavailable: pip install mcucompile[nas]") from e
    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[..., None]
    return Dataset("digits", x, d.target.astype(np.int64), tuple(str(i) for i in range(10)))


SHAPES = ("hbar", "vbar", "square", "disc", "cross", "diagonal")


def synthetic(n_per_class: int = 200, size: int = 32, seed: int = SYNTHETIC_SEED) -> Dataset:
    """Six kinds of shape at random places and sizes, random contrast, Gaussian noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    xs, ys = [], []
    for label, shape in enumerate(SHAPES):
        for _ in range(n_per_class):
            r = rng.uniform(0.18, 0.32) * size                 # half extent
            cy, cx = rng.uniform(r, size - r, 2)
            t = rng.uniform(0.06, 0.12) * size                 # stroke half width
            dy, dx = yy - cy, xx - cx
            if shape == "hbar":
                m = (np.abs(dy) < t) & (np.abs(dx) < r)
            elif shape == "vbar":
                m = (np.abs(dx) < t) & (np.abs(dy) < r)
            elif shape == "square":
                inside = (np.abs(dx) < r) & (np.abs(dy) < r)
                m = inside & ~((np.abs(dx) < r - 2 * t) & (np.abs(dy) < r - 2 * t))
            elif shape == "disc":
                m = dx * dx + dy * dy < r * r
            elif shape == "cross":
                m = ((np.abs(dx) < t) & (np.abs(dy) < r)) | ((np.abs(dy) < t) & (np.abs(dx) < r))
            else:
                m = (np.abs(dx - dy) < 1.4 * t) & (np.abs(dx) < r) & (np.abs(dy) < r)
            fg, bg = rng.uniform(0.55, 1.0), rng.uniform(0.0, 0.35)
            img = np.where(m, fg, bg) + rng.normal(0, 0.12, (size, size))
            xs.append(np.clip(img, 0.0, 1.0).astype(np.float32))
            ys.append(label)
    order = rng.permutation(len(xs))
    x = np.stack(xs)[order][..., None]
    return Dataset("synthetic", x, np.array(ys, dtype=np.int64)[order], SHAPES)


# --- user data -----------------------------------------------------------------

def _npz(path: Path) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from None
    if "x" not in arrays:
        raise DataError(f"{path}: no array 'x' (it has {', '.join(arrays) or 'nothing'}); "
                        "expected x (N,H,W[,C]) and optionally y (N,)")
    x = arrays["x"]
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[3] not in (1, 2, 3, 4) or min(x.shape[1:3], default=0) < 1:
        raise DataError(f"{path}: x has shape {x.shape}; expected (N,H,W) or (N,H,W,C) images "
                        "with 1 to 4 channels")
    if x.shape[0] == 0:
        raise DataError(f"{path}: x holds no samples")
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
    elif np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32)
    else:
        raise DataError(f"{path}: x has dtype {x.dtype}; expected uint8 or float images")
    if not np.isfinite(x).all():
        raise DataError(f"{path}: x contains NaN or infinite values")
    y = None
    names: tuple[str, ...] = ()
    if "y" in arrays:
        y = arrays["y"].reshape(-1) if arrays["y"].ndim == 2 and arrays["y"].shape[1] == 1 else arrays["y"]
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{path}: y has shape {arrays['y'].shape}; expected ({len(x)},), "
                            "one integer label per image")
        if not np.issubdtype(y.dtype, np.integer):
            if np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)):
                y = y.astype(np.int64)
            else:
                raise DataError(f"{path}: y must hold integer class labels, not {y.dtype}")
        if y.min() < 0:
            raise DataError(f"{path}: y holds negative labels ({int(y.min())}); labels are 0..K-1")
        y = y.astype(np.int64)
        k = int(y.max()) + 1
        names = tuple(str(i) for i in range(k))
        if "class_names" in arrays:
            given = [str(s) for s in arrays["class_names"].reshape(-1)]
            if len(given) < k:
                raise DataError(f"{path}: {len(given)} class_names for labels up to {k - 1}")
            names = tuple(given)
    return Dataset(path.stem, x, y, names)


def _pil():
    try:
        from PIL import Image
    except ImportError as e:
        raise MissingDependencyError("reading image folders needs Pillow, which is unavailable: "
                                     "pip install pillow") from e
    return Image


def _image_folder(path: Path) -> Dataset:
    subdirs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if subdirs:
        files, labels = [], []
        for label, d in enumerate(subdirs):
            imgs = sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if not imgs:
                raise DataError(f"{path}: class folder {d.name!r} holds no images "
                                f"({', '.join(IMAGE_SUFFIXES)})")
            files += imgs
            labels += [label] * len(imgs)
        names = tuple(d.name for d in subdirs)
        y = np.array(labels, dtype=np.int64)
    else:
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        names, y = (), None
        if not files:
            raise DataError(f"{path}: no class sub-folders and no images; an image folder holds "
                            "one sub-folder of images per class")
    Image = _pil()
    images = []
    for f in files:
        try:
            with Image.open(f) as im:
                im.load()
                images.append(im.copy())
        except Exception as e:  # PIL raises many kinds for a broken file
            raise DataError(f"{f}: not a readable image ({e})") from None
    gray = all(im.mode in ("1", "L", "I", "I;16", "F") for im in images)
    mode = "L" if gray else "RGB"
    size = Counter(im.size for im in images).most_common(1)[0][0]   # (w, h)
    arrays = []
    for im in images:
        im = im.convert(mode)
        if im.size != size:
            im = im.resize(size, Image.BILINEAR)
        a = np.asarray(im, dtype=np.float32) / 255.0
        arrays.append(a[..., None] if gray else a)
    return Dataset(path.name, np.stack(arrays), y, names)

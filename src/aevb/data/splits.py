"""Split, binarize, batch: from a dataset's uint8 arrays to the float 0/1 arrays a run uses.

Which images a run trains and tests on is set by its Config (n_train, n_test, test_split,
debug); the bytes come from aevb.data.datasets. ``synthetic`` makes a small learnable dataset in
memory, so that tests can run every command without a download.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import DataError
from ..model import densities
from . import datasets

DEBUG_SIZE = 100  # --debug keeps the first 100 training and test images


# Dynamic binarization: the test images are drawn once with this key, the training images' one fixed
# draw (for the train ELBO and the figures) with the key after it; training draws afresh each epoch.
DYNAMIC_KEYS = {"test": 20130, "train": 20131}  # jax.random.PRNGKey(n)


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
    """A run's data: binarized images, flat (N, D) float32 0/1, and integer labels (N,). train_grey: with
    dynamic binarization, the training images' grey levels in [0, 1] (N, D) that training draws from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    dataset: datasets.Dataset  # image shape, class names and noun come from here
    description: str  # which images, in words
    train_grey: np.ndarray | None = None
    binarization: str = "pixel byte >= 128 (pixel/255 > 0.5)"  # how, in words

    @property
    def image_shape(self):
        return self.dataset.image_shape

    @property
    def train_input(self):
        """What training reads: the grey levels with dynamic binarization, else the 0/1 images."""
        return self.x_train if self.train_grey is None else self.train_grey


def binarize(images):
    """uint8 pixels -> float32 0/1 with 1 where pixel/255 > 0.5, i.e. byte >= 128.
    images: uint8 (..., D)."""
    return (np.asarray(images) >= 128).astype(np.float32)


def grey(images):
    """uint8 pixels -> float32 grey levels pixel/255 in [0, 1], the Bernoulli means of dynamic binarization.
    images: uint8 (..., D)."""
    return np.asarray(images, np.float32) / np.float32(255)


def binarize_once(images, seed):
    """One draw of dynamic binarization: each pixel 1 with probability pixel/255 (our Bernoulli sampler).
    images: uint8 (..., D); the draw is keyed by seed alone."""
    return np.asarray(densities.sample_bernoulli(jax.random.PRNGKey(seed), jnp.asarray(grey(images))), np.float32)


def split(images, config):
    """The train and test images config asks for, binarized.

    test_split="assignment": train = training images 0..n_train-1, test = the next n_test
    training images (the assignment's text: images 10000-19999 by default).
    test_split="official": test = the first n_test images of the dataset's test set.
    debug=True keeps the first 100 of each.
    Raises DataError for more images than there are, or images blank once binarized.
    """
    arrays, name = images.arrays, images.dataset.display_name
    pool, n_train, n_test = arrays["train_images"], config.n_train, config.n_test
    if config.test_split == "assignment":
        if n_train + n_test > len(pool):
            raise DataError(f"n_train + n_test = {n_train + n_test} exceeds the {len(pool)} training "
                                     f"images of {name}")
        test_images, test_labels = pool[n_train : n_train + n_test], arrays["train_labels"][n_train : n_train + n_test]
        description = (f"train = {name} training images 0-{n_train - 1}, test = training images {n_train}-"
                       f"{n_train + n_test - 1} (the assignment's split)")
    else:
        if n_train > len(pool) or n_test > len(arrays["test_images"]):
            raise DataError(f"n_train or n_test exceeds the images of {name}")
        test_images, test_labels = arrays["test_images"][:n_test], arrays["test_labels"][:n_test]
        description = f"train = {name} training images 0-{n_train - 1}, test = the official test set"
    train_images, train_labels = pool[:n_train], arrays["train_labels"][:n_train]
    if config.debug:
        train_images, train_labels = train_images[:DEBUG_SIZE], train_labels[:DEBUG_SIZE]
        test_images, test_labels = test_images[:DEBUG_SIZE], test_labels[:DEBUG_SIZE]
        description += f"; debug: the first {DEBUG_SIZE} images of each"
    labels = train_labels.astype(np.int32), test_labels.astype(np.int32)
    brightest = int(train_images.max()) if train_images.size else 255
    if brightest <= 1:  # 0/1 images given as bytes: blank under either binarization (a run learns nothing)
        raise DataError(f"the pixels of {name}'s training images are only 0 and 1, which binarized at byte 128 are "
                        "all 0; aevb reads bytes 0-255: save (images * 255).astype(np.uint8)")
    if getattr(config, "binarization", "threshold") == "threshold":
        if brightest < 128:  # blank once binarized at 128
            raise DataError(f"every pixel of {name}'s training images is below 128, so binarized at byte 128 every "
                            "image is blank: rescale them to 0-255, or use --binarization dynamic")
        return Split(binarize(train_images), labels[0], binarize(test_images), labels[1], images.dataset, description)
    how = (f"dynamic: each training pixel drawn afresh each epoch as a Bernoulli of pixel/255 (keys from the seed "
           f"and the epoch); the test images drawn once with jax.random.PRNGKey({DYNAMIC_KEYS['test']}), the "
           f"training images' fixed draw for the train ELBO and figures with PRNGKey({DYNAMIC_KEYS['train']})")
    return Split(binarize_once(train_images, DYNAMIC_KEYS["train"]), labels[0],
                 binarize_once(test_images, DYNAMIC_KEYS["test"]), labels[1], images.dataset, description,
                 grey(train_images), how)


def load(config, data_dir=None):
    """The Split of config's dataset, fetched and verified if needed."""
    return split(datasets.load(config.dataset, data_dir)[0], config)


def describe(images, source, n_train, n_test):
    """What `aevb data` prints: where a dataset's verified images came from and how many images of each
    class the assignment's train and test split (n_train, n_test) and the official test set hold.
    images: the dataset's Images; source: the line saying where they came from (datasets.load's). Returns the lines."""
    spec, labels = images.dataset, images.arrays["train_labels"]
    if spec.files:
        lines = [f"{spec.display_name} verified (SHA-256 of the standard IDX files), from {source}",
                 f"cached at {datasets.cache_path(spec)}"]
    else:
        lines = [f"{spec.display_name}: {sum(spec.sizes)} images of {spec.image_shape[0]}x{spec.image_shape[1]}, "
                 f"from {source}"]
    train, test = labels[:n_train], labels[n_train : n_train + n_test]  # as many as the file holds

    def span(first, count):
        return "no images" if count == 0 else f"image {first}" if count == 1 else f"images {first}-{first + count - 1}"

    groups = [(f"train ({span(0, len(train))})", train), (f"test ({span(min(n_train, len(labels)), len(test))})", test),
              ("official test set", images.arrays["test_labels"])]
    width = max(5, *(len(name) for name in spec.class_names))
    lines.append(f"{'split':28s} " + " ".join(f"{name:>{width}s}" for name in spec.class_names) + "  total")
    for name, group_labels in groups:
        counts = np.bincount(group_labels, minlength=len(spec.class_names))
        lines.append(f"{name:28s} " + " ".join(f"{c:{width}d}" for c in counts) + f"  {counts.sum():5d}")
    return lines


def synthetic(name="synthetic", n_train=1000, n_test=200, image_shape=(12, 12), n_classes=4, seed=0):
    """An in-memory dataset with a real 2-D structure: each image is a disc whose centre lies near
    one of n_classes points on a circle (the class: its angle), jittered; "on" bytes are >= 128,
    "off" bytes below, with 2% of pixels flipped. datasets.register makes it usable by name.
    name: the dataset's name in the table; n_train, n_test: the images of each split; seed: of numpy's generator
    (the same images every time). Returns an Images, to datasets.register."""
    rng = np.random.default_rng(seed)
    rows, cols = image_shape
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")

    def draw(n):
        labels = rng.integers(n_classes, size=n)
        angle = 2 * np.pi * labels / n_classes
        centre = np.stack([rows / 2 + rows / 4 * np.sin(angle), cols / 2 + cols / 4 * np.cos(angle)], -1)
        centre += rng.normal(scale=0.12 * min(rows, cols), size=(n, 2))  # (n, 2)
        distance = np.hypot(r[None] - centre[:, 0, None, None], c[None] - centre[:, 1, None, None])
        on = (distance < 0.2 * min(rows, cols)) ^ (rng.uniform(size=distance.shape) < 0.02)
        grey = np.where(on, rng.integers(128, 256, size=on.shape), rng.integers(0, 128, size=on.shape))
        return grey.reshape(n, rows * cols).astype(np.uint8), labels.astype(np.uint8)

    (train_images, train_labels), (test_images, test_labels) = draw(n_train), draw(n_test)
    dataset = datasets.Dataset(name=name, image_shape=tuple(image_shape), sizes=(n_train, n_test), noun="angle",
                               class_names=tuple(f"{360 * k // n_classes}°" for k in range(n_classes)))
    arrays = {"train_images": train_images, "train_labels": train_labels, "test_images": test_images,
              "test_labels": test_labels}
    return datasets.Images(dataset, arrays)


# ---- batching (pure jnp, usable inside jit) -----------------------------------------------


def shuffled_batches(key, arrays, batch_size):
    """A fresh uniform shuffle of the leading axis, cut into full batches.

    arrays: one array (N, ...) or a tuple of them (e.g. (x, y)). Returns the same structure
    with shape (N // batch_size, batch_size, ...); the N % batch_size left over after the
    shuffle are skipped this epoch (different ones each epoch).
    """
    single = not isinstance(arrays, tuple)
    arrays = (arrays,) if single else arrays
    n = arrays[0].shape[0]
    steps = n // batch_size
    order = densities.uniform_permutation(key, n)[: steps * batch_size]
    out = tuple(jnp.take(a, order, axis=0).reshape((steps, batch_size) + a.shape[1:]) for a in arrays)
    return out[0] if single else out


def chunks(n, size):
    """(start, stop) pairs covering range(n) in order, each at most size long."""
    return [(start, min(start + size, n)) for start in range(0, n, size)]

"""One frozen Config holds every setting; it is stored with every checkpoint.

Each field is one setting: its default, help text and bounds sit together in `setting(...)`. The command line's
training flags are generated from these fields (aevb.arguments), so a new setting is one line here. Names chosen
from a table (dataset, architecture, objective) are checked against that table, so adding a table entry is all it
takes to offer a new choice. Config sits above aevb.model and aevb.data, whose tables it reads, and below
everything that trains, evaluates or stores a run.
"""

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from .data import datasets
from .data.splits import DEBUG_SIZE
from .errors import ConfigError, DataError
from .model import networks, posteriors, priors, probability

KINDS = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}
SHOWN = 60  # characters of a value shown in a message: a 100 MB value is not echoed whole


def shown(value):
    """repr(value) cut to SHOWN characters, for messages (a value may be huge or binary)."""
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 200 else f"a {value.bit_length()}-bit number"
    return text if len(text) <= SHOWN else f"{text[:SHOWN]}... ({len(text)} characters)"


# Upper bounds of whole-number settings: far above any real use, below what overflows JAX's int32
# shapes and indices, so a typo is one usage line instead of an OverflowError after a folder is made.
MAX_WIDTH = 1_000_000  # units of a layer, latent dimensions
MAX_SAMPLES = 10_000_000  # samples per image (S, K)
MAX_COUNT = 100_000_000  # images per step, epochs
MAX_LAYERS = 64  # hidden layers of the mlp (each way): compile time and memory grow with them
MAX_POINTS = 10_000  # points of a sweep (each a run directory)
MAX_SEEDS = 1000  # seeds trained together, one compiled program holding a step per seed
MAX_TEXT = 4200  # characters of a text setting: npz:PATH with a path of up to PATH_MAX (4096) bytes
MAX_FILE = 1 << 20  # bytes of a settings file read (--config /dev/zero does not fill the memory)
# AIS's defaults (aevb.evaluation.ais.Settings; Config's ais_* fields): T distributions, C chains per image, L leapfrog
# steps, test images, training images, BDMC's simulated examples. Many short chains: on the default MNIST model's first
# 1000 test images (Dz = 2), all within 0.5 nats of the exact value with C = 64, L = 2; 97.9% with C = 32, L = 2 and
# 97.1% with C = 16, L = 5 (of equal cost). The error is which modes the chains end in (docs, "AIS and BDMC").
AIS = {"steps": 1000, "chains": 64, "leapfrog": 2, "images": 1000, "train_images": 0, "bdmc": 100}


def setting(default, help, *, minimum=None, maximum=None, choices=None, aliases=()):
    """A Config field with its default, the help text and bounds the command line and the checks read.

    minimum: inclusive for whole numbers, exclusive for real ones (a learning rate must be > 0); maximum: inclusive.
    choices: a tuple of allowed values, or a table (a dict) whose keys are allowed, read when checked
    (a dataset registered later is a choice too). aliases: more flag names."""
    metadata = {"help": help, "minimum": minimum, "maximum": maximum, "choices": choices, "aliases": aliases}
    return dataclasses.field(default=default, metadata=metadata)


def choices_of(field):
    """The allowed values of a field with choices: its tuple, or its table's keys as they are now."""
    return tuple(field.metadata["choices"])


@dataclass(frozen=True)
class Config:
    """Every setting of a run, frozen, with its default (the assignment's), help and bounds: one field per
    command-line flag (``--n-train`` is ``n_train``). Stored with each checkpoint and in config.json; built from
    flags, a config file or Python (``Config(epochs=20, latent_dim=5)``), each value checked by one mechanism
    (ConfigError in one line)."""

    # Data: the assignment's split is train = training images 0-9999, test = 10000-19999.
    dataset: str = setting("mnist", "dataset by name, or npz:PATH for your own uint8 images (N, 28, 28) "
                           "with optional labels", choices=datasets.DATASETS)
    n_train: int = setting(10000, "training images: the dataset's first N", minimum=1, maximum=MAX_COUNT)
    n_test: int = setting(10000, "test images", minimum=1, maximum=MAX_COUNT)
    test_split: str = setting("assignment", "assignment: the training images after the first n_train; "
                              "official: the dataset's test set", choices=("assignment", "official"))
    debug: bool = setting(False, "train and test on 100 images each")
    # Model (Kingma & Welling 2013, Section 3 and Appendix C.2, with the assignment's sizes).
    architecture: str = setting("mlp", "encoder and decoder networks by name (conv: the TensorFlow CVAE tutorial's "
                                "convolutions; gated: the VampPrior code's gated mlp)", choices=networks.NETWORKS)
    latent_dim: int = setting(2, "Dz, the dimension of z", minimum=1, maximum=MAX_WIDTH)
    hidden_dim: int = setting(500, "hidden units of the mlp's one hidden layer each way", minimum=1, maximum=MAX_WIDTH)
    hidden: str = setting("", "widths of the mlp's hidden layers, encoder's first (the decoder mirrors them), "
                          "such as 200,200, at most 64 layers; when given, hidden_dim is not used")
    activation: str = setting("tanh", "the hidden layers' nonlinearity", choices=networks.ACTIVATIONS)
    posterior: str = setting("gaussian", "q(z|x)'s family: gaussian (factorized), full-gaussian (a Cholesky "
                             "factor), planar:K (K planar flow steps, 1-64), coupling:K (K affine "
                             "coupling steps, 1-64)")
    prior: str = setting("standard", "p(z): standard (N(0, I)), mixture:K (K learned Gaussians), vamp:K (the "
                         "VampPrior's K learned pseudo-inputs)")
    binarization: str = setting("threshold", "threshold: pixel byte >= 128 (the assignment's); dynamic: each training "
                                "pixel drawn afresh each epoch as a Bernoulli of its grey level, the test set once "
                                "with a fixed key", choices=("threshold", "dynamic"))
    # Training.
    objective: str = setting("elbo", "training objective by name", choices=probability.OBJECTIVES)
    batch_size: int = setting(100, "images per Adam step", minimum=1, maximum=MAX_COUNT)
    optimizer: str = setting("adam", "adam; adagrad (Kingma & Welling 2013); adam-normgrad (the VampPrior code's Adam "
                             "on each array's gradient / its norm)", choices=("adam", "adagrad", "adam-normgrad"))
    learning_rate: float = setting(1e-3, "the optimizer's step size (the schedule's first)", minimum=0.0,
                                   aliases=("--lr",))
    lr_schedule: str = setting("constant", "constant, or burda: 3^i epochs at lr * 10^(-i/7), i = 0..7, 3280 "
                               "epochs in all (Burda et al. 2016)", choices=("constant", "burda"))
    adam_eps: float = setting(1e-8, "Adam's epsilon (Burda et al. use 1e-4)", minimum=0.0)
    kl_warmup: int = setting(0, "epochs of a linear warm-up of the KL term's weight from 0 to 1 (0: none)",
                             minimum=0, maximum=MAX_COUNT)
    epochs: int = setting(100, "passes over the training images", minimum=1, maximum=MAX_COUNT)
    num_samples: int = setting(1, "z samples per image in the training objective (K for iwae)", minimum=1,
                               maximum=MAX_SAMPLES, aliases=("--k",))
    seed: int = setting(0, "seed of the initial parameters and of every draw in training", minimum=0, maximum=2**32 - 1)
    checkpoint_every: int = setting(10, "epochs between checkpoints (one is also written at the end)", minimum=1,
                                   maximum=MAX_COUNT)
    # Evaluation.
    eval_samples: int = setting(10, "S, z samples per image for the evaluated ELBO", minimum=1, maximum=MAX_SAMPLES)
    iwae_k: int = setting(1000, "K for the importance-weighted bound (Burda et al. use 5000)", minimum=1,
                         maximum=MAX_SAMPLES)
    log_px_every: int = setting(5, "with Dz = 2, record the exact log p(x) and the ELBO of the first 100 test "
                                "images at epochs 1-10 and every N epochs after (1: every epoch; 0: never)", minimum=0,
                                maximum=MAX_COUNT)
    # log p(x) by AIS with BDMC (aevb.evaluation.ais): aevb run reports it where Dz != 2; evaluate --ais anywhere.
    ais_steps: int = setting(AIS["steps"], "T, AIS's intermediate distributions", minimum=1, maximum=MAX_COUNT)
    ais_chains: int = setting(AIS["chains"], "C, AIS chains per image", minimum=1, maximum=MAX_COUNT)
    ais_leapfrog: int = setting(AIS["leapfrog"], "L, leapfrog steps per HMC transition of AIS", minimum=1,
                                maximum=MAX_COUNT)
    ais_images: int = setting(AIS["images"], "the first N test images for the AIS log p(x), which aevb run reports "
                              "where Dz != 2 (0: none there)", minimum=0, maximum=MAX_COUNT)
    ais_train_images: int = setting(AIS["train_images"], "the first N training images by AIS too, with the gap "
                                    "decomposition on them where Dz != 2 (0: none)", minimum=0, maximum=MAX_COUNT)
    bdmc: int = setting(AIS["bdmc"], "examples simulated from the model for BDMC's two-sided check of AIS (0: none)",
                        minimum=0, maximum=MAX_COUNT)
    top: str = setting("", "a second stochastic layer z2 above z1 (Burda et al. 2016): z2's units and the hidden "
                       "widths between z1 and z2, such as 50:100,100; latent_dim counts z1 and z2 (mlp only)")
    gap_families: str = setting("", "posterior families also fitted to each image in the gap decomposition, such as "
                                "full-gaussian+coupling:4 (+ between names): what each would gain on this model")

    def __post_init__(self):
        self._check_settings()
        self._check_data()

    def _check_settings(self):
        """Each setting by itself: its kind, its range, its choices."""
        for field in dataclasses.fields(self):
            value, meta, kind = getattr(self, field.name), field.metadata, field.type
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                try:
                    value = float(value)
                except OverflowError:
                    raise ConfigError(f"{field.name} must be a finite number, not {shown(value)}") from None
                object.__setattr__(self, field.name, value)
            if type(value) is not kind:
                raise ConfigError(f"{field.name} must be {KINDS[kind]}, not {shown(value)}")
            if kind is str and (len(value) > MAX_TEXT or "\0" in value):
                raise ConfigError(f"{field.name} must be a short string without NUL bytes, not {shown(value)}")
            if kind is float and not math.isfinite(value):
                raise ConfigError(f"{field.name} must be a finite number, not {value}")
            if kind is float and meta["minimum"] is not None and not value > meta["minimum"]:
                raise ConfigError(f"{field.name} must be greater than {meta['minimum']}, not {value}")
            if kind is int and meta["minimum"] is not None and value < meta["minimum"]:
                raise ConfigError(f"{field.name} must be at least {meta['minimum']}, not {shown(value)}")
            if meta["maximum"] is not None and value > meta["maximum"]:
                raise ConfigError(f"{field.name} must be at most {meta['maximum']}, not {shown(value)}")
            if field.name == "dataset":
                continue  # datasets.get checks it below: a table's name, or npz:PATH (reading the file)
            if meta["choices"] is not None and value not in choices_of(field):
                raise ConfigError(f"{field.name} is one of {', '.join(choices_of(field))}, not {value!r}")
        widths = self.hidden.split(",") if self.hidden else []
        # ASCII digits only: str.isdigit admits superscripts, which int() then refuses.
        if not all(re.fullmatch(r"\s*[0-9]{1,7}\s*", w) and 1 <= int(w) <= MAX_WIDTH for w in widths):
            raise ConfigError(f"hidden must be widths from 1 to {MAX_WIDTH} separated by commas, such as 200,200, "
                              f"not {shown(self.hidden)}")
        if len(widths) > MAX_LAYERS:
            raise ConfigError(f"hidden gives {len(widths)} layers; at most {MAX_LAYERS}")
        object.__setattr__(self, "hidden", ",".join(str(int(w)) for w in widths))
        if self.architecture not in networks.WIDTHS and self.hidden:
            raise ConfigError(f"hidden sets the mlp's layers; the {self.architecture} networks have their own")
        try:
            family, prior = posteriors.get(self.posterior), priors.get(self.prior)
            networks.check_top(self.architecture, family.name, prior.name, self.top, self.latent_dim)
            others = [posteriors.get(name.strip()).name for name in self.gap_families.split("+") if name.strip()]
        except ValueError as error:
            raise ConfigError(str(error)) from None
        object.__setattr__(self, "posterior", family.name)  # one spelling (planar:08 is planar:8)
        object.__setattr__(self, "prior", prior.name)
        object.__setattr__(self, "gap_families", "+".join(dict.fromkeys(others)))  # each once (+: a sweep splits at ,)
        if self.objective == "elbo-analytic-kl" and not (family.exact_kl and prior.exact_kl):
            lacking = f"{self.posterior} posterior" if not family.exact_kl else f"{self.prior} prior"
            raise ConfigError(f"elbo-analytic-kl needs KL(q || p(z)) in closed form; the {lacking} has none (use elbo)")
        if prior.needs_q_density and not family.q_type.has_density:
            raise ConfigError(f"the {self.prior} prior needs q's density at any z; the {self.posterior} posterior has "
                              "none (use gaussian, full-gaussian or coupling:K)")
        if self.kl_warmup and self.objective == "iwae":
            raise ConfigError("kl_warmup weights the ELBO's KL term; the iwae objective has none")
        if not self.optimizer.startswith("adam") and self.adam_eps != 1e-8:
            raise ConfigError(f"adam_eps is Adam's; the optimizer is {self.optimizer}")

    def _check_data(self):
        """The settings against the dataset: it exists, and the split fits its images."""
        try:
            dataset = datasets.get(self.dataset)
        except DataError as error:
            raise ConfigError(str(error)) from None
        # The dataset's own name: npz:PATH is stored with an absolute path, so a resume elsewhere finds it.
        object.__setattr__(self, "dataset", dataset.name)
        train_count, test_count = dataset.sizes
        if self.test_split == "assignment" and self.n_train + self.n_test > train_count:
            raise ConfigError(f"n_train + n_test = {self.n_train + self.n_test} exceeds the {train_count} training "
                              f"images of {self.dataset}")
        if self.test_split == "official" and test_count == 0:
            raise ConfigError(f"{self.dataset} has no test set (test_images); use --test-split assignment")
        if self.test_split == "official" and (self.n_train > train_count or self.n_test > test_count):
            raise ConfigError(f"the official split of {self.dataset} has at most {train_count} training and "
                              f"{test_count} test images")
        if self.batch_size > self.train_size:
            raise ConfigError(f"batch size {self.batch_size} exceeds the {self.train_size} training images")

    @property
    def network(self):
        """The encoder and decoder (aevb.model.networks.Network) for these settings and the dataset's images."""
        return networks.build(self.architecture, self.activation, datasets.get(self.dataset).image_shape,
                              self.posterior, self.prior, self.top, self.latent_dim)

    @property
    def train_size(self):
        """How many images the run trains on."""
        return min(DEBUG_SIZE, self.n_train) if self.debug else self.n_train

    def to_json(self):
        """The settings as one line of JSON, keys sorted (what config.json and the checkpoint store)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text, data=True):
        """The Config stored as text. data=False: each setting checked but not against the dataset, which
        may be gone (for pages that only show a run's settings and numbers, like the comparison). Raises
        ConfigError for an unknown key or a setting out of its range."""
        values = json.loads(text)
        if unknown := set(values) - {f.name for f in dataclasses.fields(cls)}:
            raise ConfigError(f"unknown config keys: {sorted(unknown)}")
        if data:
            return cls(**values)
        config = cls.__new__(cls)
        for field in dataclasses.fields(cls):
            object.__setattr__(config, field.name, values.get(field.name, field.default))
        config._check_settings()
        return config

    def differences(self, other):
        """'name a != b' for every setting that differs from other's (a Config), comma separated."""
        a, b = dataclasses.asdict(self), dataclasses.asdict(other)
        return ", ".join(f"{name} {a[name]!r} != {b[name]!r}" for name in sorted(a) if a[name] != b[name])

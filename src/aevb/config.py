"""One frozen Config holds every setting; it is stored with every checkpoint."""

import dataclasses
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Config:
    # Data: the assignment's split is train = MNIST training images 0-9999, test = 10000-19999.
    n_train: int = 10000
    n_test: int = 10000
    test_split: str = "assignment"  # "assignment" (training images after n_train) or "official"
    debug: bool = False  # use a 100-image train and test subset
    # Model (Kingma & Welling 2013, Section 3 and Appendix C.2, with the assignment's sizes).
    latent_dim: int = 2  # Dz
    hidden_dim: int = 500
    # Training.
    batch_size: int = 100
    learning_rate: float = 1e-3
    epochs: int = 100
    num_samples: int = 1  # z samples per image in the training ELBO
    kl: str = "mc"  # "mc": log p(x,z) - log q(z|x) at the sample; "analytic": closed-form KL
    seed: int = 0
    checkpoint_every: int = 10  # epochs; a checkpoint is also written at the end
    # Evaluation.
    eval_samples: int = 10  # S samples per image for the evaluated ELBO and its standard error
    iwae_k: int = 1000  # K for the importance-weighted bound (Burda et al. use 5000)

    def __post_init__(self):
        checks = [
            (self.n_train >= 1, "n_train must be at least 1"),
            (self.n_test >= 1, "n_test must be at least 1"),
            (self.test_split in ("assignment", "official"), "test_split is 'assignment' or 'official'"),
            (self.latent_dim >= 1, "latent_dim must be at least 1"),
            (self.hidden_dim >= 1, "hidden_dim must be at least 1"),
            (self.batch_size >= 1, "batch size must be at least 1"),
            (self.learning_rate > 0, "learning rate must be positive"),
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.num_samples >= 1, "num_samples must be at least 1"),
            (self.kl in ("mc", "analytic"), "kl is 'mc' or 'analytic'"),
            (self.checkpoint_every >= 1, "checkpoint_every must be at least 1"),
            (self.eval_samples >= 1, "eval_samples must be at least 1"),
            (self.iwae_k >= 1, "iwae_k must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        # MNIST has 60000 training images and 10000 official test images.
        if self.test_split == "assignment" and self.n_train + self.n_test > 60000:
            raise ValueError(f"n_train + n_test = {self.n_train + self.n_test} exceeds the 60000 MNIST training images")
        if self.test_split == "official" and (self.n_train > 60000 or self.n_test > 10000):
            raise ValueError("the official split has at most 60000 training and 10000 test images")
        if self.batch_size > self.train_size:
            raise ValueError(f"batch size {self.batch_size} exceeds the {self.train_size} training images")

    @property
    def train_size(self):
        return 100 if self.debug else self.n_train

    @property
    def test_size(self):
        return 100 if self.debug else self.n_test

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text):
        values = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        return cls(**values)

"""aevb's IWAE bound beside a peer's: pythae 0.1.2's VAE.get_nll (a loop over images, K draws of each in
batches of 100), given a run's weights as its encoder and decoder, on the same test images at K = 1000,
one after the other on the same machine. pythae needs PyTorch, which aevb does not install, so each side
runs in its own environment (aevb's side first: it times itself and writes the weights and images):

    .venv/bin/python bench/peer_pythae.py export runs/default /tmp/peer.npz
    python3 -m venv /tmp/peer && /tmp/peer/bin/pip install torch pythae==0.1.2
    /tmp/peer/bin/python bench/peer_pythae.py measure /tmp/peer.npz

Both estimate the same log p(x) with different draws: their per-image difference is Monte Carlo error
(and pythae's clamp of log-probabilities at -100), which the paired standard error states.
"""

import sys
import time

import numpy as np

IMAGES = 300  # the first this many test images (as issue 23 measured pythae)
K = 1000
REPEATS = 3  # aevb's timing: the fastest of these many runs, after one that compiles


def export(run_dir, path, images=IMAGES):
    """aevb's side: iwae_per_image of the run's first test images, timed; weights, images and values to path."""
    from aevb.evaluation import bounds
    from aevb.training.trained import load

    run = load(run_dir)
    if run.config.architecture != "mlp" or run.config.hidden:
        sys.exit("peer_pythae: the peer's networks here are one hidden layer each way (the default mlp)")
    x = run.split.x_test[:images]
    bounds.iwae_per_image(run.net, run.params, x[:100], K)  # compiles the same program
    seconds = []
    for _ in range(REPEATS):
        began = time.perf_counter()
        values = bounds.iwae_per_image(run.net, run.params, x, K)
        seconds.append(time.perf_counter() - began)
    weights = {f"{side}/{layer}/{name}": np.asarray(value) for side in ("encoder", "decoder")
               for layer, parameters in run.params[side].items() for name, value in parameters.items()}
    np.savez(path, x=x, aevb=values, aevb_seconds=np.array(seconds), activation=run.config.activation, **weights)
    print(f"aevb iwae_per_image, K = {K}, {len(x)} images: {min(seconds) / len(x) * 1e3:.2f} ms per image "
          f"(runs {', '.join(f'{s:.2f}' for s in seconds)} s), mean {values.mean():.3f} nats/image")


def measure(path):
    """pythae's side: get_nll image by image (its own loop, K draws each), timed; the ratio to aevb's."""
    import torch
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    saved = np.load(path)
    activation = {"tanh": torch.tanh, "relu": torch.relu, "elu": torch.nn.functional.elu,
                  "softplus": torch.nn.functional.softplus}[str(saved["activation"])]

    def linear(side, layer):  # aevb's dense layer (weight (n_in, n_out)) as torch's Linear (weight (n_out, n_in))
        weight = torch.tensor(saved[f"{side}/{layer}/weight"])
        module = torch.nn.Linear(*weight.shape)
        with torch.no_grad():
            module.weight.copy_(weight.T)
            module.bias.copy_(torch.tensor(saved[f"{side}/{layer}/bias"]))
        return module

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.hidden, self.out = linear("encoder", "hidden"), linear("encoder", "out")

        def forward(self, x):
            mean, log_std = self.out(activation(self.hidden(x.reshape(x.shape[0], -1)))).chunk(2, dim=-1)
            return ModelOutput(embedding=mean, log_covariance=2 * log_std)  # pythae's q: a log variance

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.hidden, self.out = linear("decoder", "hidden"), linear("decoder", "out")

        def forward(self, z):  # pythae's Bernoulli decoder returns probabilities (its BCE takes them)
            return ModelOutput(reconstruction=torch.sigmoid(self.out(activation(self.hidden(z)))))

    x = torch.tensor(saved["x"], dtype=torch.float32)
    config = VAEConfig(input_dim=(1, x.shape[1]), latent_dim=saved["encoder/out/bias"].shape[0] // 2,
                       reconstruction_loss="bce")
    model = VAE(config, encoder=Encoder(), decoder=Decoder()).eval()
    torch.manual_seed(0)
    seconds = []
    with torch.no_grad():
        model.get_nll(x[:5], n_samples=K, batch_size=100)  # warm-up
        for _ in range(REPEATS):  # timed as aevb's side: the fastest run
            began = time.perf_counter()
            peer = np.array([model.get_nll(x[i : i + 1], n_samples=K, batch_size=100) for i in range(len(x))])
            seconds.append(time.perf_counter() - began)
    ours, difference = saved["aevb"], saved["aevb"] - peer
    ours_ms, peer_ms = saved["aevb_seconds"].min() / len(x) * 1e3, min(seconds) / len(x) * 1e3
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"pythae get_nll, K = {K}, {len(x)} images: {peer_ms:.2f} ms per image (runs "
          f"{', '.join(f'{s:.2f}' for s in seconds)} s), mean {peer.mean():.3f} nats/image (its last run)")
    print(f"aevb iwae_per_image: {ours_ms:.2f} ms per image, mean {ours.mean():.3f} nats/image")
    print(f"aevb minus pythae: {difference.mean():+.3f} ± {difference.std(ddof=1) / np.sqrt(len(x)):.3f} "
          f"nats/image (paired); pythae takes {peer_ms / ours_ms:.2f}x aevb's time")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "export":
        export(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "measure":
        measure(sys.argv[2])
    else:
        sys.exit(__doc__)

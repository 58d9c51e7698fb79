"""The report's live latent-space explorer: the decoder's weights and the training set's latent
means as JSON in the page, decoded in plain JavaScript (explorer.js) as the pointer moves."""

import base64
import html
import json
from pathlib import Path

import numpy as np

from ..data.npz import LABEL_DTYPE
from . import drawing, plots

EXPLORER_JS = Path(__file__).with_name("explorer.js")
ARCHITECTURES = ("mlp",)  # the networks whose decoder explorer.js computes


def _float32_base64(array):
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode("ascii")


def payload(theta, z_means, labels, image_shape, class_names):
    """What the in-page explorer needs: the mlp decoder's weights and the training set's latent means.
    theta: the mlp decoder's parameters; z_means: (N, 2) latent means of the training images; class_names: a name
    per label."""
    return {
        "latentDim": int(theta["hidden"]["weight"].shape[0]),
        "hidden": int(theta["hidden"]["weight"].shape[1]),
        "rows": int(image_shape[0]), "cols": int(image_shape[1]),
        "w1": _float32_base64(theta["hidden"]["weight"]),  # (Dz, H), row-major
        "b1": _float32_base64(theta["hidden"]["bias"]),
        "w2": _float32_base64(theta["out"]["weight"]),  # (H, D), row-major
        "b2": _float32_base64(theta["out"]["bias"]),
        "points": _float32_base64(z_means),  # (N, 2)
        "labels": base64.b64encode(np.ascontiguousarray(labels, LABEL_DTYPE).tobytes()).decode("ascii"),  # (N,)
        "classNames": list(class_names), "colours": plots.CLASS_COLOURS,
    }


def section(payload, note):
    """The report's explorer section: payload (explorer's JSON of the decoder) or, where it is None, the note saying why
    not."""
    if payload is None:
        return f'<p class="note" id="explorer-note">{html.escape(note)}</p>'
    return f"""
<p class="note">Move the pointer over the plane: the page decodes z with the decoder's weights
(z &rarr; {payload['hidden']} tanh &rarr; {payload['rows'] * payload['cols']} sigmoid, in plain JavaScript) and
shows the Bernoulli means. Click two points to see the interpolation between them. Dots: means of q(z|x) of the training
images.</p>
<div id="explorer">
  <canvas id="latent-canvas" width="560" height="560" aria-label="latent space"></canvas>
  <div><canvas id="decoded-canvas" width="{payload['cols']}" height="{payload['rows']}" aria-label="decoded image"
  style="aspect-ratio: {payload['cols']} / {payload['rows']}; height: auto"></canvas>
  <p id="z-readout" class="note">z = (move the pointer)</p><div id="legend" class="note"></div></div>
</div>
<p class="note" id="strip-note">Interpolation: click two points.</p>
<canvas id="strip-canvas" width="{10 * payload['cols']}" height="{payload['rows']}" aria-label="interpolation strip">
</canvas>
<script id="explorer-data" type="application/json">{script_json(payload)}</script>
<script>{EXPLORER_JS.read_text()}</script>"""


def script_json(payload):
    """payload as JSON that is safe inside <script>: class names and other strings a user supplied
    may hold "</script>" or "<!--", so <, > and & are written as \\u escapes, which JSON.parse reads
    back as the same characters (json.dumps already escapes every non-ASCII character)."""
    text = json.dumps(payload)
    for character in "<>&":
        text = text.replace(character, f"\\u{ord(character):04x}")
    return text


def for_run(run):
    """(payload, None) for a loaded run (aevb.pipeline.Run) the explorer can show, else (None, why not)."""
    config, split = run.config, run.split
    one_layer = (config.architecture in ARCHITECTURES and "," not in config.hidden and config.activation == "tanh"
                 and not config.top)
    if config.latent_dim == 2 and one_layer:
        return payload(run.params["decoder"], drawing.encode_means(run, split.x_train), split.y_train,
                       split.image_shape, split.dataset.class_names), None
    network = (f"the {config.architecture} networks" if config.architecture not in ARCHITECTURES else
               f"two stochastic layers (top {config.top}: its decoder reads z1 alone)" if config.top else
               f"an mlp of hidden layers {config.hidden or config.hidden_dim} with {config.activation}")
    return None, ("The live explorer cannot run the decoder of this model: its JavaScript computes a 2-D latent space "
                  f"through one hidden tanh layer ({' or '.join(ARCHITECTURES)}); this model has Dz = "
                  f"{config.latent_dim} and {network}.")

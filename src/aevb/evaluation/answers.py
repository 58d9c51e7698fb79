"""The assignment's true/false questions, their answers with reasons, and the computed
demonstrations that back (b), (c) and (e) with numbers from a trained run."""

import jax.numpy as jnp

from ..model import densities


def normal_density_at_mean(std):
    """The density of N(0, std^2) at 0, from our log density."""
    zero = jnp.zeros((1, 1))
    return float(jnp.exp(densities.factorized_gaussian_log_density(zero, jnp.log(jnp.full((1, 1), std)), zero))[0])


ANSWERS = [
    ("(a) Does p(bottom | z) factorize over the bottom pixels?", True,
     "Yes: given z the decoder makes every pixel an independent Bernoulli, so p(bottom|z) is a product."),
    ("(b) Does p(bottom | top) factorize over the bottom pixels?", False,
     "No: z is unknown given only the top, and integrating it out couples the pixels (a mixture of "
     "products is not a product)."),
    ("(c) If the ELBO rises under joint optimization of theta and phi, must KL(q(z|x) || p(z|x)) fall?", False,
     "No: log p_theta(x) = ELBO + KL, and changing theta moves log p_theta(x) too, so the ELBO can rise "
     "while the KL rises as well."),
    ("(d) Can a normal density be < 0?", False,
     "No: it is exp of a real number divided by a positive constant, so it is always positive."),
    ("(e) Can a normal density be > 1?", True,
     "Yes: a density is not a probability; a narrow normal is tall, e.g. N(0, 0.1^2) at 0."),
]


def kl_rise(rows, least=0.1):
    """Answer (c) measured: the first two recorded epochs in a row of metrics.jsonl between which the
    ELBO and KL(q || p(z|x)) = log p(x) - ELBO both rose by more than `least` nats, on the images
    whose exact log p(x) training records. {"from", "to", "elbo_rise", "kl_rise", "images"}, or
    {"recorded": epochs} if there is none, or None if nothing was recorded.
    rows: metrics.jsonl's rows; least: nats."""
    tracked = [row for row in rows if "tracked" in row]
    for before, after in zip(tracked, tracked[1:], strict=False):
        elbo_rise = after["tracked"]["elbo"] - before["tracked"]["elbo"]
        kl_rise = after["tracked"]["kl"] - before["tracked"]["kl"]
        if elbo_rise > least and kl_rise > least:
            return {"from": before["epoch"], "to": after["epoch"], "elbo_rise": elbo_rise, "kl_rise": kl_rise,
                    "log_px_rise": after["tracked"]["log_px"] - before["tracked"]["log_px"],
                    "images": after["tracked"]["images"]}
    return {"recorded": len(tracked)} if tracked else None


def demonstration(completion, rows):
    """summary.json's answers_demo: (b) from a completion of the top half (its posterior pixel
    correlation), (c) from metrics.jsonl's rows (kl_rise), (e) from our normal density."""
    i, j, correlation, ess = completion.correlation
    return {"index": completion.index, "pixel_i": i, "pixel_j": j, "correlation": correlation,
            "effective_sample_size": ess, "normal_density_at_0": normal_density_at_mean(0.1), "kl_rise": kl_rise(rows)}


def answer_texts(demo, image_width, missing=""):
    """(question, answer, reason with its computed demonstration) for each question in ANSWERS.

    demo: the answers_demo of summary.json (None if not computed: (b) then says missing instead).
    image_width: pixels per row of the run's images (answer (b) counts the observed ones); missing: why demo is
    None.
    """
    demos = {"(e)": f"Computed: N(0, 0.1²) at 0 has density {normal_density_at_mean(0.1):.4f} > 1.",
             "(b)": missing, "(c)": "(Not measured here: training records the exact log p(x) only when Dz = 2.)"}
    rise = (demo or {}).get("kl_rise")
    if rise and "from" in rise:
        demos["(c)"] = (f"Measured: on the first {rise['images']} test images, from epoch {rise['from']} to "
                        f"{rise['to']} the ELBO rose by {rise['elbo_rise']:.2f} nats per image and KL(q || p(z|x)) "
                        f"= log p(x) - ELBO rose too, by {rise['kl_rise']:.2f} (the exact log p(x) rose by "
                        f"{rise['log_px_rise']:.2f}).")
    elif rise:
        demos["(c)"] = (f"Measured: at the {rise['recorded']} epochs that recorded the exact log p(x), the KL "
                        "never rose by more than 0.1 nats while the ELBO did: this run does not show it, which the "
                        "answer allows (the KL may rise, it need not).")
    if demo:
        (ri, ci), (rj, cj) = divmod(demo["pixel_i"], image_width), divmod(demo["pixel_j"], image_width)
        demos["(b)"] = (f"Computed: given the top of training image #{demo['index']}, bottom pixels (row {ri}, "
                        f"col {ci}) and (row {rj}, col {cj}) have correlation {demo['correlation']:+.3f} under "
                        f"p(bottom | top) (self-normalized importance sampling, effective sample size "
                        f"{demo['effective_sample_size']:.0f}); given z it is exactly 0.")
    return [(question, answer, f"{reason} {demos.get(question.split()[0], '')}".strip())
            for question, answer, reason in ANSWERS]

"""Whether training ended far below its best: a run whose training objective fell in its last epochs (a flow's
log-determinant near zero, a learning rate too high) is evaluated at its last epoch's parameters, and says so."""

import math

FALL = 5.0  # nats per image below the best epoch (after the KL warm-up) the last epoch may lie without a word


def fall(rows, warmup):
    """The words for a last epoch whose training objective lies more than FALL nats per image below the best epoch's
    after the KL warm-up, or None. rows: metrics.jsonl's, each with its epoch and train_elbo (the objective trained
    on); warmup: Config.kl_warmup, the epochs whose objective weighs the KL term less (higher, not comparable)."""
    settled = [row for row in rows if row["epoch"] > warmup and math.isfinite(row["train_elbo"])]
    if len(settled) < 2 or settled[-1] is not rows[-1]:
        return None
    best, last = max(settled, key=lambda row: row["train_elbo"]), settled[-1]
    if last["train_elbo"] >= best["train_elbo"] - FALL:
        return None
    return (f"the training objective fell from {best['train_elbo']:.2f} nats/image (epoch {best['epoch']}) to "
            f"{last['train_elbo']:.2f} in the last epoch ({last['epoch']}), whose parameters are the ones evaluated: "
            "training is unstable with these settings (a lower learning rate may settle it)")

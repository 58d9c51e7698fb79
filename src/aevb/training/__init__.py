"""Training: the compiled epoch and the loop around it.

compiled  the initial state, the step, one jit-compiled epoch (lax.scan over Adam steps; seeds side by
          side; a batch split over devices)
optimizers  Adam, Adagrad and the VampPrior code's AdamNormGrad on a step size or Burda et al.'s schedule
loop      train and train_group: checkpoints, metrics rows, divergence, signals, lost processes
signals   Ctrl-C and SIGTERM: save after the epoch in flight, a second one stops at once
stability  a last epoch far below the best one after warm-up, said (its parameters are the ones evaluated)
trained   a trained run loaded (Run, load), opened under its lock, its state restored

What the loop measures each epoch is passed in (aevb.evaluation.curves.monitor, by aevb.pipeline).
Imports: aevb.errors, aevb.model, aevb.data, aevb.parallel, aevb.runs; never aevb.evaluation.
"""

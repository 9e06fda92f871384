"""Sparse coding against sparse autoencoders on activations whose features are known: a
smaller run of benchmarks/versus_saes.py (about 2 minutes on a CPU).

    python examples/versus_saes.py            # writes examples/results/versus_saes_example.{md,json,png}
    python examples/versus_saes.py --smoke    # seconds: what the tests run

d = 32 dimensions, 128 planted features, 128 atoms, 40,000 training tokens.  sparsolve's
methods always run (``fit`` with exact inference; the seed's autoencoder at t* = 0, 1, 5, and
each of them as the start of exact inference on its own decoder, "AE t*=T then cd"); the
SAE libraries (EleutherAI's sparsify TopK; SAELens L1, TopK, JumpReLU) run when installed
(``pip install -e ".[peers]"``), and the output says loudly which were not run and why.
"""
import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("versus_saes_benchmark", HERE.parent / "benchmarks" / "versus_saes.py")
benchmark = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = benchmark  # its dataclasses look their module up there
spec.loader.exec_module(benchmark)

if __name__ == "__main__":
    benchmark.main(sys.argv[1:], default_size="example", default_out=HERE / "results", stem="versus_saes_example",
                   write_results=False)

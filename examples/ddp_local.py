"""Data-parallel fit as DDP scripts launch it: each rank passes its own rows, X[rank::world].

    torchrun --standalone --nproc_per_node=2 examples/ddp_local.py

``sparsolve.fit`` sees that the ranks hold different data (rank_data="auto": it logs
"rank_data='local' (detected)") and trains on the union of their rows: a step's global batch is
every rank's batch together.  The script checks what a user checks first: every rank ends with
the same dictionary, and it equals one process's fit on the union of the rows, taken in the
order the ranks gather a step's rows (rank 0's part, then rank 1's).  It prints the largest
difference (float rounding: about 1e-15).
"""
import logging

import numpy as np
import torch
import torch.distributed as dist

import sparsolve
from sparsolve.data import natural_image_patches
from sparsolve.learning import distributed

logging.basicConfig(level=logging.INFO, format="%(message)s")
distributed.init_from_env()  # the process group torchrun describes (gloo on the CPU)
rank, world = dist.get_rank(), dist.get_world_size()

X = natural_image_patches(8, 4000, seed=0)  # each rank could as well load only its own part
settings = dict(n_atoms=64, alpha=0.1, batch_size=200, n_epochs=2, shuffle=False, tol=1e-8, seed=0,
                progress=False)
model = sparsolve.fit(X[rank::world], **settings)

D = torch.from_numpy(model.dictionary)
every = [torch.empty_like(D) for _ in range(world)]
dist.all_gather(every, D)
dist.destroy_process_group()  # the reference below is one process
if rank == 0:
    part = settings["batch_size"] // world  # each rank's rows of a step: rank 0's, then rank 1's, ...
    order = np.arange(len(X)).reshape(-1, part, world).transpose(0, 2, 1).ravel()
    one = sparsolve.fit(X[order], **settings)
    across = max(float((d - every[0]).abs().max()) for d in every)
    print(f"ranks agree to {across:.1e}; one process on the union of their rows to "
          f"{np.abs(every[0].numpy() - one.dictionary).max():.1e}")

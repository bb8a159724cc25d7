"""Proxy tasks as pure tensor functions on (N, C, D, H, W) inputs (D is time for videos, depth for volumes).

- **3D rotation** (Taleb et al. 2020, after Gidaris et al. 2018): a random cube of side min(D, H, W) is rotated by
  one of 10 rotations (identity, and 90°/180°/270° about each of the three axes); the network names it. For a video
  a rotation about a spatial axis turns time into space, so telling them apart needs the motion, not only the
  anatomy.
- **3D jigsaw** (Taleb et al. 2020, after Noroozi & Favaro 2016): the input is cut into a 2×2×2 grid, each cell
  cropped with a random jitter (no shared borders to match), shuffled by one of a fixed set of permutations chosen
  for large Hamming distance; the shared backbone encodes each cell and a head names the permutation.
- **NT-Xent** (SimCLR, Chen et al. 2020): two augmented clips of the same instance are positives, every other clip
  of the batch a negative.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

#: (k, dims) for ``torch.rot90``: identity, then 90/180/270° in each plane of the three spatial-temporal axes.
ROTATIONS: tuple[tuple[int, tuple[int, int]], ...] = (
    (0, (3, 4)),
    *((k, dims) for dims in ((3, 4), (2, 4), (2, 3)) for k in (1, 2, 3)),
)
GRID = 2  # cells per axis in the jigsaw
CELLS = GRID**3


def random_cube(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """A random cube of side ``min(D, H, W)`` from ``x`` (one offset for the batch: a slice, no copy)."""
    side = min(x.shape[2:])
    starts = [int(torch.randint(0, s - side + 1, (), generator=generator)) for s in x.shape[2:]]
    return x[:, :, starts[0] : starts[0] + side, starts[1] : starts[1] + side, starts[2] : starts[2] + side]


def rotate(cubes: Tensor, labels: Tensor) -> Tensor:
    """``cubes[i]`` rotated by ``ROTATIONS[labels[i]]`` (cubes keep their shape under every rotation)."""
    if cubes.shape[2] != cubes.shape[3] or cubes.shape[3] != cubes.shape[4]:
        raise ValueError(f"rotate needs cubes (N, C, S, S, S), got {tuple(cubes.shape)}")
    out = torch.empty_like(cubes)
    for index, (k, dims) in enumerate(ROTATIONS):
        picked = labels == index
        if picked.any():
            out[picked] = torch.rot90(cubes[picked], k, dims)
    return out


def rotation_batch(x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Rotated cubes and their rotation classes (0..9) for a batch ``x`` (N, C, D, H, W)."""
    labels = torch.randint(0, len(ROTATIONS), (x.shape[0],), generator=generator).to(x.device)
    return rotate(random_cube(x, generator), labels), labels


def permutation_set(count: int, seed: int = 0) -> np.ndarray:
    """``count`` permutations of the 8 jigsaw cells, greedily far apart in Hamming distance (Noroozi's selection);
    the first is the identity. Seeded: the same set in pretraining and in any later check."""
    rng = np.random.default_rng(seed)
    pool = np.array(list(itertools.permutations(range(CELLS))), dtype=np.int8)  # 40,320 × 8
    chosen = [0]
    distance = (pool != pool[0]).sum(1)
    for _ in range(count - 1):
        best = np.flatnonzero(distance == distance.max())
        pick = int(rng.choice(best))
        chosen.append(pick)
        distance = np.minimum(distance, (pool != pool[pick]).sum(1))
    return pool[chosen].astype(np.int64)


def jigsaw_cells(x: Tensor, permutations: Tensor, labels: Tensor, jitter: float = 0.125,
                 generator: torch.Generator | None = None) -> Tensor:  # fmt: skip
    """(N, 8, C, d, h, w): the 2×2×2 cells of ``x``, each a jittered crop of ``1 - jitter`` of its grid cell, in the
    order ``permutations[labels[i]]`` (cell ``j`` of the output is grid cell ``perm[j]``)."""
    n, _, *size = x.shape
    grid = [s // GRID for s in size]
    cell = [max(1, int(g * (1 - jitter))) for g in grid]
    if min(grid) < 2:
        raise ValueError(f"jigsaw needs at least {2 * GRID} voxels per axis, got {tuple(size)}")
    cells = []
    for gz, gy, gx in itertools.product(range(GRID), repeat=3):
        off = [int(torch.randint(0, g - s + 1, (), generator=generator)) for g, s in zip(grid, cell, strict=True)]
        z0, y0, x0 = gz * grid[0] + off[0], gy * grid[1] + off[1], gx * grid[2] + off[2]
        cells.append(x[:, :, z0 : z0 + cell[0], y0 : y0 + cell[1], x0 : x0 + cell[2]])
    stacked = torch.stack(cells, dim=1)  # N, 8, C, d, h, w in grid order
    order = permutations.to(x.device)[labels]  # N, 8
    return stacked[torch.arange(n, device=x.device)[:, None], order]


def jigsaw_batch(x: Tensor, permutations: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Shuffled cells (N, 8, C, d, h, w) and their permutation classes for a batch ``x``."""
    labels = torch.randint(0, permutations.shape[0], (x.shape[0],), generator=generator).to(x.device)
    return jigsaw_cells(x, permutations, labels, generator=generator), labels


def nt_xent(z1: Tensor, z2: Tensor, temperature: float = 0.1) -> Tensor:
    """SimCLR's normalised-temperature cross entropy: ``z1[i]`` and ``z2[i]`` are positives, (N, F) each."""
    if z1.shape != z2.shape or z1.dim() != 2 or z1.shape[0] < 2:
        raise ValueError(f"nt_xent needs two (N, F) embeddings with N >= 2, got {tuple(z1.shape)}, {tuple(z2.shape)}")
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = z @ z.T / temperature
    n = z1.shape[0]
    sim.fill_diagonal_(float("-inf"))  # a clip is not its own negative
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, targets)
